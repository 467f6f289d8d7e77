// Batches: each batch with a progress bar (messages that reached a final status of all it holds), its counts per
// status and its cost, refreshed every two seconds (GET /console/api/batches; the operator sees every account's).

import { api } from './api.js';
import { errorBox, fmtTime, h, replace } from './dom.js';

const FINAL = ['delivered', 'failed', 'expired', 'rejected'];

function row(b, operator) {
  const done = FINAL.reduce((n, s) => n + (b.statuses[s] || 0), 0);
  const pct = b.messages ? Math.round((done / b.messages) * 100) : 100;
  const counts = Object.entries(b.statuses).sort().map(([s, n]) => `${s} ${n}`).join(', ');
  return h('tr', { 'data-id': b.id, 'data-done': done, 'data-total': b.messages },
    h('td', { 'data-label': 'Batch' }, h('code', {}, b.id.slice(0, 8)), ' ', h('span', { class: 'muted' }, b.kind)),
    operator ? h('td', { 'data-label': 'Account' }, b.account_id) : null,
    h('td', { 'data-label': 'Created' }, fmtTime(b.created_at)),
    h('td', { 'data-label': 'Progress', class: 'progress-cell' },
      h('progress', { max: b.messages || 1, value: done, 'aria-label': `batch ${b.id.slice(0, 8)}: ${done} of ${b.messages} done` }),
      h('span', { class: 'progress-text' }, ` ${done} of ${b.messages} done (${pct} %)`)),
    h('td', { 'data-label': 'Statuses', class: 'status-counts' }, counts || '—'),
    h('td', { 'data-label': 'Refused' }, String(b.refused)),
    h('td', { 'data-label': 'Cost' }, b.price));
}

export async function batchesView(main, me) {
  main.append(h('h1', {}, 'Batches'));
  const state = h('p', { class: 'muted', role: 'status' });
  const body = h('tbody', { id: 'batch-rows' });
  const head = h('tr', {}, ['Batch', me.operator ? 'Account' : null, 'Created', 'Progress', 'Statuses', 'Refused', 'Cost']
    .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)));
  main.append(state, h('div', { class: 'table-wrap' }, h('table', { class: 'messages batches' }, h('thead', {}, head), body)));
  const refresh = async () => {
    try {
      const data = await api('/console/api/batches?limit=100');
      replace(body, data.batches.map((b) => row(b, me.operator)));
      state.textContent = data.batches.length ? `${data.batches.length} batches` : 'No batches yet: send one with POST /v1/batches, the KPN batch API or smsgate send --csv.';
    } catch (err) {
      replace(state, errorBox(err));
    }
  };
  await refresh();
  const timer = window.setInterval(() => { if (!document.hidden) refresh(); }, 2000);
  return () => window.clearInterval(timer);
}
