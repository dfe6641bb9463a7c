// A throwaway PostgreSQL 15 cluster for integration tests and fixture recording: temp dir,
// wal_level=logical, Unix socket only, wal2json streamed with pg_recvlogical. Node ESM, no deps.
// Every cluster started here is stopped and its directory removed on stop(), and also when
// the process exits (normally, on an uncaught error, or on SIGINT/SIGTERM).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, appendFileSync, existsSync, mkdirSync, chownSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const DEFAULT_BINDIR = '/usr/lib/postgresql/15/bin';

// The four options the daemon sends on START_REPLICATION (and replay reads).
export const WAL2JSON_OPTIONS = {
  'format-version': '2',
  'include-xids': '1',
  'include-lsn': '1',
  'include-timestamp': '1',
};

// SQL literal quoting ('it''s'); for values built into SQL text by the tests.
export function lit(value) {
  if (value === null || value === undefined) return 'NULL';
  return `'${String(value).replace(/'/g, "''")}'`;
}

// "X/Y" LSN text -> BigInt, for comparisons.
export function lsnToBigInt(lsn) {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(String(lsn).trim());
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(lsn)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

const live = new Set();  // clusters not yet stopped; cleaned up synchronously at exit
let exitHooksInstalled = false;

function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const c of [...live]) c._stopSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      for (const c of [...live]) c._stopSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

