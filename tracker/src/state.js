/**
 * Everything the tracker remembers, in one object, so that what each detector
 * depends on can be read in one place. Times are `Date.now()` milliseconds.
 * Fields start out undefined (falsy) unless set below. The build mangles
 * these names like local variables: each is listed as "- `name`:".
 *
 * Lifecycle
 * - `on`: capturing and sending (`init()` sets it, `stop()` clears it)
 * - `bound`: listeners attached; they stay for the page's life and `on` silences them
 * - `cfg`: resolved options (config.js)
 * - `sessionId`: the session id in use
 *
 * Delivery (send.js)
 * - `queue`: captured events not yet in a batch
 * - `inFlight`: the batch being sent ({id, events, beaconed}), the same across retries
 * - `tries`: failed attempts in a row (the backoff exponent)
 * - `chain`: sends run one after another
 * - `retryTimer`: the next try, while waiting out a backoff
 * - `flushTimer`: the periodic send
 * - `moodCallbacks`: `onMood` subscribers
 *
 * Clicks (clicks.js)
 * - `press`: the pointer press in progress, a pending click until its click event arrives
 * - `pending`: clicks waiting for the page's response, or for their verdict
 * - `burst`: the current run of rapid clicks on one spot
 * - `observer`: the MutationObserver (its pending records are read before an error's verdicts)
 * - `pressedAt`: last pointerdown or click anywhere
 * - `clickTask`: set while a click is dispatched (what changes then, its handlers changed)
 * - `ticking`: node -> when it last changed with no click anywhere near in time,
 *   negative the first time (clicks.js): a node that keeps changing on its own
 *   (a countdown, a carousel on autoplay) answers no click
 *
 * Scrolling (scroll.js)
 * - `scrollInputAt`: last wheel, touch move, scroll key or scrollbar press
 * - `visitorScrollAt`: last scroll event that was the visitor's
 * - `scrollbarDrag`: a press on the page's scrollbar is in progress
 * - `scrollTimer`: the pending sample of the visitor's scrolling
 * - `scrollSince`: when that sample's scrolling began
 * - `scrollFrom`: the scrollY it measures from
 * - `scrolledDown`: px down since the last reversal (for backtrack)
 *
 * Navigation (navigation.js)
 * - `path`: of the last page_view
 * - `historyIndex`: Navigation API index of the current entry (-1 without the API)
 * - `location`: path + query of the current entry (compared, never sent)
 *
 * Fields and hover (fields.js)
 * - `hoverEl`: the interactive element under the mouse
 * - `hoverSince`: since when
 * - `hoverClicked`: it was clicked (then it is no hesitation)
 * - `typingEl`: the field being typed in
 * - `typedAt`: its last keystroke
 *
 * Idle (activity.js)
 * - `activeAt`: the visitor's last input
 * - `idleTimer`: fires when `idleMs` passed since then
 *
 * Errors (errors.js)
 * - `errorCounts`: per message, this minute
 * - `errorsSince`: start of that minute
 */
export const state = {
  on: false,
  queue: [],
  chain: Promise.resolve(),
  moodCallbacks: [],
  pending: [],
  ticking: new WeakMap(),
  historyIndex: -1,
  errorCounts: {},
};
