/** Idle: no input for `idleMs` while the page is visible, reported while the visitor is still away. */
import { cfg, onStop } from './life.js';
import { D, now, safe, listen } from './util.js';
import { push } from './send.js';

/** The visitor's last input. */
let activeAt;
/** Fires when `idleMs` passed since then. */
let idleTimer;

const check = safe(() => {
  idleTimer = 0;
  const gap = now() - activeAt;
  if (D.hidden) return;
  if (gap >= cfg.idleMs) push('idle', { duration_ms: gap });
  else idleTimer = setTimeout(check, cfg.idleMs - gap);
});

export function active() {
  activeAt = now();
  idleTimer = idleTimer || setTimeout(check, cfg.idleMs);
}

/** No idle while the page is hidden, nor once the tracker stopped. */
export function pauseIdle() {
  clearTimeout(idleTimer);
  idleTimer = 0;
}
onStop(pauseIdle);

export function bindActivity() {
  // Scrolling counts when the visitor scrolled (scroll.js), not when the page did.
  'pointermove pointerdown keydown wheel touchstart'.split(' ').forEach((type) => listen(D, type, active));
}
