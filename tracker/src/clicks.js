/**
 * Clicks, dead clicks and rage clicks, judged by what the page did in
 * response rather than by what a button says.
 *
 * Every press becomes a pending click that waits `deadMs` for a response:
 * a DOM change near it, shown or hidden (not one to a node that keeps changing
 * by itself, such as a countdown, unless the click's own handlers made it; not
 * a busy indicator, for a click on a control already busy), a toast or live
 * region anywhere, a navigation, a scroll the visitor did not make, a text
 * selection, focus moving elsewhere, a control changing, the canvas under the
 * pointer drawn on, a clipboard write, media playing, a window opened, or the
 * page being hidden (a new tab). Then it is sent as `click`, with `dead: true`
 * when it looked interactive and nothing answered. What the press itself
 * causes (the field it leaves firing `change` and `blur`, a caret moving) is
 * no answer.
 *
 * Rage is `rageClicks` clicks that got no response, each within `rageMs` of the
 * previous and `ragePx` of the first, by `RAGE_WAIT_MS` after the latest; then
 * every click of the burst is dead, whatever answered some of them (a spinner
 * that never ends). Not counted: keyboard activations (`detail` 0), the end of
 * a drag, the second click a <label> sends to its control, clicks in form
 * fields, downloads and new tabs (their answer is outside the page) and
 * anything inside `[data-sm-no-rage]`. A disabled control fires no `click` at
 * all (only pointer events), or, styled `pointer-events: none`, hands it to
 * what lies beneath: either way the click was meant for it, and is dead.
 *
 * The records kept here, whose field names the build mangles (RECORD_FIELDS
 * in build.mjs lists them: a new field goes there too). A click, in `pending`:
 * - `x`, `y`: where it was pressed (the element's centre, for the keyboard)
 * - `at`: when it was pressed (or activated by the keyboard)
 * - `el`: what it was meant for: its target, or the disabled control under the point
 * - `looks`: that looked interactive (only such a click can be dead)
 * - `busy`: that showed it was busy when pressed (disabled, aria-busy, a spinner)
 * - `done`: its click event came (until then it is a press)
 * - `answered`: the page responded to it
 * - `keyboard`: Enter or Space: judged from the element's centre
 * - `desc`: its element's descriptor (describe.js), the control it is in, taken
 *   when pressed: the page's answer may replace that element (Grid.js
 *   re-renders its pagination)
 * A burst, `burst`:
 * - `x`, `y`: where its first click was
 * - `clicks`: its clicks, in order
 * - `last`: when its latest click was pressed
 * - `raged`: its rage_click was sent
 */
import { cfg, onStop } from './life.js';
import { W, D, now, safe, listen, distance, isField, hook, INTERACTIVE } from './util.js';
import { push } from './send.js';
import { markHoverClicked } from './fields.js';
import { describe } from './describe.js';

/** The pointer press in progress: a pending click until its click event arrives. */
let press;
/** Clicks waiting for the page's response, or for their verdict. */
let pending = [];
/** The current run of rapid clicks on one spot. */
let burst;
/** The MutationObserver (its pending records are read before an error's verdicts). */
let observer;
/** Last pointerdown or click anywhere. */
let pressedAt;
/** Set while a click is dispatched (what changes then, its handlers changed). */
let clickTask;
/** The latest click (an error soon after it names its element). */
let latest;
/**
 * Node -> when it last changed with no click anywhere near in time, negative
 * the first time: a node that keeps changing on its own (a countdown, a
 * carousel on autoplay) answers no click.
 */
const ticking = new WeakMap();

onStop(() => (pending = []));

const DISABLED = ':disabled,[aria-disabled=true]';
// A control that shows it is working: what changes in it answers no click on it.
const BUSY = DISABLED + ',[aria-busy=true],[role=progressbar],[class*=spin i],[class*=loading i]';
// Their answer is outside the page (a file saved, a new tab): never dead nor rage.
const ELSEWHERE = '[data-sm-no-rage],a[download],a[target=_blank]';
// Shown anywhere on the page, these answer a click wherever it was.
const ANNOUNCED = '[aria-live],[role=alert],[role=status],[class*=toast i]';
const DRAG_PX = 10; // a click this far from its press ends a drag (a slider handle)
const RAGE_WAIT_MS = 500; // after the last counted click, how long a response may still take
const NEAR_PX = 250; // a DOM change this close to the click can be its response
const QUIET_MS = 1500; // a change this long after any click is the page's own doing...
const TICK_MS = 200; // ...and a node changing so twice, this far apart (not a widget's setup)...
const TICKING_MS = 60000; // ...answers no click for this long
const ERROR_CLICK_MS = 1500; // an error this soon after a click is its failure (the engine's ERROR_CLICK_S)

