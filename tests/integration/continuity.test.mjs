// Database failover and slot loss. A slot that does not continue what walcast streamed —
// dropped under a running daemon, dropped while it was stopped, invalidated by
// max_slot_wal_keep_size, or gone with a promoted standby — is a discontinuity: logged with
// its reason, counted in walcast_discontinuities_total{reason}, shown by /healthz, and told
// to every connected client (a `walcast:resync` event, then a close, so socket.io-client
// reconnects with recovered === false and the app refetches). Everything committed after
// the stream resumes is delivered.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

import {
  DB, dtest, startAppCluster, startDaemon, token, killAllDaemons, waitUntil, lit, sleep, work, writeConfig,
} from './lib/daemon.mjs';
import { freePort, startStandby } from './lib/pg.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const SECRET = 'walcast-continuity-secret-of-32-bytes';
const PROJECTS = `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');`;
const clients = [];
const clusters = [];

before(async () => {});
after(async () => {
  for (const c of clients) c.socket.disconnect();
  await killAllDaemons();
  for (const c of clusters) await c.stop();
});

async function appCluster(settings) {
  const c = await startAppCluster({ setupSql: PROJECTS, settings });
  clusters.push(c);
  return c;
}

// A socket.io-client that reconnects by itself (as apps do) and, whenever it is not
// recovered, joins p1 again; it records events, connects and resync notices.
function client(url, sub) {
  const socket = io(url, {
    transports: ['websocket'],
    auth: (cb) => cb({ token: token(SECRET, { sub, tenantId: 'acme' }) }),
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  const c = { socket, events: [], connects: [], resyncs: [], joined: 0, joinedOn: -1 };
  // Each notice remembers on which connection (by number) it came.
  socket.on('walcast:resync', (notice) => c.resyncs.push({ ...notice, onConnect: c.connects.length }));
  socket.onAny((name, payload) => {
    if (name.startsWith('task:')) c.events.push(payload.id);
  });
  socket.on('connect', () => {
    c.connects.push(socket.recovered);
    const on = c.connects.length;
    if (!socket.recovered) socket.emit('join-project', 'p1', (ack) => {
      if (!ack?.ok) return;
      c.joined++;
      c.joinedOn = on;  // the connection (by number) whose join was acknowledged
    });
  });
  clients.push(c);
  return c;
}

async function insert(cluster, id) {
  await cluster.psql(`BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
    INSERT INTO "Task" (id, "projectId", title) VALUES (${lit(id)}, 'p1', 'continuity'); COMMIT;`, { db: DB });
}

const got = (c, id) => c.events.includes(id);

async function waitJoined(c, n = 1) {
  await waitUntil(() => c.joined >= n, { timeoutMs: 20_000, what: `join #${n}` });
}

function stateDir() {
  return mkdtempSync(join(work(), 'state-'));
}

// After a discontinuity: the client was told why (when it was connected to hear it),
// reconnected as a fresh session, joined again and receives what is committed now.
async function assertResynced(c, daemon, cluster, reason, tag, { connected = true } = {}) {
  // The connection that must be replaced: the one the (last) notice came on, or the first.
  let told = 1;
  if (connected) {
    await waitUntil(() => c.resyncs.some((r) => r.reason === reason), { timeoutMs: 30_000, what: `walcast:resync ${reason}` });
    told = c.resyncs.filter((r) => r.reason === reason).at(-1).onConnect;
  }
  // The connection in place now is a fresh one, newer than the one told, and has joined again.
  await waitUntil(() => c.socket.connected && c.connects.length > told && c.joinedOn === c.connects.length,
    { timeoutMs: 30_000, what: 'a reconnect and a join' });
  assert.equal(c.connects.at(-1), false, `the reconnect after the discontinuity is not a resume: ${c.connects}`);
  for (let i = 1; i <= 3; i++) await insert(cluster, `${tag}-after-${i}`);
  await waitUntil(() => [1, 2, 3].every((i) => got(c, `${tag}-after-${i}`)), { timeoutMs: 20_000, what: `${tag} events after` });
  const after = c.events.filter((id) => id.startsWith(`${tag}-after-`));
  assert.equal(new Set(after).size, after.length, 'nothing twice');
  assert.equal(await daemon.metric('walcast_discontinuities_total', `{reason="${reason}"}`), 1);
  assert.match(daemon.log(), new RegExp(`discontinuity \\(${reason}\\): .*events committed after \\S+ were not delivered`));
}

// Terminates the slot's walsender and drops the slot before walcast can take it again.
async function dropUnderDaemon(cluster, slot) {
  await cluster.psql(`DO $$ BEGIN
    FOR i IN 1..200 LOOP
      PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = ${lit(slot)} AND active_pid IS NOT NULL;
      BEGIN
        PERFORM pg_drop_replication_slot(${lit(slot)});
        RETURN;
      EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.02);
      END;
    END LOOP;
    RAISE 'slot ${slot} stayed active';
  END $$;`, { db: DB });
}

dtest('slot dropped under a running daemon: slot_missing, clients resync, create_slot = "always" recreates it', async () => {
  const cluster = await appCluster();
  const d = await startDaemon({
    cluster, secret: SECRET, slot: 'cont_drop', name: 'cont-drop', configSet: { create_slot: 'always' },
    configAppend: `[recovery]\nstate_dir = "${stateDir()}"`,
  });
  const c = client(d.url, 'u-drop');
  await waitJoined(c);
  await insert(cluster, 'drop-before');
  await waitUntil(() => got(c, 'drop-before'), { what: 'the event before' });

  await dropUnderDaemon(cluster, 'cont_drop');
  for (let i = 1; i <= 3; i++) await insert(cluster, `drop-gap-${i}`);
  await assertResynced(c, d, cluster, 'slot_missing', 'drop');
  assert.match(d.log(), /replication slot "cont_drop" no longer exists; creating it \(create_slot = "always"\)/);
  const health = await fetch(`${d.url}/healthz`).then((r) => r.text());
  assert.match(health, /last discontinuity: slot_missing at .*: events after \S+ lost/);
});

dtest('slot dropped while walcast was stopped: reported at start; "first-start" waits for an operator', async () => {
  const cluster = await appCluster();
  const dir = stateDir();
  const port = await freePort();
  const opts = {
    cluster, secret: SECRET, slot: 'cont_stop', name: 'cont-stop', port, configAppend: `[recovery]\nstate_dir = "${dir}"`,
  };
  const first = await startDaemon(opts);
  const c = client(first.url, 'u-stop');
  await waitJoined(c);
  await insert(cluster, 'stop-before');
  await waitUntil(() => got(c, 'stop-before'), { what: 'the event before' });
  assert.equal((await first.terminate()).code, 0);

  await cluster.dropSlot('cont_stop', { db: DB });
  await insert(cluster, 'stop-gap');
  const second = await startDaemon({ ...opts, waitHealthy: false });
  await waitUntil(() => /discontinuity \(slot_missing\)/.test(second.log()), { timeoutMs: 20_000, what: 'the discontinuity' });
  assert.match(second.log(), /not creating it \(create_slot = "first-start": this walcast streamed before\): create it, e\.g\. SELECT pg_create_logical_replication_slot\('cont_stop', 'wal2json'\)/);
  assert.equal(await second.healthz(), 503);
  const health = await fetch(`${second.url}/healthz`).then((r) => r.text());
  assert.match(health, /waiting: .*not creating it/);

  // The operator acts.
  await cluster.createSlot('cont_stop', { db: DB });
  await second.waitHealthz(200, 60_000);
  // Streaming again, walcast tells the clients connected meanwhile to resync once more.
  await waitUntil(() => /streaming again after the discontinuity \(slot_missing\)/.test(second.log()),
    { timeoutMs: 20_000, what: 'streaming again' });
  await assertResynced(c, second, cluster, 'slot_missing', 'stop');
  assert.ok(!got(c, 'stop-gap'), 'a transaction of the gap cannot be delivered (the slot did not exist)');
  assert.match(second.log(), /streaming again after the discontinuity \(slot_missing\)/);
});

dtest('slot invalidated by max_slot_wal_keep_size while walcast was stopped: slot_invalidated, recreated', async () => {
  const cluster = await appCluster({ max_slot_wal_keep_size: "'16MB'", max_wal_size: "'64MB'", min_wal_size: "'32MB'" });
  const opts = {
    cluster, secret: SECRET, slot: 'cont_lost', name: 'cont-lost', port: await freePort(),
    configSet: { create_slot: 'always' }, configAppend: `[recovery]\nstate_dir = "${stateDir()}"`,
  };
  const first = await startDaemon(opts);
  const c = client(first.url, 'u-lost');
  await waitJoined(c);
  await insert(cluster, 'lost-before');
  await waitUntil(() => got(c, 'lost-before'), { what: 'the event before' });
  assert.equal((await first.terminate()).code, 0);

  // Write well past 16 MB of WAL and checkpoint until the slot is invalidated.
  await waitUntil(async () => {
    await cluster.psql(`INSERT INTO "Widget" SELECT 'w' || g || '-' || random(), repeat(md5(g::text), 40)
      FROM generate_series(1, 20000) g; SELECT pg_switch_wal(); CHECKPOINT;`, { db: DB });
    return (await cluster.scalar(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'cont_lost'`)) === 'lost';
  }, { timeoutMs: 120_000, intervalMs: 10, what: 'the slot to be invalidated' });

  // walcast was stopped: nobody is connected to be told; the client's reconnect with its old
  // pid and offset is refused as a resume instead.
  const second = await startDaemon({ ...opts });
  await assertResynced(c, second, cluster, 'slot_invalidated', 'lost', { connected: false });
  assert.match(second.log(), /fresh session instead of resume: (unknown or expired pid|events after offset \S+ left the buffer)/);
  assert.match(second.log(), /was invalidated \(wal_status lost.*recreating it \(create_slot = "always"\)/);
});

dtest('promotion: walcast follows a multi-host DSN to the promoted standby; promotion is a discontinuity', async () => {
  const primary = await appCluster({ wal_keep_size: "'64MB'" });
  const standby = await startStandby(primary);
  clusters.push(standby);
  const dsn = `host=${primary.host},${standby.host} port=${primary.port},${standby.port} dbname=${DB} ` +
    `user=postgres target_session_attrs=read-write connect_timeout=2`;
  const port = await freePort();
  const secretFile = join(work(), 'promotion-jwt.key');
  const configFile = writeConfig({
    dsn, slot: 'cont_promote', port, secretFile, name: 'cont-promote', set: { create_slot: 'always' },
    append: `[recovery]\nstate_dir = "${stateDir()}"`,
  });
  const d = await startDaemon({ cluster: primary, secret: SECRET, port, configFile, name: 'cont-promote' });
  const c = client(d.url, 'u-promote');
  await waitJoined(c);
  await insert(primary, 'promote-before');
  await waitUntil(() => got(c, 'promote-before'), { what: 'the event before' });
  // The standby has replayed everything the primary wrote.
  const lsn = await primary.currentLsn(DB);
  await waitUntil(async () => (await standby.scalar(`SELECT pg_last_wal_replay_lsn() >= ${lit(lsn)}::pg_lsn`)) === 't',
    { timeoutMs: 30_000, what: 'the standby to catch up' });

  await primary.stopServer({ mode: 'fast' });
  await standby.promote();
  await assertResynced(c, d, standby, 'promotion', 'promote');
  assert.match(d.log(), /discontinuity \(promotion\): the server is on timeline 2, not 1 \(a standby was promoted\) and the slot did not follow/);
  assert.match(d.log(), /streaming from slot "cont_promote" at \S+ \(server \d+, timeline 2\)/);
});
