// walcast replay as a user runs it: output lines, --explain reasons, stdin, exit status and
// the message for every kind of bad input. Needs only the built binary (WALCAST_BIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = process.env.WALCAST_BIN;
const src = process.env.WALCAST_SOURCE_DIR;
const config = join(src, 'examples/walcast.toml');
const dir = mkdtempSync(join(tmpdir(), 'walcast-cli-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function replay(args, input) {
  const r = spawnSync(bin, ['replay', ...args], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { status: r.status, out: r.stdout, err: r.stderr, events: r.stdout.split('\n').filter(Boolean) };
}

function capture(name, lines) {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

// `expected` (strings equal to a line, or RegExps matching one) appear as consecutive lines of `out`.
function assertLines(out, expected) {
  const lines = out.split('\n');
  const fits = (line, e) => (typeof e === 'string' ? line === e : e.test(line));
  const at = lines.findIndex((_, i) => expected.every((e, k) => i + k < lines.length && fits(lines[i + k], e)));
  assert.ok(at >= 0, `expected these consecutive lines:\n${expected.join('\n')}\nin:\n${out}`);
}

const ts = '"timestamp":"2026-11-26 03:11:59.981011+00"';
const B = (xid, end) => `{"action":"B","xid":${xid},${ts},"lsn":"0/${(end - 0x30).toString(16).toUpperCase()}","nextlsn":"0/${end.toString(16).toUpperCase()}"}`;
const C = (xid, end) => B(xid, end).replace('"B"', '"C"');
const M = (xid, ctx) => `{"action":"M","xid":${xid},${ts},"lsn":"0/100","transactional":true,"prefix":"walcast","content":${JSON.stringify(ctx)}}`;
const task = (xid, id) => `{"action":"I","xid":${xid},${ts},"lsn":"0/110","schema":"public","table":"Task","columns":[{"name":"id","type":"text","value":"${id}"},{"name":"projectId","type":"text","value":"p1"},{"name":"title","type":"text","value":"x"}]}`;
const ctx = '{"actorUserId":"u1","projectId":"p1","tenantId":"acme"}';
const txn = (xid, end, id) => [B(xid, end), M(xid, ctx), task(xid, id), C(xid, end)];

test('prints one line per event with event, rooms and payload', () => {
  const r = replay(['--config', config, '--input', capture('ok.jsonl', [...txn(1, 0x200, 't1'), ...txn(2, 0x300, 't2')])]);
  assert.equal(r.status, 0, r.err);
  assert.equal(r.err, '');
  assert.equal(r.events.length, 2);
  const first = JSON.parse(r.events[0]);
  assert.deepEqual(Object.keys(first), ['event', 'rooms', 'payload']);
  assert.equal(first.event, 'task:created');
  assert.deepEqual(first.rooms, ['project:p1']);
  assert.equal(first.payload.eventId, '0/200:0');
  assert.equal(JSON.parse(r.events[1]).payload.eventId, '0/300:0');
});

test('reads stdin with -', () => {
  const r = replay(['--config', config, '--input', '-'], txn(1, 0x200, 't1').join('\n'));
  assert.equal(r.status, 0, r.err);
  assert.equal(r.events.length, 1);
  assert.equal(JSON.parse(r.events[0]).payload.id, 't1');
});

test('malformed lines: reported with line numbers, processing continues, exit 3', () => {
  const big = '{"action":"I","columns":[{"name":"body","value":"' + 'x'.repeat(10 << 20);  // 10 MiB, never closed
  const lines = [
    ...txn(1, 0x200, 'good1'),                        // 1-4
    '{"action":"B","xid":2,"lsn":"0/2F0"',            // 5 truncated JSON
    ...txn(3, 0x400, 'good3'),                        // 6-9
    '{"action":"Q","xid":4}',                         // 10 unknown action
    '{"action":"B","xid":"five"}',                    // 11 wrong type
    big,                                              // 12 10 MiB line
    ...txn(6, 0x600, 'good6'),                        // 13-16
  ];
  const r = replay(['--config', config, '--input', capture('bad.jsonl', lines)]);
  assert.equal(r.status, 3);
  const err = r.err;
  assert.match(err, /bad\.jsonl:5: malformed wal2json line: invalid JSON at byte \d+: /);
  assert.match(err, /bad\.jsonl:10: malformed wal2json line: unknown action "Q"/);
  assert.match(err, /bad\.jsonl:11: malformed wal2json line: field "xid" must be a non-negative integer or null/);
  assert.match(err, /bad\.jsonl:12: malformed wal2json line: invalid JSON at byte 10485\d\d\d: Missing a closing quotation mark/);
  assert.match(err, /4 malformed lines in .*bad\.jsonl/);
  assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['good1', 'good3', 'good6']);
});

test('a malformed line inside a transaction silences that transaction only', () => {
  const lines = [B(1, 0x200), M(1, ctx), task(1, 'lost'), '{"action":"I",', C(1, 0x200), ...txn(2, 0x300, 'kept')];
  const r = replay(['--config', config, '--input', capture('damaged.jsonl', lines)]);
  assert.equal(r.status, 3);
  assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['kept']);
  const explain = replay(['--config', config, '--input', capture('damaged.jsonl', lines), '--explain']);
  assert.match(explain.out, /I public\.Task id="lost": no event: transaction damaged \(line 4 is malformed: invalid JSON at byte \d+: /);
  assert.match(explain.out, /^  damaged: line 4 is malformed: invalid JSON at byte \d+: .*$/m);
  assert.match(explain.out, /^  => 0 events: transaction damaged \(line 4 is malformed: /m);
});

test('a context of 200,000 "[" fails its transaction closed; the stream goes on', () => {
  // Any role that can log in can write this context; a recursive parser overflows its stack on it.
  const lines = [B(1, 0x200), M(1, '['.repeat(200000)), task(1, 'poisoned'), C(1, 0x200), ...txn(2, 0x300, 'next')];
  const path = capture('poison.jsonl', lines);
  const r = replay(['--config', config, '--input', path]);
  // The wal2json line is well-formed; its context is not, which fails closed without exit 3.
  assert.equal(r.status, 0, r.err);
  assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['next']);

  const explain = replay(['--config', config, '--input', path, '--explain']);
  assert.equal(explain.status, 0, explain.err);
  const why = 'malformed context at 0/100 (context is 200000 bytes, over the 4096-byte limit)';
  assertLines(explain.out, [
    /^transaction xid=1 end=0\/200 committedAt=\S+ skip=false$/,
    '  context at 0/100: malformed (context is 200000 bytes, over the 4096-byte limit): the transaction emits nothing',
    `  I public.Task id="poisoned": no event: ${why}`,
    `  => 0 events: ${why}`,
    /^transaction xid=2 end=0\/300 committedAt=\S+ skip=false$/,
    '  context at 0/100: {"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false}',
    '  I public.Task id="next": task:created -> project:p1',
    '  => 1 event',
  ]);
});

test('a line over [limits] max_line_bytes fails its transaction closed; the stream goes on', () => {
  const small = join(dir, 'small-lines.toml');
  writeFileSync(small, readFileSync(config, 'utf8').replace(/^max_line_bytes = .*$/m, 'max_line_bytes = 4096'));
  const huge = task(1, 'huge').replace('"value":"x"', `"value":"${'y'.repeat(100000)}"`);  // a 100 KB title
  const hugeCommit = C(3, 0x400).replace('}', `,"pad":"${'z'.repeat(5000)}"}`);
  const lines = [
    B(1, 0x200), M(1, ctx), task(1, 'before'), huge, C(1, 0x200),  // 1-5
    ...txn(2, 0x300, 'next'),                                      // 6-9
    B(3, 0x400), M(3, ctx), task(3, 'cut'), hugeCommit,            // 10-13
    ...txn(4, 0x500, 'after'),                                     // 14-17
  ];
  const path = capture('oversized.jsonl', lines);
  const r = replay(['--config', small, '--input', path]);
  assert.equal(r.status, 3);
  const tooLong = (n) => `oversized wal2json line: ${n} bytes, over the 4096-byte limit ([limits] max_line_bytes)`;
  assert.ok(r.err.includes(`oversized.jsonl:4: ${tooLong(huge.length)}\n`), r.err);
  assert.ok(r.err.includes(`oversized.jsonl:13: ${tooLong(hugeCommit.length)}\n`), r.err);
  assert.ok(r.err.includes('oversized.jsonl:14: transaction xid 3 has no commit line before the next begin'), r.err);
  assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['next', 'after']);

  const explain = replay(['--config', small, '--input', path, '--explain']);
  assert.equal(explain.status, 3);
  const why = `line 4 is oversized: ${huge.length} bytes, over the 4096-byte limit ([limits] max_line_bytes)`;
  assertLines(explain.out, [
    /^transaction xid=1 end=0\/200 committedAt=\S+ skip=false$/,
    '  context at 0/100: {"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false}',
    `  I public.Task id="before": no event: transaction damaged (${why})`,
    `  damaged: ${why}`,
    `  => 0 events: transaction damaged (${why})`,
  ]);
  assertLines(explain.out, [
    /^transaction xid=3 end=0\/400 committedAt=\S+ abandoned: transaction xid 3 has no commit line before the next begin; it emits nothing \(damaged: line 13 is oversized: \d+ bytes, over the 4096-byte limit \(\[limits\] max_line_bytes\)\)$/,
  ]);
  assert.match(explain.out, /I public\.Task id="next": task:created -> project:p1/);
  assert.match(explain.out, /I public\.Task id="after": task:created -> project:p1/);

  // Under the default limit (64 MiB) the same capture is whole.
  const whole = replay(['--config', config, '--input', path]);
  assert.equal(whole.status, 0, whole.err);
  assert.deepEqual(whole.events.map((l) => JSON.parse(l).payload.id), ['before', 'huge', 'next', 'cut', 'after']);
});

test('malformed context messages fail their transaction closed', () => {
  for (const bad of ['{"projectId":"p1"}', 'not json', '{"actorUserId":42}', '["u1"]']) {
    const lines = [B(1, 0x200), M(1, bad), task(1, 'silenced'), C(1, 0x200), ...txn(2, 0x300, 'kept')];
    const r = replay(['--config', config, '--input', capture('ctx.jsonl', lines)]);
    assert.equal(r.status, 0, r.err);
    assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['kept'], bad);
    const explain = replay(['--config', config, '--input', capture('ctx.jsonl', lines), '--explain']);
    assert.match(explain.out, /context at 0\/100: malformed \(context .*\): the transaction emits nothing/);
    assert.match(explain.out, /I public\.Task id="silenced": no event: malformed context at 0\/100/);
  }
});

