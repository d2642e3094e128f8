// Builds static/tracker.js, what sites load, from tracker/src: esbuild bundles the
// modules into one IIFE, terser minifies it. Both are pinned in package-lock.json.
//   node build.mjs              write static/tracker.js
//   node build.mjs --check [F]  exit 1 when static/tracker.js (or F) is not what tracker/src builds to
//   node build.mjs --out F      write F instead
import { build } from 'esbuild';
import { minify } from 'terser';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const target = here('../static/tracker.js');
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const out = option('--out') || target;

// Internal property names are mangled like local names: the fields of `state`
// and of the records the modules keep (clicks, bursts, batches), each listed in
// its module's doc comment as "- `name`:". Names the page, the server or the
// public API can see (`SessionMood.sessionId`, options, event fields) are never
// listed, or are kept by PUBLIC.
const PUBLIC = new Set(['sessionId', 'cfg', 'on']);
const src = here('src/');
const listed = readdirSync(src).flatMap((f) => [...readFileSync(src + f, 'utf8').matchAll(/^ \* - `(\w+)`:/gm)]);
const internal = [...new Set(listed.map((m) => m[1]))].filter((k) => !PUBLIC.has(k));

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
