/** Idle: no input for `idleMs` while the page is visible, reported while the visitor is still away. */
import { state } from './state.js';
import { D, now, safe, listen } from './util.js';
import { push } from './send.js';

const check = safe(() => {
  state.idleTimer = 0;
  const gap = now() - state.activeAt;
  if (D.hidden) return;
  if (gap >= state.cfg.idleMs) push('idle', { duration_ms: gap });
  else state.idleTimer = setTimeout(check, state.cfg.idleMs - gap);
});

export function active() {
  state.activeAt = now();
  state.idleTimer = state.idleTimer || setTimeout(check, state.cfg.idleMs);
}

export function pauseIdle() {
  clearTimeout(state.idleTimer);
  state.idleTimer = 0;
}

export function bindActivity() {
  // Scrolling counts when the visitor scrolled (scroll.js), not when the page did.
  'pointermove pointerdown keydown wheel touchstart'.split(' ').forEach((type) => listen(D, type, active));
}
