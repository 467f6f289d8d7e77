// Webhooks: the account's deliveries with every attempt, and replay (GET /v1/webhooks/deliveries,
// POST /v1/webhooks/deliveries/{id}/replay). Those APIs are per account, so the operator only gets a note.

import { api, query } from './api.js';
import { announce, errorBox, fmtClock, fmtTime, h, replace, statusBadge } from './dom.js';

const STATUSES = ['pending', 'retrying', 'delivered', 'dead'];

export function replayButton(delivery, after) {
  const note = h('span', { class: 'muted', role: 'status' });
  const button = h('button', { type: 'button', class: 'replay', 'data-delivery': delivery.id }, 'Replay');
  button.setAttribute('aria-label', `Replay ${delivery.event} webhook to ${delivery.url}`);
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(note, 'Replaying…');
    try {
      await api(`/v1/webhooks/deliveries/${encodeURIComponent(delivery.id)}/replay`, { method: 'POST' });
      replace(note, 'Queued again.');
      announce('Webhook queued for another delivery');
      if (after) window.setTimeout(after, 800);
    } catch (err) {
      replace(note, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return h('span', { class: 'replay-box' }, button, ' ', note);
}

function attempts(list) {
  if (!list.length) return h('p', { class: 'muted' }, 'Not tried yet.');
  return h('ol', { class: 'attempts' }, list.map((a) => h('li', {},
    `${fmtClock(a.at)}: `, a.status_code ? `HTTP ${a.status_code}` : (a.error || 'no answer'),
    a.latency_ms !== null && a.latency_ms !== undefined ? ` in ${Math.round(a.latency_ms)} ms` : '',
    a.status_code && a.error ? ` (${a.error})` : '')));
}

function delivery(d, refresh) {
  return h('li', { class: 'card delivery', 'data-id': d.id, 'data-status': d.status },
    h('div', { class: 'delivery-head' },
      h('strong', {}, d.event), ' ', statusBadge(d.status),
      h('span', { class: 'muted' }, ` ${d.attempt_count} attempt${d.attempt_count === 1 ? '' : 's'}, created ${fmtTime(d.created_at)}`)),
    h('p', {}, h('code', { class: 'url' }, `${d.method} ${d.url}`)),
    d.message_id ? h('p', {}, 'Message ', h('a', { href: `#/messages/${encodeURIComponent(d.message_id)}` }, d.message_id)) : null,
    d.next_attempt_at ? h('p', { class: 'muted' }, `Next attempt ${fmtTime(d.next_attempt_at)}`) : null,
    d.last_error ? h('p', { class: 'muted' }, `Last error: ${d.last_error}`) : null,
    h('details', {}, h('summary', {}, 'Attempts and body'), attempts(d.attempts), h('pre', { class: 'body' }, d.body)),
    replayButton(d, refresh));
}

export async function webhooksView(main, me) {
  main.append(h('h1', {}, 'Webhooks'));
  if (me.operator) {
    main.append(h('p', { class: 'note' }, 'Webhook deliveries are listed per account: sign in with an account\'s API key to see and replay them. Each message\'s detail page shows its webhooks to the operator too.'));
    return null;
  }
  const status = h('select', { id: 'wh-status' }, h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const list = h('ul', { class: 'deliveries', 'aria-live': 'polite' });
  const state = h('p', { class: 'muted', role: 'status' });
  const refresh = async () => {
    if (!list.children.length) state.textContent = 'Loading…';
    try {
      const data = await api('/v1/webhooks/deliveries' + query({ status: status.value, limit: 100 }));
      replace(list, data.deliveries.map((d) => delivery(d, refresh)));
      state.textContent = data.deliveries.length ? `${data.deliveries.length} deliveries` : 'No webhook deliveries yet.';
    } catch (err) {
      replace(state, errorBox(err));
    }
  };
  const form = h('form', { class: 'filters', 'aria-label': 'Filter deliveries' },
    h('div', { class: 'field' }, h('label', { for: 'wh-status' }, 'Status'), status),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show'), h('button', { type: 'button', class: 'secondary', onclick: refresh }, 'Refresh')));
  form.addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
  main.append(form, state, list);
  await refresh();
  const timer = window.setInterval(() => { if (!document.hidden && !list.contains(document.activeElement)) refresh(); }, 5000);
  return () => window.clearInterval(timer);
}
