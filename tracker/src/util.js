import { on, cfg } from './life.js';

export const W = window;
export const D = document;
export const N = navigator;
export const now = () => Date.now();

/** `fn` that never throws into the page and does nothing once the tracker stopped. */
export const safe =
  (fn) =>
  (...args) => {
    try {
      if (on) return fn(...args);
    } catch (_) {}
  };

/** Capture-phase, passive listener: sees events before the page can stop them. */
export const listen = (target, type, fn) =>
  target.addEventListener(type, safe(fn), { capture: true, passive: true });

/**
 * Wrap methods of `target` (a constructor's prototype, or an object) so that
 * `fn(this)` runs after each call; what `fn` throws never reaches the page,
 * and a method the page froze stays as it is.
 */
export const hook = (target, names, fn) =>
  target &&
  names.split(' ').forEach((name) => {
    try {
      const obj = target.prototype || target;
      const original = obj[name];
      const after = safe(fn);
      if (original)
        obj[name] = function () {
          const result = original.apply(this, arguments);
          after(this);
          return result;
        };
    } catch (_) {}
  });

export const randomId = () =>
  Array.from(W.crypto.getRandomValues(new Uint8Array(16)), (b) => (b + 256).toString(16).slice(1)).join('');

/** Euclidean distance from a point to a rectangle (0 inside it). */
export const distance = (x, y, r) =>
  Math.hypot(Math.max(r.left - x, 0, x - r.right), Math.max(r.top - y, 0, y - r.bottom));

// Elements that promise a response when clicked (clicks.js; also anything with a
// pointer cursor), and where the pointer resting means a question (fields.js).
// (Not [tabindex]: pages put tabindex=-1 on whole sections, for skip links.)
export const INTERACTIVE =
  'a[href],button,input,select,summary,[onclick],[role=button],[role=tab],[role=menuitem],[role=option],[role=switch],[role=checkbox]';

/** Form fields, where a click places a caret or opens a native picker: not buttons. */
export const isField = (el) =>
  (/^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && !/^(button|submit|reset|image)$/.test(el.type)) ||
  el.isContentEditable;

export const debug = (...args) => cfg.debug && console.debug('[SessionMood]', ...args);
