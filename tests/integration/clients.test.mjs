// Real Socket.IO clients against walcast with its default transports: the app's
// socket.io-client with default options (HTTP long-polling first, then the upgrade to
// WebSocket), the same client held to polling, events committed while clients connect and
// upgrade, connection-state recovery from one transport to the other, and python-socketio.
// Cuts go through a TCP proxy the test owns. Every client must get every event of its room
// exactly once, in commit order.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join as joinPath } from 'node:path';
import { createInterface } from 'node:readline';

import {
  SOURCE_DIR, dtest, startAppCluster, token, IoClient, closeAllClients, killAllDaemons, sleep, waitUntil,
  startWriter, compareEventIds,
} from './lib/daemon.mjs';
import { startEioDaemon, startProxy } from './lib/eio.mjs';

const { io } = await import('socket.io-client');

const SECRET = 'walcast-clients-secret-of-32-bytes-long';
const PYTHON = process.env.WALCAST_PYTHON ?? '/usr/bin/python3';

let cluster;
let daemon;
const sockets = new Set();

before(async () => {
  cluster = await startAppCluster({ setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');` });
  // Default [server] settings: both transports, 25 s / 20 s heartbeat, recovery on.
  daemon = await startEioDaemon({ cluster, secret: SECRET, name: 'clients' });
});

after(async () => {
  for (const s of sockets) s.disconnect();
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

const tok = (sub) => token(SECRET, { sub, tenantId: 'acme' });
const taskSql = (id) => `BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('${id}', 'p1', 'x'); COMMIT;`;

async function insertTasks(ids) {
  await cluster.psql(ids.map(taskSql).join('\n'), { db: 'app' });
}

// A socket.io-client socket that records events, connects (with `recovered`), the
// transport at each connect and every upgrade. `opts` adds to { auth }; nothing else is set.
function client(url, sub, opts = {}) {
  const socket = io(url, { auth: { token: tok(sub) }, ...opts });
  sockets.add(socket);
  const c = {
    socket, sub, events: [], connects: [], connectTransports: [], openTransports: [], upgrades: [], disconnects: [], errors: [],
  };
  socket.onAny((name, payload, offset) => c.events.push({
    name, payload, offset, at: Date.now(), transport: socket.io.engine?.transport?.name,
  }));
  socket.io.on('open', () => {
    c.openTransports.push(socket.io.engine.transport.name);
    socket.io.engine.on('upgrade', (t) => { c.upgrades.push(t.name); c.upgradeAt = Date.now(); });
  });
  socket.on('connect', () => {
    c.connects.push(socket.recovered);
    c.connectTransports.push(socket.io.engine.transport.name);
  });
  socket.on('disconnect', (reason) => c.disconnects.push(reason));
  socket.on('connect_error', (e) => c.errors.push(e.message));
  c.transport = () => socket.io.engine?.transport?.name;
  c.close = () => { socket.disconnect(); sockets.delete(socket); };
  return c;
}

async function connected(c, n = 1) {
  await waitUntil(() => c.connects.length >= n,
    { timeoutMs: 20_000, what: `${c.sub}: connect #${n} (errors ${c.errors}, disconnects ${c.disconnects})` });
}

async function join(c, project = 'p1') {
  const ack = await c.socket.timeout(10_000).emitWithAck('join-project', project);
  assert.deepEqual(ack, { ok: true }, `${c.sub}: join ${project}`);
}

const tasks = (c, prefix) => c.events.filter((e) => e.name === 'task:created' && String(e.payload?.id).startsWith(prefix));

async function waitTasks(c, prefix, n, timeoutMs = 20_000) {
  await waitUntil(() => tasks(c, prefix).length >= n,
    { timeoutMs, what: `${c.sub}: ${n} ${prefix}* events (have ${tasks(c, prefix).length}; connects ${c.connects}; disconnects ${c.disconnects})` });
}

// Exactly `ids`, once each, in this order, each with its offset = eventId, offsets rising.
function assertExactly(c, prefix, ids) {
  const got = tasks(c, prefix);
  assert.deepEqual(got.map((e) => e.payload.id), ids, `${c.sub}: the ${prefix}* events`);
  for (const e of got) assert.equal(e.offset, e.payload.eventId, `${c.sub}: offset of ${e.payload.id}`);
  for (let i = 1; i < got.length; i++) assert.ok(compareEventIds(got[i - 1].offset, got[i].offset) < 0, `${c.sub}: order at ${i}`);
}

const range = (prefix, from, to) => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

// ---- socket.io-client, default options -----------------------------------------------

dtest('socket.io-client with default options: polling, then upgraded to WebSocket; recovers after a cut', async () => {
  const proxy = await startProxy(daemon.port);
  try {
    const c = client(proxy.url, 'dflt');
    await connected(c);
    assert.equal(c.connects[0], false, 'a fresh session');
    assert.equal(c.openTransports[0], 'polling', 'the session opened over long-polling');
    await join(c);
    await waitUntil(() => c.transport() === 'websocket', { what: 'the upgrade', timeoutMs: 10_000 });
    assert.deepEqual(c.upgrades, ['websocket']);

    await insertTasks(range('dflt-', 0, 5));
    await waitTasks(c, 'dflt-', 5);

    proxy.cut();
    await insertTasks(range('dflt-', 5, 10));  // while it is cut off
    await connected(c, 2);
    assert.equal(c.connects[1], true, 'socket.recovered after the cut');
    assert.equal(c.openTransports[1], 'polling', 'the reconnect opens over long-polling again');
    await insertTasks(range('dflt-', 10, 15));
    await waitTasks(c, 'dflt-', 15);
    await waitUntil(() => c.transport() === 'websocket', { what: 'the second upgrade', timeoutMs: 10_000 });
    assert.deepEqual(c.upgrades, ['websocket', 'websocket']);
    await insertTasks(range('dflt-', 15, 20));
    await waitTasks(c, 'dflt-', 20);
    await sleep(300);
    assertExactly(c, 'dflt-', range('dflt-', 0, 20));
    c.close();
  } finally {
    proxy.close();
  }
});

dtest('socket.io-client held to long-polling: never upgrades; recovers after cuts', async () => {
  const proxy = await startProxy(daemon.port);
  try {
    const c = client(proxy.url, 'poll', { transports: ['polling'] });
    await connected(c);
    assert.equal(c.connectTransports[0], 'polling');
    await join(c);
    await insertTasks(range('poll-', 0, 5));
    await waitTasks(c, 'poll-', 5);
    for (let cut = 1; cut <= 2; cut++) {
      proxy.cut();
      await insertTasks(range('poll-', cut * 10 - 5, cut * 10));
      await connected(c, cut + 1);
      assert.equal(c.connects[cut], true, `recovered after cut ${cut}`);
      await insertTasks(range('poll-', cut * 10, cut * 10 + 5));
    }
    await waitTasks(c, 'poll-', 25);
    await sleep(300);
    assert.equal(c.transport(), 'polling');
    assert.deepEqual(c.upgrades, []);
    assert.deepEqual(c.connectTransports, ['polling', 'polling', 'polling']);
    assertExactly(c, 'poll-', range('poll-', 0, 25));
    c.close();
  } finally {
    proxy.close();
  }
});

dtest('socket.io-client with default options and a bad token gets connect_error "unauthorized" over polling', async () => {
  const socket = io(daemon.url, { auth: { token: 'not-a-jwt' }, reconnection: false });
  sockets.add(socket);
  const err = await new Promise((resolve) => socket.once('connect_error', resolve));
  assert.equal(err.message, 'unauthorized');
  socket.disconnect();
});

// ---- events during the upgrade ---------------------------------------------------------

dtest('events committed while 12 default clients connect and upgrade: each gets every one once, in order', { timeout: 120_000 }, async (t) => {
  // Tenant-room events (noteCategory:*) reach a client from its CONNECT on, which goes over
  // long-polling just before the upgrade, so the stream crosses each upgrade. A witness on a
  // plain WebSocket sees the whole stream; each client must see a gapless stretch of it,
  // from its first event to the last one.
  const catSql = (seq) => `BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('up-${seq}', 'acme', 'c'); COMMIT;`;
  const cats = (c) => c.events.filter((e) => e.name === 'noteCategory:created' && String(e.payload?.id).startsWith('up-'));
  const witness = await IoClient.connect(daemon.url, tok('witness'), { label: 'witness' });
  const writer = startWriter(cluster, { sqlFor: catSql, batch: 4, pauseMs: 1 });
  const clients = [];
  try {
    await waitUntil(() => witness.named('noteCategory:created').length > 0, { what: 'the stream started' });
    for (let i = 0; i < 12; i++) {
      const c = client(daemon.url, `up${i}`, { forceNew: true });  // forceNew: one connection each
      clients.push(c);
      c.ready = (async () => { await connected(c); await join(c); })();
      await sleep(60);
    }
    await Promise.all(clients.map((c) => c.ready));
    await waitUntil(() => clients.every((c) => c.transport() === 'websocket'), { what: 'every client upgraded', timeoutMs: 15_000 });
    await sleep(500);  // more events after every upgrade
  } finally {
    await writer.stop();
  }
  assert.deepEqual(writer.errors, []);
  const total = writer.seq - 1;
  await waitUntil(() => witness.named('noteCategory:created').filter((e) => e.payload.id.startsWith('up-')).length >= total,
    { what: `the witness has all ${total} events`, timeoutMs: 30_000 });
  const all = witness.named('noteCategory:created').filter((e) => e.payload.id.startsWith('up-')).map((e) => e.payload.id);
  assert.equal(new Set(all).size, total, 'the witness got each event once');
  const last = all[all.length - 1];
  for (const c of clients) {
    await waitUntil(() => cats(c).some((e) => e.payload.id === last), { what: `${c.sub}: the last event`, timeoutMs: 20_000 });
    const got = cats(c).map((e) => e.payload.id);
    const from = all.indexOf(got[0]);
    assert.ok(from >= 0, `${c.sub}: its first event is in the stream`);
    assert.deepEqual(got, all.slice(from), `${c.sub}: a gapless, duplicate-free stretch of the stream (upgrades ${c.upgrades})`);
    assert.deepEqual(c.upgrades, ['websocket'], `${c.sub} upgraded once`);
  }
  // The upgrades happened under traffic: for these clients the stretch checked above began
  // (the witness saw its first event) before their upgrade completed.
  const seenAt = new Map(witness.named('noteCategory:created').map((e) => [e.payload.id, e.at]));
  const crossed = clients.filter((c) => seenAt.get(cats(c)[0].payload.id) < c.upgradeAt);
  assert.ok(crossed.length >= 2, `${crossed.length} of ${clients.length} clients had events flowing before their upgrade completed`);
  t.diagnostic(`${total} events; ${crossed.length} of ${clients.length} clients had events flowing before their upgrade; `
    + `received over polling: ${clients.map((c) => cats(c).filter((e) => e.transport === 'polling').length).join(',')}`);
  for (const c of clients) c.close();
  witness.close();
});

// ---- recovery across transports --------------------------------------------------------

for (const [from, to] of [['polling', 'websocket'], ['websocket', 'polling']]) {
  dtest(`connection-state recovery: cut while on ${from}, resumed on ${to}`, async () => {
    const proxy = await startProxy(daemon.port);
    const prefix = `x${from[0]}${to[0]}-`;
    try {
      const c = client(proxy.url, `x${from}`, { transports: [from] });
      await connected(c);
      await join(c);
      await insertTasks(range(prefix, 0, 5));
      await waitTasks(c, prefix, 5);
      assert.equal(c.transport(), from);
      // The next engine the Manager opens uses these transports.
      c.socket.io.opts.transports = [to];
      proxy.cut();
      await insertTasks(range(prefix, 5, 10));
      await connected(c, 2);
      assert.equal(c.connects[1], true, 'recovered');
      assert.equal(c.openTransports[1], to);
      await insertTasks(range(prefix, 10, 15));
      await waitTasks(c, prefix, 15);
      await sleep(300);
      assertExactly(c, prefix, range(prefix, 0, 15));
      c.close();
    } finally {
      proxy.close();
    }
  });
}

// ---- python-socketio -------------------------------------------------------------------

// Runs tests/integration/py/walcast_client.py; resolves its JSON lines as they come.
function pythonClient(url, token_, project, transports = []) {
  const child = spawn(PYTHON, [joinPath(SOURCE_DIR, 'tests', 'integration', 'py', 'walcast_client.py'), url, token_, project,
    ...transports], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  createInterface({ input: child.stdout }).on('line', (l) => {
    try { lines.push(JSON.parse(l)); } catch { lines.push({ type: 'unparsed', line: l }); }
  });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  return {
    lines,
    get stderr() { return stderr; },
    exited,
    send(line) { child.stdin.write(`${line}\n`); },
    async quit() {
      child.stdin.end('quit\n');
      const code = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (code === null) child.kill('SIGKILL');
      return code;
    },
    wait(pred, what, timeoutMs = 20_000) {
      return waitUntil(() => lines.find(pred), { timeoutMs, what: `python client: ${what} (stderr: ${stderr.slice(-1500)}; lines ${JSON.stringify(lines).slice(0, 500)})` });
    },
  };
}

dtest('python-socketio with default transports: connects, joins with an ack, receives task:created', async () => {
  const before = await daemon.metric('walcast_connections_total');
  const py = pythonClient(daemon.url, tok('py'), 'p1');
  try {
    const connectedLine = await py.wait((l) => l.type === 'connected' || l.type === 'connect_error', 'connected');
    assert.equal(connectedLine.type, 'connected', JSON.stringify(connectedLine));
    const joined = await py.wait((l) => l.type === 'joined', 'joined');
    assert.deepEqual(joined.ack, { ok: true });
    // python-socketio opens over long-polling and upgrades at once, before it sends CONNECT.
    assert.equal(joined.transport, 'websocket', JSON.stringify(py.lines));
    await insertTasks(range('py-', 0, 5));
    await waitUntil(() => py.lines.filter((l) => l.type === 'event' && l.name === 'task:created').length >= 5,
      { what: `python: 5 events (${JSON.stringify(py.lines).slice(0, 800)})` });
    const events = py.lines.filter((l) => l.type === 'event' && l.name === 'task:created');
    // Debian's python-engineio runs every message handler on a thread of its own, so the
    // lines may come out in another order than the events arrived: each once is what counts.
    assert.deepEqual(events.map((e) => e.args[0].id).sort(), range('py-', 0, 5));
    for (const e of events) assert.equal(e.args[1], e.args[0].eventId, 'the offset follows the payload');
    assert.equal(await daemon.metric('walcast_connections_total') - before, 1, 'one Engine.IO session (upgraded, not a second one)');
  } finally {
    assert.equal(await py.quit(), 0, py.stderr);
  }
});

dtest('python-socketio held to long-polling receives the same', async () => {
  const py = pythonClient(daemon.url, tok('pypoll'), 'p1', ['polling']);
  try {
    const joined = await py.wait((l) => l.type === 'joined', 'joined');
    assert.deepEqual(joined.ack, { ok: true });
    assert.equal(joined.transport, 'polling');
    await insertTasks(range('pyp-', 0, 5));
    await waitUntil(() => py.lines.filter((l) => l.type === 'event' && l.name === 'task:created').length >= 5,
      { what: `python: 5 events (${JSON.stringify(py.lines).slice(0, 800)})` });
    const events = py.lines.filter((l) => l.type === 'event' && l.name === 'task:created');
    assert.deepEqual(events.map((e) => e.args[0].id).sort(), range('pyp-', 0, 5), 'each once (in any order: see above)');
  } finally {
    assert.equal(await py.quit(), 0, py.stderr);
  }
});