test('a capture without lsn fields says how to record one', () => {
  const lines = ['{"action":"B","xid":1}', M(1, ctx), task(1, 't1'), '{"action":"C","xid":1}'];
  const r = replay(['--config', config, '--input', capture('nolsn.jsonl', lines)]);
  assert.equal(r.status, 2);
  assert.match(r.err, /nolsn\.jsonl:1: this capture has no "lsn"\/"nextlsn" fields/);
  assert.match(r.err, /pg_recvlogical .*-o include-lsn=1/);
  assert.equal(r.out, '');
});

test('a capture that ends inside a transaction emits nothing of it', () => {
  const r = replay(['--config', config, '--input', capture('cut.jsonl', [...txn(1, 0x200, 't1'), B(2, 0x300), M(2, ctx), task(2, 't2')])]);
  assert.equal(r.status, 0);
  assert.match(r.err, /ends inside transaction xid 2 \(no commit line\)/);
  assert.deepEqual(r.events.map((l) => JSON.parse(l).payload.id), ['t1']);
});

test('bad config and missing input: exit 2 with the reason', () => {
  const badConfig = join(dir, 'bad.toml');
  writeFileSync(badConfig, '[[model]]\ntable = "public.Task"\nname = "task"\nrooms = ["project:{projectId"]\n');
  const r = replay(['--config', badConfig, '--input', '-'], '');
  assert.equal(r.status, 2);
  assert.match(r.err, /bad\.toml:4: model\[1\]\.rooms\[1\]: .*unbalanced/);
  const missing = replay(['--config', config, '--input', join(dir, 'nope.jsonl')]);
  assert.equal(missing.status, 2);
  assert.match(missing.err, /cannot open .*nope\.jsonl: No such file or directory/);
  const usage = replay(['--config', config]);
  assert.equal(usage.status, 2);
  assert.match(usage.err, /--input is required/);
});

