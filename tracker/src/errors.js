/** Errors the visitor may have seen: uncaught exceptions and unhandled rejections. */
import { W, now, listen } from './util.js';
import { push } from './send.js';
import { settleNow } from './clicks.js';

/** Per message, this minute. */
let errorCounts = {};
/** Start of that minute. */
let errorsSince;

const PER_MINUTE = 3; // the same message at most this often: a render loop is one problem

function report(message) {
  // Query strings, quoted text and e-mail addresses go: messages often echo what was typed.
  const m = String(message || 'Error')
    .replace(/\?[^\s#'"]*|(["'`]).*?\1|\S+@\S+/g, '')
    .slice(0, 512);
  const t = now();
  if (t - errorsSince > 6e4) (errorCounts = {}), (errorsSince = t);
  if ((errorCounts[m] = (errorCounts[m] || 0) + 1) <= PER_MINUTE) {
    // An error after a click: the click goes with it, and names its element.
    push('error', { message: m, target: settleNow() });
  }
}

export function bindErrors() {
  listen(W, 'error', (e) => e instanceof ErrorEvent && report(e.message));
  listen(W, 'unhandledrejection', (e) => report((e.reason && e.reason.message) || e.reason));
}
