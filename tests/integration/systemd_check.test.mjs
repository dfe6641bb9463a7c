// Operating walcast next to PostgreSQL: the systemd unit verifies clean, the daemon's
// sd_notify protocol (READY=1 only once streaming, WATCHDOG=1 from the loop, STATUS=,
// STOPPING=1), and `walcast check` on broken and correct clusters.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, freePort } from './lib/pg.mjs';

const bin = process.env.WALCAST_BIN;
const src = process.env.WALCAST_SOURCE_DIR;
const buildDir = process.env.WALCAST_BUILD_DIR;
const listener = process.env.WALCAST_NOTIFY_LISTENER;
const work = mkdtempSync(join(tmpdir(), 'walcast-sd-'));
const clusters = [];
after(async () => {
  for (const c of clusters) await c.stop();
  rmSync(work, { recursive: true, force: true });
});

async function cluster(settings = {}) {
  const c = await startCluster({ settings });
  clusters.push(c);
  await c.createDatabase('app');
  await c.psql(readFileSync(join(src, 'tests/fixtures/app-schema.sql'), 'utf8'), { db: 'app' });
  await c.psql(readFileSync(join(src, 'sql/walcast.sql'), 'utf8'), { db: 'app' });
  const tables = ['Task', 'Comment', 'TimeEntry', 'File', 'Note', 'Notification', 'NoteCategory', 'Project', 'Invitation', 'Membership'];
  await c.psql(tables.map((t) => `SELECT walcast.track('"${t}"');`).join('\n'), { db: 'app' });
  return c;
}

function config(c, port, slot = 'walcast') {
  const text = readFileSync(join(src, 'examples/walcast.toml'), 'utf8')
    .replace(/^dsn = .*$/m, `dsn = "${c.dsn('app')}"`)
    .replace(/^slot = .*$/m, `slot = "${slot}"`)
    .replace(/^listen = .*$/m, `listen = "127.0.0.1:${port}"`);
  const path = join(work, `walcast-${port}.toml`);
  writeFileSync(path, text);
  return path;
}

const CHECK_SECRET = 'walcast-check-secret-of-32-bytes-or-more';

function check(configPath, secret = CHECK_SECRET) {
  const env = { ...process.env };
  delete env.WALCAST_JWT_SECRET;
  if (secret !== null) env.WALCAST_JWT_SECRET = secret;  // null: no secret at all
  const r = spawnSync(bin, ['check', '--config', configPath], { encoding: 'utf8', env });
  return { status: r.status, out: r.stdout + r.stderr };
}

