// End to end through `walcast replay`: a real PostgreSQL 15 + wal2json, sql/walcast.sql's
// trigger writing the emit context, writes made by an unprivileged role, the stream recorded
// with pg_recvlogical, then the exact events (and, with --explain, the reasons) the binary
// derives from it with examples/walcast.toml. Run by ctest with WALCAST_BIN and
// WALCAST_SOURCE_DIR; `node --test tests/integration/replay.test.mjs` works from the repo root.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { micros, parseCapture } from './lib/capture.mjs';
import { startCluster, lit } from './lib/pg.mjs';

const SOURCE_DIR = process.env.WALCAST_SOURCE_DIR
  ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WALCAST_BIN = process.env.WALCAST_BIN ?? join(SOURCE_DIR, 'build', 'walcast');
const CONFIG = join(SOURCE_DIR, 'examples', 'walcast.toml');
const DB = 'app';
const SLOT = 'walcast_replay_test';

const ROUTED_TABLES = ['Task', 'Comment', 'TimeEntry', 'File', 'Note', 'Notification',
  'NoteCategory', 'Project', 'Invitation', 'Membership'];

// ---------------------------------------------------------------------------------------
// JSON with exact numbers: integers that fit a double exactly stay JS numbers; any other
// number (fraction, exponent, beyond 2^53) becomes a Num holding its source text, so
// "12345678.90" and 9007199254740993 are compared digit for digit.

class Num {
  constructor(raw) { this.raw = raw; }
}
const num = (raw) => new Num(String(raw));

function parseExactJson(text) {
  let i = 0;
  const fail = (what) => { throw new SyntaxError(`${what} at ${i} in ${text.slice(0, 200)}`); };
  const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
  const value = () => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const obj = {};
      ws();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected key');
        const k = string();
        ws();
        if (text[i++] !== ':') fail('expected :');
        obj[k] = value();
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail('expected , or }');
      }
    }
    if (ch === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail('expected , or ]');
      }
    }
    if (ch === '"') return string();
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('null', i)) { i += 4; return null; }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail('unexpected character');
    i += m[0].length;
    const n = Number(m[0]);
    return (!m[2] && !m[3] && Number.isSafeInteger(n)) ? n : new Num(m[0]);
  };
  const string = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

// ---------------------------------------------------------------------------------------
// The scenarios, each run in its own psql session as the unprivileged role "app". Ids are
// unique across scenarios so each row names its transaction in the capture.

