/**
 * The tracker's lifecycle: whether it is on, the options `init()` resolved and
 * the session id. They are the only state the modules share (`safe` in util.js
 * reads `on` before any listener or timer of the tracker runs, the detectors
 * read `cfg`, delivery all three), so they live here, in the one module that
 * owns them, rather than in any detector; only `init()` (index.js, through
 * `configure` and `start`) and `stop()` change them. Everything else a module
 * remembers is its own, and what `stop()` must clear of it the module
 * registers with `onStop`.
 */

/** Capturing and sending: `init()` turns it on, `stop()` off. */
export let on = false;
/** The resolved options (`configure`); set by `init()` even when Do Not Track stops it there. */
export let cfg;
/** The session id in use. */
export let sessionId;

/** What the modules clear when the tracker stops (their queues, their timers). */
const cleanups = [];

/** `init()`: capturing and sending from now on, as session `id`. */
export function start(id) {
  sessionId = id;
  on = true;
}

/** Register what `stop()` clears: a module's own queue and timers. */
export const onStop = (fn) => cleanups.push(fn);

/** Stop capturing and sending; unsent events are discarded. */
export function stop() {
  on = false;
  cleanups.forEach((fn) => fn());
}

/**
 * Numeric options: `data-*` attribute on the script tag (kebab-case) or
 * `SessionMood.init()` option (camelCase). docs/tracker.md says where each
 * default comes from.
 */
const DEFAULTS = {
  flushInterval: 2000, // ms between batches
  idleMs: 10000, // no input for this long is `idle` (landing page: idle >= 10 s)
  pauseMs: 2500, // a typing pause this long is `input_pause` (landing page: >= 2.5 s)
  hoverMs: 1000, // a dwell this long is `hover`
  rageClicks: 3, // rage: this many clicks... (PostHog and Datadog: 3)
  rageMs: 1000, // ...each at most this long after the previous (PostHog: 1 s)
  ragePx: 30, // ...within this distance of the first (PostHog: 30 px)
  deadMs: 1000, // a click with no response for this long is dead (Nielsen's 1 s limit)
};

const flag = (v) => v != null && v !== false && v !== 'false';

/** `init()`: resolve `options` (given the script tag) into `cfg`, and return it. */
export function configure(options, script) {
  const resolved = {
    apiKey: options.apiKey,
    endpoint: (options.endpoint || new URL(script.src).origin).replace(/\/+$/, ''),
    debug: flag(options.debug),
    respectDnt: flag(options.respectDnt),
  };
  for (const k in DEFAULTS) resolved[k] = +options[k] > 0 ? +options[k] : DEFAULTS[k];
  return (cfg = resolved);
}
