// The demo as a newcomer sees it: `walcast demo` brings up its throwaway PostgreSQL, the
// daemon and the live page; headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from tests/integration/browser/) opens the page; a Task row inserted with
// the psql command the demo prints appears in the board's To do column within 2 s of its
// commit; a screenshot goes to the test output directory; Ctrl-C (SIGINT) stops the demo with
// status 0 and removes its data directory.
//
// Run by ctest with WALCAST_BIN and WALCAST_SOURCE_DIR; from the repo root:
//   npm ci --prefix tests/integration/browser
//   WALCAST_BIN=build/walcast node --test tests/integration/demo_browser.test.mjs
// Optional: WALCAST_TEST_OUTPUT (a directory, or a .png path) for the screenshot (default
// build/test-output/demo.png), CHROMIUM_PATH (default /usr/bin/chromium).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.WALCAST_SOURCE_DIR ?? resolve(HERE, '..', '..');
const WALCAST_BIN = process.env.WALCAST_BIN ?? join(SOURCE_DIR, 'build', 'walcast');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = (() => {
  const out = process.env.WALCAST_TEST_OUTPUT;
  if (!out) return join(SOURCE_DIR, 'build', 'test-output', 'demo.png');
  return out.endsWith('.png') ? resolve(out) : join(resolve(out), 'demo.png');
})();
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const TASK_ID = 'browser-test-1';
const TASK_TITLE = 'Inserted by the test';
const MAX_LATENCY_MS = 2000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A timeout that does not keep the process alive once everything else is done.
const timeoutAfter = (ms) => new Promise((r) => setTimeout(r, ms).unref()).then(() => null);

function loadPlaywright() {
  const require = createRequire(join(HERE, 'browser', 'package.json'));
  try {
    return require('playwright-core');
  } catch (err) {
    throw new Error('playwright-core is not installed: run `npm ci --prefix tests/integration/browser` ' +
      `(${err.message})`);
  }
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

// Splits a printed shell command into words ('...' and "..." quoting only).
function shellWords(line) {
  return (line.match(/'[^']*'|"(?:[^"\\]|\\.)*"|\S+/g) ?? [])
    .map((w) => (w.startsWith("'") ? w.slice(1, -1) : w.startsWith('"') ? w.slice(1, -1).replace(/\\(.)/g, '$1') : w));
}

// `walcast demo` as a child process whose stdout lines are parsed as they arrive.
class Demo {
  constructor(bin, args) {
    this.out = '';
    this.err = '';
    this.url = null;
    this.psql = null;
    this.dataDir = null;
    this.exit = null;   // {code, signal} once it exited
    this.waiters = [];
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      this.out += chunk;
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.line(partial.slice(0, nl).replace(/\r$/, ''));
        partial = partial.slice(nl + 1);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => { this.err += chunk; });
    this.exited = new Promise((res) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        res(this.exit);
      });
      this.child.once('error', (error) => {
        this.err += `\nspawn error: ${error.message}`;
        this.exit = { code: null, signal: null, error };
        this.notify();
        res(this.exit);
      });
    });
  }

  line(text) {
    let m;
    if ((m = /^walcast demo: open (\S+)/.exec(text))) this.url = m[1];
    else if ((m = /^walcast demo: database: (.+)$/.exec(text))) this.psql = m[1].trim();
    else if ((m = /^walcast demo: data directory (.+)$/.exec(text))) this.dataDir = m[1].trim();
    this.notify();
  }

  notify() { for (const w of this.waiters.splice(0)) w(); }

  output() {
    const tail = (s) => (s.length > 4000 ? `…${s.slice(-4000)}` : s);
    return `--- walcast demo stdout ---\n${tail(this.out)}\n--- stderr ---\n${tail(this.err)}`;
  }

  // Resolves once predicate() holds; rejects if the demo exits first or on timeout.
  async until(what, predicate, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate()) return;
      if (this.exit) throw new Error(`walcast demo exited (${JSON.stringify(this.exit)}) before ${what}\n${this.output()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`);
      await Promise.race([new Promise((r) => this.waiters.push(r)), timeoutAfter(Math.min(left, 250))]);
    }
  }

  async stop(signal, timeoutMs) {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    return Promise.race([this.exited, timeoutAfter(timeoutMs)]);
  }
}