// (Events target elements; `safe` catches whatever a strange one throws.)
const looksInteractive = (el) => !!el.closest(INTERACTIVE) || getComputedStyle(el).cursor == 'pointer';

const busy = (el) => {
  const control = el.closest(INTERACTIVE) || el;
  return control.matches(BUSY) || !!control.querySelector(BUSY);
};

// An icon names the control it is in (a button), or what holds it (flatpickr's
// month arrows are a <span> around an <svg>): the nearest element outside any <svg>.
const descriptor = (el) => describe(el.closest(INTERACTIVE) || el.closest(':not(svg,svg *)'));

// What a press was meant for. A disabled control styled to ignore the pointer
// (Bootstrap's `pointer-events: none`) hands its clicks to what lies beneath,
// which holds it: the disabled control under the point is the one.
const aimed = (e) => {
  const el = e.target;
  return (
    el.closest(DISABLED) ||
    [...el.querySelectorAll(DISABLED)].find((c) => !distance(e.clientX, e.clientY, c.getBoundingClientRect())) ||
    el
  );
};

/** Every pending click that `test` accepts (all, without one) got a response. */
export function respond(test) {
  for (const click of pending) if (!test || test(click)) click.answered = true;
}

// The visitor moved on to another element: what happens next answers that one,
// so earlier clicks get their verdict now.
const moveOn = (el) => pending.filter((c) => c.done && c.el != el).forEach(settle);

function onPress(e) {
  pressedAt = now();
  if (!e.isPrimary) return;
  if (press) forget(press); // pressed and never clicked: a drag released elsewhere
  const el = aimed(e);
  moveOn(el);
  press = {
    x: e.clientX,
    y: e.clientY,
    at: pressedAt,
    el,
    looks: looksInteractive(el),
    busy: busy(el),
    desc: descriptor(el),
  };
  pending.push(press);
}

function forget(click) {
  pending = pending.filter((c) => c != click);
  if (press == click) press = null;
}

function release(e) {
  // Chromium sends no click for a disabled control, only pointer events.
  if (press && e.target.closest(':disabled')) clicked(press, e);
}

function onClick(e) {
  const el = e.target;
  if (!e.isTrusted) return; // the page clicking itself
  pressedAt = now();
  let click = press;
  if (!click || e.detail == 0) {
    // A pointer click without a press of its own is the second click a <label>
    // sends to its control: the visitor clicked once.
    if (e.detail) return;
    // A keyboard activation (Enter or Space: detail 0, no coordinates): judged
    // from the element's centre.
    const r = el.getBoundingClientRect();
    moveOn(el);
    click = {
      x: r.x + r.width / 2,
      y: r.y + r.height / 2,
      at: pressedAt,
      el,
      looks: looksInteractive(el),
      keyboard: 1,
      desc: descriptor(el),
    };
    pending.push(click);
  }
  clicked(click, e);
}

function clicked(click, e) {
  const el = click.el;
  // Until the click's dispatch ends, changes are its handlers' doing, even to
  // a node that also changes by itself (a carousel on autoplay). The last
  // listener (bubbling to window) ends it; the timer when a handler stopped it.
  clickTask = setTimeout(() => (clickTask = 0));
  press = null;
  latest = click;
  click.done = true;
  markHoverClicked(); // what the pointer rests on was clicked: no hesitation
  // The end of a drag (a slider handle) lands away from where it was pressed.
  const drag = Math.hypot(e.clientX - click.x, e.clientY - click.y) > DRAG_PX && !click.keyboard;
  const counted = !drag && !isField(el) && !el.closest(ELSEWHERE);
  click.looks = counted && click.looks;
  setTimeout(safe(() => settle(click)), cfg.deadMs);
  if (!counted || click.keyboard) return;
  const { rageClicks, rageMs, ragePx } = cfg;
  let run = burst; // (what the check below judges, whatever burst comes next)
  if (!run || click.at - run.last > rageMs || Math.hypot(click.x - run.x, click.y - run.y) > ragePx) {
    run = burst = { x: click.x, y: click.y, clicks: [] };
  }
  run.last = click.at;
  if (run.clicks.push(click) >= rageClicks) {
    setTimeout(
      safe(() => {
        if (run.raged || run.clicks.filter((c) => !c.answered).length < rageClicks) return;
        run.raged = true;
        // The burst's clicks go with it, dead: the mood needs them now, and an
        // answer to some of them (a spinner that never ends) did not help.
        run.clicks.forEach((c) => ((c.answered = false), settle(c)));
        push('rage_click', { x: click.x, y: click.y, target: click.desc });
      }),
      RAGE_WAIT_MS,
    );
  }
}

