// Small DOM helpers: elements are built with textContent only, so message text can never become markup.

export function h(tag, attrs = {}, ...children) {
  const el = tag === 'svg' || attrs?.svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false || key === 'svg') continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  return h(tag, { ...attrs, svg: true }, ...children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtClock(t) {
  return t ? new Date(t * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '';
}

const MARKS = {
  delivered: '✓', received: '↓', submitted: '→', accepted: '…', queued: '…', scheduled: '⏲', canceled: '⊘',
  failed: '✗', rejected: '✗', expired: '⌛', undeliverable: '✗', succeeded: '✓', pending: '…', dead: '✗',
};

// A status is always written out; colour and the mark only repeat it.
export function statusBadge(status) {
  return h('span', { class: `status status-${status}` },
    h('span', { 'aria-hidden': 'true', class: 'mark' }, MARKS[status] || '•'), ' ', status);
}

export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  window.setTimeout(() => { el.textContent = text; }, 50);
}

export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err?.message || String(err));
}

// An amount as the API gives it ("0.07250000": 8 decimals, as Vonage) in its currency's own decimals ("0.07 EUR").
// Decimal strings are rounded as text, half up, so no float ever touches the figure.
export function fmtMoney(amount, currency) {
  if (amount === null || amount === undefined || amount === '') return '—';
  const decimals = currency?.decimals ?? 2;
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(String(amount));
  if (!m) return String(amount);
  const [, sign, whole, frac = ''] = m;
  let digits = BigInt(whole + frac.padEnd(decimals, '0').slice(0, decimals));
  if ((frac[decimals] || '0') >= '5') digits += 1n;
  const text = digits.toString().padStart(decimals + 1, '0');
  const shown = decimals ? `${text.slice(0, -decimals)}.${text.slice(-decimals)}` : text;
  return `${sign && digits ? '-' : ''}${shown}${currency?.code ? ` ${currency.code}` : ''}`;
}

export function truncate(text, n) {
  if (text === null || text === undefined) return '(binary)';
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}
