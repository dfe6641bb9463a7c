// walcast run, routing to rooms ("Rooms", "No events for", "Order"): every model of
// the reference schema, written through walcast.set_context, reaches exactly the rooms of the
// reference schema with its full event payload; tenant isolation; nothing for no context, skip_emit,
// rollback, untracked or unrouted tables, TRUNCATE, malformed context (each counted in
// /metrics); 1,000 transactions from 4 concurrent writers arrive in commit order.
//
// Expected eventId/lsn/xid/committedAt come from an independent capture of the same WAL (a
// second slot read with pg_recvlogical), not from the daemon.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  DB, dtest, startAppCluster, startDaemon, token, IoClient, RawClient, Capture, closeAllClients, killAllDaemons,
  waitUntil, micros, lit, compareEventIds, sleep,
} from './lib/daemon.mjs';

const SECRET = 'walcast-rooms-test-secret-32-bytes-long';

// Payload columns of examples/walcast.toml, per table.
const MODELS = {
  Task: ['task', ['id', 'projectId', 'title', 'status', 'assigneeId', 'position', 'estimate', 'createdAt']],
  Comment: ['comment', ['id', 'taskId', 'authorId', 'body']],
  TimeEntry: ['timeEntry', ['id', 'taskId', 'userId', 'minutes']],
  File: ['file', ['id', 'tenantId', 'projectId', 'userId', 'name']],
  Note: ['note', ['id', 'tenantId', 'projectId', 'userId', 'categoryId', 'title', 'body']],
  Notification: ['notification', ['id', 'tenantId', 'userId', 'kind', 'message', 'readAt']],
  NoteCategory: ['noteCategory', ['id', 'tenantId', 'name']],
  Project: ['project', ['id', 'tenantId', 'name']],
  Invitation: ['invitation', ['id', 'tenantId', 'email', 'invitedById']],
  Membership: ['membership', ['id', 'tenantId', 'userId', 'role']],
};

// Observers: each sees a distinct set of rooms, so the set of clients an event reached names
// the rooms it was sent to. project:p1 -> P1, R1; project:p2 -> P2; tenant:acme -> A, P1, P2,
// R1; user:u1 -> U1; user:u2 -> U2; tenant:evil and project:pe -> E.
const OBSERVERS = {
  A: { sub: 'a-watch', tenantId: 'acme', join: [] },
  P1: { sub: 'p1-watch', tenantId: 'acme', join: ['p1'] },
  P2: { sub: 'p2-watch', tenantId: 'acme', join: ['p2'] },
  U1: { sub: 'u1', tenantId: 'solo', join: [] },
  U2: { sub: 'u2', tenantId: 'solo', join: [] },
  E: { sub: 'eve', tenantId: 'evil', join: ['pe'] },
};
const roomsOf = (o) => [`user:${o.sub}`, `tenant:${o.tenantId}`, ...o.join.map((p) => `project:${p}`)];

let cluster;
let daemon;
let capture;
const clients = {};   // name -> IoClient
let raw;              // raw ws client in project:p1 (checks the bytes)
const specs = [];     // expected events in commit order: {table, id, op, rooms, ctx}
let fenceNo = 0;

const ctxSql = (actor, project, tenant, extra = '') =>
  `SELECT walcast.set_context(${lit(actor)}, ${lit(project)}, ${lit(tenant)}${extra});`;
const ctx = (actor, project, tenant) => ({ actor, project, tenant });

function expect(table, id, op, rooms, context) {
  specs.push({ table, id, op, rooms, ctx: context });
}

const sql = (text) => cluster.psql(text, { db: DB });

