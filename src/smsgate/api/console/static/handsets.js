// Handsets: every virtual phone of the sandbox network as a conversation, with a reply box that makes the
// handset send an SMS (POST /sandbox/handsets/{msisdn}/reply), which then goes through routing and webhooks.

import { api } from './api.js';
import { announce, errorBox, fmtClock, fmtTime, h, replace } from './dom.js';
import { live } from './live.js';

function digits(msisdn) { return msisdn.replace(/^\+/, ''); }

function bubble(m) {
  // on the handset, what the gateway sent is "received"; an inbound message is what the handset sent
  const mine = m.direction === 'inbound';
  return h('li', { class: `bubble ${mine ? 'sent' : 'received'}`, 'data-id': m.id },
    h('span', { class: 'visually-hidden' }, mine ? 'Sent by the handset: ' : `Received from ${m.from}: `),
    h('p', { class: 'bubble-text' }, m.text ?? '(binary message)'),
    h('p', { class: 'bubble-meta' }, mine ? `to ${m.to}` : `from ${m.from}`, ' · ', h('time', {}, fmtClock(m.created_at)), ' · ',
      h('a', { href: `#/messages/${encodeURIComponent(m.id)}` }, m.status)));
}

async function conversation(pane, msisdn, me) {
  const list = h('ol', { class: 'conversation', 'aria-live': 'polite', 'aria-label': `Messages of ${msisdn}` });
  const error = h('div');
  const to = h('input', { id: 'reply-to', name: 'to', required: true, autocomplete: 'off' });
  const text = h('textarea', { id: 'reply-text', name: 'text', rows: 2, required: true, maxlength: 1000 });
  const send = h('button', { type: 'submit', id: 'reply-send' }, 'Send reply');
  const form = h('form', { class: 'reply', 'aria-label': `Reply from ${msisdn}` },
    h('div', { class: 'field' }, h('label', { for: 'reply-to' }, 'To (who the handset answers)'), to),
    h('div', { class: 'field grow' }, h('label', { for: 'reply-text' }, 'Message'), text),
    send, error);
  if (me.operator) {
    for (const el of form.querySelectorAll('input, textarea, button')) el.disabled = true;
    form.append(h('p', { class: 'note' }, 'Sign in with an account to reply from a handset.'));
  }
  replace(pane,
    h('p', { class: 'back' }, h('a', { href: '#/handsets' }, '← All handsets')),
    h('section', { class: 'phone', 'aria-labelledby': 'phone-title' },
      h('h2', { id: 'phone-title' }, `Handset ${msisdn}`), list, form));
  const load = async () => {
    const data = await api(`/console/api/handsets/${encodeURIComponent(digits(msisdn))}`);
    const known = new Set([...list.children].map((li) => li.dataset.id));
    replace(list, data.messages.map(bubble));
    if (!data.messages.length) list.append(h('li', { class: 'muted' }, 'No messages yet.'));
    if (!to.value && data.reply_to) to.value = data.reply_to;
    list.scrollTop = list.scrollHeight;
    return data.messages.filter((m) => !known.has(m.id));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(error);
    send.disabled = true;
    try {
      await api(`/sandbox/handsets/${encodeURIComponent(digits(msisdn))}/reply`, { method: 'POST', body: { to: to.value.trim(), text: text.value } });
      text.value = '';
      announce('Reply sent');
    } catch (err) {
      replace(error, errorBox(err));
    } finally {
      send.disabled = false;
      text.focus();
    }
  });
  try { await load(); } catch (err) { replace(list, errorBox(err)); }
  return live.listen(async (messages) => {
    if (!messages.some((m) => m.to === msisdn || m.from === msisdn)) return;
    const fresh = await load();
    const incoming = fresh.filter((m) => m.direction === 'outbound');
    if (incoming.length) announce(`New message on ${msisdn}`);
  });
}

export async function handsetsView(main, selected, me) {
  const e164 = selected ? `+${digits(selected)}` : null;
  const listPane = h('section', { class: 'handset-list', 'aria-labelledby': 'handsets-title' });
  const convPane = h('div', { class: 'handset-conversation' });
  main.append(h('div', { class: `handsets ${e164 ? 'has-selection' : ''}` }, listPane, convPane));
  const renderList = async () => {
    let data;
    try { data = await api('/console/api/handsets'); } catch (err) { replace(listPane, errorBox(err)); return; }
    const items = data.handsets.map((x) => h('li', {},
      h('a', { href: `#/handsets/${digits(x.msisdn)}`, 'aria-current': x.msisdn === e164 ? 'true' : null },
        h('span', { class: 'number' }, x.msisdn),
        h('span', { class: 'muted' }, ` ${x.messages} message${x.messages === 1 ? '' : 's'}, last ${fmtTime(x.last_at)}`))));
    replace(listPane, h('h1', { id: 'handsets-title' }, 'Handsets'),
      data.sandbox ? null : h('p', { class: 'note' }, 'This gateway has no sandbox network.'),
      items.length ? h('ul', { class: 'handset-items' }, items)
        : h('p', { class: 'muted' }, 'No handsets yet: send a message to any number and its virtual phone appears here.'));
  };
  await renderList();
  live.start(null);
  const stops = [live.listen((messages) => { if (messages.length && !listPane.contains(document.activeElement)) renderList(); })];
  if (e164) stops.push(await conversation(convPane, e164, me));
  else convPane.append(h('p', { class: 'muted pick' }, 'Pick a handset to see its conversation.'));
  return () => stops.forEach((s) => s());
}
