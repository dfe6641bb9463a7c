// Logging fit for journald: "<N>" syslog priorities on stderr under systemd (JOURNAL_STREAM),
// readable prefixes elsewhere, and a validated --log-level.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const bin = process.env.WALCAST_BIN;

function run(args, env = {}) {
  const clean = { ...process.env };
  delete clean.JOURNAL_STREAM;
  return spawnSync(bin, args, { encoding: 'utf8', env: { ...clean, ...env } });
}

test('under systemd each line carries its syslog priority', () => {
  const r = run(['run', '--config', '/nonexistent/walcast.toml'], { JOURNAL_STREAM: '8:1234' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, '<3>cannot open config file "/nonexistent/walcast.toml": No such file or directory\n');
});

test('on a terminal the level is spelled out', () => {
  const r = run(['run', '--config', '/nonexistent/walcast.toml']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'walcast: error: cannot open config file "/nonexistent/walcast.toml": No such file or directory\n');
});

test('--log-level is checked', () => {
  const bad = run(['--log-level', 'loud', 'run', '--config', 'x.toml']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown log level loud/);
  const quiet = run(['--log-level', 'error', 'run', '--config', '/nonexistent/walcast.toml']);
  assert.equal(quiet.status, 2);
  assert.match(quiet.stderr, /error: cannot open config file/);
});
