// Messages: the filtered list that updates itself from the live stream, and one message in detail.

import { api, ApiError, query } from './api.js';
import { announce, errorBox, fmtClock, fmtMoney, fmtTime, h, replace, statusBadge, truncate } from './dom.js';
import { live } from './live.js';
import { replayButton } from './webhooks.js';

const STATUSES = ['scheduled', 'accepted', 'submitted', 'delivered', 'failed', 'expired', 'rejected', 'canceled', 'received'];
const DIALECTS = ['kpn', 'nexmo', 'vonage', 'kaarai', 'network'];
const FILTERS = ['q', 'status', 'direction', 'number', 'sender', 'dialect', 'since', 'until'];
let lastFilters = {};

function toEpoch(local) { return local ? new Date(local).getTime() / 1000 : null; }

function e164ish(n) {
  const c = (n || '').replace(/\s+/g, '');
  return /^\+?\d+$/.test(c) ? `+${c.replace(/^\+/, '')}` : c;
}

// The same filters the server applies, so a live update lands in (or leaves) the list as a reload would.
function matches(f, m) {
  if (f.status && m.status !== f.status) return false;
  if (f.direction && m.direction !== f.direction) return false;
  if (f.dialect && m.dialect !== f.dialect) return false;
  if (f.sender && m.from !== f.sender) return false;
  if (f.number && m.from !== e164ish(f.number) && m.to !== e164ish(f.number)) return false;
  if (f.since && m.created_at < toEpoch(f.since)) return false;
  if (f.until && m.created_at >= toEpoch(f.until)) return false;
  if (f.q && !(m.text || '').includes(f.q)) return false;
  return true;
}

