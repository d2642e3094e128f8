/**
 * The queue and its delivery: batches over `fetch` with `keepalive` and a
 * text/plain body (a CORS "simple" request: no preflight), retries with
 * backoff that keep a batch's id, and `sendBeacon` when the page goes away.
 *
 * A batch (`state.inFlight`) is `{id, events}` and (mangled by the build):
 * - `beaconed`: it was handed to sendBeacon already
 */
import { state } from './state.js';
import { EVENT_TYPES } from './config.js';
import { N, now, safe, randomId, debug } from './util.js';
import { settleNow } from './clicks.js';

const MAX_QUEUE = 500; // oldest dropped beyond this (a long offline spell)
const MAX_BATCH = 100;
const URGENT = /^(rage_click|error)$/; // sent at once: frustration is answered now
const NUMBER = /^(x|y|speed|duration_ms)$/;
const TEXT = /^(url|message)$/;

/**
 * Queue one event. Only the reference's fields of the right kind are kept, so
 * one bad value can never get a whole batch refused.
 */
export function push(type, fields, at) {
  if (!state.on || EVENT_TYPES.indexOf(type) < 0) return;
  if (type == 'error') settleNow(); // an error after a click: the click goes with it
  const event = { type, ts: (at || now()) / 1e3 };
  for (const k in fields) {
    let v = fields[k];
    if (NUMBER.test(k)) {
      if (isFinite((v = +v))) event[k] = Math.max(0, Math.min(Math.round(v), 1e6));
    } else if (TEXT.test(k) || (k == 'direction' && /^(up|down)$/.test(v))) {
      event[k] = String(v).slice(0, 512);
    } else if (k == 'dead' && v === true && type == 'click') {
      event.dead = true;
    }
  }
  debug('captured', event);
  state.queue.push(event);
  if (state.queue.length > MAX_QUEUE) state.queue.shift();
  if (URGENT.test(type)) sendSoon();
}

// The key rides in the query string, so the body can be text/plain.
const url = () =>
  state.cfg.endpoint +
  '/v1/sessions/' +
  encodeURIComponent(state.sessionId) +
  '/events?key=' +
  encodeURIComponent(state.cfg.apiKey);
const body = (batch) => JSON.stringify({ events: batch.events, batch_id: batch.id });

/** Send everything queued; resolves (never rejects) when the server answered or the try failed. */
export const send = () => (state.chain = state.chain.then(pump));
/** Send now, unless a retry is waiting out its backoff. */
export const sendSoon = () => state.retryTimer || send();

async function pump() {
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  try {
    while (state.on && (state.inFlight || state.queue.length)) {
      const batch = state.inFlight || (state.inFlight = { id: randomId(), events: state.queue.splice(0, MAX_BATCH) });
      const text = body(batch);
      const res = await fetch(url(), { method: 'POST', body: text, keepalive: text.length < 6e4, credentials: 'omit' });
      const status = res.status;
      if (status == 408 || status == 429 || status > 499) throw res;
      if (state.inFlight == batch) state.inFlight = null; // stored, or refused for good
      state.tries = 0;
      const answer = await res.json().catch(() => ({}));
      debug('sent', batch.events, status, answer);
      if (status == 401 || status == 403) {
        // Retrying cannot help: say why once, in the server's words, and stop.
        console.warn('[SessionMood] ' + status + ' ' + (answer.message || answer.error) + ': tracking stopped.');
        return stop();
      }
      if (res.ok) {
        answer.mood = answer.current_mood;
        state.moodCallbacks.forEach((cb) => {
          try {
            cb(answer);
          } catch (_) {}
        });
      }
    }
  } catch (_) {
    if (state.on) {
      const backoff = Math.min(3e4, 1e3 * 2 ** state.tries++) * (0.5 + Math.random() / 2);
      state.retryTimer = setTimeout(safe(() => ((state.retryTimer = 0), send())), backoff);
    }
  }
}

/** Hand everything unsent to sendBeacon: the page is going away. */
export function beacon() {
  const batch = state.inFlight;
  if (batch && !batch.beaconed) batch.beaconed = N.sendBeacon(url(), body(batch));
  while (state.queue.length) {
    const next = { id: randomId(), events: state.queue.slice(0, MAX_BATCH) };
    if (!N.sendBeacon(url(), body(next))) break;
    state.queue.splice(0, next.events.length);
  }
}

/** Stop capturing and sending; unsent events are discarded. */
export function stop() {
  state.on = false;
  state.queue = [];
  state.inFlight = null;
  state.pending = [];
  clearInterval(state.flushTimer);
  [state.retryTimer, state.idleTimer, state.scrollTimer].forEach(clearTimeout);
  state.retryTimer = state.idleTimer = state.scrollTimer = 0;
}
