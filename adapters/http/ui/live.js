// Follows GET /api/events (Server-Sent Events) and recovers by itself.
//
// Each connection takes a fresh single-use ticket (api.js `ticketed`). The
// browser's EventSource would retry a dropped connection by itself with the
// same URL, whose ticket is spent, so on any stream error this closes it and
// reconnects itself with a new ticket, with backoff (1 s doubling to 30 s),
// and asks the caller to resynchronise after every (re)connect, since events
// sent while disconnected are lost.

import { api, ticketed } from './api.js';

/** The event names the server sends (EventJson.kind). */
export const EVENT_KINDS = [
  'created', 'running', 'error', 'exited', 'extended', 'expiring_soon', 'deleted', 'reap_failed',
];

const MAX_DELAY_MS = 30_000;

/**
 * Starts following the event stream.
 * - `onEvent(kind, data)`: one event (data is `{kind, at, lease, latenessMs?}`)
 * - `onConnected()`: (re)connected; events may have been missed: resync
 * - `onState(state)`: `connecting`, `live` or `reconnecting`
 * Returns `{ stop() }`.
 */
export function followEvents({ onEvent, onConnected, onState }) {
  let source = null;
  let timer = null;
  let attempts = 0;
  let stopped = false;
  let fetching = false; // a ticket is on its way: connect() is under way

  function schedule() {
    clearTimeout(timer);
    const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** attempts) + Math.floor(Math.random() * 250);
    attempts += 1;
    onState('reconnecting');
    timer = setTimeout(async () => {
      if (stopped) return;
      try {
        // A cheap authenticated call: a 401 here signs the page out (api.js),
        // anything else that fails just waits for the next attempt.
        await api('GET', '/api/usage');
      } catch (error) {
        if (error.status === 401) return;
        if (!stopped) schedule();
        return;
      }
      connect();
    }, delay);
  }

  async function connect() {
    if (stopped || fetching) return;
    source?.close();
    source = null;
    onState(attempts === 0 ? 'connecting' : 'reconnecting');
    let url;
    fetching = true;
    try {
      url = await ticketed('/api/events', { route: 'events' });
    } catch (error) {
      // A 401 has signed the page out (api.js); anything else: try again later.
      if (error.status !== 401 && !stopped) schedule();
      return;
    } finally {
      fetching = false;
    }
    if (stopped) return;
    const stream = new EventSource(url);
    source = stream;
    stream.addEventListener('open', () => {
      attempts = 0;
      onState('live');
      onConnected();
    });
    for (const kind of EVENT_KINDS) {
      stream.addEventListener(kind, (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        onEvent(kind, data);
      });
    }
    // The server could not keep up with us: some events were dropped.
    stream.addEventListener('lagged', () => onConnected());
    stream.addEventListener('error', (event) => {
      // The server's own `error` events (a lease failed) arrive here too, as
      // messages with data: those are handled above, not a broken stream.
      if (event instanceof MessageEvent) return;
      if (stopped || source !== stream) return;
      // Do not let the browser retry: its retry would present the spent ticket.
      stream.close();
      schedule();
    });
  }

  function reconnectNow() {
    if (stopped) return;
    if (!fetching && (!source || source.readyState === EventSource.CLOSED)) {
      attempts = 0;
      clearTimeout(timer);
      connect();
    }
  }

  window.addEventListener('online', reconnectNow);
  connect();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      source?.close();
      window.removeEventListener('online', reconnectNow);
    },
  };
}
