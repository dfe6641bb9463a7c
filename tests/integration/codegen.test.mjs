// walcast codegen typescript --dsn against a real PostgreSQL 15 with the reference schema:
// column types, nullability and enum labels come from the catalog and type-check with the
// sample component; numbers_as_strings changes int8/numeric; a missing table or column is a
// clear error. Then the generated useSocket hook itself runs (transpiled, with a minimal
// hooks runtime, tests/codegen-ts/hook-runtime.mjs) against a real walcast: joins, events,
// a failing getToken retried, 'busy' answers retried, de-duplication, a recovered reconnect, a reconnect that is not recovered, a walcast:resync,
// leave and unmount.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  DB, dtest, killAllDaemons, lit, sleep, startAppCluster, startDaemon, token, waitUntil, work, writeConfig,
} from './lib/daemon.mjs';
import { codegen, PEDANTIC_FLAGS, readGenerated, requireToolchain, typecheck, workDir } from '../codegen-ts/typecheck.mjs';
import { loadHook, render } from '../codegen-ts/hook-runtime.mjs';

const SOURCE_DIR = process.env.WALCAST_SOURCE_DIR;
const WALCAST_BIN = process.env.WALCAST_BIN;
const EXAMPLE = join(SOURCE_DIR, 'examples', 'walcast.toml');
const SECRET = 'walcast-codegen-test-secret-of-32-bytes';

