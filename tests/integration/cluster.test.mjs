// Several walcast nodes over one Redis stream (issue: several nodes over Redis Streams),
// with a real redis-server, a real PostgreSQL and the real socket.io-client with its default
// options (polling first, then the WebSocket upgrade; reconnection on), through TCP fronts
// that stand in for a load balancer with sticky sessions.
//
// The fault test: three nodes, 300 clients, 4 writers for 60 s; the leader is killed with
// SIGKILL at 20 s and Redis is restarted at 40 s. Every client must end with every committed
// transaction's event for its room, and clients of the killed node resume on a survivor.
// It prints the figures the closing note quotes (WALCAST_CLUSTER_SECONDS shortens the run).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import {
  daemonLogs, killAllDaemons, markFailed, sleep, startAppCluster, startDaemon, startWriter, token,
  waitUntil,
} from './lib/daemon.mjs';
import { startFront, startRedis } from './lib/redis.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const SECRET = 'cluster-test-secret-of-at-least-32-bytes';
const SECONDS = Number(process.env.WALCAST_CLUSTER_SECONDS ?? 60);
const PROJECTS = 10;

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await killAllDaemons();
});

function clusterConfig(redis, extra = '') {
  return `[cluster]\nredis = "${redis.url}"\nstream = "socket.io"\nmax_len = 100000\n${extra}`;
}

async function leaderOf(nodes) {
  for (const n of nodes) {
    if (!n.running) continue;
    try {
      if (await n.metric('walcast_cluster_leader') === 1) return n;
    } catch { /* not answering */ }
  }
  return null;
}

// A socket.io-client with default options that records what it gets and each connect.
function client(url, who, project) {
  const socket = io(url, { auth: { token: token(SECRET, who) } });
  const c = { who, project, socket, events: [], connects: [], errors: [], joined: null };
  socket.onAny((name, payload, offset) => c.events.push({ name, payload, offset, at: Date.now() }));
  socket.on('connect', () => {
    c.connects.push({ recovered: socket.recovered, at: Date.now() });
    if (!socket.recovered) {
      c.joined = socket.timeout(20_000).emitWithAck('join-project', project);
    }
  });
  socket.on('connect_error', (e) => c.errors.push(e.message));
  cleanups.push(async () => socket.disconnect());
  return c;
}

const ids = (c) => c.events.filter((e) => e.name === 'task:created').map((e) => e.payload.id);