const SCENARIOS = [
  ['local context: insert + update, digit-exact numbers', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title, position, estimate)
  VALUES ('t1', 'p1', 'First', 9007199254740993, 12345678.90);
UPDATE "Task" SET status = 'doing' WHERE id = 't1';
COMMIT;`],

  ['delete under a local context', `
BEGIN;
SELECT walcast.set_context('u2', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title, position) VALUES ('t2', 'p1', 'Second', 2);
DELETE FROM "Task" WHERE id = 't2';
COMMIT;`],

  ['session context over two transactions, Comment/TimeEntry rooms from the context', `
SELECT walcast.set_context('u2', 'p2', 'acme', is_local => false);
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c1', 't1', 'u2', 'hello');
BEGIN;
INSERT INTO "TimeEntry" (id, "taskId", "userId", minutes) VALUES ('te1', 't1', 'u2', 30);
UPDATE "Comment" SET body = 'hello, edited' WHERE id = 'c1';
COMMIT;
SELECT walcast.clear_context();
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c2', 't1', 'u2', 'after clear');`],

  ['contexts A, B, A in one transaction', `
BEGIN;
SELECT walcast.set_context('u3', 'p3', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t3', 'p3', 'Three');
SELECT walcast.set_context('u4', 'p4', 'globex');
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c3', 't3', 'u4', 'from u4');
SELECT walcast.set_context('u3', 'p3', 'acme');
UPDATE "Task" SET title = 'Three, renamed' WHERE id = 't3';
COMMIT;`],

  ['skipEmit midway silences the whole transaction', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t4', 'p1', 'before skip');
SELECT walcast.set_context('u1', 'p1', 'acme', skip_emit => true);
INSERT INTO "Task" (id, "projectId", title) VALUES ('t5', 'p1', 'after skip');
COMMIT;`],

  ['rolled back transaction', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t6', 'p1', 'rolled back');
ROLLBACK;`],

  ['context inside a rolled back savepoint, with an outer context', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t7', 'p1', 'outer before');
SAVEPOINT s1;
SELECT walcast.set_context('u5', 'p5', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t8', 'p5', 'inner, rolled back');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO "Task" (id, "projectId", title) VALUES ('t9', 'p1', 'outer after');
COMMIT;`],

  ['context inside a rolled back savepoint, no outer context', `
BEGIN;
SAVEPOINT s1;
SELECT walcast.set_context('u5', 'p5', 'acme');
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c10', 't1', 'u5', 'inner, rolled back');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c11', 't1', 'u5', 'after rollback, no context');
COMMIT;`],

  ['untracked, unrouted table next to a routed one', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t10', 'p1', 'with a widget');
INSERT INTO "Widget" (id, name) VALUES ('w1', 'gear');
COMMIT;
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Widget" (id, name) VALUES ('w2', 'alone');
COMMIT;`],

  ['Invitation: token never in the payload', `
BEGIN;
SELECT walcast.set_context('u1', NULL, 'acme');
INSERT INTO "Invitation" (id, "tenantId", email, "invitedById", token)
  VALUES ('i1', 'acme', 'new@example.com', 'u1', 'sekret-token-value');
COMMIT;`],

  ['File with and without projectId', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "File" (id, "tenantId", "projectId", "userId", name, "storageKey")
  VALUES ('f1', 'acme', 'p1', 'u1', 'spec.pdf', 'store/f1');
SELECT walcast.set_context('u2', NULL, 'acme');
INSERT INTO "File" (id, "tenantId", "projectId", "userId", name, "storageKey")
  VALUES ('f2', 'acme', NULL, 'u2', 'private.txt', 'store/f2');
COMMIT;`],

  ['Notification then TRUNCATE', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Notification" (id, "tenantId", "userId", kind, message) VALUES ('n1', 'acme', 'u2', 'mention', 'hi @u2');
TRUNCATE "Notification";
COMMIT;`],

  ['no context at all; a non-transactional message never sets one', `
SELECT pg_logical_emit_message(false, 'walcast', '{"actorUserId":"ghost","projectId":"p1"}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t11', 'p1', 'no context');`],

  ['malformed context written directly', `
BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', '{"projectId":"p1"}');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t12', 'p1', 'malformed');
COMMIT;
BEGIN;
SELECT pg_logical_emit_message(true, 'walcast', '{"projectId":"p1"}');
SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('t13', 'p1', 'malformed, then valid');
COMMIT;`],

  ['room unresolved: Comment under a context without projectId', `
BEGIN;
SELECT walcast.set_context('u1', NULL, 'acme');
INSERT INTO "Comment" (id, "taskId", "authorId", body) VALUES ('c20', 't1', 'u1', 'no project');
COMMIT;`],

  ['50 single-row INSERT statements under one context', `
BEGIN;
SELECT walcast.set_context('u1', 'p1', 'acme');
DO $$
BEGIN
  FOR i IN 1..50 LOOP
    INSERT INTO "Task" (id, "projectId", title) VALUES ('b' || i, 'p1', 'bulk ' || i);
  END LOOP;
END
$$;
COMMIT;`],
];

// ---------------------------------------------------------------------------------------
// State shared by the tests: filled once in before().

let cluster;
let captureFile;
let capture;           // { txns: [...], nonTransactional: [...] } parsed from captureFile

