/**
 * Scrolling, counted only when the visitor scrolled: a wheel, a finger, a
 * scroll key or the scrollbar shortly before. A page that scrolls itself (an
 * SPA router's scroll to the top, `scrollIntoView`, a smooth anchor jump, a
 * "back to top" button) is a response to a click, never `scroll` or `backtrack`.
 */
import { onStop } from './life.js';
import { W, D, now, safe, listen, isField } from './util.js';
import { push } from './send.js';
import { respond } from './clicks.js';
import { active } from './activity.js';

/** Last wheel, touch move, scroll key or scrollbar press. */
let scrollInputAt;
/** Last scroll event that was the visitor's. */
let visitorScrollAt;
/** A press on the page's scrollbar is in progress. */
let scrollbarDrag;
/** The pending sample of the visitor's scrolling. */
let scrollTimer;
/** When that sample's scrolling began. */
let scrollSince;
/** The scrollY it measures from. */
let scrollFrom;
/** Px down since the last reversal (for backtrack). */
let scrolledDown;

onStop(stopSampling);

const SAMPLE_MS = 250; // at most 4 scroll events a second
const BACKTRACK_PX = 200; // scrolling back up after this much down is re-reading
const INPUT_MS = 600; // a scroll this soon after scroll input is the visitor's...
const MOMENTUM_MS = 150; // ...and so is one that continues it (fling momentum, smooth wheel)

const scrollInput = () => (scrollInputAt = now());

function onScroll(e) {
  const t = now();
  const visitor = scrollbarDrag || t - scrollInputAt < INPUT_MS || t - visitorScrollAt < MOMENTUM_MS;
  if (!visitor) respond(); // the page scrolled: it answered a click
  if (e.target != D) return; // only the page's own scrolling is measured
  if (!visitor) {
    stopSampling();
    return resetScroll();
  }
  visitorScrollAt = t;
  active();
  if (!scrollTimer) {
    scrollSince = t;
    scrollTimer = setTimeout(safe(sample), SAMPLE_MS);
  }
}

function stopSampling() {
  clearTimeout(scrollTimer);
  scrollTimer = 0;
}

function sample() {
  scrollTimer = 0;
  const y = W.scrollY;
  const dy = y - scrollFrom;
  if (!dy) return;
  scrollFrom = y;
  const speed = (Math.abs(dy) * 1e3) / Math.max(now() - scrollSince, SAMPLE_MS);
  push('scroll', { speed, direction: dy > 0 ? 'down' : 'up' });
  if (dy > 0) scrolledDown += dy;
  else {
    if (scrolledDown >= BACKTRACK_PX) push('backtrack');
    scrolledDown = 0;
  }
}

/** Measure from here: after the page scrolled itself, or on a new page. */
export function resetScroll() {
  scrollFrom = W.scrollY;
  scrolledDown = 0;
}

export function bindScroll() {
  listen(W, 'wheel', scrollInput);
  listen(W, 'touchmove', scrollInput);
  listen(D, 'keydown', (e) => {
    // Scroll keys; but keys in a field type, and Space anywhere but on the page itself presses something.
    const scrollKey = /^(PageUp|PageDown|Home|End|ArrowUp|ArrowDown| )$/.test(e.key);
    if (scrollKey && (e.target == D.body || (e.key != ' ' && !isField(e.target)))) scrollInput();
    else scrollInputAt = visitorScrollAt = 0;
  });
  listen(D, 'pointerdown', (e) => {
    const root = D.documentElement;
    // The page's scrollbar lies outside the root's client area.
    scrollbarDrag = e.target == root && (e.clientX >= root.clientWidth || e.clientY >= root.clientHeight);
    // A click ends the visitor's scrolling: what scrolls after it is the page's answer.
    scrollInputAt = visitorScrollAt = 0;
  });
  listen(D, 'pointerup', () => (scrollbarDrag = false));
  listen(D, 'scroll', onScroll);
}