let cluster;
const dirs = [];
process.on('exit', () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function fresh() {
  const dir = workDir();
  dirs.push(dir);
  return dir;
}

function generate(config, dir = fresh()) {
  const r = codegen(WALCAST_BIN, ['typescript', '--config', config, '--dsn', cluster.dsn(DB), '--out', dir]);
  return { ...r, dir };
}

// examples/walcast.toml with `replace` applied to its text, as a file of its own.
function exampleWith(name, edit) {
  const file = join(work(), name);
  writeFileSync(file, edit(readFileSync(EXAMPLE, 'utf8')));
  return file;
}

// Type-level assertions compiled with the generated files: each line fails tsc when the
// generated type is not exactly the one given.
function typeAssertions(types, lines) {
  return `import type { ${types.join(', ')} } from './socket-events';
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function exact<T extends true>(): T | undefined { return undefined; }
${lines.map((l) => `exact<${l}>();`).join('\n')}
`;
}

// A table beyond the reference schema, for the types it lacks: an enum, an array, jsonb, a
// NOT NULL domain over an integer, float, and the default replica identity (primary key).
const SHAPE_SQL = `
CREATE TYPE "Mood" AS ENUM ('sad', 'fine', 'it''s great');
CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0);
CREATE TABLE "Shape" (id uuid PRIMARY KEY, mood "Mood" NOT NULL, moods "Mood"[], tags text[] NOT NULL,
  meta jsonb, size positive, ratio double precision NOT NULL, big bigint NOT NULL, flag boolean,
  raw bytea, "when" date);
`;
const SHAPE_MODEL = `
[[model]]
table = "public.Shape"
name = "shape"
rooms = ["tenant:{ctx.tenantId}"]
payload = ["id", "mood", "moods", "tags", "meta", "size", "ratio", "big", "flag", "raw", "when"]
`;

before(async () => {
  requireToolchain();
  cluster = await startAppCluster({
    setupSql: `INSERT INTO "Project" (id, "tenantId", name) SELECT 'p' || g, 'acme', 'P' || g FROM generate_series(1, 40) g;
${SHAPE_SQL}`,
  });
});

after(async () => {
  await killAllDaemons();
  await cluster?.stop();
});

dtest('--dsn: column types from the catalog type-check with the sample component', async () => {
  const config = exampleWith('with-shape.toml', (t) => t + SHAPE_MODEL);
  const { status, stderr, dir } = generate(config);
  assert.equal(status, 0, stderr);
  const events = readGenerated(dir)['socket-events.ts'].toString();
  assert.match(events, /^\/\/ Column types from the database catalog, int8 and numeric as numbers/m);
  // REPLICA IDENTITY FULL (the reference schema): every field is in every event.
  assert.match(events, /^ {2}\/\*\* text, not null \*\/\n {2}id: string;$/m);
  assert.match(events, /^ {2}\/\*\* text \*\/\n {2}assigneeId: string \| null;$/m);
  assert.match(events, /^ {2}\/\*\* bigint \*\/\n {2}position: number \| null;$/m);
  assert.match(events, /^ {2}\/\*\* numeric\(12,2\); NaN and ±Infinity arrive as null \*\/\n {2}estimate: number \| null;$/m);
  assert.match(events, /^ {2}\/\*\* timestamp with time zone, not null \*\/\n {2}createdAt: string;$/m);
  assert.match(events, /^ {2}minutes: number;$/m);
  assert.match(events, /^export type TaskId = string;$/m);
  // Shape: default identity, so only the key is sure to be there.
  assert.match(events, /^ {2}id: string;\n {2}\/\*\* "Mood", not null \*\/\n {2}mood\?: 'sad' \| 'fine' \| 'it\\'s great';$/m);
  assert.match(events, /^ {2}moods\?: string \| null;$/m);
  assert.match(events, /^ {2}\/\*\* text\[\], not null; as a PostgreSQL array literal, e\.g\. \{1,2\} \*\/\n {2}tags\?: string;$/m);
  assert.match(events, /^ {2}\/\*\* jsonb; the JSON text: JSON\.parse it \*\/\n {2}meta\?: string \| null;$/m);
  assert.match(events, /^ {2}\/\*\* positive, not null; a domain: its text form \*\/\n {2}size\?: string;$/m);
  assert.match(events, /^ {2}ratio\?: number \| null;$/m);
  assert.match(events, /^ {2}big\?: number;$/m);
  assert.match(events, /^ {2}flag\?: boolean \| null;$/m);
  assert.match(events, /^ {2}\/\*\* bytea; hex digits, without \\x \*\/\n {2}raw\?: string \| null;$/m);
  assert.match(events, /^ {2}when\?: string \| null;$/m);

  writeFileSync(join(dir, 'dsn-types.ts'), typeAssertions(['TaskData', 'TaskId', 'TimeEntryData', 'NotificationData', 'ShapeData', 'ShapeId'], [
    "Equal<TaskData['estimate'], number | null>",
    "Equal<TaskData['assigneeId'], string | null>",
    "Equal<TaskData['title'], string>",
    'Equal<TaskId, string>',
    "Equal<TimeEntryData['minutes'], number>",
    "Equal<NotificationData['readAt'], string | null>",
    "Equal<ShapeData['mood'], 'sad' | 'fine' | \"it's great\" | undefined>",
    "Equal<ShapeData['big'], number | undefined>",
    'Equal<ShapeId, string>',
  ]));
  const tsc = typecheck(dir, { extra: ['dsn-types.ts'] });
  assert.equal(tsc.status, 0, tsc.output);
  const strict = typecheck(dir, { extra: ['dsn-types.ts'], flags: PEDANTIC_FLAGS });
  assert.equal(strict.status, 0, strict.output);

  // Deterministic with the catalog too.
  const again = generate(config);
  assert.equal(again.status, 0, again.stderr);
  const [a, b] = [readGenerated(dir), readGenerated(again.dir)];
  for (const name of Object.keys(a)) assert.ok(a[name].equals(b[name]), `${name} differs between runs`);
});

dtest('--dsn with [events] numbers_as_strings = true: int8 and numeric are strings', async () => {
  const config = exampleWith('as-strings.toml', (t) => t.replace(/^numbers_as_strings = false$/m, 'numbers_as_strings = true'));
  const { status, stderr, dir } = generate(config);
  assert.equal(status, 0, stderr);
  const events = readGenerated(dir)['socket-events.ts'].toString();
  assert.match(events.replace(/\n\/\/ /g, ' '), /int8 and numeric as strings \(\[events\] numbers_as_strings = true\)/);
  assert.match(events, /^ {2}estimate: string \| null;$/m);
  assert.match(events, /^ {2}position: string \| null;$/m);
  assert.match(events, /^ {2}minutes: number;$/m);  // integer: always a number
  writeFileSync(join(dir, 'dsn-types.ts'), typeAssertions(['TaskData'], [
    "Equal<TaskData['estimate'], string | null>",
    "Equal<TaskData['position'], string | null>",
    "Equal<TaskData['assigneeId'], string | null>",
  ]));
  const tsc = typecheck(dir, { extra: ['dsn-types.ts'] });
  assert.equal(tsc.status, 0, tsc.output);
});

dtest('--dsn: a table or a column the database lacks is an error naming it', async () => {
  const missingTable = exampleWith('missing-table.toml', (t) => `${t}
[[model]]
table = "public.Sprint"
name = "sprint"
rooms = ["project:{projectId}"]
`);
  let r = generate(missingTable);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `walcast codegen: table public.Sprint (model "sprint") does not exist in database "app": ` +
    `create it, or remove its [[model]] from ${missingTable}\n`);

  const missingColumn = exampleWith('missing-column.toml',
    (t) => t.replace('"estimate", "createdAt"]', '"estimate", "dueAt", "createdAt"]'));
  r = generate(missingColumn);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `walcast codegen: ${missingColumn}: model "task" (public.Task): payload column "dueAt" ` +
    'is not a column of the table\n');

  r = codegen(WALCAST_BIN, ['typescript', '--config', EXAMPLE, '--dsn', `host=${cluster.host} port=${cluster.port} dbname=nosuchdb user=postgres`, '--out', fresh()]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^walcast codegen: cannot connect with --dsn: .*database "nosuchdb" does not exist/);
});