function runProcess(cmd, args, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

function findChange(table, id, action) {
  for (const txn of capture.txns) {
    for (const ch of txn.changes) {
      if (ch.table === table && (!action || ch.action === action) && ch.action !== 'T' && ch.row.id === id) {
        return { txn, change: ch };
      }
    }
  }
  return null;
}

function txnOf(table, id) {
  const found = findChange(table, id);
  assert.ok(found, `no ${table} ${id} in the capture`);
  return found.txn;
}

before(async () => {
  const schema = join(SOURCE_DIR, 'tests', 'fixtures', 'app-schema.sql');

  cluster = await startCluster();
  await cluster.createDatabase(DB);
  await cluster.psql(readFileSync(schema, 'utf8'), { db: DB });
  // Twice: the install script must be idempotent.
  const walcastSql = readFileSync(join(SOURCE_DIR, 'sql', 'walcast.sql'), 'utf8');
  await cluster.psql(walcastSql, { db: DB });
  await cluster.psql(walcastSql, { db: DB });
  await cluster.psql(`
CREATE TABLE "Widget" (id text PRIMARY KEY, name text NOT NULL);
SELECT walcast.track(${lit(`"${ROUTED_TABLES[0]}"`)});  -- tracked twice below: track() is idempotent
${ROUTED_TABLES.map((t) => `SELECT walcast.track(${lit(`"${t}"`)});`).join('\n')}
CREATE ROLE app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT INSERT, UPDATE, DELETE, SELECT, TRUNCATE ON ${[...ROUTED_TABLES, 'Widget'].map((t) => `"${t}"`).join(', ')} TO app;
`, { db: DB });
  await cluster.createSlot(SLOT, { db: DB });

  captureFile = join(cluster.dir, 'capture.jsonl');
  const recorder = cluster.startRecvLogical({ slot: SLOT, file: captureFile, db: DB });
  try {
    for (const [name, sql] of SCENARIOS) {
      try {
        await cluster.psql(sql, { db: DB, user: 'app' });
      } catch (e) {
        e.message = `scenario "${name}": ${e.message}`;
        throw e;
      }
    }
  } finally {
    await recorder.stop();
  }
  capture = parseCapture(readFileSync(captureFile, 'utf8'));
  assert.equal(capture.abandoned, 0, 'a B inside a transaction');
  assert.equal(capture.open, false, 'the capture ends inside a transaction');
});

// Runs the binary on the capture (once per argument list).
const replays = new Map();
function runReplay(...extra) {
  const key = extra.join(' ');
  if (!replays.has(key)) {
    assert.ok(existsSync(WALCAST_BIN), `walcast binary not found at ${WALCAST_BIN} (set WALCAST_BIN)`);
    replays.set(key, runProcess(WALCAST_BIN, ['replay', '--config', CONFIG, '--input', captureFile, ...extra]));
  }
  return replays.get(key);
}

after(async () => {
  await cluster?.stop();
});

// ---------------------------------------------------------------------------------------

test('walcast.sql: set_context builds the documented JSON; contract errors', async () => {
  const ctx = await cluster.scalar(`SELECT walcast.set_context('u"1\\x', 'p1', NULL, true);`, { db: DB, user: 'app' });
  assert.equal(ctx, '{"actorUserId":"u\\"1\\\\x","projectId":"p1","tenantId":null,"skipEmit":true}');
  await assert.rejects(cluster.psql(`SELECT walcast.set_context(NULL);`, { db: DB, user: 'app' }),
    /actor_user_id must not be null/);
  // A batch job silencing its writes needs no actor.
  assert.equal(await cluster.scalar(`SELECT walcast.set_context(NULL, skip_emit => true);`, { db: DB, user: 'app' }),
    '{"actorUserId":null,"projectId":null,"tenantId":null,"skipEmit":true}');
  const roles = await cluster.scalar(`SELECT rolsuper FROM pg_roles WHERE rolname = 'app';`, { db: DB });
  assert.equal(roles, 'f', 'the writing role is not a superuser');
  const tracked = (await cluster.psql(`SELECT table_name FROM walcast.tracked ORDER BY 1;`, { db: DB }))
    .trim().split('\n');
  assert.deepEqual(tracked, [...ROUTED_TABLES].sort());
  // Untrack is idempotent and really detaches.
  await cluster.psql(`SELECT walcast.untrack('"Widget"'); SELECT walcast.track('"Widget"');
    SELECT walcast.untrack('"Widget"'); SELECT walcast.untrack('"Widget"');`, { db: DB });
  assert.equal(await cluster.scalar(`SELECT count(*) FROM walcast.tracked WHERE table_name = 'Widget';`, { db: DB }), '0');
});

test('the trigger writes one context message per transaction per distinct context', () => {
  const contexts = (txn) => txn.messages.filter((m) => m.prefix === 'walcast').map((m) => JSON.parse(m.content));

  // 50 INSERT statements under one context: one message, before the first row.
  const bulk = txnOf('Task', 'b1');
  assert.equal(bulk.changes.length, 50);
  assert.equal(contexts(bulk).length, 1, 'one M line for 50 single-row inserts');
  assert.equal(bulk.messages[0].index, 0, 'the context precedes the rows');

  // Insert + update under one context: one message.
  assert.equal(contexts(txnOf('Task', 't1')).length, 1);

  // A, B, A: three messages, with the exact JSON set_context builds.
  assert.deepEqual(contexts(txnOf('Task', 't3')), [
    { actorUserId: 'u3', projectId: 'p3', tenantId: 'acme', skipEmit: false },
    { actorUserId: 'u4', projectId: 'p4', tenantId: 'globex', skipEmit: false },
    { actorUserId: 'u3', projectId: 'p3', tenantId: 'acme', skipEmit: false },
  ]);

  // Session context: one message in each of its two transactions, none after clear_context().
  assert.equal(contexts(txnOf('Comment', 'c1')).length, 1);
  assert.equal(contexts(txnOf('TimeEntry', 'te1')).length, 1);
  assert.equal(contexts(txnOf('Comment', 'c2')).length, 0);

  // Savepoint rolled back: its message and row are gone; the outer context is not re-sent.
  assert.equal(findChange('Task', 't8'), null);
  assert.deepEqual(contexts(txnOf('Task', 't7')).map((c) => c.actorUserId), ['u1']);
  assert.equal(contexts(txnOf('Comment', 'c11')).length, 0);
  assert.equal(findChange('Comment', 'c10'), null);

  // Rolled back transaction: nothing at all. Untracked table alone: no message.
  assert.equal(findChange('Task', 't6'), null);
  assert.equal(contexts(txnOf('Widget', 'w2')).length, 0);

  // No context set: no message.
  assert.equal(contexts(txnOf('Task', 't11')).length, 0);

  // Never the same context twice in a row within a transaction, anywhere in the capture.
  for (const txn of capture.txns) {
    const c = txn.messages.filter((m) => m.prefix === 'walcast').map((m) => m.content);
    for (let i = 1; i < c.length; i++) assert.notEqual(c[i], c[i - 1], `xid ${txn.xid}: repeated context`);
  }

  // The one non-transactional message is outside every transaction.
  assert.equal(capture.nonTransactional.length, 1);
  assert.equal(capture.nonTransactional[0].xid, null);
});

test('replay prints exactly the expected events', async () => {
  const replay = await runReplay();
  assert.equal(replay.code, 0, `walcast replay exited ${replay.code}: ${replay.stderr}`);
  const lines = replay.stdout.split('\n').filter((l) => l !== '');
  const actual = lines.map((l) => parseExactJson(l));

  const expected = [];
  const perTxnIndex = new Map();
  // One expected event for the change of `table` row `id` (operation op) in its transaction.
  const ev = (table, id, op, { name, rooms, actor, tenant, project, data }) => {
    const action = { created: 'I', updated: 'U', deleted: 'D' }[op];
    const found = findChange(table, id, action);
    assert.ok(found, `no ${action} of ${table} ${id} in the capture`);
    const { txn } = found;
    const index = perTxnIndex.get(txn) ?? 0;
    perTxnIndex.set(txn, index + 1);
    expected.push({
      event: `${name}:${op}`,
      rooms,
      payload: {
        model: name,
        operation: op,
        id,
        actorUserId: actor,
        tenantId: tenant,
        projectId: project,
        eventId: `${txn.end}:${index}`,
        lsn: txn.end,
        xid: txn.xid,
        committedAt: txn.timestamp,   // compared as an instant below
        data,
      },
    });
  };
  const createdAt = (id) => {
    const found = findChange('Task', id, 'I');
    return found.change.row.createdAt;
  };
  const task = (id, projectId, title, extra = {}) => ({
    id, projectId, title, status: 'todo', assigneeId: null, position: null, estimate: null,
    createdAt: createdAt(id), ...extra,
  });

  const u1p1 = { actor: 'u1', tenant: 'acme', project: 'p1' };
  ev('Task', 't1', 'created', { name: 'task', rooms: ['project:p1'], ...u1p1,
    data: task('t1', 'p1', 'First', { position: num('9007199254740993'), estimate: num('12345678.90') }) });
  ev('Task', 't1', 'updated', { name: 'task', rooms: ['project:p1'], ...u1p1,
    data: task('t1', 'p1', 'First', { status: 'doing', position: num('9007199254740993'), estimate: num('12345678.90') }) });

  ev('Task', 't2', 'created', { name: 'task', rooms: ['project:p1'], actor: 'u2', tenant: 'acme', project: 'p1',
    data: task('t2', 'p1', 'Second', { position: 2 }) });
  ev('Task', 't2', 'deleted', { name: 'task', rooms: ['project:p1'], actor: 'u2', tenant: 'acme', project: 'p1',
    data: task('t2', 'p1', 'Second', { position: 2 }) });

  const u2p2 = { actor: 'u2', tenant: 'acme', project: 'p2' };
  ev('Comment', 'c1', 'created', { name: 'comment', rooms: ['project:p2'], ...u2p2,
    data: { id: 'c1', taskId: 't1', authorId: 'u2', body: 'hello' } });
  ev('TimeEntry', 'te1', 'created', { name: 'timeEntry', rooms: ['project:p2'], ...u2p2,
    data: { id: 'te1', taskId: 't1', userId: 'u2', minutes: 30 } });
  ev('Comment', 'c1', 'updated', { name: 'comment', rooms: ['project:p2'], ...u2p2,
    data: { id: 'c1', taskId: 't1', authorId: 'u2', body: 'hello, edited' } });
  // c2 (after clear_context): nothing.

  ev('Task', 't3', 'created', { name: 'task', rooms: ['project:p3'], actor: 'u3', tenant: 'acme', project: 'p3',
    data: task('t3', 'p3', 'Three') });
  ev('Comment', 'c3', 'created', { name: 'comment', rooms: ['project:p4'], actor: 'u4', tenant: 'globex', project: 'p4',
    data: { id: 'c3', taskId: 't3', authorId: 'u4', body: 'from u4' } });
  ev('Task', 't3', 'updated', { name: 'task', rooms: ['project:p3'], actor: 'u3', tenant: 'acme', project: 'p3',
    data: task('t3', 'p3', 'Three, renamed') });

  // t4/t5 skipped, t6 rolled back.
  ev('Task', 't7', 'created', { name: 'task', rooms: ['project:p1'], ...u1p1, data: task('t7', 'p1', 'outer before') });
  ev('Task', 't9', 'created', { name: 'task', rooms: ['project:p1'], ...u1p1, data: task('t9', 'p1', 'outer after') });
  // c11: no context.

  ev('Task', 't10', 'created', { name: 'task', rooms: ['project:p1'], ...u1p1, data: task('t10', 'p1', 'with a widget') });
  // w1, w2: not routed.

  ev('Invitation', 'i1', 'created', { name: 'invitation', rooms: ['tenant:acme'], actor: 'u1', tenant: 'acme', project: null,
    data: { id: 'i1', tenantId: 'acme', email: 'new@example.com', invitedById: 'u1' } });

  ev('File', 'f1', 'created', { name: 'file', rooms: ['project:p1'], actor: 'u1', tenant: 'acme', project: 'p1',
    data: { id: 'f1', tenantId: 'acme', projectId: 'p1', userId: 'u1', name: 'spec.pdf' } });
  ev('File', 'f2', 'created', { name: 'file', rooms: ['user:u2'], actor: 'u2', tenant: 'acme', project: null,
    data: { id: 'f2', tenantId: 'acme', projectId: null, userId: 'u2', name: 'private.txt' } });

  ev('Notification', 'n1', 'created', { name: 'notification', rooms: ['user:u2'], ...u1p1,
    data: { id: 'n1', tenantId: 'acme', userId: 'u2', kind: 'mention', message: 'hi @u2', readAt: null } });
  // TRUNCATE, t11 (no context), t12/t13 (malformed), c20 (room unresolved): nothing.

  for (let i = 1; i <= 50; i++) {
    ev('Task', `b${i}`, 'created', { name: 'task', rooms: ['project:p1'], ...u1p1, data: task(`b${i}`, 'p1', `bulk ${i}`) });
  }

  // committedAt: an ISO instant ending in Z, equal to the commit timestamp wal2json gave.
  for (const [i, a] of actual.entries()) {
    const at = a?.payload?.committedAt;
    assert.match(String(at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/, `event ${i}: committedAt ${at}`);
    const e = expected[i];
    if (e && micros(at) === micros(e.payload.committedAt)) e.payload.committedAt = at;
  }
  for (const [i, a] of actual.entries()) {
    assert.match(String(a?.payload?.eventId), /^[0-9A-F]+\/[0-9A-F]+:\d+$/, `event ${i}: eventId format`);
  }

  // Secrets never leave the database.
  assert.ok(!replay.stdout.includes('sekret'), 'Invitation.token leaked');
  assert.ok(!replay.stdout.includes('"token"'), 'a token field was emitted');
  // Digits kept exactly (also covered by the exact comparison below).
  assert.ok(replay.stdout.includes('"position":9007199254740993'), 'int8 above 2^53 kept exactly');
  assert.ok(replay.stdout.includes('"estimate":12345678.90'), 'numeric kept exactly');

  // Event by event, then the count: nothing else was emitted.
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    assert.deepStrictEqual(actual[i], expected[i], `event ${i} (of ${actual.length} printed, ${expected.length} expected)`);
  }
  assert.equal(actual.length, expected.length);

  // eventIds unique and ordered.
  const ids = actual.map((a) => a.payload.eventId);
  assert.equal(new Set(ids).size, ids.length, 'eventIds unique');
});

test('replay --explain gives each transaction its context and each change its fate', async () => {
  const explain = await runReplay('--explain');
  assert.equal(explain.code, 0, `walcast replay --explain exited ${explain.code}: ${explain.stderr}`);
  // Split into blocks, one per transaction header.
  const blocks = new Map();  // xid -> block text
  let current = null;
  for (const line of explain.stdout.split('\n')) {
    const h = /^transaction xid=(\d+) end=([0-9A-F]+\/[0-9A-F]+) committedAt=(\S+) skip=(true|false)\b/.exec(line);
    if (h) {
      current = { xid: Number(h[1]), end: h[2], committedAt: h[3], skip: h[4] === 'true', lines: [] };
      assert.ok(!blocks.has(current.xid), `xid ${current.xid} explained twice`);
      blocks.set(current.xid, current);
    } else if (line.trim() !== '') {
      assert.ok(current, `explain output before any transaction header: ${line}`);
      current.lines.push(line);
    }
  }
  // Every committed transaction of the capture is explained, with its end LSN.
  assert.deepEqual([...blocks.keys()], capture.txns.map((t) => t.xid));
  for (const t of capture.txns) {
    const b = blocks.get(t.xid);
    assert.equal(b.end, t.end, `xid ${t.xid}: end LSN`);
    assert.match(b.committedAt, /Z$/);
    assert.equal(micros(b.committedAt), micros(t.timestamp), `xid ${t.xid}: committedAt`);
  }

  const block = (table, id) => blocks.get(txnOf(table, id).xid);
  const text = (b) => b.lines.join('\n');
  const has = (table, id, re) => {
    const b = block(table, id);
    assert.match(text(b), re, `xid ${b.xid} (${table} ${id}):\n${text(b)}`);
  };
  const contextLines = (b) => b.lines.filter((l) => /^\s+context at [0-9A-F]+\/[0-9A-F]+: /.test(l));

  // Routed: event and rooms.
  has('Task', 't1', /^\s+I public\.Task id="t1": task:created -> project:p1$/m);
  has('Task', 't1', /^\s+U public\.Task id="t1": task:updated -> project:p1$/m);
  has('Task', 't2', /^\s+D public\.Task id="t2": task:deleted -> project:p1$/m);
  has('File', 'f2', /^\s+I public\.File id="f2": file:created -> user:u2$/m);
  has('Comment', 'c3', /^\s+I public\.Comment id="c3": comment:created -> project:p4$/m);
  assert.equal(block('Task', 't1').skip, false);
  assert.match(contextLines(block('Task', 't1'))[0],
    /: \{"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false\}$/);
  assert.equal(contextLines(block('Task', 't3')).length, 3, 'contexts A, B, A');

  // Why not.
  const skip = block('Task', 't4');
  assert.equal(skip.skip, true, 'skip=true on the skipped transaction');
  has('Task', 't4', /^\s+I public\.Task id="t4": no event: skipped/m);
  has('Task', 't5', /^\s+I public\.Task id="t5": no event: skipped/m);
  assert.equal(block('Task', 't3').skip, false);

  has('Comment', 'c2', /^\s+I public\.Comment id="c2": no event: no context/m);
  has('Comment', 'c11', /^\s+I public\.Comment id="c11": no event: no context/m);
  has('Task', 't11', /^\s+I public\.Task id="t11": no event: no context/m);
  assert.equal(contextLines(block('Task', 't11')).length, 0, 'a non-transactional message is no context');

  has('Widget', 'w1', /^\s+I public\.Widget\b[^:]*: no event: table not routed/m);
  has('Widget', 'w2', /^\s+I public\.Widget\b[^:]*: no event: (table not routed|no context)/m);

  const truncate = block('Notification', 'n1');
  assert.match(text(truncate), /^\s+I public\.Notification id="n1": notification:created -> user:u2$/m);
  assert.match(text(truncate), /^\s+T public\.Notification\b[^:]*: no event: TRUNCATE/m);

  has('Task', 't12', /^\s+I public\.Task id="t12": no event: malformed context/m);
  has('Task', 't13', /^\s+I public\.Task id="t13": no event: malformed context/m);

  has('Comment', 'c20', /^\s+I public\.Comment id="c20": no event: room unresolved/m);

  // The savepoint's rows never reached the stream, so they are not explained either.
  assert.ok(!/id="t8"|id="c10"|id="t6"/.test(explain.stdout), 'rolled back rows explained');
});
