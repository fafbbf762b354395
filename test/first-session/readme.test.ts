// The README's first command and first session, as a newcomer runs them (issue 36 §5): `npm run
// dev` on its defaults, the README's export and curl lines (activated, then none once active), its
// first CLI command, then Ctrl-C stops everything it started. The commands are read from the
// README, so a README that drifts from what works fails here; signing in as alice at the dev
// identity provider too. Run by `npm run test:first-session`
// (in .ci/run, after `npm test`): it needs the ports the README names, so never beside a dev stack.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/stack';
import { launchChromium, signedIn } from '../support/browser';
import { SignInBrowser } from '../support/sign-in-browser';

/** The ports `npm run dev` takes by default: the API (the README's curl names it), Temporal, its Web UI. */
const PORTS = { api: 8080, temporal: 7233, temporalUi: 8233, identityProvider: 8180 };
/** A fresh clone's `npm run dev` builds first, and may install the Temporal CLI. */
const START_TIMEOUT_MS = 10 * 60_000;
/** Ctrl-C to every process gone. */
const STOP_TIMEOUT_MS = 60_000;

const run = promisify(execFile);

/**
 * The README's "A first session": in its first block, the export line, the curl command and the
 * first CLI command; its second block, signing in, as commands (comments dropped).
 */
function firstSession(): { exportLine: string; curl: string; firstCli: string; signIn: string[] } {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = /^## A first session\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'the README has a section "A first session"');
  const [block, signInBlock] = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(block && signInBlock, 'the section has two sh blocks: the curl line and the CLI, then signing in');
  const signIn = signInBlock
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, ''))
    .filter((l) => l && !l.startsWith('#'));
  const lines = block.split('\n');
  const exportLine = lines.find((l) => l.startsWith('export '));
  const curlAt = lines.findIndex((l) => l.startsWith('curl '));
  assert.ok(exportLine && curlAt >= 0, 'the block exports the token and calls curl');
  // The curl command runs to the first comment line (its answer).
  const curlEnd = lines.findIndex((l, i) => i > curlAt && l.startsWith('#'));
  const curl = lines.slice(curlAt, curlEnd).join('\n');
  const firstCli = lines.slice(curlEnd).find((l) => /^(npx|npm) /.test(l))?.replace(/\s+#.*$/, '');
  assert.ok(firstCli, 'a CLI command follows the curl line');
  return { exportLine, curl, firstCli, signIn };
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

  it('npm run dev starts everything; the curl line activates, then answers none once active; the CLI lists the grant; alice signs in and the CLI works without a token copied; in the console alice asks and carol approves; Ctrl-C stops it all', async () => {
    const { exportLine, curl, firstCli, signIn } = firstSession();
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

    // Signing in: the README's block as written, with alice signing in at the dev provider's pages.
    const profiles = mkdtempSync(path.join(os.tmpdir(), 'access-first-session-profiles-'));
    const said: string[] = [];
    for (const command of signIn) {
      const script = `set -euo pipefail\n${exported}\n${signIn.slice(0, signIn.indexOf(command)).filter((c) => c.startsWith('unset ')).join('\n')}\n${command}`;
      const shellEnv = { ...env, XDG_CONFIG_HOME: profiles };
      if (!/ access login\b/.test(command)) {
        said.push((await run('bash', ['-c', script], { cwd: repoRoot, env: shellEnv })).stdout);
        continue;
      }
      const login = spawn('bash', ['-c', script], { cwd: repoRoot, env: shellEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let printed = '';
      login.stdout!.on('data', (c: Buffer) => (printed += c.toString()));
      login.stderr!.on('data', (c: Buffer) => (printed += c.toString()));
      const ended = new Promise<number | null>((resolve) => login.once('exit', resolve));
      for (let waited = 0; !/^ {2}http\S+$/m.test(printed); waited += 100) {
        assert.ok(waited < 60_000, `access login printed no address to sign in at:\n${printed}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const page = await new SignInBrowser().signIn(/^ {2}(http\S+)$/m.exec(printed)![1], 'alice');
      assert.match(page.body, /Signed in/);
      assert.equal(await ended, 0, printed);
      said.push(printed);
    }
    assert.match(said.join(''), /Signed in to http:\/\/127\.0\.0\.1:8080 .* as alice@example\.com/, said.join(''));
    assert.match(said.join(''), /^principal +alice \(alice@example\.com\)$/m, said.join(''));
    assert.match(said.at(-1)!, /^ACTIVE +ReadOnlyAccess on AWS::Account::123456789012 until/m, 'the grant the curl line made');
    rmSync(profiles, { recursive: true, force: true });

    // The console, as the README says: the printed address, alice asks, carol approves, all in Chromium.
    const consoleUrl = /^ {2}console +(http\S+)$/m.exec(output)?.[1];
    assert.ok(consoleUrl, `npm run dev printed the console's address:\n${output}`);
    const browser = await launchChromium();
    try {
      const alice = (await signedIn(browser, consoleUrl, 'alice')).page;
      await alice.getByRole('link', { name: 'Request access' }).click();
      await alice.locator('tr', { hasText: 'sandbox' }).filter({ hasText: 'AdministratorAccess' }).getByRole('checkbox').check();
      await alice.getByLabel('Reason').fill('trying the console');
      await alice.getByRole('button', { name: 'Send' }).click();
      await alice.waitForURL(/\/access\?/);
      assert.match(await alice.getByRole('status').innerText(), /1 sent for review/);
      const carol = (await signedIn(browser, consoleUrl, 'carol')).page;
      await carol.getByRole('link', { name: 'Review' }).click();
      await carol.locator('article.request', { hasText: 'trying the console' }).getByRole('button', { name: 'Approve' }).click();
      await carol.locator('article.request.approved', { hasText: 'trying the console' }).waitFor();
      await alice.locator('#current tr[data-grant]', { hasText: 'AdministratorAccess' }).locator('.status.active').waitFor({ timeout: 60_000 });
    } finally {
      await browser.close();
    }

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