test('three nodes, one Redis, one PostgreSQL: kill -9 the leader, restart Redis; nothing lost', async (t) => {
  const pg = await startAppCluster({
    setupSql: `${Array.from({ length: PROJECTS }, (_, i) => `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p${i}', 'acme', 'P${i}');`).join('\n')}
INSERT INTO "Project" (id, "tenantId", name) VALUES ('px', 'evil', 'Evil');
SELECT pg_create_logical_replication_slot('walcast', 'wal2json');`,
  });
  cleanups.push(() => pg.stop());
  const redis = await startRedis();
  cleanups.push(() => redis.kill9());

  const nodes = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(await startDaemon({ cluster: pg, secret: SECRET, name: `node${i}`, configAppend: clusterConfig(redis) }));
  }
  await waitUntil(async () => leaderOf(nodes), { timeoutMs: 15_000, what: 'a leader' });
  const fronts = [];
  for (let i = 0; i < 3; i++) {
    const f = await startFront([0, 1, 2].map((k) => nodes[(i + k) % 3].port));
    cleanups.push(async () => f.close());
    fronts.push(f);
  }

  // 300 clients, 100 through each front; 30 of them in another tenant.
  const clients = [];
  for (let k = 0; k < 300; k++) {
    const evil = k % 10 === 9;
    const who = { sub: `u${k}`, tenantId: evil ? 'evil' : 'acme' };
    clients.push(client(fronts[k % 3].url, who, evil ? 'px' : `p${k % PROJECTS}`));
    clients.at(-1).front = k % 3;
  }
  await waitUntil(() => clients.every((c) => c.joined), { timeoutMs: 60_000, what: '300 clients connected' });
  const answers = await Promise.all(clients.map((c) => c.joined));
  assert.ok(answers.every((a) => a?.ok === true), `join answers: ${JSON.stringify(answers.find((a) => !a?.ok))}`);
  await sleep(1000);  // every client upgraded to WebSocket

  // Which node each client is on: the front's first choice while every node lives.
  const startedAt = Date.now();
  const writers = [];
  for (let w = 0; w < 4; w++) {
    writers.push(startWriter(pg, {
      batch: 1,
      pauseMs: 15,
      sqlFor: (seq) => {
        const evil = seq % 10 === 0;
        const project = evil ? 'px' : `p${(seq * 7 + w) % PROJECTS}`;
        return `BEGIN; SELECT walcast.set_context('writer${w}', '${project}', '${evil ? 'evil' : 'acme'}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('w${w}-${seq}', '${project}', 'x'); COMMIT;`;
      },
    }));
  }

  const at = (fraction) => startedAt + SECONDS * 1000 * fraction;
  await sleep(Math.max(0, at(1 / 3) - Date.now()));
  const leader = await leaderOf(nodes);
  assert.ok(leader, 'a leader before the kill');
  const killedIndex = nodes.indexOf(leader);
  const killedAt = Date.now();
  await leader.kill9();
  const survivors = nodes.filter((n) => n !== leader);
  const next = await waitUntil(async () => leaderOf(survivors), { timeoutMs: 30_000, intervalMs: 25, what: 'a new leader' });
  const failoverMs = Date.now() - killedAt;

  await sleep(Math.max(0, at(2 / 3) - Date.now()));
  const redisDownAt = Date.now();
  await redis.restart();
  const redisBackMs = Date.now() - redisDownAt;

  await sleep(Math.max(0, at(1) - Date.now()));
  const stopAt = Date.now();
  const written = await Promise.all(writers.map((w) => w.stop()));

  // What committed, read back from the database: the truth each client is held to.
  const rows = (await pg.psql('SELECT id, "projectId" FROM "Task";', { db: 'app' })).split('\n').filter(Boolean);
  const byProject = new Map();
  for (const row of rows) {
    const [id, project] = row.split('|');
    if (!byProject.has(project)) byProject.set(project, new Set());
    byProject.get(project).add(id);
  }
  const missing = (c) => {
    const got = new Set(ids(c));
    return [...(byProject.get(c.project) ?? [])].filter((id) => !got.has(id));
  };
  try {
    await waitUntil(() => clients.every((c) => missing(c).length === 0), { timeoutMs: 60_000, what: 'every event' });
  } catch (e) {
    const worst = clients.map((c) => ({ who: c.who.sub, front: c.front, missing: missing(c).length, connects: c.connects }))
      .filter((x) => x.missing > 0);
    markFailed();
    throw new Error(`${e.message}: ${worst.length} clients miss events, e.g. ${JSON.stringify(worst.slice(0, 3))}\n${daemonLogs(40)}`);
  }
  await sleep(500);

  // Figures.
  let lost = 0, duplicates = 0, foreign = 0, longestPause = 0, reconnected = 0, resumedOnSurvivor = 0;
  const notRecovered = [];
  for (const c of clients) {
    lost += missing(c).length;
    const mine = ids(c);
    duplicates += mine.length - new Set(mine).size;
    const allowed = byProject.get(c.project) ?? new Set();
    foreign += mine.filter((id) => !allowed.has(id)).length;
    const times = c.events.filter((e) => e.name === 'task:created' && e.at >= startedAt && e.at <= stopAt).map((e) => e.at);
    for (let i = 1; i < times.length; i++) longestPause = Math.max(longestPause, times[i] - times[i - 1]);
    if (c.connects.length > 1) reconnected++;
    if (c.front === killedIndex && c.connects.length > 1 && c.connects.slice(1).every((x) => x.recovered)) resumedOnSurvivor++;
    for (const x of c.connects.slice(1)) if (!x.recovered) notRecovered.push(c.who.sub);
  }
  const transactions = rows.length;
  const metrics = await Promise.all(survivors.map((n) => n.metrics()));
  const sum = (name) => metrics.reduce((a, m) => a + Number(m.get(name) ?? 0), 0);
  console.log(`# cluster fault test: ${SECONDS} s, 3 nodes, 300 clients, 4 writers: ${transactions} transactions ` +
    `(${written.reduce((a, w) => a + w.errors.length, 0)} writer errors)`);
  console.log(`#   leader node${killedIndex} killed -9 at ${Math.round((killedAt - startedAt) / 1000)} s: ` +
    `node${nodes.indexOf(next)} took the slot in ${failoverMs} ms`);
  console.log(`#   Redis restarted at ${Math.round((redisDownAt - startedAt) / 1000)} s (down ${redisBackMs} ms)`);
  console.log(`#   lost ${lost}, duplicates seen by clients ${duplicates}, events of other rooms ${foreign}`);
  console.log(`#   clients reconnected ${reconnected}; of the killed node's ${clients.filter((c) => c.front === killedIndex).length}, ` +
    `${resumedOnSurvivor} resumed on a survivor (recovered: true); fresh sessions ${notRecovered.length}`);
  console.log(`#   longest pause any client saw between two events: ${longestPause} ms`);
  console.log(`#   survivors: recoveries ${sum('walcast_recoveries_total')}, stream gaps ${sum('walcast_stream_gaps_total')}`);

  assert.equal(lost, 0, 'no client lost an event');
  assert.equal(duplicates, 0, 'a new leader appends nothing twice');
  assert.equal(sum('walcast_stream_gaps_total'), 0, 'no node reports a gap that was not there');
  assert.equal(foreign, 0, 'no client got an event of a room it is not in (tenant isolation)');
  assert.deepEqual(notRecovered, [], 'every reconnect resumed');
  assert.ok(resumedOnSurvivor > 0, 'clients of the killed node resumed on a survivor');
  assert.ok(failoverMs < 10_000, `failover took ${failoverMs} ms`);
  t.diagnostic(`failover ${failoverMs} ms, longest pause ${longestPause} ms, duplicates ${duplicates}`);
});

