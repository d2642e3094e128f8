// Builds static/tracker.js, what sites load, from tracker/src: esbuild bundles the
// modules into one IIFE, terser minifies it. Both are pinned in package-lock.json.
//   node build.mjs              write static/tracker.js
//   node build.mjs --check [F]  exit 1 when static/tracker.js (or F) is not what tracker/src builds to
//   node build.mjs --out F      write F instead
import { build } from 'esbuild';
import { minify } from 'terser';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const target = here('../static/tracker.js');
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const out = option('--out') || target;

// Each module keeps its state in module-level variables, which esbuild's IIFE
// bundle makes locals of one function: terser mangles them like any local (no
// list needed). The records kept in arrays and objects keep field names, so the
// internal ones are listed here, each mangled wherever it appears as a property
// (`builtins: true`: also on built-in objects, so a name here must never be one
// this code reads from the DOM or the page, nor one the server or the public
// API sees: `SessionMood.*`, options, event fields, a batch's `id`/`events`).
// A new field of an internal record is added here; left out, it only costs bytes.
const RECORD_FIELDS = [
  // a click (clicks.js)
  'at', 'el', 'looks', 'busy', 'done', 'answered', 'keyboard', 'desc',
  // a burst of clicks (clicks.js)
  'clicks', 'last', 'raged',
  // a batch being sent (send.js)
  'beaconed',
];

const bundled = await build({
  entryPoints: [here('src/index.js')],
  bundle: true,
  format: 'iife',
  target: 'es2017',
  legalComments: 'none',
  // esbuild's syntax pass before terser's: mostly `let` for `const`, which
  // terser keeps (16 B gzipped).
  minifySyntax: true,
  write: false,
});
const { code } = await minify(bundled.outputFiles[0].text, {
  ecma: 2017,
  toplevel: true,
  compress: { passes: 2 },
  mangle: { properties: { builtins: true, regex: new RegExp(`^(${RECORD_FIELDS.join('|')})$`) } },
  format: { preamble: '/*! SessionMood tracker.js, built from tracker/src */' },
});

if (args.includes('--check')) {
  const checked = option('--check') || target;
  let current = '';
  try {
    current = readFileSync(checked, 'utf8');
  } catch (_) {}
  if (current !== code) {
    console.error(`${checked} is stale: run \`make tracker\` and commit static/tracker.js.`);
    process.exit(1);
  }
  console.log(`${checked} matches tracker/src`);
} else {
  writeFileSync(out, code);
  console.log(`wrote ${out} (${code.length} B)`);
}