// A transaction reaching every observer; resolves once each has its last fence event.
async function fence() {
  const k = ++fenceNo;
  const c = ctx('fence', null, 'acme');
  await sql(`BEGIN; ${ctxSql('fence', null, 'acme')}
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('fence-${k}-acme', 'acme', 'fence');
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('fence-${k}-u1', 'acme', 'u1', 'fence', 'f');
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('fence-${k}-u2', 'acme', 'u2', 'fence', 'f');
COMMIT;
BEGIN; ${ctxSql('fence', 'pe', 'evil')}
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('fence-${k}-evil', 'evil', 'fence');
INSERT INTO "Task" (id, "projectId", title) VALUES ('fence-${k}-pe', 'pe', 'fence');
COMMIT;`);
  expect('NoteCategory', `fence-${k}-acme`, 'created', ['tenant:acme'], c);
  expect('Notification', `fence-${k}-u1`, 'created', ['user:u1'], c);
  expect('Notification', `fence-${k}-u2`, 'created', ['user:u2'], c);
  const ce = ctx('fence', 'pe', 'evil');
  expect('NoteCategory', `fence-${k}-evil`, 'created', ['tenant:evil'], ce);
  expect('Task', `fence-${k}-pe`, 'created', ['project:pe'], ce);
  const last = { A: 'acme', P1: 'acme', P2: 'acme', U1: 'u1', U2: 'u2', E: 'pe' };
  await Promise.all(Object.entries(last).map(([name, which]) => clients[name].waitEvent(
    (e) => e.payload?.id === `fence-${k}-${which}`, { timeoutMs: 20_000, what: `fence ${k}` })));
  await waitUntil(() => raw.events().some((e) => e.payload?.id === `fence-${k}-acme`),
    { timeoutMs: 20_000, what: `raw client: fence ${k}` });
}

// The event payload of every spec, from the capture.
async function expectedEvents() {
  await capture.read();
  const used = new Map();
  const index = new Map();
  return specs.map((s) => {
    const action = { created: 'I', updated: 'U', deleted: 'D' }[s.op];
    const key = `${s.table}|${s.id}|${action}`;
    const n = used.get(key) ?? 0;
    used.set(key, n + 1);
    const found = capture.findAll(s.table, s.id, action)[n];
    assert.ok(found, `capture has no ${action} #${n + 1} of ${s.table} ${s.id}`);
    const { txn, change } = found;
    const i = index.get(txn) ?? 0;
    index.set(txn, i + 1);
    const [model, cols] = MODELS[s.table];
    const row = change.row;
    return {
      name: `${model}:${s.op}`,
      rooms: s.rooms,
      payload: {
        model,
        operation: s.op,
        id: row.id,
        actorUserId: s.ctx.actor,
        tenantId: 'tenantId' in row ? row.tenantId : (s.ctx.tenant ?? null),
        projectId: 'projectId' in row ? row.projectId : (s.ctx.project ?? null),
        eventId: `${txn.end}:${i}`,
        lsn: txn.end,
        xid: txn.xid,
        committedAt: txn.timestamp,
        data: Object.fromEntries(cols.filter((c) => c in row).map((c) => [c, row[c]])),
      },
    };
  });
}