function field(id, label, control) {
  control.id = id;
  control.name = id.replace('f-', '');
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function select(values, anyLabel, current) {
  return h('select', {}, h('option', { value: '' }, anyLabel),
    values.map((v) => h('option', { value: v, selected: v === current }, v)));
}

function filterForm(current, onApply) {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter messages' },
    field('f-q', 'Text contains', h('input', { type: 'search', value: current.q || '' })),
    field('f-status', 'Status', select(STATUSES, 'any status', current.status)),
    field('f-direction', 'Direction', select(['outbound', 'inbound'], 'both', current.direction)),
    field('f-number', 'Number (from or to)', h('input', { inputmode: 'tel', value: current.number || '' })),
    field('f-sender', 'Sender', h('input', { value: current.sender || '' })),
    field('f-dialect', 'API (dialect)', select(DIALECTS, 'any API', current.dialect)),
    field('f-since', 'From time', h('input', { type: 'datetime-local', step: 1, value: current.since || '' })),
    field('f-until', 'Until time', h('input', { type: 'datetime-local', step: 1, value: current.until || '' })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  const read = () => Object.fromEntries(FILTERS.map((k) => [k, form.elements[k].value.trim()]).filter(([, v]) => v));
  form.addEventListener('submit', (e) => { e.preventDefault(); onApply(read()); });
  form.addEventListener('reset', () => window.setTimeout(() => onApply({}), 0));
  return form;
}

function params(f) {
  return { ...f, since: toEpoch(f.since), until: toEpoch(f.until) };
}

function row(m, operator, currency) {
  const link = h('a', { href: `#/messages/${encodeURIComponent(m.id)}`, class: 'msg-link' }, truncate(m.text, 60));
  return h('tr', { 'data-id': m.id, 'data-status': m.status },
    h('td', { 'data-label': 'Time' }, h('time', { datetime: new Date(m.created_at * 1000).toISOString() }, fmtTime(m.created_at))),
    h('td', { 'data-label': 'Direction' }, m.direction === 'inbound' ? '↓ in' : '↑ out'),
    h('td', { 'data-label': 'From' }, m.from),
    h('td', { 'data-label': 'To' }, m.to),
    h('td', { 'data-label': 'Text', class: 'text' }, link),
    h('td', { 'data-label': 'Status', class: 'status-cell' }, statusBadge(m.status)),
    h('td', { 'data-label': 'Price', class: 'num' }, m.direction === 'inbound' ? '—' : fmtMoney(m.price, currency)),
    operator ? h('td', { 'data-label': 'Account' }, m.account_id || '(none)') : null);
}

export async function messagesView(main, me) {
  const operator = me.operator;
  const body = h('tbody', { id: 'message-rows' });
  const state = h('p', { class: 'muted', id: 'list-state', role: 'status' }, 'Loading…');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load older messages');
  const rows = new Map();
  let next = null;
  const table = h('table', { class: 'messages' },
    h('caption', { class: 'visually-hidden' }, 'Messages, newest first; the list updates itself'),
    h('thead', {}, h('tr', {}, ['Time', 'Direction', 'From', 'To', 'Text', 'Status', 'Price', operator ? 'Account' : null]
      .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const active = Object.keys(lastFilters).length;
  // on a phone the filters fold away (open when some are set), on a laptop they stay open
  const filters = h('details', { class: 'filter-box', open: active > 0 || window.matchMedia('(min-width: 761px)').matches },
    h('summary', {}, active ? `Search and filters (${active} set)` : 'Search and filters'),
    filterForm(lastFilters, (f) => { lastFilters = f; load(false); }));
  main.append(h('h1', {}, 'Messages'), filters, state,
    h('div', { class: 'table-wrap' }, table), more);

  function place(m, tr) {
    // newest first: before the first row that is older
    const older = [...body.children].find((r) => {
      const other = rows.get(r.dataset.id);
      return other && (other.created_at < m.created_at || (other.created_at === m.created_at && other.id < m.id));
    });
    body.insertBefore(tr, older || null);
  }

  async function load(append) {
    state.textContent = 'Loading…';
    let data;
    try {
      data = await api('/console/api/messages' + query({ ...params(lastFilters), before: append ? next : null }));
    } catch (err) {
      replace(state, errorBox(err));
      return;
    }
    if (!append) { body.replaceChildren(); rows.clear(); }
    for (const m of data.messages) {
      if (rows.has(m.id)) continue;
      rows.set(m.id, m);
      body.append(row(m, operator, me.currency));
    }
    next = data.next;
    more.hidden = !next;
    state.textContent = rows.size ? `${rows.size} message${rows.size === 1 ? '' : 's'} shown` : 'No messages match.';
    live.start(data.stream_after);
  }

  more.addEventListener('click', () => load(true));
  const stop = live.listen((messages) => {
    let added = 0; let changed = 0;
    for (const m of messages) {
      const tr = body.querySelector(`tr[data-id="${CSS.escape(m.id)}"]`);
      if (!matches(lastFilters, m)) {
        if (tr) { tr.remove(); rows.delete(m.id); }
        continue;
      }
      if (tr) {
        if (tr.dataset.status !== m.status) changed += 1;
        rows.set(m.id, m);
        tr.dataset.status = m.status;
        replace(tr.querySelector('.status-cell'), statusBadge(m.status));
      } else if (!next || m.created_at >= Math.min(...[...rows.values()].map((r) => r.created_at))) {
        rows.set(m.id, m);
        const fresh = row(m, operator, me.currency);
        fresh.classList.add('fresh');
        place(m, fresh);
        added += 1;
      }
    }
    if (added || changed) {
      state.textContent = `${rows.size} message${rows.size === 1 ? '' : 's'} shown`;
      const parts = [];
      if (added) parts.push(`${added} new message${added === 1 ? '' : 's'}`);
      if (changed) parts.push(`${changed} status change${changed === 1 ? '' : 's'}`);
      announce(parts.join(', '));
    }
  });
  await load(false);
  return stop;
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function eventData(data) {
  if (!data) return '';
  return Object.entries(data).filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

function webhookList(m, me, refresh) {
  if (!m.webhooks.length) return h('p', { class: 'muted' }, 'No webhooks for this message (no callback or receipt URL).');
  return h('ul', { class: 'webhooks' }, m.webhooks.map((d) => h('li', { class: 'card' },
    h('p', {}, h('strong', {}, d.event), ' → ', h('code', {}, `${d.method} ${d.url}`), ' ', statusBadge(d.status),
      ` ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`),
    d.attempt_log.length ? h('ol', { class: 'attempts' }, d.attempt_log.map((a) => h('li', {},
      `${fmtClock(a.at)}: `, a.status_code ? `HTTP ${a.status_code}` : (a.error || 'no answer'),
      a.latency_ms !== null ? ` in ${Math.round(a.latency_ms)} ms` : ''))) : null,
    me.operator ? null : replayButton(d, refresh))));
}

// A message not submitted yet can be canceled by its account (POST /v1/messages/{id}/cancel): refunded, and its
// webhook says message.canceled. Too late (it went out meanwhile) is said in words, and the page shows what it is.
function cancelBlock(m, me, refresh) {
  if (me.operator || m.direction !== 'outbound' || m.status !== 'scheduled') return null;
  const note = h('span', { role: 'status', class: 'note' });
  const button = h('button', { type: 'button', class: 'danger', id: 'cancel-message' }, 'Cancel this message');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await api(`/v1/messages/${encodeURIComponent(m.id)}/cancel`, { method: 'POST' });
      announce('Message canceled; its price went back to the balance.');
    } catch (err) {
      button.disabled = false;
      replace(note, err.status === 409 ? 'Too late: it was submitted meanwhile.' : err.message);
      return;
    }
    await refresh();
  });
  return h('p', { class: 'cancel' }, button, ' ', note);
}

export async function detailView(main, id, me) {
  const holder = h('div', { 'aria-live': 'polite' });
  main.append(h('p', {}, h('a', { href: '#/messages' }, '← All messages')), holder);
  async function show() {
    // a live update re-renders the page: put the keyboard focus back where it was
    const el = holder.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = el?.dataset?.delivery ? `[data-delivery="${CSS.escape(el.dataset.delivery)}"]` : el?.id ? `#${CSS.escape(el.id)}` : null;
    let m;
    try {
      m = await api(`/console/api/messages/${encodeURIComponent(id)}`);
    } catch (err) {
      replace(holder, errorBox(err instanceof ApiError && err.status === 404 ? new Error('No such message.') : err));
      return;
    }
    replace(holder,
      h('h1', {}, m.direction === 'inbound' ? `Message from ${m.from}` : `Message to ${m.to}`, ' ', statusBadge(m.status)),
      h('blockquote', { class: 'sms' }, m.text ?? '(binary message)'),
      cancelBlock(m, me, show),
      dl([['ID', h('code', {}, m.id)], ['Direction', m.direction], ['From', m.from], ['To', m.to], ['Status', m.status],
        ['API (dialect)', m.dialect], ['Encoding', m.encoding], ['Parts', String(m.parts_count)],
        ['Price', m.direction === 'inbound' ? null : fmtMoney(m.price, me.currency)], ['Network', m.network], ['Country', m.country],
        ['Send at', m.meta?.send_at ? fmtTime(m.meta.send_at) : null], ['Priority', m.meta?.priority || null],
        ['Connector', m.connector], ['Client reference', m.client_ref],
        ['Error', m.error ? `${m.error.text} (${m.error.code})` : null], ['Account', me.operator ? m.account_id : null],
        ['Created', fmtTime(m.created_at)], ['Updated', fmtTime(m.updated_at)]]),
      h('h2', {}, 'Timeline'),
      h('ol', { class: 'timeline' }, m.events.map((e) => h('li', {},
        h('strong', {}, e.type), ' ', h('time', {}, fmtClock(e.at)), e.part_id ? ` (part ${e.part_id})` : '',
        e.data ? h('span', { class: 'muted' }, ` ${eventData(e.data)}`) : ''))),
      h('h2', {}, 'Parts'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'parts' },
        h('thead', {}, h('tr', {}, ['#', 'Status', 'Network id', 'Price', 'Text'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, m.parts.map((p) => h('tr', {},
          h('td', { 'data-label': '#' }, `${p.index}/${p.total}`), h('td', { 'data-label': 'Status' }, statusBadge(p.status)),
          h('td', { 'data-label': 'Network id' }, p.network_message_id || '—'), h('td', { 'data-label': 'Price' }, fmtMoney(p.price, me.currency)),
          h('td', { 'data-label': 'Text' }, p.text ?? '(binary)')))))),
      h('h2', {}, 'Webhooks'),
      webhookList(m, me, show),
      h('p', {}, h('button', { type: 'button', class: 'secondary', id: 'detail-refresh', onclick: show }, 'Refresh')));
    if (focusKey) holder.querySelector(focusKey)?.focus();
  }
  await show();
  live.start(null);
  return live.listen((messages) => { if (messages.some((x) => x.id === id)) show(); });
}