test('systemd-analyze verify: the unit is clean', () => {
  const unit = readFileSync(join(buildDir, 'walcast.service'), 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${bin}`);
  const path = join(work, 'walcast.service');
  writeFileSync(path, unit);
  const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '');
  for (const key of ['Type=notify', 'WatchdogSec=', 'Restart=on-failure', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
    'PrivateTmp=yes', 'RestrictAddressFamilies=', 'MemoryDenyWriteExecute=yes', 'LoadCredential=jwt.key:', 'User=walcast'])
    assert.match(unit, new RegExp(`^${key}`, 'm'), key);
  assert.doesNotMatch(unit, /WALCAST_JWT_SECRET|--jwt/, 'no secret on the command line or in the unit');
});

test('sd_notify: READY=1 only once streaming, WATCHDOG=1 from the loop, STATUS=, STOPPING=1', async () => {
  const c = await cluster();
  const port = await freePort();
  const sock = join(work, 'notify.sock');
  const notes = [];
  const l = spawn(listener, [sock]);
  l.stdout.setEncoding('utf8');
  let buffered = '';
  l.stdout.on('data', (d) => {
    buffered += d;
    let i;
    while ((i = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      if (line !== 'listening') notes.push(line.slice(line.indexOf(' ') + 1));
    }
  });
  await sleep(300);

  // Another consumer holds the slot: walcast must wait its turn and not claim readiness.
  await c.createSlot('walcast', { db: 'app' });
  const holder = c.startRecvLogical({ slot: 'walcast', file: join(work, 'holder.jsonl'), db: 'app' });
  await sleep(1000);
  const env = { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000', WALCAST_JWT_SECRET: 'systemd-check-test-secret-32-bytes-long' };
  const daemon = spawn(bin, ['run', '--config', config(c, port)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => (log += d));
  try {
    await sleep(3000);
    assert.ok(!notes.includes('READY=1'), `READY=1 while the slot was held by another consumer: ${notes}\n${log}`);
    assert.match(log, /in use by PID/);
    await holder.stop();

    const deadline = Date.now() + 15000;
    while (!notes.includes('READY=1') && Date.now() < deadline) await sleep(100);
    assert.ok(notes.includes('READY=1'), `no READY=1: ${notes}\n${log}`);
    // Ready means streaming and listening.
    assert.equal(await c.scalar(`SELECT active FROM pg_replication_slots WHERE slot_name = 'walcast'`), 't');
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);

    const before = notes.filter((n) => n === 'WATCHDOG=1').length;
    await sleep(2600);
    const watchdogs = notes.filter((n) => n === 'WATCHDOG=1').length - before;
    assert.ok(watchdogs >= 2, `WATCHDOG=1 every WATCHDOG_USEC/2: saw ${watchdogs} in 2.6 s`);
    assert.ok(notes.some((n) => /^STATUS=streaming; confirmed [0-9A-F]+\/[0-9A-F]+; lag \d+ bytes; \d+ clients$/.test(n)),
      `STATUS= lines: ${notes.filter((n) => n.startsWith('STATUS='))}`);

    daemon.kill('SIGTERM');
    const code = await new Promise((resolve) => daemon.on('exit', (c2) => resolve(c2)));
    assert.equal(code, 0, log);
    await sleep(200);
    assert.ok(notes.includes('STOPPING=1'), `no STOPPING=1: ${notes}`);
    assert.ok(notes.indexOf('READY=1') < notes.indexOf('STOPPING=1'));
  } finally {
    daemon.kill('SIGKILL');
    l.kill('SIGKILL');
  }
});

test('walcast check: a correct cluster passes (exit 0)', async () => {
  const c = await cluster();
  const r = check(config(c, 1));
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /ok {5}wal_level = logical/);
  if (c.hasPluginList) assert.match(r.out, /ok {5}output_plugin_libraries lists wal2json/);
  assert.match(r.out, /slot "walcast" does not exist yet; walcast run will create it with wal2json/);
  assert.match(r.out, /ok {5}public\.Task is tracked/);
  assert.match(r.out, /ok {5}JWT secret has 40 bytes/);
  // The test cluster keeps PostgreSQL's default: unlimited WAL for slots, a warning.
  assert.match(r.out, /WARN {3}max_slot_wal_keep_size is unlimited \(-1\): if walcast stops, its slot keeps WAL until the disk is full\n {7}fix: ALTER SYSTEM SET max_slot_wal_keep_size = '4GB'/);
  assert.doesNotMatch(r.out, /FATAL/);
  assert.match(r.out, /walcast check: ready/);

  const capped = await cluster({ max_slot_wal_keep_size: '64MB' });
  const rc = check(config(capped, 1));
  assert.equal(rc.status, 0, rc.out);
  assert.match(rc.out, /ok {5}max_slot_wal_keep_size = 64 MB/);
});

test('walcast check and walcast run refuse a JWT secret under 32 bytes, and say why', async () => {
  const c = await cluster();
  const path = config(c, await freePort());
  for (const secret of ['abc', 'x'.repeat(31)]) {
    const r = check(path, secret);
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, new RegExp(`FATAL {2}JWT secret refused: .*${secret.length} bytes.*32`));
    const env = { ...process.env, WALCAST_JWT_SECRET: secret };
    const run = spawnSync(bin, ['run', '--config', path], { encoding: 'utf8', env, timeout: 10_000 });
    assert.equal(run.status, 2, `walcast run with a ${secret.length}-byte secret: ${run.stderr}`);
    assert.match(run.stderr, /JWT secret refused: .*32/);
  }
  const none = check(path, null);
  assert.equal(none.status, 1, none.out);
  assert.match(none.out, /FATAL {2}cannot read JWT secret file \/etc\/walcast\/jwt\.key/);
});

test('walcast check: each problem with its fix, non-zero exit', async () => {
  const c = await cluster({ wal_level: 'replica' });
  await c.psql(`ALTER TABLE "Task" REPLICA IDENTITY DEFAULT; SELECT walcast.untrack('"Comment"');`, { db: 'app' });
  let r = check(config(c, 1));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /FATAL {2}wal_level is replica; logical decoding needs logical\n {7}fix: ALTER SYSTEM SET wal_level = logical;/);
  assert.match(r.out, /FATAL {2}public\.Task: DELETE events cannot be routed by "project:\{projectId\}": .*lacks column projectId\n {7}fix: ALTER TABLE "public"\."Task" REPLICA IDENTITY FULL;/);
  assert.match(r.out, /FATAL {2}public\.Comment is not tracked.*\n {7}fix: SELECT walcast\.track\('"public"\."Comment"'\);/);
  assert.match(r.out, /walcast check: problems found/);

  // Where the server has output_plugin_libraries (PostgreSQL 15.20), a list without
  // wal2json is fatal; where it has none (15.18), check must not invent the problem.
  const noPlugin = await cluster({ output_plugin_libraries: 'pgoutput, test_decoding' });
  r = check(config(noPlugin, 1));
  if (noPlugin.hasPluginList) {
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /FATAL {2}output_plugin_libraries \(pgoutput, test_decoding\) does not list wal2json\n {7}fix: ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json; SELECT pg_reload_conf\(\);/);
  } else {
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /output_plugin_libraries/);
  }

  const ok = await cluster();
  await ok.createSlot('other', { db: 'app', plugin: 'test_decoding' });
  r = check(config(ok, 1, 'other'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /FATAL {2}slot "other" uses plugin test_decoding, not wal2json\n {7}fix: SELECT pg_drop_replication_slot\('other'\);/);
});

test('walcast check: a broken config is reported with file and line', () => {
  const path = join(work, 'broken.toml');
  writeFileSync(path, '[postgres]\ndsn = "x"\nslto = "walcast"\n');
  const r = check(path);
  assert.equal(r.status, 2);
  assert.match(r.out, /broken\.toml:3: postgres\.slto: unknown key/);
});
