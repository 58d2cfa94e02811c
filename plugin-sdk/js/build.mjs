#!/usr/bin/env node
// Builds an Intake plugin component from a JavaScript module with
// componentize-js (pinned in this folder's package.json; `npm ci` here first):
//
//   node path/to/plugin-sdk/js/build.mjs app.js -o my_plugin.wasm [--world matcher-plugin]
//
// The app imports the SDK as 'intake-plugin-sdk'. componentize-js reads only
// files under the app's folder, so the app's folder is staged with a copy of
// this SDK and that import pointed at it. Left out: `fetch` (wasi:http, which
// the engine grants only bindings the operator allowed outbound HTTP; a
// matcher needs none) and the fetch event.
// The world is matcher-plugin (default), unknown-sender-plugin or full-plugin.

import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = dirname(fileURLToPath(import.meta.url));
const SDK_FILES = ['index.js', 'address.js', 'log.js', 'host.js'];
const SKIP = new Set(['node_modules', 'target', '.git']);

function usage(message) {
  console.error(`${message}\nusage: node build.mjs APP.js -o OUT.wasm [--world matcher-plugin|unknown-sender-plugin|full-plugin]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let app = null;
let out = null;
let world = 'matcher-plugin';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-o' || args[i] === '--out') out = args[++i];
  else if (args[i] === '--world') world = args[++i];
  else if (app === null) app = args[i];
  else usage(`unexpected argument ${args[i]}`);
}
if (!app || !out) usage('give the app module and -o');

let componentize;
try {
  ({ componentize } = await import('@bytecodealliance/componentize-js'));
} catch {
  usage(`componentize-js is not installed beside the SDK: run \`npm ci\` in ${sdk}`);
}

const appPath = resolve(app);
const appDir = dirname(appPath);
const stage = await mkdtemp(join(tmpdir(), 'intake-js-'));
try {
  await cp(appDir, stage, { recursive: true, filter: (src) => !SKIP.has(basename(src)) || src === appDir });
  const sdkCopy = join(stage, '.intake-plugin-sdk');
  await mkdir(sdkCopy);
  for (const file of SDK_FILES) await cp(join(sdk, file), join(sdkCopy, file));
  await rewriteImports(stage, sdkCopy);
  const cwd = process.cwd();
  process.chdir(stage);
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: join(stage, relative(appDir, appPath)),
      witPath: join(sdk, 'wit'),
      worldName: world,
      disableFeatures: ['http', 'fetch-event'],
    }));
  } finally {
    process.chdir(cwd);
  }
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, component);
  console.log(`built ${out} (${component.length} bytes)`);
} finally {
  await rm(stage, { recursive: true, force: true });
}

// Points `from 'intake-plugin-sdk'` in every staged module at the SDK copy.
async function rewriteImports(dir, sdkCopy) {
  for (const entry of await readdir(dir)) {
    const path = join(dir, entry);
    if (path === sdkCopy) continue;
    if ((await stat(path)).isDirectory()) {
      await rewriteImports(path, sdkCopy);
    } else if (/\.m?js$/.test(entry)) {
      const source = await readFile(path, 'utf8');
      let target = relative(dirname(path), join(sdkCopy, 'index.js'));
      if (!target.startsWith('.')) target = `./${target}`;
      const rewritten = source.replace(/(from\s*|import\s*)(['"])intake-plugin-sdk\2/g, `$1$2${target}$2`);
      if (rewritten !== source) await writeFile(path, rewritten);
    }
  }
}