// committedAt: an ISO instant in Z; compared as microseconds.
function normalize(e, where) {
  const at = e.payload?.committedAt;
  assert.match(String(at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/, `${where}: committedAt ${at}`);
  return { name: e.name, payload: { ...e.payload, committedAt: String(micros(at)) } };
}

// Every observer received exactly the events whose rooms it is in, in commit order.
async function checkObservers() {
  const expected = await expectedEvents();
  for (const [name, o] of Object.entries(OBSERVERS)) {
    const rooms = roomsOf(o);
    const want = expected.filter((e) => e.rooms.some((r) => rooms.includes(r)))
      .map((e) => ({ name: e.name, payload: { ...e.payload, committedAt: String(micros(e.payload.committedAt)) } }));
    const c = clients[name];
    for (const e of c.events) {
      assert.equal(e.argc, 2, `${name}: ${e.name} has ${e.argc} arguments (payload, offset)`);
      assert.equal(e.offset, e.payload.eventId, `${name}: ${e.name}: the offset is the eventId`);
    }
    const got = c.events.map((e, i) => normalize(e, `${name} event ${i}`));
    for (let i = 0; i < Math.max(got.length, want.length); i++) {
      assert.deepStrictEqual(got[i], want[i],
        `observer ${name} (rooms ${rooms.join(', ')}), event ${i}: got ${got.length} events, want ${want.length}`);
    }
    assert.equal(c.disconnects.length, 0, `${name} was disconnected: ${JSON.stringify(c.disconnects)}`);
  }
  // The raw client in project:p1 sees the same as P1 minus nothing (same rooms but user).
  const rawWant = expected.filter((e) => e.rooms.some((r) => ['tenant:acme', 'project:p1', 'user:raw-p1'].includes(r)))
    .map((e) => e.payload.eventId);
  assert.deepEqual(raw.events().map((e) => e.payload.eventId), rawWant, 'raw client in project:p1: eventIds');
  return expected;
}

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'Apollo'), ('p2', 'acme', 'Borealis'),
  ('pe', 'evil', 'Evil plans'), ('pord', 'acme', 'Ordering');` });
  capture = await new Capture(cluster, { slot: 'audit' }).create();
  daemon = await startDaemon({ cluster, secret: SECRET, name: 'rooms' });
  for (const [name, o] of Object.entries(OBSERVERS)) {
    clients[name] = await IoClient.connect(daemon.url, token(SECRET, o), { label: name });
    for (const p of o.join) {
      assert.deepEqual(await clients[name].join(p), { ok: true }, `${name} joins ${p}`);
    }
  }
  raw = await RawClient.open(daemon.wsUrl, { label: 'raw-p1' });
  assert.match(await raw.connect({ token: token(SECRET, { sub: 'raw-p1', tenantId: 'acme' }) }), /^40\{/);
  assert.deepEqual(await raw.emitWithAck('join-project', 'p1'), [{ ok: true }]);
});

after(async () => {
  closeAllClients();
  await daemon?.terminate().catch(() => daemon?.kill9());
  await killAllDaemons();
  await cluster?.stop();
});

dtest('join-project: acme member allowed, evil refused; unknown events get an error ack', async () => {
  const E = clients.E;
  assert.deepEqual(await E.join('p1'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await E.join('p2'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await E.join('pord'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await E.ack('no-such-event', 1), { ok: false, error: 'unknown event' });
});

dtest('every model reaches exactly the rooms of its config with the full event payload', async () => {
  const u1p1 = ctx('u1', 'p1', 'acme');
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Task" (id, "projectId", title, position, estimate) VALUES ('t1', 'p1', 'First', 9007199254740993, 12345678.90);
UPDATE "Task" SET status = 'doing', "assigneeId" = 'u2' WHERE id = 't1';
COMMIT;`);
  expect('Task', 't1', 'created', ['project:p1'], u1p1);
  expect('Task', 't1', 'updated', ['project:p1'], u1p1);

  const u2p2 = ctx('u2', 'p2', 'acme');
  await sql(`BEGIN; ${ctxSql('u2', 'p2', 'acme')}
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c1', 't1', 'u2', 'hello');
INSERT INTO "TimeEntry" (id, "taskId", "userId", minutes) VALUES ('te1', 't1', 'u2', 30);
UPDATE "Comment" SET body = 'hello, edited' WHERE id = 'c1';
DELETE FROM "TimeEntry" WHERE id = 'te1';
COMMIT;`);
  expect('Comment', 'c1', 'created', ['project:p2'], u2p2);
  expect('TimeEntry', 'te1', 'created', ['project:p2'], u2p2);
  expect('Comment', 'c1', 'updated', ['project:p2'], u2p2);
  expect('TimeEntry', 'te1', 'deleted', ['project:p2'], u2p2);

  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "File" (id, "tenantId", "projectId", "userId", name, "storageKey") VALUES ('f1', 'acme', 'p1', 'u1', 'spec.pdf', 'store/secret-key-f1');
