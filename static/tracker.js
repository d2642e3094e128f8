/*! SessionMood tracker (docs/tracker.md). ES2017, no dependencies; never throws into the page. */
(function (W, D, N, L, H) {
  'use strict';
  if (W.SessionMood) return;

  const TYPES = 'click rage_click scroll input_pause backtrack back_nav page_view error idle hover focus blur'.split(' ');
  const URGENT = /^(rage_click|error)$/;
  const MAX_QUEUE = 500, MAX_BATCH = 100, SCROLL_MS = 250, BACKTRACK_PX = 200;
  const RAGE_N = 3, RAGE_MS = 1e3, RAGE_PX = 30;
  const BUTTON = /^(button|submit|reset|image)$/, NOT_TEXT = /^(checkbox|radio|range|color|file|select)/;
  // clicked repeatedly on purpose
  const STEPPER = /^([-+\u2212\u2013<>\u2039\u203a\u00ab\u00bb\u2190-\u2193]{1,2}|\d+)$|\b(next|prev|previous|more|increase|decrease|increment|decrement|plus|minus|page)\b/i;
  const NO_RAGE = '[data-sm-no-rage],[role=spinbutton],[class*=paginat i],[aria-label*=paginat i],[rel=next],[rel=prev]';
  // a pointer resting on text is reading, not hesitating
  const HOVERABLE = 'a,button,input,select,textarea,label,summary,[role],[title]';
  const script = D.currentScript;

  let cfg, sid, on = 0, bound = 0, q = [], cur = 0, tries = 0, chain = Promise.resolve(), cbs = [];
  let flushT, retryT, idleT, lastAct, scrollT, scrollT0, scrollY0, down = 0;
  let path, pos, seen, rb = {}, hEl, hT, hClicked, iEl, iT, errs = {}, errT = 0;

  const now = () => Date.now();
  const safe = fn => a => { try { if (on) return fn(a); } catch (_) {} };
  const listen = (el, type, fn) => el.addEventListener(type, safe(fn), { capture: true, passive: true });
  const rid = () => Array.from(W.crypto.getRandomValues(new Uint8Array(16)), x => (x + 256).toString(16).slice(1)).join('');

  function push(type, f) {
    if (!on || TYPES.indexOf(type) < 0) return;
    const e = { type, ts: now() / 1e3 };
    // one bad field would get the whole batch refused
    for (const k in f) {
      let v = f[k];
      if (/^(x|y|speed|duration_ms)$/.test(k)) { if (isFinite(v = +v)) e[k] = Math.max(0, Math.min(Math.round(v), 1e6)); }
      else if (/^(url|message)$/.test(k) || k == 'direction' && /^(up|down)$/.test(v)) e[k] = String(v).slice(0, 512);
    }
    q.push(e);
    if (q.length > MAX_QUEUE) q.shift();
    if (URGENT.test(type)) tick();
  }

  // key in the query + text/plain body: no CORS preflight
  const url = () => cfg.endpoint + '/v1/sessions/' + encodeURIComponent(sid) + '/events?key=' + encodeURIComponent(cfg.apiKey);
  const body = b => JSON.stringify({ events: b.e, batch_id: b.i });
  const flush = () => chain = chain.then(pump);
  const tick = () => retryT || flush(); // waits out a backoff

  // a batch keeps its batch_id across retries and beacons: never stored twice
  async function pump() {
    clearTimeout(retryT);
    retryT = 0;
    try {
      while (on && (cur || q.length)) {
        const b = cur || (cur = { i: rid(), e: q.splice(0, MAX_BATCH) }), s = body(b);
        const r = await fetch(url(), { method: 'POST', body: s, keepalive: s.length < 6e4, credentials: 'omit' });
        if (r.status == 401 || r.status == 403) return stop(); // retries cannot help
        if (r.status == 408 || r.status == 429 || r.status > 499) throw r;
        if (cur == b) cur = 0; // stored, or refused for good
        tries = 0;
        if (r.ok) {
          const m = await r.json();
          m.mood = m.current_mood;
          cbs.forEach(cb => { try { cb(m); } catch (_) {} });
        }
      }
    } catch (_) {
      if (on) retryT = setTimeout(safe(() => { retryT = 0; flush(); }), Math.min(3e4, 1e3 * 2 ** tries++) * (0.5 + Math.random() / 2));
    }
  }

  function beacon() {
    if (cur && !cur.b) cur.b = N.sendBeacon(url(), body(cur));
    while (q.length) {
      const b = { i: rid(), e: q.slice(0, MAX_BATCH) };
      if (!N.sendBeacon(url(), body(b))) break;
      q.splice(0, b.e.length);
    }
  }

  const isField = el => !!el && (/^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && !BUTTON.test(el.type) || el.isContentEditable);

  function noRage(el) {
    if (isField(el) || el.closest(NO_RAGE)) return 1;
    const c = el.closest('button,a,input,summary,[role=button]') || el;
    const s = (c.getAttribute('aria-label') || c.title || c.textContent || c.value || '').trim();
    return s.length < 40 && STEPPER.test(s);
  }

  function onClick(e) {
    const x = e.clientX, y = e.clientY, t = now(), el = e.target, sel = W.getSelection();
    push('click', { x, y });
    if (hEl) hClicked = 1;
    if (!(t - rb.t <= RAGE_MS && Math.hypot(x - rb.x, y - rb.y) <= RAGE_PX)) rb = { n: 0, x, y };
    rb.t = t;
    if (sel && !sel.isCollapsed) rb.s = 1; // selecting text
    if (++rb.n == RAGE_N + 2 * !!rb.s && el.closest && !noRage(el)) push('rage_click', { x, y });
  }

  function sample() {
    scrollT = 0;
    const y = W.scrollY, dy = y - scrollY0;
    if (!dy) return;
    scrollY0 = y;
    push('scroll', { speed: Math.abs(dy) * 1e3 / Math.max(now() - scrollT0, SCROLL_MS), direction: dy > 0 ? 'down' : 'up' });
    if (dy > 0) down += dy;
    else {
      if (down >= BACKTRACK_PX) push('backtrack');
      down = 0;
    }
  }

  function hoverEnd() {
    const d = now() - hT;
    if (hEl && !hClicked && d >= cfg.hoverMs) push('hover', { duration_ms: d });
    hEl = 0;
  }

  function inputEnd(el) {
    const d = now() - iT;
    if (el == iEl && d >= cfg.pauseMs) push('input_pause', { duration_ms: d });
  }

  // reported while the visitor is still away
  const idleCheck = safe(() => {
    idleT = 0;
    const gap = now() - lastAct;
    if (D.hidden) return;
    if (gap >= cfg.idleMs) push('idle', { duration_ms: gap });
    else idleT = setTimeout(idleCheck, cfg.idleMs - gap);
  });
  function active() {
    lastAct = now();
    idleT = idleT || setTimeout(idleCheck, cfg.idleMs);
  }

  function error(m) {
    m = String(m || 'Error').replace(/\?[^\s#'"]*|(["'`]).*?\1|\S+@\S+/g, '').slice(0, 512);
    const t = now();
    if (t - errT > 6e4) errs = {}, errT = t;
    if ((errs[m] = (errs[m] || 0) + 1) <= 3) push('error', { message: m }); // 3 a minute
  }

  const here = () => L.pathname + L.search; // never sent
  const index = () => { const e = (W.navigation || {}).currentEntry; return e ? e.index : -1; };
  const pageView = () => L.pathname != path && push('page_view', { url: path = L.pathname });

  function bind() {
    bound = 1;
    ['pushState', 'replaceState'].forEach(m => {
      const orig = H[m];
      H[m] = function () {
        const r = orig.apply(this, arguments);
        safe(() => { pos = index(); seen = here(); pageView(); })();
        return r;
      };
    });
    listen(W, 'popstate', () => {
      const i = index();
      // no Navigation API: any page-changing popstate is back
      if (i < 0 ? here() != seen : i < pos) push('back_nav');
      pos = i, seen = here();
      pageView();
    });
    listen(W, 'pageshow', e => e.persisted && (push('back_nav'), path = 0, pageView())); // bfcache
    listen(D, 'click', onClick);
    listen(W, 'scroll', () => scrollT || (scrollT0 = now(), scrollT = setTimeout(safe(sample), SCROLL_MS)));
    listen(D, 'mouseover', e => {
      const el = e.target.closest && e.target.closest(HOVERABLE);
      if (el != hEl) {
        hoverEnd();
        if (el) hEl = el, hT = now(), hClicked = 0;
      }
    });
    listen(D, 'mouseout', e => e.relatedTarget || hoverEnd());
    listen(D, 'input', e => {
      const el = e.target; // values are never read
      if (!isField(el) || NOT_TEXT.test(el.type)) return;
      inputEnd(el); // resumed
      iEl = el, iT = now();
    });
    listen(D, 'focusin', e => isField(e.target) && push('focus'));
    listen(D, 'focusout', e => {
      if (!isField(e.target)) return;
      inputEnd(e.target); // left
      iEl = 0;
      push('blur');
    });
    'mousemove mousedown keydown wheel touchstart scroll'.split(' ').forEach(t => listen(D, t, active));
    listen(D, 'visibilitychange', () => {
      if (!D.hidden) return active();
      clearTimeout(idleT), idleT = hEl = 0;
      beacon();
    });
    listen(W, 'pagehide', beacon);
    listen(W, 'error', e => e instanceof ErrorEvent && error(e.message));
    listen(W, 'unhandledrejection', e => error(e.reason && e.reason.message || e.reason));
  }

  function init(o) {
    try {
      o = o || {};
      const dnt = o.respectDnt, key = 'sm_session_id';
      if (on || dnt != null && dnt !== false && dnt != 'false' && (N.doNotTrack == '1' || N.globalPrivacyControl)) return api;
      cfg = {
        endpoint: (o.endpoint || new URL(script.src).origin).replace(/\/+$/, ''),
        apiKey: o.apiKey, idleMs: +o.idleMs || 1e4, pauseMs: +o.pauseMs || 2500, hoverMs: +o.hoverMs || 1e3
      };
      try {
        sid = o.sessionId || sessionStorage.getItem(key) || rid();
        o.sessionId || sessionStorage.setItem(key, sid);
      } catch (_) { sid = sid || rid(); }
      api.sessionId = sid;
      on = 1;
      bound || bind();
      pos = index(), seen = here(), path = 0;
      pageView();
      if ((performance.getEntriesByType('navigation')[0] || {}).type == 'back_forward') push('back_nav');
      scrollY0 = W.scrollY;
      active();
      flushT = setInterval(safe(tick), +o.flushInterval || 2e3);
    } catch (_) {}
    return api;
  }

  function stop() {
    on = 0, q = [], cur = 0;
    clearInterval(flushT), clearTimeout(retryT), clearTimeout(idleT);
    retryT = idleT = 0;
  }

  const api = W.SessionMood = {
    init,
    track: (type, fields) => { try { push(type, fields); } catch (_) {} },
    flush: () => on ? flush() : Promise.resolve(),
    onMood: cb => {
      typeof cb == 'function' && cbs.push(cb);
      return () => { cbs = cbs.filter(f => f != cb); };
    },
    stop,
    sessionId: null
  };

  try {
    if (script && script.dataset.apiKey) init(script.dataset);
  } catch (_) {}
})(window, document, navigator, location, history);
