/* SessionMood dashboard: aggregate panels from /v1/analytics/*, a live feed from
 * the /v1/stream/moods Server-Sent Events stream. No dependencies, no build.
 *
 * The secret key lives in sessionStorage (this tab only) and travels only in the
 * X-Api-Key header. EventSource cannot set headers, so the stream is read with
 * fetch and a ReadableStream, resuming with Last-Event-ID after a drop.
 * Server strings (session ids, URLs, signals) only ever reach the page through
 * textContent or setAttribute: never innerHTML.
 */
(function () {
  'use strict';

  const KEY_STORE = 'sessionmood_dashboard_key';
  const LAST_ID_STORE = 'sessionmood_dashboard_last_event';
  const REFRESH_MS = 5000;
  const FEED_MAX = 50;
  const STRUGGLE_FETCH = 60; // elements read; shown: STRUGGLE_PAGES pages x STRUGGLE_PER_PAGE
  const STRUGGLE_PAGES = 5, STRUGGLE_PER_PAGE = 4;
  const JOURNEYS_SHOWN = 8;
  const NAME_STORE = 'sessionmood_dashboard_conversion';
  const MOODS = ['frustrated', 'confused', 'disengaged', 'browsing', 'decisive', 'focused', 'neutral'];
  const COLOURS = {
    frustrated: '#e5484d', confused: '#f5a524', disengaged: '#8b8d98', browsing: '#12a594',
    decisive: '#3e63dd', focused: '#8e4ec6', neutral: '#b9bbc6',
  };
  const LIGHT = new Set(['confused', 'neutral']); // too pale for white text
  // The tenant `sessionmood serve --demo` creates (storage.DEMO_CUSTOMER): only its
  // empty panels point at the demo shop.
  const DEMO_CUSTOMER = 'SessionMood demo';
  const ACTIONS = {
    show_live_chat: 'Live chat', show_tooltip: 'Help tooltip', show_recommendations: 'Recommendations',
    show_exit_offer: 'Exit offer', no_action: 'No action',
  };

  // -- DOM helpers ---------------------------------------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      // through the CSSOM: the page's CSP refuses style attributes
      else if (k === 'style') e.style.cssText = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const svgText = (attrs, text) => { const t = svg('text', attrs); t.textContent = text; return t; };
  const pct = x => (x == null ? '–' : Math.round(x * 100) + '%');
  const moodChip = mood => el('span', { class: 'chip', 'data-mood': mood }, el('span', { class: 'dot', 'aria-hidden': 'true' }), mood);

  // "#e5484d" at opacity a on white, as an opaque colour (readable text on top).
  function tint(hex, a) {
    const n = parseInt(hex.slice(1), 16), mix = c => Math.round(255 + (c - 255) * a);
    return 'rgb(' + mix(n >> 16) + ',' + mix((n >> 8) & 255) + ',' + mix(n & 255) + ')';
  }

  // -- API -----------------------------------------------------------------------

  class AuthError extends Error {
    constructor(status) { super(String(status)); this.status = status; }
  }

  let key = null;
  async function api(path) {
    const r = await fetch(path, { headers: { 'X-Api-Key': key }, credentials: 'omit', cache: 'no-store' });
    if (r.status === 401 || r.status === 403) throw new AuthError(r.status);
    if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + path);
    return r.json();
  }
  const authMessage = status => status === 403
    ? 'That key may not read analytics (a publishable pk_ key?). Paste a secret key (sm_…).'
    : 'That key was not accepted (401): it is wrong, revoked, or from another server. The demo keys change every time the server starts.';

  // -- sign in / out ----------------------------------------------------------------

  function showSignin(message) {
    $('[data-app]').hidden = true;
    $('[data-signed-in]').hidden = true;
    $('[data-signin]').hidden = false;
    $('[data-signin-error]').textContent = message || '';
    const input = $('#key');
    input.value = '';
    input.setAttribute('aria-invalid', message ? 'true' : 'false');
    input.focus();
  }

  function signOut(message) {
    key = null;
    tenantKnown = false;
    try { sessionStorage.removeItem(KEY_STORE); sessionStorage.removeItem(LAST_ID_STORE); } catch (_) {}
    stopStream();
    clearInterval(refreshTimer);
    clearTimeout(soonTimer);
    $('[data-feed]').replaceChildren();
    $('[data-feed-empty]').hidden = false;
    showSignin(message);
  }

  function signIn(raw) {
    key = raw;
    try { sessionStorage.setItem(KEY_STORE, raw); } catch (_) {}
    $('[data-signin]').hidden = true;
    $('[data-app]').hidden = false;
    $('[data-signed-in]').hidden = false;
    refresh();
    clearInterval(refreshTimer);
    refreshTimer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
    connect();
  }

  // -- aggregate panels --------------------------------------------------------------

  let refreshTimer = 0, soonTimer = 0, refreshing = null, again = false, demo = false, tenantKnown = false;

  function refresh() {
    if (refreshing) { again = true; return refreshing; }
    const range = $('[data-range]').value;
    const q = range ? '?since=' + Math.floor(Date.now() / 1000 - Number(range)) : '';
    const k = key;
    const more = q ? q + '&' : '?';
    // Which tenant this is, first (once): the demo's conversions are purchases.
    const known = tenantKnown ? Promise.resolve() : api('/v1/usage').then(u => {
      demo = u.customer === DEMO_CUSTOMER;
      tenantKnown = true;
    });
    refreshing = known.then(() => Promise.all([api('/v1/analytics/moods'), api('/v1/analytics/pages' + q), api('/v1/analytics/actions' + q), api('/v1/usage'),
      api('/v1/analytics/elements' + more + 'limit=' + STRUGGLE_FETCH), api('/v1/analytics/journeys' + more + 'limit=' + JOURNEYS_SHOWN),
      api('/v1/analytics/uplift' + more + 'name=' + encodeURIComponent(conversionName())), api('/v1/holdout')]))
      .then(([moods, pages, actions, usage, elements, journeys, uplift, holdout]) => {
        if (k !== key) return;
        demo = usage.customer === DEMO_CUSTOMER;
        $('[data-customer]').textContent = usage.customer ? 'Signed in as ' + usage.customer : '';
        $('[data-feed-empty]').textContent = 'Waiting for the next mood change…' +
          (demo ? ' Open the demo shop in another tab and try to pay.' : '');
        renderKpis(moods, actions.actions);
        renderDistribution(moods);
        renderHeatmap(pages.pages);
        renderActions(actions.actions);
        renderStruggle(elements.elements);
        renderJourneys(journeys.journeys);
        renderUplift(uplift, holdout);
        $('[data-updated]').textContent = 'Updated ' + new Date().toLocaleTimeString();
      })
      .catch(err => {
        if (err instanceof AuthError) { if (k === key) signOut(authMessage(err.status)); return; }
        $('[data-updated]').textContent = 'Could not refresh (' + err.message + '); retrying.';
      })
      .finally(() => {
        refreshing = null;
        if (again && key) { again = false; refresh(); }
      });
    return refreshing;
  }
  // A burst of live events costs one refresh.
  function refreshSoon() {
    clearTimeout(soonTimer);
    soonTimer = setTimeout(refresh, 400);
  }

  function renderKpis(moods, actions) {
    const frustrated = moods.mood_distribution.find(d => d.mood === 'frustrated');
    const helpful = actions.reduce((s, a) => s + a.helpful, 0);
    const rated = helpful + actions.reduce((s, a) => s + a.not_helpful, 0);
    $('[data-kpi="sessions"]').textContent = moods.total_sessions.toLocaleString();
    $('[data-kpi="frustrated"]').textContent = frustrated ? Math.round(frustrated.percentage) + '%' : '0%';
    $('[data-kpi="feedback"]').textContent = moods.feedback_count.toLocaleString();
    $('[data-kpi="helpful"]').textContent = rated ? pct(helpful / rated) : '–';
  }

  // Horizontal bars, one per mood, in a fixed order so the eye learns where to look.
  // The chart is as many units wide as its box has pixels (up to 560), so its text is
  // drawn at its font size: a fixed 560 units squeezed onto a phone drew 8 px labels.
  let lastMoods = null, drawnWidth = 0;
  const chartWidth = box => Math.max(260, Math.min(560, Math.round(box.clientWidth) || 560));
  function renderDistribution(moods) {
    const box = $('[data-dist-chart]');
    lastMoods = moods;
    const counts = Object.fromEntries(moods.mood_distribution.map(d => [d.mood, d]));
    const max = Math.max(1, ...moods.mood_distribution.map(d => d.count));
    const W = drawnWidth = chartWidth(box), row = 34, labelW = 92, valueW = 86, barW = W - labelW - valueW;
    const summary = MOODS.map(m => m + ' ' + (counts[m] ? counts[m].count : 0)).join(', ');
    const chart = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + MOODS.length * row, class: 'bars', role: 'img',
      'aria-label': 'Mood distribution over ' + moods.total_sessions + ' sessions: ' + summary,
    });
    MOODS.forEach((m, i) => {
      const d = counts[m] || { count: 0, percentage: 0 };
      const y = i * row, w = d.count ? Math.max(3, (barW * d.count) / max) : 0;
      chart.append(svg('g', { 'data-mood': m, 'data-count': d.count },
        svgText({ x: 0, y: y + row / 2 + 5, class: 'label' }, m),
        svg('rect', { x: labelW, y: y + 7, width: barW, height: row - 14, rx: 5, class: 'track' }),
        svg('rect', { x: labelW, y: y + 7, width: w, height: row - 14, rx: 5, fill: COLOURS[m] }),
        svgText({ x: W, y: y + row / 2 + 5, class: 'value', 'text-anchor': 'end' }, d.count + ' · ' + Math.round(d.percentage) + '%')));
    });
    box.replaceChildren(moods.total_sessions ? chart : el('p', { class: 'empty', text: demo
      ? 'No sessions yet: open the demo shop (/demo/) and look around.'
      : 'No sessions yet: add tracker.js to your pages, or send events from your backend.' }));
  }

  // Pages x moods; a cell's colour is the share of the page's sessions in that mood.
  function renderHeatmap(pages) {
    const box = $('[data-heatmap]');
    if (!pages.length) {
      box.replaceChildren(el('p', { class: 'empty', text: 'No page views in this period.' }));
      return;
    }
    const head = el('tr', {}, el('th', { scope: 'col', text: 'Page' }), el('th', { scope: 'col', class: 'num', text: 'Sessions' }),
      ...MOODS.map(m => el('th', { scope: 'col', class: 'mood-col' }, moodChip(m))));
    const rows = pages.map(p => {
      const by = Object.fromEntries(p.mood_distribution.map(d => [d.mood, d.count]));
      return el('tr', { 'data-url': p.url, 'data-frustration-rate': p.frustration_rate },
        el('th', { scope: 'row', class: 'url', title: p.url, text: p.url }),
        el('td', { class: 'num', text: p.sessions }),
        ...MOODS.map(m => {
          const n = by[m] || 0, share = p.sessions ? n / p.sessions : 0;
          return el('td', {
            class: 'cell' + (share >= 0.7 && !LIGHT.has(m) ? ' strong' : ''), 'data-mood': m, 'data-share': share.toFixed(4),
            style: 'background:' + (n ? tint(COLOURS[m], 0.12 + 0.88 * share) : 'transparent'),
            title: n + ' of ' + p.sessions + ' sessions on ' + p.url + ' left it ' + m,
          }, n ? pct(share) : el('span', { class: 'zero', 'aria-label': 'none', text: '·' }));
        }));
    });
    box.replaceChildren(el('table', { class: 'heatmap' },
      el('caption', { class: 'sr-only', text: 'Share of sessions per page and mood' }),
      el('thead', {}, head), el('tbody', {}, ...rows)));
  }

  // Per mood x intervention: how often it was shown, and how it was rated.
  function renderActions(actions) {
    const box = $('[data-actions]');
    if (!actions.length) {
      box.replaceChildren(el('p', { class: 'empty', text: demo
        ? 'No feedback yet: the demo shop reports whether each chat, tooltip, offer or recommendation helped.'
        : 'No feedback yet: POST /v1/sessions/{id}/feedback when an intervention helped, or did not.' }));
      return;
    }
    const W = 240, H = 14;
    const rows = actions.map(a => {
      const unrated = Math.max(0, a.taken - a.helpful - a.not_helpful), total = Math.max(1, a.taken);
      const seg = (n, x, cls) => svg('rect', { x: (W * x) / total, y: 0, width: (W * n) / total, height: H, class: cls });
      const bar = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'stack', role: 'img',
        'aria-label': a.helpful + ' helpful, ' + a.not_helpful + ' not helpful, ' + unrated + ' unrated' },
        svg('rect', { width: W, height: H, rx: 4, class: 'track' }),
        seg(a.helpful, 0, 'helpful'), seg(a.not_helpful, a.helpful, 'not-helpful'));
      return el('tr', { 'data-action': a.action, 'data-mood': a.mood },
        el('th', { scope: 'row', text: ACTIONS[a.action] || a.action }),
        el('td', {}, moodChip(a.mood)),
        el('td', { class: 'num', text: a.taken }),
        el('td', { class: 'num', text: a.helpful }),
        el('td', { class: 'num', text: a.not_helpful }),
        el('td', { class: 'bar-cell' }, bar),
        el('td', { class: 'num rate', text: pct(a.helpful_rate) }));
    });
    box.replaceChildren(el('table', { class: 'actions' },
      el('thead', {}, el('tr', {}, ...['Intervention', 'Mood', 'Shown', 'Helpful', 'Not helpful', '', 'Helpful rate']
        .map((t, i) => el('th', { scope: 'col', class: i >= 2 && i !== 5 ? 'num' : null }, t || el('span', { class: 'sr-only', text: 'Ratings' }))))),
      el('tbody', {}, ...rows)));
  }

  // Where visitors struggle: the API's elements (most struggling sessions first),
  // grouped by page in that order, each with its signals and the suggested fix.
  function renderStruggle(elements) {
    const box = $('[data-struggle]');
    const byPage = new Map();
    for (const e of elements) {
      if (!byPage.has(e.page)) byPage.set(e.page, []);
      byPage.get(e.page).push(e);
    }
    const pages = [...byPage].filter(([, els]) => els.some(e => e.frustrated_sessions)).slice(0, STRUGGLE_PAGES);
    if (!pages.length) {
      box.replaceChildren(el('p', { class: 'empty', text: elements.length
        ? 'No element preceded a frustrated or confused session in this period.'
        : 'No elements named yet: tracker.js names what visitors click, hover and type in (docs/tracker.md).' }));
      return;
    }
    const signal = (n, one, many) => (n ? n + ' ' + (n === 1 ? one : many) : null);
    box.replaceChildren(...pages.map(([page, els]) => el('section', { class: 'struggle-page', 'data-page': page },
      el('h3', { class: 'url', title: page, text: page || '(before any page view)' }),
      el('ol', { class: 'struggle' }, ...els.slice(0, STRUGGLE_PER_PAGE).map(e => {
        const signals = [signal(e.dead_clicks, 'dead click', 'dead clicks'), signal(e.rage_clicks, 'rage click', 'rage clicks'),
          signal(e.error_clicks, 'error after a click', 'errors after a click'), signal(e.hesitations, 'hesitation', 'hesitations')]
          .filter(Boolean);
        return el('li', { class: 'element', 'data-target': e.target, 'data-struggle-rate': e.struggle_rate },
          el('div', { class: 'element-head' },
            el('code', { class: 'target', title: e.target, text: e.target }),
            el('span', { class: 'rate', text: pct(e.struggle_rate) }),
            el('span', { class: 'muted small', text: e.frustrated_sessions + ' of ' + e.sessions + ' sessions' })),
          el('div', { class: 'meter', role: 'img', 'aria-label': pct(e.struggle_rate) + ' of its sessions struggled' },
            el('span', { style: 'width:' + Math.round(e.struggle_rate * 100) + '%' })),
          signals.length ? el('p', { class: 'signals small', text: signals.join(' · ') }) : null,
          e.suggested_fix ? el('p', { class: 'fix small' }, el('strong', { text: 'Likely: ' }), e.suggested_fix) : null);
      })))));
  }

  // Journeys: each path as its steps, a mood bar per step (the mood visitors left
  // it in), the step where most of its frustrated sessions first turned so marked.
  function renderJourneys(journeys) {
    const box = $('[data-journeys]');
    if (!journeys.length) {
      box.replaceChildren(el('p', { class: 'empty', text: 'No page views in this period.' }));
      return;
    }
    box.replaceChildren(el('ol', { class: 'journeys' }, ...journeys.map(j => el('li', { class: 'journey', 'data-path': j.path.join(' > ') },
      el('div', { class: 'journey-head' }, el('strong', { text: j.sessions.toLocaleString() }), el('span', { class: 'muted small', text: j.sessions === 1 ? ' session' : ' sessions' })),
      el('ol', { class: 'steps' }, ...j.steps.map((step, i) => {
        const total = step.mood_distribution.reduce((n, d) => n + d.count, 0) || 1;
        const starts = i === j.frustration_starts_at;
        const moods = step.mood_distribution.filter(d => d.count);
        return el('li', { class: 'step' + (starts ? ' starts' : ''), 'data-url': step.url, 'data-frustration-starts': starts ? 'true' : null },
          el('code', { class: 'url', title: step.url, text: step.url }),
          el('div', { class: 'moodbar', role: 'img', 'aria-label': moods.map(d => d.mood + ' ' + d.count).join(', ') },
            ...moods.map(d => el('span', { 'data-mood': d.mood, title: d.count + ' left it ' + d.mood,
              style: 'width:' + (100 * d.count / total).toFixed(1) + '%;background:' + COLOURS[d.mood] }))),
          starts ? el('span', { class: 'starts-label small', text: 'frustration starts here' }) : null);
      }))))));
  }

  // Does acting pay: per mood x action, treated against held-out sessions. The
  // interval decides the verdict; until it does, how many more sessions each
  // group needs to detect a two-point uplift.
  const conversionName = () => {
    let name = null;
    try { name = localStorage.getItem(NAME_STORE); } catch (_) {}
    return name || (demo ? 'purchase' : 'conversion');
  };
  const points = x => (x > 0 ? '+' : x < 0 ? '−' : '') + Math.abs(x * 100).toFixed(1);
  const VERDICTS = { helps: 'Helps', hurts: 'Hurts', unclear: 'Collecting data' };
  function renderUplift(uplift, holdout) {
    const share = $('[data-holdout-share]');
    if (document.activeElement !== share) share.value = Math.round(holdout.share * 100);
    const nameBox = $('[data-uplift-name]');
    if (document.activeElement !== nameBox) nameBox.value = uplift.name;
    $('[data-holdout-status]').textContent = holdout.share
      ? Math.round(holdout.share * 100) + '% of new sessions get no action, so the others can be compared with them.'
      : 'No holdout: nothing to compare with. Hold out 5–10% to measure the uplift.';
    const box = $('[data-uplift]');
    if (!uplift.uplift.length) {
      box.replaceChildren(el('p', { class: 'empty', text: holdout.share
        ? 'No session has been suggested an action (or held back from one) in this period yet.'
        : 'Set a holdout share above, then record conversions (SessionMood.convert(), POST /v1/sessions/{id}/conversions).' }));
      return;
    }
    const rate = (n, k, r) => el('td', { class: 'num' }, el('strong', { text: r == null ? '–' : pct(r) }),
      el('span', { class: 'muted small', text: ' ' + k + '/' + n }));
    const rows = [...uplift.uplift, { ...uplift.overall, overall: true }].map(u => {
      const decided = u.verdict !== 'unclear';
      const interval = u.uplift == null ? '–' : points(u.uplift) + ' pts [' + points(u.uplift_low) + ', ' + points(u.uplift_high) + ']';
      return el('tr', { 'data-mood': u.mood, 'data-action': u.action, 'data-verdict': u.verdict, class: u.overall ? 'overall' : null },
        el('th', { scope: 'row' }, u.overall ? el('span', { text: 'All actions' }) : moodChip(u.mood),
          u.overall ? null : el('span', { class: 'action-name', text: ' ' + (ACTIONS[u.action] || u.action) })),
        rate(u.treated_sessions, u.treated_conversions, u.treated_rate),
        rate(u.control_sessions, u.control_conversions, u.control_rate),
        el('td', { class: 'num interval', text: interval }),
        el('td', {}, el('span', { class: 'verdict', 'data-verdict': u.verdict, text: VERDICTS[u.verdict] }),
          decided || u.sessions_needed == null ? null
            : el('span', { class: 'muted small needed', text: ' ~' + u.sessions_needed.toLocaleString() + ' more sessions per group for ±2 pts' })));
    });
    box.replaceChildren(el('table', { class: 'uplift' },
      el('caption', { class: 'sr-only', text: 'Conversion uplift of each action against the holdout (' + uplift.method + ')' }),
      el('thead', {}, el('tr', {}, ...['Mood and action', 'Treated', 'Held out', 'Uplift, 95% interval', 'Verdict']
        .map((t, i) => el('th', { scope: 'col', class: i && i < 4 ? 'num' : null, text: t })))),
      el('tbody', {}, ...rows)));
  }

  async function saveHoldout(e) {
    e.preventDefault();
    const status = $('[data-holdout-status]');
    const share = Number($('[data-holdout-share]').value) / 100;
    const nameBox = $('[data-uplift-name]'), name = nameBox.value.trim();
    // Only a name the owner typed is kept: the default follows the tenant.
    try { if (name && nameBox.dataset.edited) localStorage.setItem(NAME_STORE, name); } catch (_) {}
    const r = await fetch('/v1/holdout', {
      method: 'PUT', headers: { 'X-Api-Key': key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ share }), credentials: 'omit', cache: 'no-store',
    }).catch(() => null);
    if (!r || !r.ok) {
      const body = r ? await r.json().catch(() => ({})) : {};
      status.textContent = 'Not saved: ' + (body.message || body.error || 'the server did not answer') + '.';
      return;
    }
    status.textContent = 'Saved.';
    refresh();
  }

  // -- live feed ----------------------------------------------------------------------

  function addFeedEntry(ch) {
    const feed = $('[data-feed]');
    const at = new Date(ch.occurred_at);
    const sid = String(ch.session_id);
    const item = el('li', { class: 'entry fresh', 'data-session-id': sid, 'data-mood': ch.mood, 'data-previous-mood': ch.previous_mood },
      el('time', { datetime: ch.occurred_at, text: isNaN(at) ? '' : at.toLocaleTimeString() }),
      el('div', { class: 'entry-main' },
        el('div', { class: 'entry-line' },
          el('code', { class: 'sid', title: sid, text: sid.length > 22 ? sid.slice(0, 21) + '…' : sid }),
          moodChip(ch.previous_mood), el('span', { class: 'arrow', 'aria-label': 'became', text: '→' }), moodChip(ch.mood),
          el('span', { class: 'conf muted', text: pct(ch.confidence) })),
        el('div', { class: 'entry-sub muted' },
          el('span', { class: 'url', text: ch.url || '(no page)' }),
          (ch.signals || []).length ? el('span', { class: 'signals', text: ch.signals.slice(0, 3).join(' · ') }) : null)));
    feed.prepend(item);
    setTimeout(() => item.classList.remove('fresh'), 2000);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    $('[data-feed-empty]').hidden = true;
  }

  // -- the SSE stream, over fetch -------------------------------------------------------

  let stream = null;
  function stopStream() {
    if (stream) stream.abort();
    stream = null;
  }
  function setStatus(state, text) {
    const s = $('[data-stream-status]');
    s.dataset.state = state;
    s.textContent = text;
  }
  const sleep = (ms, signal) => new Promise(resolve => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

  async function connect() {
    stopStream();
    const ctrl = new AbortController();
    stream = ctrl;
    let delay = 2000;
    while (stream === ctrl && !ctrl.signal.aborted) {
      setStatus('connecting', 'Connecting…');
      try {
        const headers = { 'X-Api-Key': key, Accept: 'text/event-stream' };
        const last = sessionStorage.getItem(LAST_ID_STORE);
        if (last) headers['Last-Event-ID'] = last;
        const r = await fetch('/v1/stream/moods', { headers, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
        if (r.status === 401 || r.status === 403) { signOut(authMessage(r.status)); return; }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        setStatus('live', 'Live');
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf = (buf + value).replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const retry = dispatch(block);
            if (retry) delay = retry;
          }
        }
      } catch (_) {
        if (ctrl.signal.aborted) return;
      }
      if (stream !== ctrl) return;
      setStatus('reconnecting', 'Reconnecting…');
      await sleep(delay, ctrl.signal);
      delay = Math.min(delay * 2, 30000);
    }
  }

  // One SSE message: returns a new retry delay when the server sent one.
  function dispatch(block) {
    let event = 'message', data = [], id = null, retry = 0;
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue; // comment: heartbeat
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
    }
    if (id !== null) try { sessionStorage.setItem(LAST_ID_STORE, id); } catch (_) {}
    if (event === 'mood.changed' && data.length) {
      try { addFeedEntry(JSON.parse(data.join('\n'))); } catch (_) {}
      refreshSoon();
    }
    return retry;
  }

  // -- start ----------------------------------------------------------------------------

  function boot() {
    // /dashboard/#key=sm_…: sign in, then take the key out of the address bar
    // (a fragment is never sent to a server, and now not kept in history either).
    const fromUrl = new URLSearchParams(location.hash.slice(1)).get('key');
    if (fromUrl) {
      try { sessionStorage.setItem(KEY_STORE, fromUrl.trim()); } catch (_) {}
      history.replaceState(null, '', location.pathname + location.search);
    }
    $('[data-signin-form]').addEventListener('submit', e => {
      e.preventDefault();
      const raw = $('#key').value.trim();
      if (raw.startsWith('pk_')) return showSignin(authMessage(403));
      if (!raw.startsWith('sm_')) return showSignin('Secret keys start with sm_. Paste the whole key, as printed when it was created.');
      signIn(raw);
    });
    $('[data-sign-out]').addEventListener('click', () => signOut(''));
    $('[data-range]').addEventListener('change', refresh);
    $('[data-holdout-form]').addEventListener('submit', saveHoldout);
    $('[data-uplift-name]').addEventListener('input', e => { e.target.dataset.edited = '1'; });
    // A phone turned sideways, a window resized: redraw at the new width.
    addEventListener('resize', () => {
      if (lastMoods && chartWidth($('[data-dist-chart]')) !== drawnWidth) renderDistribution(lastMoods);
    });
    let stored = null;
    try { stored = sessionStorage.getItem(KEY_STORE); } catch (_) {}
    if (stored) signIn(stored);
    else showSignin('');
  }
  boot();
})();
