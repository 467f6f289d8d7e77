// Account: credentials and secret rotation, quota and balance, webhook URLs, messages per minute as SVG, and the
// suppression list (numbers that opted out, or were put there: no send reaches them).

import { api, save, saved } from './api.js';
import { announce, errorBox, fmtClock, fmtMoney, fmtTime, h, replace, svg } from './dom.js';

function chart(stats) {
  const W = 600; const H = 160; const pad = { l: 0, r: 0, t: 4, b: 1 };
  const series = stats.per_minute;
  const peak = Math.max(1, ...series.map((s) => s.outbound + s.inbound));
  const bw = (W - pad.l - pad.r) / series.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / peak);
  const busiest = series.reduce((a, b) => (b.outbound + b.inbound > a.outbound + a.inbound ? b : a), series[0]);
  const label = `Messages per minute over the last ${stats.minutes} minutes: ${stats.totals.outbound} sent, ${stats.totals.inbound} received`
    + (busiest.outbound + busiest.inbound ? `; busiest minute ${fmtClock(busiest.at)} with ${busiest.outbound + busiest.inbound}.` : '.');
  const bars = series.map((s, i) => {
    const x = pad.l + i * bw + 0.5;
    const w = Math.max(1, bw - 1);
    const title = svg('title', {}, `${fmtClock(s.at)}: ${s.outbound} sent, ${s.inbound} received`);
    return svg('g', {},
      title,
      s.outbound ? svg('rect', { class: 'bar-out', x, width: w, y: y(s.outbound), height: y(0) - y(s.outbound) }) : null,
      s.inbound ? svg('rect', { class: 'bar-in', x, width: w, y: y(s.outbound + s.inbound), height: y(s.outbound) - y(s.outbound + s.inbound) }) : null);
  });
  // numbers and times are HTML around the SVG, so they stay legible when the bars stretch to the width
  const axis = svg('line', { class: 'axis', x1: 0, x2: W, y1: y(0), y2: y(0) });
  return h('figure', { class: 'chart' },
    h('div', { class: 'chart-plot' },
      h('div', { class: 'chart-y', 'aria-hidden': 'true' }, h('span', {}, String(peak)), h('span', {}, '0')),
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'none', id: 'rate-chart' }, axis, bars)),
    h('div', { class: 'chart-x', 'aria-hidden': 'true' }, h('span', {}, fmtClock(stats.start)), h('span', {}, 'now')),
    h('figcaption', {}, label, ' ', h('span', { class: 'legend out' }, 'Filled bars: sent;'), ' ', h('span', { class: 'legend in' }, 'outlined bars: received.')));
}

function quotaBlock(q) {
  if (q.limit === null) return h('p', {}, 'No quota limit on this account.');
  const pct = Math.min(100, Math.round((100 * q.used) / Math.max(1, q.limit)));
  return h('div', {},
    h('label', { for: 'quota-meter' }, `${q.used} of ${q.limit} messages used (${pct}%) per ${q.interval > 1 ? `${q.interval} ${q.unit}s` : q.unit}`),
    h('meter', { id: 'quota-meter', min: 0, max: q.limit, value: q.used, low: q.limit * 0.7, high: q.limit * 0.9, optimum: 0 }, `${pct}%`),
    h('p', { class: 'muted' }, `Resets ${fmtTime(q.reset_at)}`));
}

