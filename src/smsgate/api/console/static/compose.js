// Send: compose a message and send it through our own API (POST /v1/messages), with a live count of its parts
// and encoding from POST /v1/segments as the text is typed, an optional send time and a priority lane.

import { api } from './api.js';
import { announce, errorBox, h, replace } from './dom.js';

const FIELDS = ['to', 'from', 'text', 'send_at', 'priority'];

function field(name, label, control, hint) {
  control.id = `compose-${name}`;
  control.name = name;
  const hintEl = hint ? h('p', { class: 'hint', id: `compose-${name}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

// "gsm7 · 2 parts · 146 characters left in the last part": what the text will cost, in words
function counterText(seg) {
  const parts = `${seg.parts} part${seg.parts === 1 ? '' : 's'}`;
  const left = `${seg.remaining_in_last_part} character${seg.remaining_in_last_part === 1 ? '' : 's'} left in the last part`;
  const odd = seg.non_gsm_characters.length ? ` · not in GSM-7: ${seg.non_gsm_characters.join(' ')}` : '';
  return `${seg.encoding === 'gsm7' ? 'GSM-7' : 'UCS-2'} · ${parts} · ${left}${odd}`;
}

export async function composeView(main, me) {
  main.append(h('h1', {}, 'Send a message'));
  if (me.operator) {
    main.append(h('p', { class: 'note' }, 'The operator is not an account: sign in with an account\'s API key to send.'));
    return null;
  }
  const to = h('input', { type: 'tel', required: true, autocomplete: 'off', placeholder: '+31612345678', maxlength: 32 });
  const from = h('input', { autocomplete: 'off', maxlength: 20, placeholder: 'the account\'s default sender' });
  const text = h('textarea', { rows: 5, required: true, maxlength: 3200 });
  const counter = h('p', { class: 'counter', id: 'compose-counter', role: 'status', 'aria-live': 'polite' }, 'Empty');
  const sendAt = h('input', { type: 'datetime-local', step: 1 });
  const priority = h('select', {},
    h('option', { value: '' }, 'the account\'s default'),
    ['high', 'normal', 'bulk'].map((p) => h('option', { value: p }, p)));
  const error = h('div', { id: 'compose-error' });
  const submit = h('button', { type: 'submit', id: 'compose-send' }, 'Send');
  const form = h('form', { class: 'card compose', 'aria-labelledby': 'compose-title' },
    h('h2', { id: 'compose-title', class: 'visually-hidden' }, 'New message'),
    field('to', 'To', to, 'E.164, e.g. +31612345678'),
    field('from', 'From (optional)', from),
    field('text', 'Text', text),
    counter,
    field('send_at', 'Send at (optional)', sendAt, 'Your local time; empty sends now. A scheduled message can be canceled until it goes.'),
    field('priority', 'Priority', priority, 'high for one-time codes; bulk for newsletters'),
    error, submit);
  main.append(form);

  // the counter asks the gateway (the same segmentation a send uses), at most one request in flight
  let asked = null;
  let timer = null;
  const count = async () => {
    const value = text.value;
    if (!value) { counter.textContent = 'Empty'; return; }
    asked = value;
    try {
      const seg = await api('/v1/segments', { method: 'POST', body: { text: value } });
      if (asked === value) counter.textContent = counterText(seg);
    } catch (err) {
      if (asked === value) counter.textContent = `Cannot count: ${err.message}`;
    }
  };
  text.addEventListener('input', () => { window.clearTimeout(timer); timer = window.setTimeout(count, 200); });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(error);
    for (const name of FIELDS) form.elements[name].removeAttribute('aria-invalid');
    const body = { to: to.value.trim(), text: text.value };
    if (from.value.trim()) body.from = from.value.trim();
    if (sendAt.value) body.send_at = new Date(sendAt.value).toISOString();
    if (priority.value) body.priority = priority.value;
    submit.disabled = true;
    let sent;
    try {
      sent = await api('/v1/messages', { method: 'POST', body });
    } catch (err) {
      replace(error, errorBox(err));
      const bad = err.field && form.elements[err.field];
      if (bad) { bad.setAttribute('aria-invalid', 'true'); bad.focus(); }
      return;
    } finally {
      submit.disabled = false;
    }
    announce(sent.status === 'scheduled' ? 'Message scheduled' : 'Message sent');
    location.hash = `#/messages/${encodeURIComponent(sent.id)}`;
  });
  to.focus();
  return () => window.clearTimeout(timer);
}
