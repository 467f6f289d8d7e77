// The console's shell: sign-in, the section router (#/messages, #/batches, #/handsets, #/webhooks, #/account) and the
// one live stream every section listens to.

import { api, forget, save, saved } from './api.js';
import { errorBox, h, replace } from './dom.js';
import { accountView } from './account.js';
import { batchesView } from './batches.js';
import { composeView } from './compose.js';
import { handsetsView } from './handsets.js';
import { live } from './live.js';
import { detailView, messagesView } from './messages.js';
import { webhooksView } from './webhooks.js';

const main = document.getElementById('main');
let cleanup = null;
let me = null;

let signOutReason = null;

function signOut(reason) {
  live.stop();
  forget();
  me = null;
  signOutReason = reason;
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else render();
}

function signInView(reason) {
  const error = h('div', { id: 'signin-error' });
  let mode = 'account';
  const accountFields = h('div', { class: 'fields' },
    h('label', { for: 'api-key' }, 'API key'),
    h('input', { id: 'api-key', name: 'api_key', autocomplete: 'username', required: true, spellcheck: 'false' }),
    h('label', { for: 'api-secret' }, 'API secret'),
    h('input', { id: 'api-secret', name: 'api_secret', type: 'password', autocomplete: 'current-password', required: true }));
  const operatorFields = h('div', { class: 'fields', hidden: true },
    h('label', { for: 'operator-token' }, 'Operator token'),
    h('input', { id: 'operator-token', name: 'token', type: 'password', autocomplete: 'off' }));
  const pick = (value) => {
    mode = value;
    accountFields.hidden = value !== 'account';
    operatorFields.hidden = value !== 'operator';
    for (const input of accountFields.querySelectorAll('input')) input.required = value === 'account';
    operatorFields.querySelector('input').required = value === 'operator';
  };
  const radio = (value, text) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'mode', value, checked: value === 'account', onchange: () => pick(value) }), ' ', text);
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    reason ? h('p', { class: 'note', role: 'status' }, reason) : null,
    h('fieldset', {}, h('legend', {}, 'Sign in as'), radio('account', 'an account (API key and secret)'), radio('operator', 'the operator (sees all accounts)')),
    accountFields, operatorFields, error,
    h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in'),
    h('p', { class: 'hint' }, 'Credentials are kept in this browser tab only (sessionStorage) and sent to this gateway alone.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const creds = mode === 'operator'
      ? { kind: 'operator', token: form.querySelector('#operator-token').value.trim() }
      : { kind: 'account', apiKey: form.querySelector('#api-key').value.trim(), secret: form.querySelector('#api-secret').value };
    replace(error);
    try {
      me = await api('/console/api/whoami', { creds });
    } catch (err) {
      replace(error, errorBox(err.status === 401 ? new Error('Those credentials were not accepted.') : err));
      return;
    }
    save(creds);
    if (location.hash === '#/messages') render();
    else location.hash = '#/messages';
  });
  main.append(form);
  form.querySelector('input[name="api_key"]').focus();
}

const ROUTES = [
  [/^#\/messages\/([^/]+)$/, 'messages', (m) => detailView(main, decodeURIComponent(m[1]), me)],
  [/^#\/messages$/, 'messages', () => messagesView(main, me)],
  [/^#\/batches$/, 'batches', () => batchesView(main, me)],
  [/^#\/compose$/, 'compose', () => composeView(main, me)],
  [/^#\/handsets(?:\/([^/]+))?$/, 'handsets', (m) => handsetsView(main, m[1] ? decodeURIComponent(m[1]) : null, me)],
  [/^#\/webhooks$/, 'webhooks', () => webhooksView(main, me)],
  [/^#\/account$/, 'account', () => accountView(main, me)],
];

async function render() {
  const reason = signOutReason;
  signOutReason = null;
  if (cleanup) { cleanup(); cleanup = null; }
  replace(main);
  const signedIn = Boolean(saved());
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  if (!signedIn) { signInView(reason); return; }
  if (!me) {
    try {
      me = await api('/console/api/whoami');
    } catch (err) {
      if (err.status === 401) { signOut('Please sign in again.'); return; }
      main.append(errorBox(err));
      return;
    }
  }
  document.getElementById('who-name').textContent = me.operator ? 'Operator (all accounts)' : `${me.account.name} (${me.account.api_key})`;
  const hash = !location.hash || location.hash === '#/signin' ? '#/messages' : location.hash;
  const route = ROUTES.find(([re]) => re.test(hash));
  if (!route) { location.hash = '#/messages'; return; }
  const [re, section, view] = route;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  cleanup = (await view(hash.match(re))) || null;
}

live.onUnauthorized = () => signOut('Your credentials are no longer valid. Please sign in again.');
document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', () => { render(); main.focus({ preventScroll: true }); });
render();
