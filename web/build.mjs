// Bundles the viewer pages: node web/build.mjs OUTDIR
//
// One JS and one CSS bundle per page (watch, shorts) with content hashes in their names under
// OUTDIR/assets/, dash.js as a chunk the watch page loads only for ?player=dash, and OUTDIR/watch.html
// and OUTDIR/shorts.html referencing them. Prints each file's size (and gzip size, for
// comparison: the edge sends them uncompressed). The edge loads OUTDIR at startup (web_root).
import { gzipSync } from 'node:zlib';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const top = join(here, '..');
const out = process.argv[2];
if (!out) {
  console.error('usage: node web/build.mjs OUTDIR');
  process.exit(2);
}

// The lockfile pins the tool; a different one on PATH or in node_modules would make different bytes.
const pinned = JSON.parse(readFileSync(join(top, 'package.json'), 'utf8')).devDependencies.esbuild;
if (esbuild.version !== pinned) {
  console.error(`web: esbuild ${esbuild.version} found, package.json pins ${pinned}: run npm ci`);
  process.exit(1);
}

const pages = {
  watch: { title: 'Live · Shortwave' },
  shorts: { title: 'Shorts · Shortwave' },
};

// Build into a fresh folder and move the result in, so that an edge never loads a half-written
// tree and old hashed files do not pile up.
const tmp = `${out}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(join(tmp, 'assets'), { recursive: true });

// One build per page, so that each page is one JS file with everything it needs at once (hls.js
// included); only dynamic imports (dash.js) become chunks of their own.
const outputs = {};
const files = {};
for (const name of Object.keys(pages)) {
  const result = await esbuild.build({
    entryPoints: { [name]: join(here, 'src', `${name}.js`) },
    outdir: join(tmp, 'assets'),
    bundle: true,
    splitting: true,
    format: 'esm',
    minify: true,
    target: ['chrome100', 'firefox100', 'safari15'],
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  Object.assign(outputs, result.metafile.outputs);
  for (const [path, info] of Object.entries(result.metafile.outputs))
    if (info.entryPoint && info.entryPoint.endsWith(`src/${name}.js`))
      files[name] = { js: basename(path), css: info.cssBundle ? basename(info.cssBundle) : null };
}

for (const [name, page] of Object.entries(pages)) {
  const f = files[name];
  if (!f || !f.css) {
    console.error(`web: no bundle for ${name}`);
    process.exit(1);
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>${page.title}</title>
<link rel="stylesheet" href="/assets/${f.css}">
<script type="module" src="/assets/${f.js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>This page needs JavaScript to play the stream.</noscript>
</body>
</html>
`;
  writeFileSync(join(tmp, `${name}.html`), html);
}

// OUTDIR is also CMake's binary folder for web/: replace only what this script writes.
mkdirSync(out, { recursive: true });
rmSync(join(out, 'assets'), { recursive: true, force: true });
renameSync(join(tmp, 'assets'), join(out, 'assets'));
for (const name of Object.keys(pages)) renameSync(join(tmp, `${name}.html`), join(out, `${name}.html`));
rmSync(tmp, { recursive: true, force: true });

const rows = [];
for (const path of Object.keys(outputs).map((p) => join(out, relative(tmp, resolve(p))))
  .concat(Object.keys(pages).map((p) => join(out, `${p}.html`)))) {
  const bytes = statSync(path).size;
  rows.push([relative(out, path), bytes, gzipSync(readFileSync(path)).length]);
}
rows.sort((a, b) => a[0].localeCompare(b[0]));
for (const [name, bytes, gz] of rows)
  console.log(`web: ${name.padEnd(34)} ${String(bytes).padStart(8)} bytes  (${gz} gzipped)`);
