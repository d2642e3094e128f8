/**
 * The one global, `window.SessionMood` (types: static/tracker.d.ts), and the
 * start from the script tag's `data-*` attributes.
 */
import { on, cfg, sessionId, configure, start, stop } from './life.js';
import { W, D, N, safe, listen, randomId } from './util.js';
import { push, send, sendSoon, beacon, startSending, onMood, convert } from './send.js';
import { bindClicks, settleAll, settleNow, settled, respond } from './clicks.js';
import { bindScroll } from './scroll.js';
import { bindNavigation, startNavigation } from './navigation.js';
import { bindFields, stopHover } from './fields.js';
import { bindActivity, active, pauseIdle } from './activity.js';
import { bindErrors } from './errors.js';

const script = D.currentScript;
const SESSION_KEY = 'sm_session_id';

/** The listeners are attached: they stay for the page's life, and `stop()` silences them. */
let bound;

function bind() {
  bound = true;
  bindClicks();
  bindScroll();
  bindNavigation();
  bindFields();
  bindActivity();
  bindErrors();
  listen(D, 'visibilitychange', () => {
    if (!D.hidden) return active();
    pauseIdle();
    stopHover();
    leave();
  });
  listen(W, 'pagehide', leave);
}

// The page is hidden or going away (a link, a new tab): whatever the visitor
// clicked did something. Everything unsent goes by beacon.
function leave() {
  respond();
  settleAll();
  beacon();
}

function init(options) {
  try {
    if (on) return api;
    options = options || {};
    const resolved = configure(options, script);
    if (resolved.respectDnt && (N.doNotTrack == '1' || N.globalPrivacyControl)) return api;
    let id;
    try {
      id = options.sessionId || sessionStorage.getItem(SESSION_KEY) || randomId();
      options.sessionId || sessionStorage.setItem(SESSION_KEY, id);
    } catch (_) {
      id = id || sessionId || randomId(); // storage blocked: one id per page
    }
    api.sessionId = id;
    start(id);
    bound || bind();
    startNavigation(); // (which measures scrolling from here)
    active();
    startSending();
  } catch (_) {}
  return api;
}

const api = (W.SessionMood = W.SessionMood || {
  init,
  // An error the page reports takes the clicks before it along, and the element
  // clicked just before, as one it throws does (errors.js).
  track: safe(
    (type, fields, at) => push(type, type == 'error' ? Object.assign({ target: settleNow() }, fields) : fields, at),
  ),
  // Clicks wait up to `deadMs` for the page's response before they are sent.
  flush: () => (on ? settled().then(send) : Promise.resolve()),
  // After what is queued: the server counts conversions of sessions it has.
  convert: (name, value) => send().then(() => on && convert(name, value)),
  onMood,
  stop,
  sessionId: null,
});

try {
  if (api.init == init && script) {
    if (script.dataset.apiKey) init(script.dataset);
    // Without a key nothing starts: say what to add, once, unless the page
    // called init() itself by the time it loaded.
    else
      W.addEventListener('load', () =>
        cfg || console.warn('[SessionMood] no data-api-key'),
      );
  }
} catch (_) {}