// A Node socket.io 4 server with @socket.io/redis-streams-adapter (default options) on the
// same stream: authenticates the same tokens, puts sockets in the same rooms.
async function startNodeServer(redis) {
  const { createServer } = await import('node:http');
  const { createHmac } = await import('node:crypto');
  const { Server } = require('socket.io');
  const { createAdapter } = require('@socket.io/redis-streams-adapter');
  const { createClient } = require('redis');
  const redisClient = createClient({ url: redis.url });
  await redisClient.connect();
  const http = createServer();
  const server = new Server(http, { adapter: createAdapter(redisClient), connectionStateRecovery: {} });
  const tenantOf = { p1: 'acme', p2: 'acme', px: 'evil' };
  server.use((socket, next) => {
    const [h, p, sig] = String(socket.handshake.auth?.token ?? '').split('.');
    const good = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
    if (!sig || sig !== good) return next(new Error('unauthorized'));
    socket.data.claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    next();
  });
  server.on('connection', (socket) => {
    const { sub, tenantId } = socket.data.claims;
    if (!socket.recovered) socket.join([`user:${sub}`, `tenant:${tenantId}`]);
    socket.on('join-project', (project, ack) => {
      if (tenantOf[project] !== tenantId) return ack?.({ ok: false, error: 'forbidden' });
      socket.join(`project:${project}`);
      ack?.({ ok: true });
    });
  });
  const port = await new Promise((res) => http.listen(0, '127.0.0.1', () => res(http.address().port)));
  return {
    server, port, url: `http://127.0.0.1:${port}`,
    async close() {
      server.close();
      await redisClient.quit().catch(() => {});
    },
  };
}