async function waitForHttp(demo, url, timeoutMs) {
  let last = 'no answer';
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (demo.exit) break;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.cause?.code ?? err.message;
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 (${last})\n${demo.output()}`);
}

// Runs SQL through the demo's printed psql command; resolves with psql's output.
function runPsql(commandLine, sql) {
  const [program, ...rest] = shellWords(commandLine);
  assert.ok(program, `unusable psql command: ${commandLine}`);
  return new Promise((res, reject) => {
    const child = spawn(program, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...rest], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? res(out)
      : reject(new Error(`psql exited ${code}: ${out}\ncommand: ${program} ${rest.join(' ')}`))));
    child.stdin.end(sql);
  });
}

// If the demo had to be killed, its PostgreSQL may be left running: stop that postmaster
// (its pid is in the data directory) and remove the directory.
function cleanUpAfterKill(dataDir) {
  if (!dataDir || !existsSync(dataDir)) return;
  for (const pidFile of [join(dataDir, 'data', 'postmaster.pid'), join(dataDir, 'postmaster.pid')]) {
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (Number.isInteger(pid) && pid > 1) process.kill(pid, 'SIGQUIT');
    } catch { /* not there or already gone */ }
  }
  try { rmSync(dataDir, { recursive: true, force: true }); } catch { /* best effort */ }
}

let demo = null;
let context = null;
let profileDir = null;

after(async () => {
  if (context) await context.close().catch(() => {});
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  if (demo && !demo.exit) {
    const gone = (await demo.stop('SIGINT', 20000)) ?? (await demo.stop('SIGKILL', 5000));
    if (!gone || gone.signal === 'SIGKILL') cleanUpAfterKill(demo.dataDir);
  }
});

test('walcast demo: a row inserted with psql shows up on the live board, Ctrl-C cleans up', { timeout: 240000 }, async (t) => {
  assert.ok(existsSync(WALCAST_BIN), `walcast binary not found at ${WALCAST_BIN} (set WALCAST_BIN)`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM_PATH)`);
  const { chromium } = loadPlaywright();

  const port = await freePort();
  demo = new Demo(WALCAST_BIN, ['demo', '--port', String(port)]);
  await demo.until('the page URL and the psql command on stdout', () => demo.url && demo.psql, 120000);
  assert.match(demo.url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/`), `demo URL on the requested port:\n${demo.output()}`);
  await waitForHttp(demo, demo.url, 60000);

  profileDir = mkdtempSync(join(tmpdir(), 'walcast-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });

  await page.goto(demo.url, { waitUntil: 'load' });
  // The board is drawn from /demo-config.js and the page has joined the project's room:
  // only then is an insert guaranteed to reach it.
  try {
    await page.waitForSelector('#board[data-ready="true"] .column[data-status="todo"]', { timeout: 15000 });
    await page.waitForSelector('body[data-connection="connected"][data-joined]', { timeout: 15000 });
  } catch (err) {
    const state = await page.evaluate(() => ({
      connection: document.body.dataset.connection,
      banner: document.getElementById('banner')?.hidden ? null : document.getElementById('banner')?.textContent,
      log: Array.from(document.querySelectorAll('#log-list .entry')).slice(0, 5).map((e) => e.textContent.trim()),
    })).catch(() => null);
    throw new Error(`page never got connected and joined: ${err.message}\npage state: ${JSON.stringify(state)}\n` +
      `page errors: ${JSON.stringify(pageErrors)}\nconsole errors: ${JSON.stringify(consoleErrors)}\n${demo.output()}`);
  }
  const initialCards = await page.locator('.card[data-task-id]').count();
  assert.ok(initialCards > 0, 'the board shows the initial tasks from demo-config.js');
  assert.equal(await page.locator(`[data-task-id="${TASK_ID}"]`).count(), 0, 'the test task is not on the board yet');

  // Note the moment the card enters the To do column, in the page (same clock as the commit).
  await page.evaluate(({ id }) => {
    window.__walcastTestShownAt = null;
    const find = () => document.querySelector(`.column[data-status="todo"] [data-task-id="${id}"]`);
    const observer = new MutationObserver(() => {
      if (!window.__walcastTestShownAt && find()) { window.__walcastTestShownAt = Date.now(); observer.disconnect(); }
    });
    observer.observe(document.getElementById('board'), { childList: true, subtree: true, attributes: true });
  }, { id: TASK_ID });

  const beforeCommit = Date.now();
  const shown = page.waitForSelector(`.column[data-status="todo"] .card[data-task-id="${TASK_ID}"]`,
    { timeout: MAX_LATENCY_MS + 8000 }).then(() => null, (err) => err);
  await runPsql(demo.psql, [
    'BEGIN;',
    "SELECT walcast.set_context('u1', 'p1', 'acme');",
    `INSERT INTO "Task" (id, "projectId", title, status) VALUES ('${TASK_ID}', 'p1', '${TASK_TITLE}', 'todo');`,
    'COMMIT;',
    '',
  ].join('\n'));
  const afterCommit = Date.now();
  const waitError = await shown;

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
  t.diagnostic(`screenshot: ${SCREENSHOT}`);

  assert.equal(waitError, null,
    `card ${TASK_ID} never appeared in the To do column (${waitError?.message})\n` +
    `page errors: ${JSON.stringify(pageErrors)}\n${demo.output()}`);
  const shownAt = await page.evaluate(() => window.__walcastTestShownAt);
  const committedAtIso = await page.locator(`#log-list .entry[data-event="task:created"][data-id="${TASK_ID}"] time`)
    .first().getAttribute('datetime', { timeout: 2000 }).catch(() => null);
  const committedAt = committedAtIso ? Date.parse(committedAtIso) : NaN;
  // The commit happened between beforeCommit and afterCommit; committedAt (from the event) is
  // its exact time when the daemon reports it.
  const commitTime = Number.isFinite(committedAt) && committedAt >= beforeCommit - 1000 && committedAt <= afterCommit + 1000
    ? committedAt : beforeCommit;
  const latency = (shownAt ?? Date.now()) - commitTime;
  t.diagnostic(`card shown ${latency} ms after the commit (psql took ${afterCommit - beforeCommit} ms; ` +
    `committedAt ${committedAtIso ?? 'not in the log'})`);
  assert.ok(latency <= MAX_LATENCY_MS, `card appeared ${latency} ms after the commit (limit ${MAX_LATENCY_MS} ms)`);

  const card = page.locator(`.column[data-status="todo"] .card[data-task-id="${TASK_ID}"]`);
  assert.equal(await card.locator('.card-title').textContent(), TASK_TITLE);
  assert.ok(committedAtIso, 'the event log lists task:created for the inserted task');
  assert.deepEqual(pageErrors, [], 'no JavaScript errors on the page');

  await context.close();
  context = null;

  // Ctrl-C: exit status 0 and the temp dir (cluster, page files) gone.
  assert.ok(demo.dataDir, `the demo printed its data directory:\n${demo.output()}`);
  const exit = await demo.stop('SIGINT', 30000);
  assert.ok(exit, `walcast demo did not exit within 30 s of SIGINT\n${demo.output()}`);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null },
    `walcast demo exits 0 on SIGINT\n${demo.output()}`);
  assert.equal(existsSync(demo.dataDir), false, `data directory ${demo.dataDir} removed on exit`);
});
