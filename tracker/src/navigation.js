/** Page views (loads and SPA routes) and back navigation. Paths only: never the query. */
import { W, D, listen, hook } from './util.js';
import { push } from './send.js';
import { respond } from './clicks.js';
import { resetScroll } from './scroll.js';

/** Of the last page_view. */
let path;
/** Navigation API index of the current entry (-1 without the API). */
let historyIndex = -1;
/** Path + query of the current entry (compared, never sent). */
let current;

const L = location;
const here = () => L.pathname + L.search; // compared, never sent
const entryIndex = () => {
  const entry = (W.navigation || {}).currentEntry;
  return entry ? entry.index : -1;
};

/** Now at another history entry: a `page_view` when the path changed. */
function arrived() {
  historyIndex = entryIndex();
  current = here();
  if (L.pathname == path) return;
  resetScroll();
  push('page_view', { url: (path = L.pathname) });
}

export function startNavigation() {
  path = null;
  arrived();
  if ((performance.getEntriesByType('navigation')[0] || {}).type == 'back_forward') push('back_nav');
}

export function bindNavigation() {
  hook(history, 'pushState replaceState', () => {
    respond(); // a route change answers the click that asked for it
    arrived();
  });
  listen(W, 'popstate', () => {
    // Without the Navigation API the browser does not say which way it went:
    // any popstate that changes the page counts as back.
    const i = entryIndex();
    const moved = here() != current;
    if (i < 0 ? moved : i < historyIndex) push('back_nav');
    // A new fragment alone (href="#") answers nothing: the scroll or the change
    // it causes does. (One that names an element may show it, by :target.)
    if (moved || D.getElementById(L.hash.slice(1))) respond();
    arrived();
  });
  // Restored from the back/forward cache.
  listen(W, 'pageshow', (e) => {
    if (!e.persisted) return;
    push('back_nav');
    path = null;
    arrived();
  });
}
