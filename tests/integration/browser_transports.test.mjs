// socket.io-client in a real browser (Debian's /usr/bin/chromium, headless, driven by
// playwright-core from tests/integration/browser/) with default options, on a page served
// from another origin than walcast's: the session opens over cross-origin long-polling
// (CORS for [server] cors_origins), upgrades to WebSocket, joins a project and receives its
// events. A page from an origin not in cors_origins never connects.
//
//   npm ci --prefix tests/integration && npm ci --prefix tests/integration/browser
//   WALCAST_BIN=build/walcast node --test tests/integration/browser_transports.test.mjs

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  SOURCE_DIR, dtest, startAppCluster, token, killAllDaemons, freePort, waitUntil,
} from './lib/daemon.mjs';
import { startEioDaemon } from './lib/eio.mjs';

const SECRET = 'walcast-browser-secret-of-32-bytes-long';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CLIENT_BUNDLE = join(SOURCE_DIR, 'tests', 'integration', 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');

let cluster;
let daemon;
let context;
let profileDir;
const servers = [];

// The test page: default options but `auth`; what happens goes to window.walcast.
const page = (walcastUrl, tok) => `<!doctype html><meta charset="utf-8"><title>walcast</title>
<script src="/socket.io.min.js"></script>
<script>
const state = window.walcast = { opens: [], upgrades: [], connects: [], errors: [], events: [], joined: null };
const socket = io(${JSON.stringify(walcastUrl)}, { auth: { token: ${JSON.stringify(tok)} } });
socket.io.on('open', () => {
  state.opens.push(socket.io.engine.transport.name);
  socket.io.engine.on('upgrade', (t) => state.upgrades.push(t.name));
});
socket.on('connect', async () => {
  state.connects.push(socket.recovered);
  state.joined = await socket.timeout(10000).emitWithAck('join-project', 'p1').catch((e) => ({ error: String(e) }));
});
socket.on('connect_error', (e) => state.errors.push(e.message));
socket.onAny((name, payload) => state.events.push({ name, id: payload && payload.id }));
window.transport = () => socket.io.engine && socket.io.engine.transport.name;
</script>`;

// An HTTP server for one page and the client bundle.
async function pageServer(html, port) {
  port ??= await freePort();
  const server = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(readFileSync(CLIENT_BUNDLE));
    } else if (req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(html());
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  servers.push(server);
  return { port, origin: `http://127.0.0.1:${port}` };
}

let allowedPort;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM_PATH)`);
  allowedPort = await freePort();
  cluster = await startAppCluster({ setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');` });
  daemon = await startEioDaemon({
    cluster, secret: SECRET, name: 'browser', server: { cors_origins: [`http://127.0.0.1:${allowedPort}`] },
  });
  const require = createRequire(join(SOURCE_DIR, 'tests', 'integration', 'browser', 'package.json'));
  const { chromium } = require('playwright-core');
  profileDir = mkdtempSync(join(tmpdir(), 'walcast-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  for (const s of servers) s.close();
  await killAllDaemons();
  await cluster?.stop();
});

const insertTasks = (ids) => cluster.psql(ids.map((id) => `BEGIN; SELECT walcast.set_context('w', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('${id}', 'p1', 'x'); COMMIT;`).join('\n'), { db: 'app' });

dtest('a browser page from an allowed origin: polling with CORS, upgrade, join, events', { timeout: 60_000 }, async () => {
  const tok = token(SECRET, { sub: 'browser', tenantId: 'acme' });
  await pageServer(() => page(daemon.url, tok), allowedPort);
  const tab = await context.newPage();
  const pageErrors = [];
  tab.on('pageerror', (e) => pageErrors.push(e.message));
  await tab.goto(`http://127.0.0.1:${allowedPort}/`);
  const state = () => tab.evaluate(() => window.walcast);
  await waitUntil(async () => (await state()).joined, { what: 'the page joined p1', timeoutMs: 20_000 });
  const s1 = await state();
  assert.deepEqual(s1.joined, { ok: true });
  assert.equal(s1.opens[0], 'polling', 'the session opened over cross-origin long-polling');
  assert.deepEqual(s1.errors, []);
  await waitUntil(async () => (await tab.evaluate(() => window.transport())) === 'websocket', { what: 'the upgrade' });
  await insertTasks(['br-1', 'br-2', 'br-3']);
  await waitUntil(async () => (await state()).events.filter((e) => e.name === 'task:created').length >= 3,
    { what: 'three events in the page' });
  const s2 = await state();
  assert.deepEqual(s2.events.filter((e) => e.name === 'task:created').map((e) => e.id), ['br-1', 'br-2', 'br-3']);
  assert.deepEqual(s2.upgrades, ['websocket']);
  assert.deepEqual(s2.connects, [false]);
  assert.deepEqual(pageErrors, []);
  await tab.close();
});

dtest('a browser page from an origin not in cors_origins never connects', { timeout: 60_000 }, async () => {
  const tok = token(SECRET, { sub: 'other', tenantId: 'acme' });
  const other = await pageServer(() => page(daemon.url, tok));
  const tab = await context.newPage();
  await tab.goto(`${other.origin}/`);
  await waitUntil(async () => (await tab.evaluate(() => window.walcast)).errors.length > 0,
    { what: 'a connect_error', timeoutMs: 20_000 });
  const s = await tab.evaluate(() => window.walcast);
  assert.deepEqual(s.connects, []);
  assert.equal(s.joined, null);
  await tab.close();
});
