// The one live stream of a signed-in tab; each view listens while it is shown.

import { follow } from './api.js';

const listeners = new Set();
let stopStream = null;

export const live = {
  onUnauthorized: null,
  // Start once per sign-in; `after` is the event id the first list was read at (null: from now on).
  start(after) {
    if (stopStream) return;
    stopStream = follow(after ?? null, {
      onMessages: (messages) => { for (const fn of listeners) fn(messages); },
      onState: (state) => {
        const el = document.getElementById('live');
        if (el) el.textContent = state === 'live' ? 'live updates on' : `live updates: ${state}`;
        if (state === 'signed out' && live.onUnauthorized) live.onUnauthorized();
      },
    });
  },
  listen(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  stop() { if (stopStream) stopStream(); stopStream = null; listeners.clear(); },
};
