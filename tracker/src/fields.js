/** Form fields (focus, blur, typing pauses) and hovering. Values are never read. */
import { cfg } from './life.js';
import { D, now, listen, isField, INTERACTIVE } from './util.js';
import { push } from './send.js';
import { describe } from './describe.js';

/** The interactive element under the mouse. */
let hoverEl;
/** Since when. */
let hoverSince;
/** It was clicked (then it is no hesitation): clicks.js says so, by `markHoverClicked`. */
let hoverClicked;
/** The field being typed in. */
let typingEl;
/** Its last keystroke. */
let typedAt;

// Where the pointer resting means "what does this do?"; resting on text is
// reading. (Not any [role]: landmarks such as role=main hold whole pages.)
const HOVERABLE = INTERACTIVE + ',textarea,label,[title]';

function hoverEnd() {
  const d = now() - hoverSince;
  if (hoverEl && !hoverClicked && d >= cfg.hoverMs) push('hover', { duration_ms: d, target: describe(hoverEl) });
  hoverEl = null;
}

function typingEnd(el) {
  const d = now() - typedAt;
  if (el == typingEl && d >= cfg.pauseMs) push('input_pause', { duration_ms: d, target: describe(el) });
}

export function bindFields() {
  // Hover needs a pointer that can hover: touch screens emulate mouseover after a tap.
  listen(D, 'pointerover', (e) => {
    if (e.pointerType == 'touch') return;
    const el = e.target.closest(HOVERABLE);
    if (el != hoverEl) {
      hoverEnd();
      if (el) (hoverEl = el), (hoverSince = now()), (hoverClicked = false);
    }
  });
  listen(D, 'pointerout', (e) => e.relatedTarget || hoverEnd());
  listen(D, 'input', (e) => {
    // Only typing has an inputType: not a checkbox, a select, a slider or a file.
    if (!e.inputType) return;
    const el = e.target;
    typingEnd(el); // resumed after a pause
    typingEl = el;
    typedAt = now();
  });
  listen(D, 'focusin', (e) => isField(e.target) && push('focus', { target: describe(e.target) }));
  listen(D, 'focusout', (e) => {
    if (!isField(e.target)) return;
    typingEnd(e.target); // left after a pause
    typingEl = null;
    push('blur', { target: describe(e.target) });
  });
}

/** The page was hidden: what the pointer rested on is no hover. */
export const stopHover = () => (hoverEl = null);

/** What the pointer rests on was clicked (clicks.js): no hesitation. */
export const markHoverClicked = () => (hoverClicked = true);
