// Credentials live in sessionStorage (gone when the tab closes) and go out as an Authorization header on
// every call: Basic api_key:api_secret for an account, Bearer <operator token> for the operator.
// The live list is read with fetch() streaming rather than EventSource, so the stream sends the same header
// and no credential is ever put in a URL.

const KEY = 'smsgate.console.credentials';

export function saved() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}
export function save(creds) { sessionStorage.setItem(KEY, JSON.stringify(creds)); }
export function forget() { sessionStorage.removeItem(KEY); }

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function authorization(creds = saved()) {
  if (!creds) return '';
  return creds.kind === 'operator' ? `Bearer ${creds.token}` : `Basic ${b64(`${creds.apiKey}:${creds.secret}`)}`;
}

export class ApiError extends Error {
  constructor(status, message, code, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field; // our API names the field a refusal is about
  }
}

export async function api(path, { method = 'GET', body, creds } = {}) {
  const headers = { Authorization: authorization(creds || saved()), Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the gateway (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = data?.error?.message || data?.message || data?.Error || data?.detail || `HTTP ${response.status}`;
    throw new ApiError(response.status, message, data?.error?.code, data?.error?.field);
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

// Follow /console/api/stream from event id `after`; reconnects from the last id seen (the gateway may restart).
export function follow(after, { onMessages, onState }) {
  const controller = new AbortController();
  let cursor = after;
  let stopped = false;
  const handle = (frame) => {
    let event = 'message'; let data = ''; let id = null;
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const idx = line.indexOf(':');
      const field = idx < 0 ? line : line.slice(0, idx);
      const value = idx < 0 ? '' : line.slice(idx + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
      else if (field === 'id') id = value;
    }
    if (id !== null && /^\d+$/.test(id)) cursor = Number(id);
    if (event === 'messages' && data) onMessages(JSON.parse(data).messages);
  };
  (async () => {
    while (!stopped) {
      try {
        onState('connecting');
        const path = '/console/api/stream' + query({ after: cursor });
        const response = await fetch(path, {
          headers: { Authorization: authorization(), Accept: 'text/event-stream' }, signal: controller.signal, cache: 'no-store',
        });
        if (response.status === 401) { onState('signed out'); return; }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onState('live');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            handle(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      if (!stopped) { onState('reconnecting'); await sleep(1000); }
    }
  })();
  return () => { stopped = true; controller.abort(); };
}
