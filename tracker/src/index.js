/**
 * The one global, `window.SessionMood` (types: static/tracker.d.ts), and the
 * start from the script tag's `data-*` attributes.
 */
import { state } from './state.js';
import { configure } from './config.js';
import { W, D, N, safe, listen, randomId } from './util.js';
import { push, send, sendSoon, beacon, stop } from './send.js';
import { bindClicks, settleAll, settled, respond } from './clicks.js';
import { bindScroll } from './scroll.js';
import { bindNavigation, startNavigation } from './navigation.js';
import { bindFields, stopHover } from './fields.js';
import { bindActivity, active, pauseIdle } from './activity.js';
import { bindErrors } from './errors.js';

const script = D.currentScript;
const SESSION_KEY = 'sm_session_id';

function bind() {
  state.bound = true;
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
    options = options || {};
    const cfg = configure(options, script);
    if (state.on) return api;
    state.cfg = cfg;
    if (cfg.respectDnt && (N.doNotTrack == '1' || N.globalPrivacyControl)) return api;
    try {
      state.sessionId = options.sessionId || sessionStorage.getItem(SESSION_KEY) || randomId();
      options.sessionId || sessionStorage.setItem(SESSION_KEY, state.sessionId);
    } catch (_) {
      state.sessionId = state.sessionId || randomId(); // storage blocked: one id per page
    }
    api.sessionId = state.sessionId;
    state.on = true;
    state.bound || bind();
    startNavigation(); // (which measures scrolling from here)
    active();
    state.flushTimer = setInterval(safe(sendSoon), cfg.flushInterval);
  } catch (_) {}
  return api;
}

const api = (W.SessionMood = W.SessionMood || {
  init,
  track: safe(push),
  // Clicks wait up to `deadMs` for the page's response before they are sent.
  flush: () => (state.on ? settled().then(send) : Promise.resolve()),
  onMood: (cb) => {
    typeof cb == 'function' && state.moodCallbacks.push(cb);
    return () => {
      state.moodCallbacks = state.moodCallbacks.filter((f) => f != cb);
    };
  },
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
        state.cfg || console.warn('[SessionMood] add data-api-key="pk_..." to the script tag (or call SessionMood.init): nothing is sent.'),
      );
  }
} catch (_) {}