// ---- the hook at run time ---------------------------------------------------------------------

async function write(sql) {
  await cluster.psql(`BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme'); ${sql} COMMIT;`, { db: DB });
}
const insertTask = (id, project = 'p1') =>
  write(`INSERT INTO "Task" (id, "projectId", title, estimate) VALUES (${lit(id)}, ${lit(project)}, 'hook', 2.5);`);
const notify = (id, user) => write(`INSERT INTO "Notification" (id, "tenantId", "userId", kind, message)
  VALUES (${lit(id)}, 'acme', ${lit(user)}, 'test', 'hello');`);

// Terminates the slot's walsender and drops the slot before walcast can take it again.
async function dropSlotUnder(slot) {
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

dtest('the generated useSocket against walcast: joins, events once, reconnects, resync, leave, unmount',
  { timeout: 300_000 }, async () => {
    const { status, stderr, dir } = generate(EXAMPLE);
    assert.equal(status, 0, stderr);
    const { useSocket } = await loadHook(dir);

    const slot = 'codegen_hook';
    const daemon = await startDaemon({ cluster, secret: SECRET, slot, name: 'codegen', configSet: { create_slot: 'always' } });
    const configFile = daemon.configFile;
    const user = 'u-hook';
    const seen = { tasks: [], notifications: [], resyncs: [], tokens: 0, other: [] };
    const props = (extra = {}) => ({
      url: daemon.url,
      enabled: true,
      getToken: async () => {
        seen.tokens += 1;
        if (seen.tokens === 1) throw new Error('the token service is down');  // retried
        return token(SECRET, { sub: user, tenantId: 'acme' });
      },
      onTaskCreated: (event) => seen.tasks.push(event),
      onNotificationCreated: (event) => seen.notifications.push(event),
      onResync: (resync) => seen.resyncs.push(resync),
      ...extra,
    });
    const view = render(useSocket, props());
    const tasks = () => seen.tasks.map((e) => e.data.id);
    const waitTask = (id, what = id) => waitUntil(() => tasks().includes(id), { timeoutMs: 30_000, what: `task ${what}` });

    // Joins answered by walcast; a project the user may not see is refused and not kept.
    assert.deepEqual(await joinWithin(view.result.joinProjectRoom('p1')), { ok: true });
    assert.deepEqual(await joinWithin(view.result.joinProjectRoom('p-other')), { ok: false, error: 'forbidden' });
    await waitUntil(() => view.result.connected, { what: 'connected' });
    const socket = view.result.socket;
    assert.ok(socket, 'the socket is returned');
    assert.equal(seen.tokens, 2, 'a failed getToken is asked again');

    await insertTask('h1');
    await waitTask('h1');
    const first = seen.tasks[0];
    assert.equal(first.model, 'task');
    assert.equal(first.operation, 'created');
    assert.equal(first.data.estimate, 2.5);
    assert.equal(first.projectId, 'p1');

    // Many joins at once: walcast answers some 'busy' (16 checks in flight per connection);
    // the hook asks again until each has its real answer.
    const many = Array.from({ length: 39 }, (_, i) => `p${i + 2}`);
    const answers = await joinWithin(Promise.all(many.map((p) => view.result.joinProjectRoom(p))), 60_000);
    assert.deepEqual(answers, many.map(() => ({ ok: true })));
    assert.ok(await daemon.metric('walcast_project_joins_busy_total') > 0, 'some joins were answered busy');
    await insertTask('h-p40', 'p40');
    await waitTask('h-p40');
    for (const p of many) view.result.leaveProjectRoom(p);
    seen.tasks.splice(seen.tasks.findIndex((e) => e.data.id === 'h-p40'), 1);

    // The same eventId again (at-least-once delivery) reaches the app once.
    for (const listener of socket.listeners('task:created')) listener(first);
    await sleep(50);
    assert.deepEqual(tasks(), ['h1']);

    // New callbacks on a re-render: used at once, no reconnect.
    const renamed = [];
    view.rerender(props({ onTaskCreated: (event) => { renamed.push(event.data.id); seen.tasks.push(event); } }));
    await insertTask('h2');
    await waitTask('h2');
    assert.deepEqual(renamed, ['h2']);
    assert.equal(view.result.socket, socket, 'the same socket');
    assert.equal(seen.tokens, 2, 'no new connection');

    // A dropped transport: socket.io-client reconnects and the session is recovered; what was
    // committed meanwhile arrives once, nothing is re-joined and the app is not told to refetch.
    const sidBefore = socket.id;
    let tokensBefore = seen.tokens;
    socket.io.engine.close();
    await insertTask('h3');
    await waitTask('h3');
    await waitUntil(() => socket.connected, { what: 'reconnected' });
    assert.equal(socket.recovered, true, 'recovered');
    assert.equal(socket.id, sidBefore, 'same session');
    assert.ok(seen.tokens > tokensBefore, 'a fresh token for the reconnect');
    assert.deepEqual(seen.resyncs, []);

    // walcast restarted without its state: the reconnect is not recovered. The hook joins p1
    // again and then calls onResync(null), once.
    tokensBefore = seen.tokens;
    await daemon.kill9();
    const second = await startDaemon({ cluster, secret: SECRET, name: 'codegen-2', port: daemon.port, configFile });
    await waitUntil(() => seen.resyncs.length >= 1, { timeoutMs: 60_000, what: 'onResync after the restart' });
    assert.deepEqual(seen.resyncs, [null]);
    assert.equal(socket.recovered, false);
    await insertTask('h4');
    await waitTask('h4', 'h4 (p1 joined again)');
    assert.ok(seen.tokens > tokensBefore, 'a fresh token for the new session');

    // A discontinuity: walcast sends walcast:resync and closes; the reconnect is not recovered.
    // onResync is called once, with walcast's notice, after p1 was joined again: h5, written
    // as the app's refetch would start, must arrive (called on the notice itself, it is lost).
    await dropSlotUnder(slot);
    await waitUntil(() => seen.resyncs.length >= 2, { timeoutMs: 60_000, what: 'onResync after walcast:resync' });
    await insertTask('h5');
    await waitTask('h5', 'h5 (p1 joined again)');
    await sleep(500);
    assert.equal(seen.resyncs.length, 2, `one onResync for the episode: ${JSON.stringify(seen.resyncs)}`);
    assert.equal(seen.resyncs[1].reason, 'slot_missing');
    assert.match(seen.resyncs[1].lostAfter, /^[0-9A-F]+\/[0-9A-F]+$/);

    // Left: p1's events stop; the user's own room still delivers (and proves h6 is not late).
    view.result.leaveProjectRoom('p1');
    await insertTask('h6');
    await notify('n1', user);
    await waitUntil(() => seen.notifications.some((e) => e.data.id === 'n1'), { what: 'notification n1' });
    assert.ok(!tasks().includes('h6'), 'no event of a project left');
    assert.deepEqual(tasks(), ['h1', 'h2', 'h3', 'h4', 'h5']);

    // Unmount: the socket is closed and forgotten.
    view.unmount();
    assert.equal(socket.connected, false);
    assert.equal(socket.active, false, 'not reconnecting');
    await second.terminate();
  });

function joinWithin(promise, ms = 20_000) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`joinProjectRoom did not resolve within ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(timer));
}