INSERT INTO "Note" (id, "tenantId", "projectId", "userId", title, body) VALUES ('n1', 'acme', 'p1', 'u1', 'Meeting', 'notes');
COMMIT;`);
  expect('File', 'f1', 'created', ['project:p1'], u1p1);
  expect('Note', 'n1', 'created', ['project:p1'], u1p1);

  // Personal: no projectId in the row or the context -> user:<userId>.
  const u2 = ctx('u2', null, 'acme');
  await sql(`BEGIN; ${ctxSql('u2', null, 'acme')}
INSERT INTO "File" (id, "tenantId", "projectId", "userId", name, "storageKey") VALUES ('f2', 'acme', NULL, 'u2', 'private.txt', 'store/secret-key-f2');
INSERT INTO "Note" (id, "tenantId", "projectId", "userId", title) VALUES ('n2', 'acme', NULL, 'u2', 'Diary');
UPDATE "Note" SET title = 'Diary, day 2', body = 'more' WHERE id = 'n2';
DELETE FROM "Note" WHERE id = 'n2';
DELETE FROM "File" WHERE id = 'f2';
COMMIT;`);
  expect('File', 'f2', 'created', ['user:u2'], u2);
  expect('Note', 'n2', 'created', ['user:u2'], u2);
  expect('Note', 'n2', 'updated', ['user:u2'], u2);
  expect('Note', 'n2', 'deleted', ['user:u2'], u2);
  expect('File', 'f2', 'deleted', ['user:u2'], u2);

  const u1 = ctx('u1', null, 'acme');
  await sql(`BEGIN; ${ctxSql('u1', null, 'acme')}
INSERT INTO "File" (id, "tenantId", "projectId", "userId", name, "storageKey") VALUES ('f3', 'acme', NULL, 'u1', 'mine.txt', 'store/secret-key-f3');
COMMIT;`);
  expect('File', 'f3', 'created', ['user:u1'], u1);

  // Notification: the recipient only (not the actor, not the project).
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('nt1', 'acme', 'u2', 'mention', 'hi @u2');
UPDATE "Notification" SET "readAt" = '2026-01-02 03:04:05.123456+00' WHERE id = 'nt1';
COMMIT;`);
  expect('Notification', 'nt1', 'created', ['user:u2'], u1p1);
  expect('Notification', 'nt1', 'updated', ['user:u2'], u1p1);

  // Tenant-wide models.
  await sql(`BEGIN; ${ctxSql('u1', null, 'acme')}
INSERT INTO "NoteCategory" (id, "tenantId", name) VALUES ('cat1', 'acme', 'General');
INSERT INTO "Project" (id, "tenantId", name) VALUES ('p9', 'acme', 'Nine');
INSERT INTO "Invitation" (id, "tenantId", email, "invitedById", token) VALUES ('i1', 'acme', 'new@example.com', 'u1', 'sekret-invitation-token');
INSERT INTO "Membership" (id, "tenantId", "userId", role) VALUES ('m1', 'acme', 'u2', 'member');
UPDATE "Membership" SET role = 'admin' WHERE id = 'm1';
DELETE FROM "Invitation" WHERE id = 'i1';
UPDATE "Project" SET name = 'Nine, renamed' WHERE id = 'p9';
DELETE FROM "NoteCategory" WHERE id = 'cat1';
COMMIT;`);
  for (const [table, id, op] of [['NoteCategory', 'cat1', 'created'], ['Project', 'p9', 'created'],
    ['Invitation', 'i1', 'created'], ['Membership', 'm1', 'created'], ['Membership', 'm1', 'updated'],
    ['Invitation', 'i1', 'deleted'], ['Project', 'p9', 'updated'], ['NoteCategory', 'cat1', 'deleted']]) {
    expect(table, id, op, ['tenant:acme'], u1);
  }

  // The row's projectId wins over the context's: t1 (p1) deleted under a p2 context.
  const u3p2 = ctx('u3', 'p2', 'acme');
  await sql(`BEGIN; ${ctxSql('u3', 'p2', 'acme')}
INSERT INTO "Task" (id, "projectId", title, estimate) VALUES ('t2', 'p2', 'Second', 0.5);
DELETE FROM "Task" WHERE id = 't1';
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c2', 't2', 'u3', 'on t2');
COMMIT;`);
  expect('Task', 't2', 'created', ['project:p2'], u3p2);
  expect('Task', 't1', 'deleted', ['project:p1'], u3p2);
  expect('Comment', 'c2', 'created', ['project:p2'], u3p2);

  // A session context over two transactions (is_local => false).
  await sql(`${ctxSql('u4', 'p1', 'acme', ', is_local => false')}
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c3', 't2', 'u4', 'session 1');
INSERT INTO "TimeEntry" (id, "taskId", "userId", minutes) VALUES ('te2', 't2', 'u4', 15);`);
  expect('Comment', 'c3', 'created', ['project:p1'], ctx('u4', 'p1', 'acme'));
  expect('TimeEntry', 'te2', 'created', ['project:p1'], ctx('u4', 'p1', 'acme'));

  await fence();
  const expected = await checkObservers();

  // Bytes on the wire: 42["name",{...}], int8/numeric digits kept, no secrets anywhere.
  const t1Frames = raw.texts().filter((t) => t.includes('"id":"t1"'));
  assert.equal(t1Frames.length, 3, 'raw client: t1 created, updated, deleted');
  for (const t of t1Frames) {
    assert.match(t, /^42\["task:(created|updated|deleted)",\{/);
    assert.ok(t.includes('"position":9007199254740993'), `int8 digits kept: ${t}`);
    assert.ok(t.includes('"estimate":12345678.90'), `numeric digits kept: ${t}`);
  }
  const everything = JSON.stringify(Object.values(clients).map((c) => c.events)) + raw.texts().join('\n');
  assert.ok(!everything.includes('sekret'), 'Invitation.token leaked');
  assert.ok(!everything.includes('secret-key'), 'File.storageKey leaked');
  assert.equal(expected.length, 34, '29 events written + 5 of the fence');
});

