/** The 12 event types of the API reference: anything else is dropped before sending. */
export const EVENT_TYPES =
  'click rage_click scroll input_pause backtrack back_nav page_view error idle hover focus blur'.split(' ');

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

export function configure(options, script) {
  const cfg = {
    apiKey: options.apiKey,
    endpoint: (options.endpoint || new URL(script.src).origin).replace(/\/+$/, ''),
    debug: flag(options.debug),
    respectDnt: flag(options.respectDnt),
  };
  for (const k in DEFAULTS) cfg[k] = +options[k] > 0 ? +options[k] : DEFAULTS[k];
  return cfg;
}
