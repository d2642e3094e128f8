/**
 * The queue and its delivery: batches over `fetch` with `keepalive` and a
 * text/plain body (a CORS "simple" request: no preflight), retries with
 * backoff that keep a batch's id, and `sendBeacon` when the page goes away.
 */
import { on, cfg, sessionId, onStop, stop } from './life.js';
import { N, now, safe, randomId, debug } from './util.js';

/** Captured events not yet in a batch. */
let queue = [];
/**
 * The batch being sent, the same across retries: `{id, events}`, and
 * `beaconed` once it was handed to sendBeacon (a field the build mangles).
 */
let inFlight;
/** Failed attempts in a row (the backoff exponent). */
let tries = 0;
/** Sends run one after another. */
let chain = Promise.resolve();
/** The next try, while waiting out a backoff. */
let retryTimer;
/** The periodic send. */
let flushTimer;
/** `onMood` subscribers. */
let moodCallbacks = [];

onStop(() => {
  queue = [];
  inFlight = null;
  clearInterval(flushTimer);
  clearTimeout(retryTimer);
  retryTimer = 0;
});

/**
 * The 12 event types of the API reference: anything else is dropped before
 * sending. The first `TARGETED` may carry a `target`.
 */
const EVENT_TYPES =
  'click rage_click input_pause error hover focus blur scroll backtrack back_nav page_view idle'.split(' ');
const TARGETED = 7;
const MAX_QUEUE = 500; // oldest dropped beyond this (a long offline spell)
const MAX_BATCH = 100;

/**
 * Queue one event. Only the reference's fields of the right kind are kept, so
 * one bad value can never get a whole batch refused.
 */
export function push(type, fields, at) {
  if (!on || EVENT_TYPES.indexOf(type) < 0) return;
  const event = { type, ts: (at || now()) / 1e3 };
  for (const k in fields) {
    let v = fields[k];
    if (/^(x|y|speed|duration_ms)$/.test(k)) {
      // numbers
      if (isFinite((v = +v))) event[k] = Math.max(0, Math.min(Math.round(v), 1e6));
    } else if (/^(url|message)$/.test(k) || (k == 'direction' && /^(up|down)$/.test(v))) {
      // text
      event[k] = String(v).slice(0, 512);
    } else if (k == 'dead' && v === true && type == 'click') {
      event.dead = true;
    } else if (k == 'target' && v && EVENT_TYPES.indexOf(type) < TARGETED) {
      // the element (describe.js), or the page's own: no control characters
      (v = String(v).replace(/[\0-\x1f\x7f]/g, '').slice(0, 256)) && (event.target = v);
    }
  }
  debug('event', event);
  queue.push(event);
  if (queue.length > MAX_QUEUE) queue.shift();
  if (/^(rage_click|error)$/.test(type)) sendSoon(); // sent at once: frustration is answered now
}

// The key rides in the query string, so the body can be text/plain.
const url = (path = 'events') =>
  cfg.endpoint + '/v1/sessions/' + encodeURIComponent(sessionId) + '/' + path + '?key=' + encodeURIComponent(cfg.apiKey);
const body = (batch) => JSON.stringify({ events: batch.events, batch_id: batch.id });

/** Send everything queued; resolves (never rejects) when the server answered or the try failed. */
export const send = () => (chain = chain.then(pump));
/** Send now, unless a retry is waiting out its backoff. */
export const sendSoon = () => retryTimer || send();

async function pump() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  try {
    while (on && (inFlight || queue.length)) {
      const batch = inFlight || (inFlight = { id: randomId(), events: queue.splice(0, MAX_BATCH) });
      const text = body(batch);
      const res = await fetch(url(), { method: 'POST', body: text, keepalive: text.length < 6e4, credentials: 'omit' });
      const status = res.status;
      if (status == 408 || status == 429 || status > 499) throw res;
      if (inFlight == batch) inFlight = null; // stored, or refused for good
      tries = 0;
      const answer = await res.json().catch(() => ({}));
      debug('sent', batch.events, status, answer);
      if (status == 401 || status == 403) {
        // Retrying cannot help: say why once, in the server's words, and stop.
        console.warn('[SessionMood] ' + status + ' ' + (answer.message || answer.error) + ': tracking stopped.');
        return stop();
      }
      if (res.ok) {
        answer.mood = answer.current_mood;
        moodCallbacks.forEach((cb) => {
          try {
            cb(answer);
          } catch (_) {}
        });
      }
    }
  } catch (_) {
    if (on) {
      const backoff = Math.min(3e4, 1e3 * 2 ** tries++) * (0.5 + Math.random() / 2);
      retryTimer = setTimeout(safe(() => ((retryTimer = 0), send())), backoff);
    }
  }
}

/** Hand everything unsent to sendBeacon: the page is going away. */
export function beacon() {
  const batch = inFlight;
  if (batch && !batch.beaconed) batch.beaconed = N.sendBeacon(url(), body(batch));
  while (queue.length) {
    const next = { id: randomId(), events: queue.slice(0, MAX_BATCH) };
    if (!N.sendBeacon(url(), body(next))) break;
    queue.splice(0, next.events.length);
  }
}

/**
 * Count a conversion of this session (once per name, however often the page
 * calls it: a reload, a retry). A beacon: it still goes when the page moves on
 * to its thank-you page at once. True if the browser took it.
 */
export const convert = (name, value) => N.sendBeacon(url('conversions'), JSON.stringify({ name, value }));

/** Send every `flushInterval` from now on (`init()`). */
export const startSending = () => (flushTimer = setInterval(safe(sendSoon), cfg.flushInterval));

/** Call `cb` with each mood the server answers; returns its unsubscribe. */
export function onMood(cb) {
  typeof cb == 'function' && moodCallbacks.push(cb);
  return () => {
    moodCallbacks = moodCallbacks.filter((f) => f != cb);
  };
}