// A TCP port nobody listens on right now. The cluster only opens a Unix socket (in its own
// directory, so no clash is possible there), but a free number keeps the port usable if a
// test later turns TCP on, and keeps socket names distinct in logs.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Runs a program; resolves {code, signal, stdout, stderr}. Never rejects on a non-zero exit.
function run(cmd, args, { input, env, cwd, timeoutMs } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let timer = null;
    if (timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    }
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});  // the child may exit before reading all input
    child.stdin.end(input ?? '');
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function userIds(name) {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`running as root but there is no '${name}' user to run PostgreSQL as`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

// Starts a fresh cluster and resolves to a Cluster once it accepts connections.
// Options: bindir (PostgreSQL binaries), osUser (who runs the server when we are root;
// default "postgres"), settings (extra postgresql.conf lines as {name: value}),
// tmpRoot (parent of the temp dir).
export async function startCluster(options = {}) {
  installExitHooks();
  const bindir = options.bindir ?? process.env.WALCAST_PG_BINDIR ?? DEFAULT_BINDIR;
  const asRoot = process.getuid?.() === 0;
  const osUser = asRoot ? (options.osUser ?? 'postgres') : userInfo().username;

  // Unix socket paths are limited to ~107 bytes: fall back to /tmp if TMPDIR is deep.
  let root = options.tmpRoot ?? tmpdir();
  if (root.length > 60) root = '/tmp';
  const dir = mkdtempSync(join(root, 'walcast-pg-'));
  const cluster = new Cluster({ dir, bindir, asRoot, osUser });
  live.add(cluster);
  try {
    await cluster._init(options.settings ?? {});
  } catch (e) {
    const log = cluster.serverLog();
    cluster._stopSync();
    if (log) e.message += `\n--- server log ---\n${log}`;
    throw e;
  }
  return cluster;
}

// A physical standby of `primary` (pg_basebackup -R), started and streaming from it; for
// failover tests. promote() makes it a primary on a new timeline.
export async function startStandby(primary) {
  installExitHooks();
  let root = tmpdir();
  if (root.length > 60) root = '/tmp';
  const dir = mkdtempSync(join(root, 'walcast-pg-'));
  const standby = new Cluster({ dir, bindir: primary.bindir, asRoot: primary.asRoot, osUser: primary.osUser });
  live.add(standby);
  try {
    standby.port = await freePort();
    mkdirSync(standby.host);
    if (standby.asRoot) {
      const { uid, gid } = userIds(standby.osUser);
      chownSync(standby.dir, uid, gid);
      chownSync(standby.host, uid, gid);
    }
    await standby._server('pg_basebackup', ['-D', standby.dataDir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast',
      '-h', primary.host, '-p', String(primary.port), '-U', primary.superuser], { timeoutMs: 120_000 });
    appendFileSync(join(standby.dataDir, 'postgresql.conf'),
      `\n# walcast test standby\nport = ${standby.port}\nunix_socket_directories = '${standby.host}'\nhot_standby = on\n`);
    await standby.startServer();
    standby.hasPluginList = primary.hasPluginList;
    return standby;
  } catch (e) {
    standby._stopSync();
    throw e;
  }
}

export class Cluster {
  constructor({ dir, bindir, asRoot, osUser }) {
    this.dir = dir;
    this.bindir = bindir;
    this.asRoot = asRoot;
    this.osUser = osUser;
    this.dataDir = join(dir, 'data');
    this.host = join(dir, 'socket');   // unix_socket_directories; pass as host/PGHOST
    this.logFile = join(dir, 'server.log');
    this.port = 0;
    this.superuser = 'postgres';        // the bootstrap role (initdb -U)
    this.stopped = false;
    this._children = new Set();         // pg_recvlogical processes still running
  }

  // Environment for client programs: only this cluster, never the caller's PG* settings.
  get env() {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('PG')) delete env[k];
    env.PGHOST = this.host;
    env.PGPORT = String(this.port);
    env.PGUSER = this.superuser;
    env.PGDATABASE = 'postgres';
    env.PGTZ = 'UTC';
    return env;
  }

  // A libpq connection string for `db` as `user` (default the superuser).
  dsn(db = 'postgres', user = this.superuser) {
    return `host=${this.host} port=${this.port} dbname=${db} user=${user}`;
  }

  bin(name) {
    return join(this.bindir, name);
  }

  // Runs a server-side program as the unprivileged OS user (PostgreSQL refuses root).
  async _server(prog, args, opts = {}) {
    const [cmd, argv] = this.asRoot
      ? ['runuser', ['-u', this.osUser, '--', this.bin(prog), ...args]]
      : [this.bin(prog), args];
    const r = await run(cmd, argv, { env: this.env, cwd: this.dir, ...opts });
    if (r.code !== 0) {
      throw new Error(`${prog} ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
    }
    return r;
  }

  async _init(settings) {
    this.port = await freePort();
    mkdirSync(this.host);
    if (this.asRoot) {
      const { uid, gid } = userIds(this.osUser);
      chownSync(this.dir, uid, gid);
      chownSync(this.host, uid, gid);
    }
    await this._server('initdb', [
      '-D', this.dataDir, '-A', 'trust', '-U', this.superuser,
      '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions',
    ], { timeoutMs: 120_000 });

    const conf = {
      listen_addresses: "''",
      port: String(this.port),
      unix_socket_directories: `'${this.host}'`,
      wal_level: 'logical',
      max_replication_slots: '16',
      max_wal_senders: '16',
      timezone: "'UTC'",
      log_timezone: "'UTC'",
      fsync: 'off',
      full_page_writes: 'off',
      shared_buffers: "'32MB'",
      ...Object.fromEntries(Object.entries(settings)
        .filter(([k]) => k !== 'output_plugin_libraries')  // set with ALTER SYSTEM below, where it exists
        .map(([k, v]) => [k, String(v)])),
    };
    const lines = Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n');
    appendFileSync(join(this.dataDir, 'postgresql.conf'), `\n# walcast test cluster\n${lines}\n`);

    await this._server('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', 'start'],
      { timeoutMs: 90_000 });
    await this.allowWal2json(settings.output_plugin_libraries);
  }

  // PostgreSQL builds with an output_plugin_libraries setting (Debian's 15.20) load only the
  // plugins it lists; older ones (15.18) have no such setting and load any. `list` overrides
  // the value (a test of a cluster that lacks wal2json). Resolves to whether it exists.
  async allowWal2json(list = 'pgoutput, test_decoding, wal2json') {
    try {
      await this.psql(`ALTER SYSTEM SET output_plugin_libraries = ${list};`);
    } catch (e) {
      if (/unrecognized configuration parameter/.test(String(e.message))) return (this.hasPluginList = false);
      throw e;
    }
    await this.psql('SELECT pg_reload_conf();');
    return (this.hasPluginList = true);
  }

  // Runs SQL with psql -X -v ON_ERROR_STOP=1 and resolves to stdout. The script goes in on
  // stdin, so each statement is its own transaction unless it says BEGIN. Output is
  // unaligned tuples-only (-At) unless opts.raw. Rejects with psql's stderr on error.
  async psql(sql, opts = {}) {
    const db = opts.db ?? 'postgres';
    const user = opts.user ?? this.superuser;
    const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', this.host, '-p', String(this.port),
      '-U', user, '-d', db];
    if (!opts.raw) args.push('-A', '-t');
    if (opts.args) args.push(...opts.args);
    const r = await run('psql', args, { input: sql, env: this.env, timeoutMs: opts.timeoutMs ?? 120_000 });
    if (r.code !== 0) {
      const err = new Error(`psql (db=${db} user=${user}) failed (exit ${r.code}): ${r.stderr.trim()}`);
      err.stderr = r.stderr;
      err.stdout = r.stdout;
      throw err;
    }
    return r.stdout;
  }

  // One value (first column of the first row), trimmed.
  async scalar(sql, opts = {}) {
    const out = await this.psql(sql, opts);
    return out.split('\n')[0].trim();
  }

  async createDatabase(name) {
    await this.psql(`CREATE DATABASE "${name.replace(/"/g, '""')}";`);
  }

  async currentLsn(db = 'postgres') {
    return this.scalar('SELECT pg_current_wal_lsn();', { db });
  }

  // Creates a logical slot with wal2json (idempotent per name within this cluster).
  async createSlot(slot, { db = 'postgres', plugin = 'wal2json' } = {}) {
    return this.scalar(
      `SELECT lsn FROM pg_create_logical_replication_slot(${lit(slot)}, ${lit(plugin)});`, { db });
  }

  async dropSlot(slot, { db = 'postgres' } = {}) {
    await this.psql(`SELECT pg_drop_replication_slot(${lit(slot)});`, { db });
  }

  async confirmedFlushLsn(slot) {
    return this.scalar(
      `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = ${lit(slot)};`);
  }

  _recvArgs({ slot, file, db, options, extra }) {
    const args = ['-h', this.host, '-p', String(this.port), '-U', this.superuser, '-d', db,
      '--slot', slot, '--start', '--no-loop', '-f', file];
    for (const [k, v] of Object.entries(options)) args.push('-o', `${k}=${v}`);
    return [...args, ...extra];
  }

  // Streams `slot` into `file` (appending) with pg_recvlogical until stopped. Returns
  // {process, stop()}: stop() waits until the slot's confirmed_flush_lsn reaches the WAL
  // position current at the time of the call (so everything committed before it is in the
  // file), then ends pg_recvlogical with SIGINT (it flushes and exits 0) and resolves to
  // {code, stderr}. -F 0 -s 1: report progress every second without fsync.
  startRecvLogical({ slot, file, db = 'postgres', options = WAL2JSON_OPTIONS, timeoutMs = 30_000 } = {}) {
    const args = this._recvArgs({ slot, file, db, options, extra: ['-F', '0', '-s', '1'] });
    const child = spawn('pg_recvlogical', args, { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    const err = [];
    child.stderr.on('data', (d) => err.push(d));
    this._children.add(child);
    const exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this._children.delete(child);
        resolve({ code, signal, stderr: Buffer.concat(err).toString('utf8') });
      });
      child.on('error', (e) => {
        this._children.delete(child);
        resolve({ code: -1, signal: null, stderr: String(e) });
      });
    });
    const stop = async () => {
      const target = lsnToBigInt(await this.currentLsn(db));
      const deadline = Date.now() + timeoutMs;
      let caughtUp = false;
      while (Date.now() < deadline && child.exitCode === null) {
        const flushed = await this.confirmedFlushLsn(slot);
        if (flushed && lsnToBigInt(flushed) >= target) {
          caughtUp = true;
          break;
        }
        await sleep(100);
      }
      child.kill('SIGINT');
      const r = await exited;
      if (!caughtUp) {
        throw new Error(`pg_recvlogical on slot ${slot} did not catch up within ${timeoutMs} ms ` +
          `(exit ${r.code}): ${r.stderr}`);
      }
      return r;
    };
    return { process: child, exited, stop };
  }

  // Records everything the slot holds now: runs pg_recvlogical with --endpos at the
  // current WAL position, appending to `file`; resolves when it exits (error if not 0).
  async recordSlot({ slot, file, db = 'postgres', options = WAL2JSON_OPTIONS, endpos, timeoutMs = 60_000 } = {}) {
    const end = endpos ?? (await this.currentLsn(db));
    const args = this._recvArgs({ slot, file, db, options, extra: ['-F', '0', `--endpos=${end}`] });
    const r = await run('pg_recvlogical', args, { env: this.env, timeoutMs });
    if (r.code !== 0) {
      throw new Error(`pg_recvlogical --endpos=${end} on slot ${slot} failed ` +
        `(exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr}`);
    }
    return end;
  }

  // Server control for restart tests; the directory and the data stay. mode: smart|fast|immediate.
  async restartServer({ mode = 'fast' } = {}) {
    await this._server('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-m', mode, '-w', '-t', '60', 'restart'],
      { timeoutMs: 90_000 });
  }

  async stopServer({ mode = 'fast' } = {}) {
    await this._server('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], { timeoutMs: 90_000 });
  }

  // A standby becomes a primary (a new timeline); waits until it accepts writes.
  async promote() {
    await this._server('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote'], { timeoutMs: 90_000 });
  }

  async startServer() {
    await this._server('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', 'start'],
      { timeoutMs: 90_000 });
  }

  serverLog() {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  // Stops the server (fast) and removes the directory. Safe to call twice.
  async stop() {
    if (this.stopped) return;
    for (const child of this._children) child.kill('SIGKILL');
    if (existsSync(join(this.dataDir, 'postmaster.pid'))) {
      try {
        await this._server('pg_ctl', ['-D', this.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop'],
          { timeoutMs: 90_000 });
      } catch {
        // fall through to the synchronous path, which uses immediate mode
      }
    }
    this._stopSync();
  }

  // Synchronous variant for process exit handlers.
  _stopSync() {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    for (const child of this._children) {
      try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
    if (existsSync(join(this.dataDir, 'postmaster.pid'))) {
      const pgctl = [this.bin('pg_ctl'), '-D', this.dataDir, '-m', 'immediate', '-w', 'stop'];
      try {
        if (this.asRoot) execFileSync('runuser', ['-u', this.osUser, '--', ...pgctl], { stdio: 'ignore', cwd: this.dir });
        else execFileSync(pgctl[0], pgctl.slice(1), { stdio: 'ignore' });
      } catch { /* the server may already be down */ }
    }
    if (!process.env.WALCAST_KEEP_CLUSTER) rmSync(this.dir, { recursive: true, force: true });
  }
}
