/**
 * The element an event happened on, as the `target` the server stores: the
 * site's own label (the nearest `data-sm-name`), else a short CSS-like
 * selector of tags, ids and classes. Never text, values or any other
 * attribute: what the page shows and what visitors type stay in the page
 * (docs/tracker.md, "Element descriptors").
 */
import { D, safe } from './util.js';

// A name (id or class) is kept when it is a plain CSS identifier of at most 32
// characters (so no `@`, `:`, `/`, `[`: Tailwind's arbitrary values carry
// data)...
const PLAIN = /^-?[a-z_][\w-]{0,31}$/i;
// ...that looks neither generated nor like data: two digits in a row or a digit
// before a letter (`Button_x7f3a_12`, `css-1x2y3z`, `user-42`, `_2Ce8z`), two
// capitals at most a letter apart (`sc-bdVaJa`, `kBqTbC`), the prefixes of
// CSS-in-JS hashes (styled-jsx's `jsx-123456` has its digits), nor a state
// that comes and goes (`active`, `show`...): the same control must read the
// same before and after it is clicked.
const SKIPPED =
  /\d\d|\d[a-zA-Z]|[A-Z][a-z]?[A-Z]|^(css|sc|svelte|is|has)-|active|selected|current|show|open|disabled|focus/;
const usable = (name) => PLAIN.test(name) && !SKIPPED.test(name);

const MAX = 120; // characters (code points: never half a character)
const cut = (s) => [...s].slice(0, MAX).join('');

// One level: the tag and at most two usable classes.
const level = (el) =>
  el.localName +
  [...el.classList]
    .filter(usable)
    .slice(0, 2)
    .map((c) => '.' + c)
    .join('');

/** `el`'s descriptor (undefined if anything about it throws). */
export const describe = safe((el) => {
  // (No named ancestor: `el` has no name either.)
  const name = (el.closest('[data-sm-name]') || el).dataset.smName;
  if (name) return cut(name);
  let out = '';
  for (let n = 0; el && n < 3; n++, el = el.parentElement) {
    let s = level(el);
    const id = usable(el.id);
    if (id) s = el.localName + '#' + el.id;
    else {
      // `:nth-of-type` only where a sibling of the same tag reads the same (a
      // detached element's "siblings" are the document's <html>: none).
      const same = [...(el.parentElement || D).children].filter((c) => c.localName == el.localName);
      if (same.some((c) => c != el && level(c) == s)) s += ':nth-of-type(' + (same.indexOf(el) + 1) + ')';
    }
    // Outer levels go first when it grows too long.
    if (out && (s + ' > ' + out).length > MAX) break;
    out = out ? s + ' > ' + out : s;
    if (id) break; // an id is unique enough
  }
  return cut(out);
});
