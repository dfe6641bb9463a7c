// walcast run, Socket.IO CONNECT: a valid HS256 token connects
// with transports: ["websocket"] and lands in user:<sub> and tenant:<tenantId>; missing,
// malformed, wrong-signature, alg none, RS256-labelled, expired (and other invalid) tokens get
// connect_error "unauthorized" and nothing else, while an already connected client keeps
// receiving. A token that expires while connected closes the connection with 4001, and a
// client whose auth callback mints a fresh token comes back recovered, missing nothing.
// Also: WALCAST_JWT_SECRET overrides jwt_secret_file; project_access = "token";
// --dsn/--slot/--listen override the file.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { io } from 'socket.io-client';

import {
  DB, dtest, startAppCluster, startDaemon, token, badTokens, signJwt, claimsFor, IoClient, RawClient,
  closeAllClients, killAllDaemons, waitUntil, writeConfig, freePort, work, sleep, lit, dropSlot,
} from './lib/daemon.mjs';

const SECRET = 'env-secret-for-walcast-auth-tests-32b';
const FILE_SECRET = 'file-secret-that-the-env-overrides-32b';

let cluster;
let daemon;
let watcher;   // connected before the bad attempts; must keep receiving
let seq = 0;

// A committed notification for user `userId` (room user:<userId>) under a valid context.
async function notify(userId, message) {
  const id = `n-${++seq}`;
  await cluster.psql(`BEGIN;
SELECT walcast.set_context('system', NULL, 'acme');
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES (${lit(id)}, 'acme', ${lit(userId)}, 'info', ${lit(message)});
COMMIT;`, { db: DB });
  return id;
}

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'Apollo'), ('p2', 'acme', 'Borealis'),
  ('pe', 'evil', 'Evil plans');` });
  // The file holds another secret: the environment must win.
  const secretFile = join(work(), 'auth-file.key');
  writeFileSync(secretFile, FILE_SECRET);
  const port = await freePort();
  const configFile = writeConfig({ dsn: cluster.dsn(DB), slot: 'walcast', port, secretFile, name: 'auth' });
  daemon = await startDaemon({ cluster, secret: SECRET, configFile, port, name: 'auth' });
});

after(async () => {
  closeAllClients();
  await daemon?.terminate().catch(() => daemon?.kill9());
  await killAllDaemons();
  await cluster?.stop();
});

dtest('a valid HS256 token connects over the websocket transport, in user: and tenant: rooms', async () => {
  const r = await IoClient.attempt(daemon.url, { token: token(SECRET, { sub: 'w1', tenantId: 'acme' }) },
    { label: 'watcher' });
  assert.equal(r.error, undefined, `connect_error: ${r.error}`);
  assert.equal(r.ok, true);
  watcher = r.client;
  assert.equal(watcher.socket.connected, true);
  assert.equal(watcher.socket.io.engine.transport.name, 'websocket');

  // user:w1: a notification for w1 arrives; one for someone else does not.
  const other = await notify('someone-else', 'not for w1');
  const mine = await notify('w1', 'for w1');
  const ev = await watcher.waitEvent((e) => e.name === 'notification:created' && e.payload?.id === mine,
    { what: 'notification:created for user:w1' });
  assert.equal(ev.argc, 2, 'the payload, then the recovery offset');
  assert.equal(ev.offset, ev.payload.eventId, 'the offset is the eventId');
  assert.equal(ev.payload.data.userId, 'w1');
  assert.ok(!watcher.events.some((e) => e.payload?.id === other), 'received a notification of another user');

  // tenant:acme: a NoteCategory of acme arrives.
  await cluster.psql(`BEGIN; SELECT walcast.set_context('system', NULL, 'acme');
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('cat-auth', 'acme', 'General'); COMMIT;`, { db: DB });
  await watcher.waitEvent((e) => e.name === 'noteCategory:created' && e.payload?.id === 'cat-auth',
    { what: 'noteCategory:created in tenant:acme' });

  // The raw handshake: the Engine.IO open packet, then 40{"sid":..}.
  const raw = await RawClient.open(daemon.wsUrl, { label: 'raw-valid' });
  const open = await raw.openPacket();
  assert.equal(typeof open.sid, 'string');
  assert.ok(open.sid.length > 0);
  assert.deepEqual(open.upgrades, []);
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.pingTimeout, 20000);
  assert.equal(typeof open.maxPayload, 'number');
  raw.send(`40${JSON.stringify({ token: token(SECRET, { sub: 'w2', tenantId: 'acme' }) })}`);
  const answer = await raw.waitFrame((t) => t.startsWith('4'), { what: 'CONNECT answer' });
  assert.match(answer.text, /^40\{"sid":"[^"]+"/);
  assert.notEqual(JSON.parse(answer.text.slice(2)).sid, open.sid, 'Socket.IO sid differs from Engine.IO sid');
  raw.close();
});

dtest('every invalid token gets connect_error "unauthorized" while the connected client keeps receiving', async () => {
  assert.ok(watcher?.socket.connected, 'the watcher from the previous test is connected');
  const failuresBefore = await daemon.metric('walcast_auth_failures_total');
  const bad = {
    ...badTokens(SECRET, { sub: 'mallory', tenantId: 'acme' }),
    'signed with the jwt_secret_file secret (the environment overrides it)':
      token(FILE_SECRET, { sub: 'mallory', tenantId: 'acme' }),
  };
  const expectedIds = [];
  let attempts = 0;
  for (const [name, tok] of Object.entries(bad)) {
    const auth = name === 'missing token' ? null : { token: tok };
    const r = await IoClient.attempt(daemon.url, auth, { label: name, timeoutMs: 5000 });
    attempts++;
    try {
      assert.equal(r.ok, false, `${name}: the client connected`);
      assert.equal(r.error, 'unauthorized', `${name}: connect_error message`);
      assert.equal(r.client.events.length, 0, `${name}: a refused client received events`);
    } finally {
      r.client.close();
    }
    // The connected client goes on receiving between the attempts.
    expectedIds.push(await notify('w1', `after ${name}`));
  }
  await waitUntil(() => expectedIds.every((id) => watcher.events.some((e) => e.payload?.id === id)),
    { timeoutMs: 15_000, what: 'the watcher to receive every notification written between bad attempts' });
  const got = watcher.events.filter((e) => expectedIds.includes(e.payload?.id)).map((e) => e.payload.id);
  assert.deepEqual(got, expectedIds, 'each once, in commit order');
  assert.equal(watcher.disconnects.length, 0, `watcher disconnected: ${JSON.stringify(watcher.disconnects)}`);

  // The wire answer is exactly 44{"message":"unauthorized"} and nothing else (no 40, no events).
  const raw = await RawClient.open(daemon.wsUrl, { label: 'raw-bad' });
  const answer = await raw.connect({ token: bad['RS256-labelled, HMAC-signed with the secret'] });
  attempts++;
  assert.equal(answer, '44{"message":"unauthorized"}');
  await notify('mallory', 'must not reach a refused socket');
  await sleep(500);
  const after = raw.texts().filter((t) => t !== '2' && !t.startsWith('0'));
  assert.deepEqual(after, ['44{"message":"unauthorized"}'], 'frames after the open packet');
  raw.close();

  const failuresAfter = await daemon.metric('walcast_auth_failures_total');
  assert.equal(failuresAfter - failuresBefore, attempts, 'walcast_auth_failures_total counts every refused CONNECT');
});

dtest('a token of tenant evil is refused an acme project; join/leave acks', async () => {
  const evil = await IoClient.connect(daemon.url, token(SECRET, { sub: 'eve', tenantId: 'evil' }), { label: 'evil' });
  assert.deepEqual(await evil.join('p1'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await evil.join('no-such-project'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await evil.join('pe'), { ok: true });
  const acme = await IoClient.connect(daemon.url, token(SECRET, { sub: 'alice', tenantId: 'acme' }), { label: 'alice' });
  assert.deepEqual(await acme.join('p1'), { ok: true });
  assert.deepEqual(await acme.leave('p1'), { ok: true });
  evil.close();
  acme.close();
});

dtest('a token expiring while connected: closed 4001, back with a fresh token, nothing missed', async () => {
  const closesBefore = await daemon.metric('walcast_token_expiry_closes_total');
  // A raw client sees the close code.
  const raw = await RawClient.open(daemon.wsUrl, { label: 'raw-expiring' });
  await raw.openPacket();
  raw.send(`40${JSON.stringify({ token: token(SECRET, { sub: 'x-raw', tenantId: 'acme', expIn: 3 }) })}`);
  await raw.waitFrame((t) => t.startsWith('40'), { what: 'CONNECT answer' });

  // socket.io-client as the README shows it: `auth` is a function, called on every connect.
  let mints = 0;
  const socket = io(daemon.url, {
    transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200,
    auth: (cb) => { mints++; cb({ token: token(SECRET, { sub: 'x1', tenantId: 'acme', expIn: mints === 1 ? 3 : 3600 }) }); },
  });
  const client = new IoClient(socket, 'expiring');
  await waitUntil(() => socket.connected, { what: 'expiring client connected' });
  const first = await notify('x1', 'before expiry');
  await client.waitEvent((e) => e.payload?.id === first, { what: 'the first notification' });

  const close = await Promise.race([raw.closed, sleep(8000).then(() => null)]);
  assert.ok(close, 'the raw client was not closed within 8 s of a 3 s token');
  assert.equal(close.code, 4001);
  assert.equal(close.reason, 'token expired');
  await waitUntil(() => client.disconnects.length > 0, { what: 'the expiring client disconnected' });
  assert.equal(client.disconnects[0].reason, 'transport close', 'a close socket.io-client reconnects after');

  const second = await notify('x1', 'around the reconnect');
  await waitUntil(() => socket.connected && mints >= 2, { timeoutMs: 10_000, what: 'reconnected with a fresh token' });
  assert.equal(socket.recovered, true, 'the session was resumed');
  const third = await notify('x1', 'after the reconnect');
  await client.waitEvent((e) => e.payload?.id === third, { what: 'the third notification' });
  await sleep(200);  // a duplicate would arrive now
  assert.deepEqual(client.named('notification:').map((e) => e.payload.id), [first, second, third]);

  assert.equal(watcher.disconnects.length, 0, 'a client with a valid token stayed connected');
  assert.equal(await daemon.metric('walcast_token_expiry_closes_total'), closesBefore + 2);
  client.close();
});

dtest('project_access = "token", jwt_secret_file alone, and --dsn/--slot/--listen overriding the file', async () => {
  // The file names a database that does not exist, another slot and port: the flags win.
  const secretFile = join(work(), 'token-mode.key');
  writeFileSync(secretFile, FILE_SECRET);
  const filePort = await freePort();
  const flagPort = await freePort();
  const configFile = writeConfig({
    dsn: `host=${cluster.host} port=${cluster.port} dbname=no_such_db user=nobody`, slot: 'not_this_slot',
    port: filePort, secretFile, set: { project_access: 'token' }, name: 'token-mode',
  });
  const d = await startDaemon({
    cluster, configFile, port: flagPort, name: 'token-mode', secretInEnv: false,
    args: ['--dsn', cluster.dsn(DB), '--slot', 'walcast_token_mode', '--listen', `127.0.0.1:${flagPort}`],
  });
  try {
    assert.equal(await cluster.scalar(
      `SELECT plugin || ' ' || database FROM pg_replication_slots WHERE slot_name = 'walcast_token_mode';`), 'wal2json app');
    assert.equal(await cluster.scalar(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'not_this_slot';`), '0');

    // Secret from the file (no WALCAST_JWT_SECRET in this daemon's environment).
    const refused = await IoClient.attempt(d.url, { token: token(SECRET, { sub: 'bob', tenantId: 'acme' }) },
      { label: 'env-secret-on-file-daemon', timeoutMs: 5000 });
    refused.client.close();
    assert.equal(refused.error, 'unauthorized');

    const bob = await IoClient.connect(d.url,
      signJwt(claimsFor({ sub: 'bob', tenantId: 'acme', projects: ['p2', 'p-not-in-db'] }), FILE_SECRET), { label: 'bob' });
    assert.deepEqual(await bob.join('p2'), { ok: true });
    assert.deepEqual(await bob.join('p-not-in-db'), { ok: true }, 'token access reads the claim, not the database');
    assert.deepEqual(await bob.join('p1'), { ok: false, error: 'forbidden' }, 'p1 is not in the projects claim');

    await cluster.psql(`BEGIN; SELECT walcast.set_context('u1', 'p2', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('tok-t2', 'p2', 'in p2');
INSERT INTO "Task" (id, "projectId", title) VALUES ('tok-t1', 'p1', 'in p1'); COMMIT;
BEGIN; SELECT walcast.set_context('u1', NULL, 'acme');
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('tok-fence', 'acme', 'fence'); COMMIT;`, { db: DB });
    await bob.waitEvent((e) => e.payload?.id === 'tok-fence', { what: 'the fence event' });
    assert.deepEqual(bob.events.map((e) => `${e.name} ${e.payload.id}`),
      ['task:created tok-t2', 'noteCategory:created tok-fence']);
    bob.close();
  } finally {
    const r = await d.terminate();
    assert.equal(r.code, 0, `SIGTERM exit code (signal ${r.signal})`);
    await dropSlot(cluster, 'walcast_token_mode');
  }
});
