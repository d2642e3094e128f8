/** Form fields (focus, blur, typing pauses) and hovering. Values are never read. */
import { state } from './state.js';
import { D, now, listen, isField } from './util.js';
import { push } from './send.js';
import { INTERACTIVE } from './clicks.js';

// Where the pointer resting means "what does this do?"; resting on text is
// reading. (Not any [role]: landmarks such as role=main hold whole pages.)
const HOVERABLE = INTERACTIVE + ',textarea,label,[title]';

function hoverEnd() {
  const d = now() - state.hoverSince;
  if (state.hoverEl && !state.hoverClicked && d >= state.cfg.hoverMs) push('hover', { duration_ms: d });
  state.hoverEl = null;
}

function typingEnd(el) {
  const d = now() - state.typedAt;
  if (el == state.typingEl && d >= state.cfg.pauseMs) push('input_pause', { duration_ms: d });
}

export function bindFields() {
  // Hover needs a pointer that can hover: touch screens emulate mouseover after a tap.
  listen(D, 'pointerover', (e) => {
    if (e.pointerType == 'touch') return;
    const el = e.target.closest(HOVERABLE);
    if (el != state.hoverEl) {
      hoverEnd();
      if (el) (state.hoverEl = el), (state.hoverSince = now()), (state.hoverClicked = false);
    }
  });
  listen(D, 'pointerout', (e) => e.relatedTarget || hoverEnd());
  listen(D, 'input', (e) => {
    // Only typing has an inputType: not a checkbox, a select, a slider or a file.
    if (!e.inputType) return;
    const el = e.target;
    typingEnd(el); // resumed after a pause
    state.typingEl = el;
    state.typedAt = now();
  });
  listen(D, 'focusin', (e) => isField(e.target) && push('focus'));
  listen(D, 'focusout', (e) => {
    if (!isField(e.target)) return;
    typingEnd(e.target); // left after a pause
    state.typingEl = null;
    push('blur');
  });
}

export const stopHover = () => (state.hoverEl = null);
