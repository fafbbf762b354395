// The README's first command and first session, as a newcomer runs them (issue 36 §5): `npm run
// dev` on its defaults, the README's export and curl lines (activated, then none once active), its
// first CLI command, then Ctrl-C stops everything it started. The commands are read from the
// README, so a README that drifts from what works fails here. Run by `npm run test:first-session`
// (in .ci/run, after `npm test`): it needs the ports the README names, so never beside a dev stack.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/stack';

/** The ports `npm run dev` takes by default: the API (the README's curl names it), Temporal, its Web UI. */
const PORTS = { api: 8080, temporal: 7233, temporalUi: 8233 };
/** A fresh clone's `npm run dev` builds first, and may install the Temporal CLI. */
const START_TIMEOUT_MS = 10 * 60_000;
/** Ctrl-C to every process gone. */
const STOP_TIMEOUT_MS = 60_000;

const run = promisify(execFile);

/** The README's "A first session" block: its export line, its curl command, and its first CLI command. */
function firstSession(): { exportLine: string; curl: string; firstCli: string } {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = /^## A first session\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'the README has a section "A first session"');
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the section opens with a sh block');
  const lines = block.split('\n');
  const exportLine = lines.find((l) => l.startsWith('export '));
  const curlAt = lines.findIndex((l) => l.startsWith('curl '));
  assert.ok(exportLine && curlAt >= 0, 'the block exports the token and calls curl');
  // The curl command runs to the first comment line (its answer).
  const curlEnd = lines.findIndex((l, i) => i > curlAt && l.startsWith('#'));
  const curl = lines.slice(curlAt, curlEnd).join('\n');
  const firstCli = lines.slice(curlEnd).find((l) => /^(npx|npm) /.test(l))?.replace(/\s+#.*$/, '');
  assert.ok(firstCli, 'a CLI command follows the curl line');
  return { exportLine, curl, firstCli };
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Whether any process of the group is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the README's first command and first session", function () {
  this.timeout(START_TIMEOUT_MS + 5 * 60_000);
  let dev: ChildProcess | undefined;
  let output = '';
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'access-first-session-'));

  after(() => {
    // A failed test still stops what it started.
    if (dev?.pid !== undefined && groupAlive(dev.pid)) process.kill(-dev.pid, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('npm run dev starts everything; the curl line activates, then answers none once active; the CLI lists the grant; Ctrl-C stops it all', async () => {
    const { exportLine, curl, firstCli } = firstSession();
    for (const [name, port] of Object.entries(PORTS)) {
      assert.ok(await portFree(port), `port ${port} (${name}) is taken: stop the dev stack before this test`);
    }
    // Its own process group, as a terminal runs a command: Ctrl-C is SIGINT to the group.
    // Everything else as a newcomer has it (no TEMPORAL_ADDRESS or AWS endpoint to reuse).
    const env: NodeJS.ProcessEnv = { ...process.env, ACCESS_DEV_DIR: stateDir };
    for (const name of ['TEMPORAL_ADDRESS', 'AWS_ENDPOINT_URL', 'PORT', 'TEMPORAL_PORT', 'TEMPORAL_UI_PORT', 'ACCESS_URL', 'ACCESS_TOKEN', 'ACCESS_TENANT_ID']) delete env[name];
    const child = spawn('npm', ['run', 'dev'], { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    dev = child;
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));

    const started = await Promise.race([
      (async () => {
        const deadline = Date.now() + START_TIMEOUT_MS;
        while (!output.includes('Ctrl-C stops everything.')) {
          assert.ok(Date.now() < deadline, `npm run dev printed no example within ${START_TIMEOUT_MS / 60_000} min:\n${output}`);
          await new Promise((r) => setTimeout(r, 500));
        }
        return true;
      })(),
      exited.then((how) => assert.fail(`npm run dev ended (${how}) before it was ready:\n${output}`)),
    ]);
    assert.equal(started, true);
    const token = /^ {2}export ACCESS_TOKEN=(\S+) ACCESS_TENANT_ID=(\S+)$/m.exec(output);
    assert.ok(token, `npm run dev printed the export line:\n${output}`);
    // The README's own export line, with the token printed: its tenant must be the one printed.
    const exported = exportLine.replace('<the token>', token[1]);
    assert.ok(exported.includes(`ACCESS_TENANT_ID=${token[2]}`), `the README exports the tenant npm run dev printed (${token[2]})`);

    const shell = async (command: string) => (await run('bash', ['-c', `set -euo pipefail\n${exported}\n${command}`], { cwd: repoRoot, env })).stdout;
    const ensure = async () => {
      const text = await shell(curl);
      try {
        return JSON.parse(text).grants[0] as { id: string; change: string; status: string };
      } catch {
        return assert.fail(`the curl line answered no grant: ${text}`);
      }
    };
    const first = await ensure();
    assert.equal(first.change, 'activated', JSON.stringify(first));
    // Again, once provisioned: nothing to change.
    let again = await ensure();
    const deadline = Date.now() + 60_000;
    while (again.status !== 'active' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      again = await ensure();
    }
    assert.deepEqual([again.id, again.change, again.status], [first.id, 'none', 'active']);

    const listed = await shell(firstCli);
    assert.match(listed, /^ACTIVE +ReadOnlyAccess +AWS::Account::123456789012\b/m, listed);

    // Ctrl-C: every process of the session ends, and the ports are free again.
    process.kill(-child.pid!, 'SIGINT');
    const stopDeadline = Date.now() + STOP_TIMEOUT_MS;
    await exited;
    while (groupAlive(child.pid!)) {
      assert.ok(Date.now() < stopDeadline, `processes of npm run dev still run ${STOP_TIMEOUT_MS / 1000} s after Ctrl-C`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const motoPort = Number(/^ {2}AWS \(moto\) +http:\/\/127\.0\.0\.1:(\d+)$/m.exec(output)?.[1]);
    assert.ok(motoPort > 0, `npm run dev printed moto's address:\n${output}`);
    for (const [name, port] of Object.entries({ ...PORTS, moto: motoPort })) {
      // Temporal and moto run in process groups of their own: the session must have stopped them.
      for (;;) {
        if (await portFree(port)) break;
        assert.ok(Date.now() < stopDeadline, `port ${port} (${name}) is still held after Ctrl-C`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.doesNotMatch(output, /exited with \d+/, `a process of the session failed:\n${output}`);
  });
});