test('--explain on golden captures names every reason', () => {
  const fx = (name) => join(src, 'tests/fixtures', name);
  const explain = (name) => replay(['--config', config, '--input', fx(name), '--explain']);
  const truncate = explain('truncate.jsonl');
  assert.equal(truncate.status, 0, truncate.err);
  assert.match(truncate.out, /T public\.Task: no event: TRUNCATE emits nothing/);
  assert.match(truncate.out, /I public\.Comment id="c0": no event: no context/);
  const untracked = explain('untracked.jsonl');
  assert.match(untracked.out, /I public\.AuditLog id=\d+: no event: table not routed/);
  const messages = explain('messages.jsonl');
  assert.match(messages.out, /skip=true/);
  assert.match(messages.out, /no event: skipped \(skipEmit at [0-9A-F]+\/[0-9A-F]+\)/);
  assert.match(messages.out, /=> \d+ events?/);
  const basic = explain('basic.jsonl');
  assert.match(basic.out, /^transaction xid=\d+ end=[0-9A-F]+\/[0-9A-F]+ committedAt=\d{4}-\d\d-\d\dT[\d:.]+Z skip=false$/m);
  assert.match(basic.out, /context at [0-9A-F]+\/[0-9A-F]+: \{"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false\}/);
  assert.match(basic.out, /I public\.Task id="t1": task:created -> project:p1/);
});
