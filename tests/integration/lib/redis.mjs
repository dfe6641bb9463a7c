// A throwaway redis-server (Debian's package) for the cluster tests, and a TCP front that
// stands in for a load balancer: each front prefers one walcast node and fails over to the
// next live one, so every connection of one client lands on the same node while it lives.
//
// Redis runs with an append-only file fsynced at every write: a restart keeps everything it
// acknowledged, as a production setup for walcast must (README, "Several nodes").

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

import { freePort, sleep, work } from './daemon.mjs';

const liveRedis = new Set();
process.on('exit', () => {
  for (const r of liveRedis) {
    try { process.kill(r.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

export class Redis {
  constructor(port, dir, password) {
    this.port = port;
    this.dir = dir;
    this.password = password;
    this.logFile = join(dir, 'redis.log');
  }

  get url() { return `redis://127.0.0.1:${this.port}/0`; }

  async start() {
    const fd = openSync(this.logFile, 'a');
    this.child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '',
      '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no', '--daemonize', 'no',
      ...(this.password ? ['--requirepass', this.password] : []),
    ], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child.unref();
    this.pid = this.child.pid;
    liveRedis.add(this);
    this.exited = new Promise((res) => this.child.on('exit', (code, signal) => {
      liveRedis.delete(this);
      res({ code, signal });
    }));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (this.cli('PING').trim() === 'PONG') return this;
      await sleep(50);
    }
    throw new Error(`redis-server did not start on ${this.port}:\n${this.log()}`);
  }

  log() {
    try { return readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  // One command through redis-cli; its raw output.
  cli(...args) {
    const auth = this.password ? ['--no-auth-warning', '-a', this.password] : [];
    const r = spawnSync('redis-cli', ['-p', String(this.port), ...auth, '--raw', ...args], { encoding: 'utf8' });
    return r.stdout ?? '';
  }

  // SIGTERM (Redis fsyncs and exits), then the same server again on the same port and files.
  async restart({ downMs = 0 } = {}) {
    this.child.kill('SIGTERM');
    await this.exited;
    if (downMs) await sleep(downMs);
    return this.start();
  }

  async kill9() {
    if (!liveRedis.has(this)) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export async function startRedis({ password } = {}) {
  const dir = join(work(), `redis-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  return new Redis(await freePort(), dir, password).start();
}

// A TCP front on its own port: connections go to backends[0] while it accepts them, else to
// the next one that does. Bytes are piped both ways; a backend that dies closes its clients.
export async function startFront(backendPorts) {
  const port = await freePort();
  const sockets = new Set();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    let i = 0;
    const tryNext = () => {
      if (i >= backendPorts.length) return client.destroy();
      const upstream = createConnection({ host: '127.0.0.1', port: backendPorts[i++] });
      upstream.once('error', () => {
        if (!upstream.connected) tryNext();
      });
      upstream.once('connect', () => {
        upstream.connected = true;
        sockets.add(upstream);
        upstream.on('close', () => { sockets.delete(upstream); client.destroy(); });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryNext();
  });
  await new Promise((res) => server.listen(port, '127.0.0.1', res));
  server.unref();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
