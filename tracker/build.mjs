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

// Internal property names are mangled like local names: the fields of `state`
// (listed in src/state.js as "- `name`:") and of the click and burst records
// (src/clicks.js). Names the page, the server or the public API can see
// (`SessionMood.sessionId`, options, event fields) are never in this list.
const PUBLIC = new Set(['sessionId', 'cfg', 'on']);
const stateFields = [...readFileSync(here('src/state.js'), 'utf8').matchAll(/^ \* - `(\w+)`:/gm)].map((m) => m[1]);
const recordFields = ['at', 'el', 'looks', 'done', 'answered', 'keyboard', 'last', 'count', 'beaconed'];
const internal = [...stateFields, ...recordFields].filter((k) => !PUBLIC.has(k));

const bundled = await build({
  entryPoints: [here('src/index.js')],
  bundle: true,
  format: 'iife',
  target: 'es2017',
  legalComments: 'none',
  write: false,
});
const { code } = await minify(bundled.outputFiles[0].text, {
  ecma: 2017,
  toplevel: true,
  compress: { passes: 2 },
  mangle: { properties: { builtins: true, regex: new RegExp(`^(${internal.join('|')})$`) } },
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