test('mixed cluster: a walcast node and a Node socket.io server with the redis-streams adapter', async () => {
  const pg = await startAppCluster({
    setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One'), ('p2', 'acme', 'Two'), ('px', 'evil', 'Evil');
SELECT pg_create_logical_replication_slot('walcast', 'wal2json');`,
  });
  cleanups.push(() => pg.stop());
  const redis = await startRedis();
  cleanups.push(() => redis.kill9());
  const node = await startDaemon({ cluster: pg, secret: SECRET, name: 'mixed', configAppend: clusterConfig(redis) });
  await waitUntil(async () => leaderOf([node]), { timeoutMs: 15_000, what: 'walcast leading' });
  const nodeServer = await startNodeServer(redis);
  cleanups.push(() => nodeServer.close());

  const onWalcast = client(node.url, { sub: 'a1', tenantId: 'acme' }, 'p1');
  const onNode = client(nodeServer.url, { sub: 'a2', tenantId: 'acme' }, 'p1');
  const evilWalcast = client(node.url, { sub: 'e1', tenantId: 'evil' }, 'px');
  const evilNode = client(nodeServer.url, { sub: 'e2', tenantId: 'evil' }, 'px');
  const all = [onWalcast, onNode, evilWalcast, evilNode];
  await waitUntil(() => all.every((c) => c.joined), { timeoutMs: 20_000, what: 'clients connected' });
  for (const c of all) assert.deepEqual(await c.joined, { ok: true });
  await sleep(500);

  const insert = (prefix, project, tenant, n) => pg.psql(Array.from({ length: n }, (_, i) =>
    `BEGIN; SELECT walcast.set_context('w', '${project}', '${tenant}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('${prefix}-${i}', '${project}', 'x'); COMMIT;`).join('\n'), { db: 'app' });
  await insert('a', 'p1', 'acme', 50);
  await insert('x', 'px', 'evil', 20);
  const expectAcme = Array.from({ length: 50 }, (_, i) => `a-${i}`);
  const expectEvil = Array.from({ length: 20 }, (_, i) => `x-${i}`);
  await waitUntil(() => ids(onWalcast).length >= 50 && ids(onNode).length >= 50 && ids(evilWalcast).length >= 20 &&
    ids(evilNode).length >= 20, { timeoutMs: 20_000, what: 'events on both servers' });

  // A Node-side broadcast reaches walcast's clients of that room, and only them.
  nodeServer.server.to('project:p1').emit('note:custom', { from: 'node' });
  await waitUntil(() => onWalcast.events.some((e) => e.name === 'note:custom'), { what: "the Node server's broadcast on walcast" });

  // Connection-state recovery through the adapter: the Node-side client's transport drops,
  // events are committed meanwhile, and it resumes with all of them.
  onNode.socket.io.engine.close();
  await insert('b', 'p1', 'acme', 20);
  await waitUntil(() => onNode.connects.length === 2, { timeoutMs: 20_000, what: 'the Node-side client back' });
  const expectAcme2 = [...expectAcme, ...Array.from({ length: 20 }, (_, i) => `b-${i}`)];
  await waitUntil(() => ids(onNode).length >= 70 && ids(onWalcast).length >= 70, { timeoutMs: 20_000, what: 'the missed events' });
  await sleep(300);

  assert.deepEqual(ids(onWalcast), expectAcme2, 'walcast client: every event, in order, once');
  assert.deepEqual(ids(onNode), expectAcme2, 'Node client: every event, in order, once');
  assert.equal(onNode.connects[1].recovered, true, 'the Node-side client recovered through the adapter');
  assert.deepEqual(ids(evilWalcast), expectEvil);
  assert.deepEqual(ids(evilNode), expectEvil);
  // Both sides name each event by the same stream entry id.
  const offsets = (c) => c.events.filter((e) => e.name === 'task:created').map((e) => e.offset);
  assert.deepEqual(offsets(onWalcast), offsets(onNode));
  assert.match(offsets(onWalcast)[0], /^\d+-\d+$/);
  for (const c of [evilWalcast, evilNode]) assert.ok(!c.events.some((e) => e.name === 'note:custom'), 'tenant isolation');
});

// One PostgreSQL with projects p1 (acme) and px (evil) and the slot; one Redis.
async function smallCluster() {
  const pg = await startAppCluster({
    setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One'), ('px', 'evil', 'Evil');
SELECT pg_create_logical_replication_slot('walcast', 'wal2json');`,
  });
  cleanups.push(() => pg.stop());
  const redis = await startRedis();
  cleanups.push(() => redis.kill9());
  return { pg, redis };
}

const insertTasks = (pg, prefix, n, project = 'p1', tenant = 'acme') => pg.psql(Array.from({ length: n }, (_, i) =>
  `BEGIN; SELECT walcast.set_context('w', '${project}', '${tenant}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('${prefix}-${i}', '${project}', 'x'); COMMIT;`).join('\n'), { db: 'app' });

const slotConfirmed = async (pg) => (await pg.psql(
  "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'walcast';", { db: 'app' })).trim();

test('Redis down: every node answers /healthz 503, the slot is not confirmed, and nothing is lost', async () => {
  const { pg, redis } = await smallCluster();
  const a = await startDaemon({ cluster: pg, secret: SECRET, name: 'down-a', configAppend: clusterConfig(redis) });
  const b = await startDaemon({ cluster: pg, secret: SECRET, name: 'down-b', configAppend: clusterConfig(redis) });
  await waitUntil(async () => leaderOf([a, b]), { timeoutMs: 15_000, what: 'a leader' });
  const ca = client(a.url, { sub: 'ua', tenantId: 'acme' }, 'p1');
  const cb = client(b.url, { sub: 'ub', tenantId: 'acme' }, 'p1');
  await waitUntil(() => ca.joined && cb.joined, { what: 'clients joined' });
  await Promise.all([ca.joined, cb.joined]);
  await insertTasks(pg, 'before', 5);
  await waitUntil(() => ids(ca).length === 5 && ids(cb).length === 5, { what: 'the first events' });
  await sleep(1500);  // the slot's confirmation catches up

  await redis.kill9();
  await waitUntil(async () => (await a.healthz()) === 503 && (await b.healthz()) === 503,
    { timeoutMs: 10_000, what: '/healthz 503 on both nodes' });
  const confirmedBefore = await slotConfirmed(pg);
  await insertTasks(pg, 'during', 50);
  await sleep(2500);
  assert.equal(await slotConfirmed(pg), confirmedBefore, 'nothing is confirmed while Redis is down');
  assert.equal(ids(ca).length, 5, 'nothing is delivered around Redis');

  await redis.start();
  await waitUntil(async () => (await a.healthz()) === 200 && (await b.healthz()) === 200,
    { timeoutMs: 15_000, what: '/healthz 200 again' });
  const expected = [...Array.from({ length: 5 }, (_, i) => `before-${i}`), ...Array.from({ length: 50 }, (_, i) => `during-${i}`)];
  await waitUntil(() => ids(ca).length >= 55 && ids(cb).length >= 55, { timeoutMs: 20_000, what: 'the events committed meanwhile' });
  await sleep(300);
  assert.deepEqual(ids(ca), expected);
  assert.deepEqual(ids(cb), expected);
  await waitUntil(async () => (await slotConfirmed(pg)) !== confirmedBefore, { what: 'the slot confirmed again' });
});

test('a follower that falls behind the stream\'s retention resyncs its clients; it never skips silently', async () => {
  const { pg, redis } = await smallCluster();
  const cfg = clusterConfig(redis).replace('max_len = 100000', 'max_len = 100');
  const a = await startDaemon({ cluster: pg, secret: SECRET, name: 'trim-a', configAppend: cfg });
  await waitUntil(async () => leaderOf([a]), { timeoutMs: 15_000, what: 'a leading' });
  const b = await startDaemon({ cluster: pg, secret: SECRET, name: 'trim-b', configAppend: cfg });
  const cb = client(b.url, { sub: 'ub', tenantId: 'acme' }, 'p1');
  await waitUntil(() => cb.joined, { what: 'client joined' });
  await cb.joined;
  await insertTasks(pg, 'first', 3);
  await waitUntil(() => ids(cb).length === 3, { what: 'the first events' });

  process.kill(b.pid, 'SIGSTOP');
  try {
    await insertTasks(pg, 'while-stopped', 1500);
    await waitUntil(async () => Number(redis.cli('XLEN', 'socket.io').trim()) < 1000, { what: 'the stream trimmed' });
  } finally {
    process.kill(b.pid, 'SIGCONT');
  }
  await waitUntil(() => cb.events.some((e) => e.name === 'walcast:resync'), { timeoutMs: 15_000, what: 'walcast:resync' });
  const resync = cb.events.find((e) => e.name === 'walcast:resync');
  assert.equal(resync.payload.reason, 'stream_gap');
  assert.match(resync.payload.detail, /left stream "socket.io" before this node read them/);
  await waitUntil(() => cb.connects.length === 2, { timeoutMs: 15_000, what: 'the client back' });
  assert.equal(cb.connects[1].recovered, false, 'the reconnect is a fresh session: the app refetches');
  assert.ok(await b.metric('walcast_stream_gaps_total') >= 1);
  await cb.joined;
  await insertTasks(pg, 'after', 3);
  await waitUntil(() => ids(cb).filter((id) => id.startsWith('after-')).length === 3, { what: 'events after the gap' });
});

test('hostile stream entries are skipped, counted and logged; the stream goes on', async () => {
  const { pg, redis } = await smallCluster();
  const a = await startDaemon({ cluster: pg, secret: SECRET, name: 'hostile', configAppend: clusterConfig(redis) });
  await waitUntil(async () => leaderOf([a]), { timeoutMs: 15_000, what: 'a leading' });
  const c = client(a.url, { sub: 'u1', tenantId: 'acme' }, 'p1');
  await waitUntil(() => c.joined, { what: 'client joined' });
  await c.joined;
  const rssBefore = a.memory().rssKiB;

  const { createClient } = require('redis');
  const r = createClient({ url: redis.url });
  await r.connect();
  const add = (fields) => r.sendCommand(['XADD', 'socket.io', '*', ...fields]);
  const broadcast = (data) => add(['uid', 'mallory', 'nsp', '/', 'type', '3', 'data', data]);
  const deep = `{"packet":{"type":2,"data":["task:created",${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}]},"opts":{"rooms":["project:p1"],"except":[],"flags":{}}}`;
  await broadcast('not json');
  await broadcast(deep);
  await broadcast(`{"packet":{"type":2,"data":["task:created","${'x'.repeat(20 << 20)}"]},"opts":{"rooms":["project:p1"],"except":[],"flags":{}}}`);
  await broadcast('{"packet":{"type":2,"data":["task:created",1]},"opts":{"rooms":[1,2],"except":[],"flags":{}}}');
  await broadcast('{"packet":{"type":2,"data":["connect",{}]},"opts":{"rooms":["project:p1"],"except":[],"flags":{}}}');
  await add(['uid', 'mallory', 'type', '3', 'data', '{}']);                 // no namespace
  await add(Array.from({ length: 200 }, (_, i) => [`f${i}`, 'v']).flat());  // 200 fields
  await r.quit();

  await insertTasks(pg, 'ok', 3);
  await waitUntil(() => ids(c).length === 3, { what: 'the events after the hostile entries' });
  assert.deepEqual(ids(c), ['ok-0', 'ok-1', 'ok-2']);
  assert.ok(await a.metric('walcast_stream_skipped_total') >= 7, 'each hostile entry is counted');
  assert.match(a.log(), /stream entry \d+-\d+ not relayed: /);
  const rssAfter = a.memory().rssKiB;
  console.log(`# hostile stream entries: RSS ${rssBefore} -> ${rssAfter} KiB`);
  assert.ok(rssAfter - rssBefore < 200 * 1024, `RSS grew by ${rssAfter - rssBefore} KiB`);
});

test('[cluster] password_file: AUTH with it; a wrong one is a clear error and /healthz 503; a missing file stops the start', async () => {
  const pg = await startAppCluster({ setupSql: "SELECT pg_create_logical_replication_slot('walcast', 'wal2json');" });
  cleanups.push(() => pg.stop());
  const redis = await startRedis({ password: 'redis-secret-for-walcast' });
  cleanups.push(() => redis.kill9());
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { work } = await import('./lib/daemon.mjs');
  const good = join(work(), 'redis-good.password');
  const bad = join(work(), 'redis-bad.password');
  writeFileSync(good, 'redis-secret-for-walcast\n');
  writeFileSync(bad, 'not-the-password\n');

  const ok = await startDaemon({ cluster: pg, secret: SECRET, name: 'auth-ok',
    configAppend: clusterConfig(redis, `password_file = "${good}"`) });
  await waitUntil(async () => leaderOf([ok]), { timeoutMs: 15_000, what: 'leading with the password' });
  assert.equal(await ok.metric('walcast_redis_up'), 1);

  const wrong = await startDaemon({ cluster: pg, secret: SECRET, name: 'auth-wrong', waitHealthy: false,
    configAppend: clusterConfig(redis, `password_file = "${bad}"`) });
  await waitUntil(() => /Redis AUTH failed: WRONGPASS/.test(wrong.log()), { timeoutMs: 10_000, what: 'the AUTH error' });
  assert.equal(await wrong.healthz(), 503);

  const missing = await startDaemon({ cluster: pg, secret: SECRET, name: 'auth-missing', waitHealthy: false,
    configAppend: clusterConfig(redis, `password_file = "${join(work(), 'nowhere.password')}"`) });
  await waitUntil(() => !missing.running, { timeoutMs: 10_000, what: 'walcast to exit' });
  assert.equal(missing.exitInfo.code, 2);
  assert.match(missing.log(), /cannot read \[cluster\] password_file .*nowhere\.password: No such file/);
});

test('leadership moving back and forth between nodes is no discontinuity; nothing lost, nothing twice', async () => {
  const { pg, redis } = await smallCluster();
  const a = await startDaemon({ cluster: pg, secret: SECRET, name: 'move-a', configAppend: clusterConfig(redis) });
  await waitUntil(async () => leaderOf([a]), { timeoutMs: 15_000, what: 'a leading' });
  const b = await startDaemon({ cluster: pg, secret: SECRET, name: 'move-b', configAppend: clusterConfig(redis) });
  const ca = client(a.url, { sub: 'ua', tenantId: 'acme' }, 'p1');
  const cb = client(b.url, { sub: 'ub', tenantId: 'acme' }, 'p1');
  await waitUntil(() => ca.joined && cb.joined, { what: 'clients joined' });
  await Promise.all([ca.joined, cb.joined]);

  // Ends the leader's walsender until `node` holds the slot.
  const moveTo = async (node) => {
    await waitUntil(async () => {
      if (await leaderOf([node])) return true;
      await pg.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'walcast' AND active_pid IS NOT NULL;", { db: 'app' });
      await sleep(300);
      return false;
    }, { timeoutMs: 60_000, intervalMs: 200, what: `${node.name} leading` });
  };
  const expected = [];
  for (const [round, node] of [[1, b], [2, a], [3, b], [4, a]]) {
    await moveTo(node);
    await insertTasks(pg, `r${round}`, 20);
    for (let i = 0; i < 20; i++) expected.push(`r${round}-${i}`);
    await waitUntil(() => ids(ca).length === expected.length && ids(cb).length === expected.length,
      { timeoutMs: 20_000, what: `round ${round}'s events` });
    await sleep(1200);  // the leader confirms what it appended
  }
  assert.deepEqual(ids(ca), expected);
  assert.deepEqual(ids(cb), expected);
  for (const c of [ca, cb]) {
    assert.ok(!c.events.some((e) => e.name === 'walcast:resync'), 'no resync');
    assert.equal(c.connects.length, 1, 'never cut');
  }
  for (const n of [a, b]) {
    const m = await n.metrics();
    const discontinuities = [...m.entries()].filter(([k]) => k.startsWith('walcast_discontinuities_total'))
      .reduce((sum, [, v]) => sum + Number(v), 0);
    assert.equal(discontinuities, 0, `${n.name} reported a discontinuity`);
  }
});

test('walcast check with [cluster]: reaches Redis with the password, warns when it may lose or evict entries, fails when it cannot reach it', async () => {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { WALCAST_BIN, writeConfig, work, DB } = await import('./lib/daemon.mjs');
  const pg = await startAppCluster({ setupSql: "SELECT pg_create_logical_replication_slot('walcast', 'wal2json');" });
  cleanups.push(() => pg.stop());
  const redis = await startRedis({ password: 'redis-secret-for-check' });
  cleanups.push(() => redis.kill9());
  const passwordFile = join(work(), 'check-redis.password');
  writeFileSync(passwordFile, 'redis-secret-for-check\n');
  const check = (extra) => {
    const file = writeConfig({ dsn: pg.dsn(DB), slot: 'walcast', port: 8787, name: 'check-cluster',
      append: clusterConfig(redis, extra) });
    const r = spawnSync(WALCAST_BIN, ['check', '--config', file], {
      encoding: 'utf8', env: { ...process.env, WALCAST_JWT_SECRET: SECRET }, timeout: 30_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  };

  // The test's Redis: AOF with fsync always, noeviction (Redis's default).
  let r = check(`password_file = "${passwordFile}"`);
  assert.match(r.out, /^ok {5}Redis at redis:\/\/127\.0\.0\.1:\d+\/0 answers$/m, r.out);
  assert.match(r.out, /^ok {5}Redis: appendonly yes, appendfsync always$/m, r.out);
  assert.match(r.out, /^ok {5}Redis: maxmemory-policy noeviction$/m, r.out);
  assert.match(r.out, /^ok {5}stream "socket\.io" has 0 entries \(max_len 100000\)$/m, r.out);
  assert.equal(r.code, 0, r.out);

  redis.cli('CONFIG', 'SET', 'appendfsync', 'everysec');
  redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
  r = check(`password_file = "${passwordFile}"`);
  assert.match(r.out, /^WARN {3}Redis: appendonly yes, appendfsync everysec: a Redis crash can lose entries it acknowledged/m, r.out);
  assert.match(r.out, /^WARN {3}Redis: maxmemory-policy allkeys-lru: Redis may evict the stream/m, r.out);
  assert.equal(r.code, 0, 'warnings are not fatal');

  r = check('');
  assert.match(r.out, /^FATAL {2}cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/0: .*NOAUTH/m, r.out);
  assert.equal(r.code, 1, r.out);
  r = check(`password_file = "${join(work(), 'nowhere.password')}"`);
  assert.match(r.out, /^FATAL {2}cannot read \[cluster\] password_file .*nowhere\.password: No such file/m, r.out);
  assert.equal(r.code, 1);

  // (The timer keeps the loop alive until Redis's exit is seen: its process is unref'd.)
  await Promise.race([redis.kill9(), sleep(5_000)]);
  r = check(`password_file = "${passwordFile}"`);
  assert.match(r.out, /^FATAL {2}cannot reach Redis at .*: cannot connect to Redis: Connection refused/m, r.out);
  assert.equal(r.code, 1);
});