dtest('no events for: no context, skip_emit, rollback, untracked/unrouted tables, TRUNCATE; drops counted', async () => {
  const m0 = await daemon.metrics();
  const specsBefore = specs.length;

  // No context at all, and a non-transactional message (never a context).
  await sql(`BEGIN;
INSERT INTO "Task" (id, "projectId", title) VALUES ('nc1', 'p1', 'no context');
INSERT INTO "Note" (id, "tenantId", "projectId", "userId", title) VALUES ('nc1', 'acme', 'p1', 'u1', 'no context');
COMMIT;
SELECT pg_logical_emit_message(false, 'walcast', '{"actorUserId":"ghost","projectId":"p1","tenantId":"acme"}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('nc2', 'p1', 'after a non-transactional message');`);

  // skip_emit later in the transaction silences all of it.
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Task" (id, "projectId", title) VALUES ('sk1', 'p1', 'before skip');
${ctxSql('u1', 'p1', 'acme', ', skip_emit => true')}
INSERT INTO "Task" (id, "projectId", title) VALUES ('sk2', 'p1', 'after skip');
COMMIT;`);

  // Rolled back.
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Task" (id, "projectId", title) VALUES ('rb1', 'p1', 'rolled back');
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('rb1', 'acme', 'u2', 'x', 'rolled back');
ROLLBACK;`);

  // Tables not in the routing config (Widget, User) next to a routed one, and alone under a
  // context written directly.
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Task" (id, "projectId", title) VALUES ('tw1', 'p1', 'with a widget');
INSERT INTO "Widget" (id, name) VALUES ('w1', 'gear');
INSERT INTO "User" (id, email, "passwordHash") VALUES ('usr1', 'x@example.com', 'sekret-hash');
COMMIT;
BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', '{"actorUserId":"u1","projectId":"p1","tenantId":"acme"}');
INSERT INTO "Widget" (id, name) VALUES ('w2', 'alone');
COMMIT;`);
  expect('Task', 'tw1', 'created', ['project:p1'], ctx('u1', 'p1', 'acme'));

  // A routed table without the trigger: set_context writes no message -> no context.
  await sql(`SELECT walcast.untrack('"Membership"');
BEGIN; ${ctxSql('u1', null, 'acme')}
INSERT INTO "Membership" (id, "tenantId", "userId", role) VALUES ('m-untracked', 'acme', 'u9', 'member');
COMMIT;
SELECT walcast.track('"Membership"');`);

  // TRUNCATE (the insert before it in the same transaction still emits).
  await sql(`BEGIN; ${ctxSql('u1', 'p1', 'acme')}
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('ntr', 'acme', 'u2', 'x', 'before truncate');
TRUNCATE "Notification";
COMMIT;`);
  expect('Notification', 'ntr', 'created', ['user:u2'], ctx('u1', 'p1', 'acme'));

  // Room unresolved: Comment under a context without projectId.
  await sql(`BEGIN; ${ctxSql('u1', null, 'acme')}
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('cu1', 't2', 'u1', 'no project');
COMMIT;`);

  await fence();
  await checkObservers();
  const m1 = await daemon.metrics();
  const delta = (key) => Number(m1.get(key)) - Number(m0.get(key));
  const drops = (reason) => delta(`walcast_dropped_changes_total{reason="${reason}"}`);
  assert.equal(drops('no_context'), 4, 'no_context: nc1 Task, nc1 Note, nc2, m-untracked');
  assert.equal(drops('suppressed'), 2, 'suppressed: sk1, sk2');
  assert.equal(drops('not_routed'), 3, 'not_routed: w1, usr1, w2');
  assert.equal(drops('truncate'), 1, 'truncate: one TRUNCATE of one table');
  assert.equal(drops('room_unresolved'), 1, 'room_unresolved: cu1');
  assert.equal(delta('walcast_events_total'), specs.length - specsBefore, 'walcast_events_total: tw1, ntr and the fence');

  // A malformed context (not an object with a string actorUserId) silences its transaction.
  await sql(`BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', '{"projectId":"p1"}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('mf1', 'p1', 'malformed');
COMMIT;
BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', 'not json at all');
INSERT INTO "Task" (id, "projectId", title) VALUES ('mf2', 'p1', 'malformed');
COMMIT;
BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', '{"actorUserId":42,"projectId":"p1"}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('mf3', 'p1', 'malformed');
COMMIT;`);
  await fence();
  await checkObservers();
  assert.ok(daemon.running, 'the daemon survived malformed contexts');
});

dtest('leave-project: no more events of that project', async () => {
  const L = await IoClient.connect(daemon.url, token(SECRET, { sub: 'leaver', tenantId: 'acme' }), { label: 'leaver' });
  try {
    assert.deepEqual(await L.join('p2'), { ok: true });
    const c = ctx('u1', 'p2', 'acme');
    await sql(`BEGIN; ${ctxSql('u1', 'p2', 'acme')} INSERT INTO "Task" (id, "projectId", title) VALUES ('lv1', 'p2', 'seen'); COMMIT;`);
    expect('Task', 'lv1', 'created', ['project:p2'], c);
    await L.waitEvent((e) => e.payload?.id === 'lv1', { what: 'lv1' });
    assert.deepEqual(await L.leave('p2'), { ok: true });
    await sql(`BEGIN; ${ctxSql('u1', 'p2', 'acme')} INSERT INTO "Task" (id, "projectId", title) VALUES ('lv2', 'p2', 'not seen'); COMMIT;`);
    expect('Task', 'lv2', 'created', ['project:p2'], c);
    await fence();
    await checkObservers();
    assert.deepEqual(L.events.filter((e) => e.name.startsWith('task:')).map((e) => e.payload.id), ['lv1']);
  } finally {
    L.close();
  }
});

dtest('order: 1,000 transactions from 4 concurrent writers arrive in commit order', async () => {
  const O = await IoClient.connect(daemon.url, token(SECRET, { sub: 'o-watch', tenantId: 'acme' }), { label: 'order' });
  try {
    assert.deepEqual(await O.join('pord'), { ok: true });
    const writers = [1, 2, 3, 4];
    const perWriter = 250;
    const script = (w) => {
      const parts = [];
      for (let i = 1; i <= perWriter; i++) {
        parts.push(`BEGIN; ${ctxSql(`w${w}`, 'pord', 'acme')}
INSERT INTO "Task" (id, "projectId", title, position) VALUES ('o${w}-${i}', 'pord', 'writer ${w} txn ${i}', ${i});
UPDATE "Task" SET status = 'doing' WHERE id = 'o${w}-${i}';
COMMIT;`);
      }
      return parts.join('\n');
    };
    const started = Date.now();
    await Promise.all(writers.map((w) => cluster.psql(script(w), { db: DB, timeoutMs: 120_000 })));
    const total = writers.length * perWriter * 2;
    await waitUntil(() => O.named('task:').length >= total,
      { timeoutMs: 90_000, what: `${total} order events (have ${O.named('task:').length})` });
    await sleep(300);   // anything extra (duplicates) would arrive now

    await capture.read();
    const txns = capture.parsed.txns.filter((t) => t.changes.some((c) => c.table === 'Task' && c.row?.projectId === 'pord'));
    assert.equal(txns.length, writers.length * perWriter, 'committed order transactions in the capture');
    const expected = [];
    for (const t of txns) {
      const id = t.changes[0].row.id;
      expected.push(`task:created ${id} ${t.end}:0`, `task:updated ${id} ${t.end}:1`);
    }
    const got = O.events.map((e) => `${e.name} ${e.payload?.id} ${e.payload?.eventId}`);
    for (let i = 0; i < Math.max(got.length, expected.length); i++) {
      if (got[i] !== expected[i]) {
        assert.fail(`order event ${i}: got ${got[i]}, want ${expected[i]} (${got.length} received, ` +
          `${expected.length} committed)\nreceived around it: ${got.slice(Math.max(0, i - 3), i + 4).join(' | ')}`);
      }
    }
    assert.equal(got.length, expected.length);
    for (let i = 1; i < O.events.length; i++) {
      assert.equal(compareEventIds(O.events[i - 1].payload.eventId, O.events[i].payload.eventId), -1,
        `eventIds strictly increase at ${i}`);
    }
    // The writers really interleaved (otherwise this test would not test much).
    let switches = 0;
    for (let i = 1; i < txns.length; i++) {
      if (txns[i].changes[0].row.id.split('-')[0] !== txns[i - 1].changes[0].row.id.split('-')[0]) switches++;
    }
    assert.ok(switches >= 10, `writers interleaved only ${switches} times in ${Date.now() - started} ms`);
    assert.equal(O.disconnects.length, 0);
  } finally {
    O.close();
  }
});

dtest('tenant isolation over the whole test: evil received no acme event and stayed connected', async () => {
  await fence();
  await checkObservers();
  const E = clients.E;
  assert.ok(E.socket.connected);
  const acmeProjects = new Set(['p1', 'p2', 'p9', 'pord']);
  for (const e of E.events) {
    assert.notEqual(e.payload.tenantId, 'acme', `evil received ${e.name} ${e.payload.id} of tenant acme`);
    assert.notEqual(e.payload.data?.tenantId, 'acme', `evil received ${e.name} ${e.payload.id} with acme data`);
    assert.ok(!acmeProjects.has(e.payload.projectId), `evil received ${e.name} ${e.payload.id} of an acme project`);
  }
  assert.deepEqual([...new Set(E.events.map((e) => e.payload.tenantId))], ['evil']);
  assert.equal(E.events.length, fenceNo * 2, 'evil received exactly its two fence events per fence');
});
