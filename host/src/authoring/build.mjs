#!/usr/bin/env node
// Builds a JavaScript plugin into a WebAssembly component with @bytecodealliance/componentize-js.
//
//   node build.mjs SOURCE WIT_DIR WORLD OUT
//
// SOURCE   the plugin's ES module (it may import relative modules)
// WIT_DIR  the folder of the WIT package (e.g. wit/)
// WORLD    the world to target (e.g. evaluator)
// OUT      the component to write
//
// componentize-js is loaded from WFLOW_JS_TOOLS (default ~/.cache/wflow/tools/js), where
//   npm install --prefix ~/.cache/wflow/tools/js @bytecodealliance/componentize-js@0.23.0
// put it. WFLOW_JS_DISABLE overrides the engine features left out (comma-separated, from
// stdio, random, clocks, http, fetch-event; empty keeps them all). By default `stdio` is kept
// so that console output and uncaught JS errors reach the step's log.

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
const DEFAULT_DISABLED = ['random', 'clocks', 'http', 'fetch-event'];

function usage(message) {
  console.error(`error: ${message}\nusage: node build.mjs SOURCE WIT_DIR WORLD OUT`);
  process.exit(2);
}

function disabledFeatures() {
  const env = process.env.WFLOW_JS_DISABLE;
  if (env === undefined) return DEFAULT_DISABLED;
  const list = env.split(',').map((f) => f.trim()).filter(Boolean);
  const unknown = list.filter((f) => !FEATURES.includes(f));
  if (unknown.length) usage(`unknown feature(s) in WFLOW_JS_DISABLE: ${unknown.join(', ')} (known: ${FEATURES.join(', ')})`);
  return list;
}

/** Imports componentize-js from the tools folder, following its package.json `exports`. */
async function loadComponentize(toolsDir) {
  const pkgDir = join(toolsDir, 'node_modules', '@bytecodealliance', 'componentize-js');
  let pkg;
  try {
    pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
  } catch {
    throw new Error(
      `componentize-js is not installed in ${toolsDir}: run\n  npm install --prefix ${toolsDir} @bytecodealliance/componentize-js@0.23.0`,
    );
  }
  const entry = typeof pkg.exports === 'string' ? pkg.exports : pkg.exports?.import ?? pkg.exports?.['.']?.import ?? pkg.main;
  const module = await import(pathToFileURL(join(pkgDir, entry)).href);
  return { componentize: module.componentize, version: pkg.version };
}

const [source, witDir, world, out] = process.argv.slice(2);
if (!source || !witDir || !world || !out) usage('four arguments are required');

const toolsDir = process.env.WFLOW_JS_TOOLS ?? join(homedir(), '.cache', 'wflow', 'tools', 'js');
const started = performance.now();
try {
  const { componentize, version } = await loadComponentize(toolsDir);
  const disableFeatures = disabledFeatures();
  const { component } = await componentize({
    sourcePath: resolve(source),
    witPath: resolve(witDir),
    worldName: world,
    disableFeatures,
  });
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, component);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const mib = (component.byteLength / 2 ** 20).toFixed(1);
  console.error(
    `built ${out} (${mib} MiB) from ${source} for world ${world} in ${seconds} s ` +
      `with componentize-js ${version}, disabled: ${disableFeatures.join(', ') || 'none'}`,
  );
} catch (error) {
  console.error(`error: ${error?.message ?? error}`);
  process.exit(1);
}