function rotateBlock() {
  const out = h('div', { role: 'status' });
  const button = h('button', { type: 'button', id: 'rotate' }, 'Rotate secret…');
  button.addEventListener('click', async () => {
    if (!window.confirm('Make a new API secret? The current secret and its tokens stop working at once.')) return;
    button.disabled = true;
    try {
      const r = await api('/v1/account/rotate-secret', { method: 'POST' });
      const creds = saved();
      save({ ...creds, secret: r.api_secret });
      replace(out, h('p', {}, 'New secret (shown only now; this console already uses it):'),
        h('p', {}, h('code', { class: 'secret', id: 'new-secret' }, r.api_secret)));
      announce('The API secret was rotated');
    } catch (err) {
      replace(out, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return h('div', {}, button, out);
}

function webhookForm(acc) {
  const note = h('p', { role: 'status', class: 'muted' });
  const receipt = h('input', { id: 'receipt-url', type: 'url', value: acc.receipt_url || '', placeholder: 'https://example.com/receipts' });
  const inbound = h('input', { id: 'inbound-url', type: 'url', value: acc.inbound_url || '', placeholder: 'https://example.com/inbound' });
  const form = h('form', { class: 'settings' },
    h('div', { class: 'field' }, h('label', { for: 'receipt-url' }, 'Receipt / status webhook URL'), receipt),
    h('div', { class: 'field' }, h('label', { for: 'inbound-url' }, 'Inbound message webhook URL'), inbound),
    h('button', { type: 'submit' }, 'Save webhook URLs'), note);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('/v1/account/webhooks', { method: 'PUT', body: { receipt_url: receipt.value.trim() || null, inbound_url: inbound.value.trim() || null } });
      replace(note, 'Saved.');
    } catch (err) {
      replace(note, errorBox(err));
    }
  });
  return form;
}

function suppressionsBlock() {
  const note = h('p', { role: 'status', class: 'muted' });
  const list = h('div', { class: 'table-wrap' });
  const number = h('input', { id: 'suppress-number', type: 'tel', placeholder: '31612345678', autocomplete: 'off' });
  const load = async () => {
    try {
      const page = await api('/v1/suppressions?limit=100');
      if (!page.suppressions.length) {
        replace(list, h('p', { class: 'muted', id: 'suppressions-empty' }, 'No number is suppressed.'));
        return;
      }
      const rows = page.suppressions.map((s) => {
        const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${s.msisdn}` }, 'Remove');
        remove.addEventListener('click', async () => {
          try {
            await api(`/v1/suppressions/${encodeURIComponent(s.msisdn)}`, { method: 'DELETE' });
            announce(`${s.msisdn} may be messaged again`);
            await load();
          } catch (err) {
            replace(note, errorBox(err));
          }
        });
        return h('tr', { 'data-msisdn': s.msisdn },
          h('td', {}, h('code', {}, `+${s.msisdn}`)), h('td', {}, s.source), h('td', {}, s.reason || '—'),
          h('td', {}, fmtTime(s.created_at)), h('td', {}, remove));
      });
      replace(list, h('table', { id: 'suppressions' },
        h('caption', { class: 'muted' }, page.next_cursor ? 'The first 100 numbers (GET /v1/suppressions pages on).' : ''),
        h('thead', {}, h('tr', {}, ...['Number', 'Source', 'Reason', 'Since', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, ...rows)));
    } catch (err) {
      replace(list, errorBox(err));
    }
  };
  const form = h('form', { class: 'settings' },
    h('div', { class: 'field' }, h('label', { for: 'suppress-number' }, 'Suppress a number (international form)'), number),
    h('button', { type: 'submit' }, 'Suppress'), note);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api(`/v1/suppressions/${encodeURIComponent(number.value.trim())}`, { method: 'PUT', body: { reason: 'added in the console' } });
      number.value = '';
      replace(note, 'Suppressed.');
      await load();
    } catch (err) {
      replace(note, errorBox(err));
    }
  });
  load();
  return h('div', {}, h('p', { class: 'muted' }, 'Numbers no send reaches. A reply of STOP adds its sender here; START removes it.'), form, list);
}

export async function accountView(main, me) {
  main.append(h('h1', {}, 'Account'));
  if (me.operator) {
    main.append(h('p', { class: 'note' }, 'You are signed in as the operator, which is not an account. Sign in with an account\'s API key to see its credentials, quota and balance.'));
    return null;
  }
  const holder = h('div', { class: 'account-grid' });
  main.append(holder);
  const show = async () => {
    let acc; let stats;
    try {
      [acc, stats] = await Promise.all([api('/v1/account'), api('/v1/account/stats?minutes=60')]);
    } catch (err) {
      replace(holder, errorBox(err));
      return;
    }
    replace(holder,
      h('section', { class: 'card', 'aria-labelledby': 'cred-title' }, h('h2', { id: 'cred-title' }, 'Credentials'),
        h('dl', { class: 'facts' }, h('dt', {}, 'Name'), h('dd', {}, acc.name), h('dt', {}, 'API key'), h('dd', {}, h('code', { id: 'api-key-value' }, acc.api_key)),
          h('dt', {}, 'API secret'), h('dd', {}, 'hidden (kept only as a hash)'), h('dt', {}, 'Level'), h('dd', {}, acc.level),
          h('dt', {}, 'Default sender'), h('dd', {}, acc.default_sender || '—')),
        rotateBlock()),
      h('section', { class: 'card', 'aria-labelledby': 'usage-title' }, h('h2', { id: 'usage-title' }, 'Quota and balance'),
        quotaBlock(acc.quota), h('p', { class: 'balance' }, 'Balance: ', h('strong', { id: 'balance' }, fmtMoney(acc.balance, me.currency)))),
      h('section', { class: 'card wide', 'aria-labelledby': 'traffic-title' }, h('h2', { id: 'traffic-title' }, 'Traffic, last hour'), chart(stats)),
      h('section', { class: 'card wide', 'aria-labelledby': 'hooks-title' }, h('h2', { id: 'hooks-title' }, 'Webhooks'), webhookForm(acc)),
      h('section', { class: 'card wide', 'aria-labelledby': 'optout-title' }, h('h2', { id: 'optout-title' }, 'Suppression list (opt-out)'), suppressionsBlock()));
  };
  await show();
  const timer = window.setInterval(() => { if (!document.hidden && !holder.contains(document.activeElement)) show(); }, 15000);
  return () => window.clearInterval(timer);
}