/** The click's verdict is in: send it. */
function settle(click) {
  if (!pending.includes(click)) return;
  forget(click);
  const fields = { target: click.desc };
  click.keyboard || ((fields.x = click.x), (fields.y = click.y));
  if (click.looks && !click.answered) fields.dead = true;
  push('click', fields, click.at);
}

/** Send every pending click now: the page is going away. */
export const settleAll = () => pending.filter((c) => c.done).forEach(settle);

/**
 * An error: the clicks before it go with it, judged by what the page did until
 * now (the changes it made before throwing included). Returns the descriptor
 * of the element clicked within ERROR_CLICK_MS before, if any.
 */
export function settleNow() {
  onMutations(observer.takeRecords());
  settleAll();
  return latest && now() - latest.at <= ERROR_CLICK_MS && latest.desc;
}

/** Resolves once every pending click and rage check has its verdict. */
export const settled = () =>
  new Promise((resolve) =>
    setTimeout(resolve, pending.some((c) => c.done) ? Math.max(cfg.deadMs, RAGE_WAIT_MS) : 0),
  );

// -- DOM changes ---------------------------------------------------------------

function onMutations(records) {
  const t = now();
  // (Before the first click `pressedAt` is undefined: quiet.)
  if (!(t - pressedAt < QUIET_MS)) {
    // A node changing on its own twice, TICK_MS apart, ticks (a countdown, a
    // carousel on autoplay). A first change (stored negative) may be a widget
    // setting itself up, or a slow answer to a click.
    for (const r of records) {
      const first = ticking.get(r.target);
      ticking.set(r.target, first > 0 || t + first > TICK_MS ? t : first || -t);
    }
    return;
  }
  if (!pending.some((c) => !c.answered)) return;
  for (const r of records.slice(0, 50)) {
    if (ticking.get(r.target) > t - TICKING_MS && !clickTask) continue;
    // What the visitor sees change: the first node added, else the node changed
    // (the element holding it, for text).
    let el = r.addedNodes[0] || r.target;
    if (el.nodeType != 1) el = el.parentElement;
    let box = el && el.getBoundingClientRect();
    const anywhere = box && (box.width || box.height) && el.closest(ANNOUNCED);
    // Hidden now (no box): it answers where it was, in its nearest visible ancestor.
    while (el && !(box.width || box.height)) box = (el = el.parentElement) && el.getBoundingClientRect();
    // Not <body> or <html>, which contain everything: a toast removed at the
    // other end of the page answers nothing.
    if (!el || el == D.body || el == D.documentElement) continue;
    respond((c) => (anywhere || distance(c.x, c.y, box) <= NEAR_PX) && !(c.busy && busy(el)));
  }
}

export function bindClicks() {
  listen(D, 'pointerdown', onPress);
  listen(D, 'pointerup', release);
  listen(D, 'click', onClick);
  W.addEventListener('click', () => (clickTask = 0));
  // Responses other than DOM changes.
  listen(D, 'focusin', (e) => respond((c) => !(c.el.contains(e.target) || e.target.contains(c.el))));
  // A checkbox's (or a label's control's) change comes with its click; the
  // change of a field the press takes the focus from comes before it: no answer.
  listen(D, 'change', () => respond((c) => c.done));
  listen(D, 'selectionchange', () => {
    // Selecting text answers a click on text, not a click on a button.
    const s = W.getSelection();
    if (s && s.type == 'Range') respond((c) => !c.looks);
  });
  // Answers no DOM change shows: copying, media playing (also a detached
  // Audio), a window opened, the canvas under the pointer drawn on (a chart).
  const any = () => respond();
  'copy cut play pause'.split(' ').forEach((type) => listen(D, type, any));
  hook(W.Clipboard, 'write writeText', any);
  hook(W.HTMLMediaElement, 'play', any);
  hook(W, 'open', any);
  const drawn = (context) => respond((c) => c.el == context.canvas);
  hook(W.CanvasRenderingContext2D, 'clearRect fillRect fill stroke fillText drawImage putImageData', drawn);
  [W.WebGLRenderingContext, W.WebGL2RenderingContext].forEach((gl) => hook(gl, 'clear drawArrays drawElements', drawn));
  (observer = new MutationObserver(safe(onMutations))).observe(D.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    characterData: true,
  });
}
