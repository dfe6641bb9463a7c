// Helpers for the codegen tests (tests/cli/codegen.test.mjs, tests/integration/codegen.test.mjs):
// run `walcast codegen typescript` into a directory and type-check what it wrote, with the
// sample component, using the TypeScript, React types and socket.io-client pinned here
// (`npm ci --prefix tests/codegen-ts`). Node ESM, no dependencies.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = join(HERE, 'node_modules');
const TSC = join(NODE_MODULES, '.bin', 'tsc');

export const SAMPLE = join(HERE, 'sample.tsx');
export const FILES = ['socket-events.ts', 'use-socket.ts'];

// What an app's tsconfig typically says, on the command line.
const BASE_FLAGS = ['--noEmit', '--strict', '--jsx', 'react-jsx', '--target', 'es2022', '--module', 'esnext',
  '--moduleResolution', 'bundler', '--lib', 'es2022,dom'];
// Stricter settings some apps add; the generated files must pass them too.
export const PEDANTIC_FLAGS = ['--noUncheckedIndexedAccess', '--exactOptionalPropertyTypes', '--verbatimModuleSyntax',
  '--isolatedModules', '--noUnusedLocals', '--noUnusedParameters', '--noImplicitReturns', '--noImplicitOverride',
  '--noPropertyAccessFromIndexSignature', '--noFallthroughCasesInSwitch'];

export function requireToolchain() {
  if (!existsSync(TSC)) {
    throw new Error(`${TSC} is missing: run npm ci --prefix tests/codegen-ts (scripts/test does)`);
  }
}

// A fresh directory whose node_modules is the pinned one, so imports of 'react' and
// 'socket.io-client' resolve from the files written into it.
export function workDir(prefix = 'walcast-codegen-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  symlinkSync(NODE_MODULES, join(dir, 'node_modules'), 'dir');
  return dir;
}

// Runs `walcast codegen typescript`; {status, stdout, stderr}.
export function codegen(bin, args, { cwd } = {}) {
  const r = spawnSync(bin, ['codegen', ...args], { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The generated files of `dir` as {name: Buffer}.
export function readGenerated(dir) {
  return Object.fromEntries(FILES.map((f) => [f, readFileSync(join(dir, f))]));
}

// Copies the sample component into `dir` and runs tsc on the generated files, the sample and
// `extra` files of `dir`; {status, output} (tsc prints its errors on stdout).
export function typecheck(dir, { extra = [], flags = [] } = {}) {
  copyFileSync(SAMPLE, join(dir, 'sample.tsx'));
  const r = spawnSync(TSC, [...BASE_FLAGS, ...flags, ...FILES, 'sample.tsx', ...extra], { cwd: dir, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
