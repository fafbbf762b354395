// An outside tool reads the API from its own OpenAPI (issue 36 §6). Schemathesis, run as a new user
// runs it (`schemathesis run .../openapi.json` with a token and the tenant header, every check on),
// generates requests from GET /openapi.json alone, follows the document's links from one answer's
// ids to the routes by id, and checks every answer against the document. Nothing here names a
// route: what is tested is what the document says, so a route the document gets wrong fails here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../scripts/stack';
import { SCHEMATHESIS_TENANT, call, current, tokenFor } from './support/world';

/**
 * Cases per operation and phase, and scenarios of the stateful phase (Hypothesis' own default is
 * 100). This many finds each failure this test was written against, and follows enough links to
 * reach every route by id, in under a minute on a 2-core machine (about 1,900 requests).
 */
const MAX_EXAMPLES = 50;
/**
 * A fixed seed: CI runs the same cases every time, so a red run is a change in the API or its
 * document, not a draw. (Another seed explores more: `SCHEMATHESIS_SEED=... npx mocha ...`.)
 */
const SEED = process.env.SCHEMATHESIS_SEED ?? '2';

interface Verdict {
  schemathesis_version: string;
  operations: { total: number; selected: number; tested: number; errored: number; skipped: number; skip_reasons: string[] };
  failures: { title: string; count: number; operations: string[] }[];
  errors: { title: string; count: number }[];
  /** Each kind of warning, with the operations it names. */
  warnings: Record<string, string[]>;
}

/** One request the run sent, and what the API answered (from its NDJSON event stream). */
interface Exchange {
  phase: string;
  operation: string;
  /** Every part of the request as the document says it should be (not a deliberately broken one). */
  positive: boolean;
  status: number;
  body: string;
}

function exchangesOf(ndjson: string): Exchange[] {
  const exchanges: Exchange[] = [];
  for (const line of ndjson.split('\n')) {
    if (!line) continue;
    const finished = (JSON.parse(line) as { ScenarioFinished?: { phase: string; recorder: Recorder } }).ScenarioFinished;
    if (!finished) continue;
    const { cases = {}, interactions = {} } = finished.recorder;
    for (const [id, { value }] of Object.entries(cases)) {
      const response = interactions[id]?.response;
      if (!response) continue;
      exchanges.push({
        phase: finished.phase,
        operation: `${value.method} ${value.path}`,
        positive: value.meta?.generation?.mode === 'positive',
        status: response.status_code,
        body: response.content ? Buffer.from(response.content.$base64, 'base64').toString('utf8') : '',
      });
    }
  }
  return exchanges;
}
interface Recorder {
  cases?: Record<string, { value: { method: string; path: string; meta?: { generation?: { mode?: string } } } }>;
  interactions?: Record<string, { response?: { status_code: number; content?: { $base64: string } } }>;
}

/**
 * Rules between a value and the API's state, or between fields, that no JSON Schema can state
 * (schemathesis.toml lets these operations answer 400 to schema-valid requests): a 400 to a
 * schema-valid request must be one of them, by the API's own words.
 */
const RULES_NO_SCHEMA_STATES = [
  /The cursor is not one this API (gave for these filters|handed out)/, // signed, or handed out
  /`from` is after `to`|`from` and `to` are at most 92 days apart/,
  /each target and role may appear once/,
  /starts_at may be at most \d+ seconds ahead/,
];

/** Runs a command to its end; its exit code and everything it printed, whatever the code. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 8 * 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : undefined) : 0;
      // Not found, or killed by the timeout: no verdict to read.
      if (code === undefined) reject(new Error(`${command}: ${err?.message}${command === 'schemathesis' ? ' (scripts/install.sh installs it with pip)' : ''}\n${stdout}${stderr}`));
      else resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

describe('Schemathesis, from GET /openapi.json alone', () => {
  it('finds no failure with every check on, and tests every operation the document lists', async function () {
    this.timeout(10 * 60_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'schemathesis-'));
    const reportPath = path.join(dir, 'report.json');
    const eventsPath = path.join(dir, 'events.ndjson');
    // stan: of a tenant whose rate limits are far above what the run sends (no answer is a 429), and
    // where an ensure the API takes opens an access request (the routes by id get real ids).
    const token = await tokenFor('stan');
    const { code, output } = await run(
      'schemathesis',
      [
        '--config-file', path.join(repoRoot, 'schemathesis.toml'),
        'run', `${current().baseUrl}/openapi.json`,
        '-H', `Authorization: Bearer ${token}`,
        '-H', `X-Tenant-ID: ${SCHEMATHESIS_TENANT.id}`,
        '--checks', 'all',
        '--max-examples', String(MAX_EXAMPLES),
        '--seed', SEED,
        // Examples found in one run are not replayed in the next: each CI run is its own.
        '--generation-database', 'none',
        '--report', 'json,ndjson', '--report-json-path', reportPath, '--report-ndjson-path', eventsPath,
        '--no-color',
      ],
      dir,
      // schemathesis.toml names the tenant of the sign-in lookup by it, as a client knows its tenant;
      // the hooks keep generated ensures of several entitlements from each naming a group (see there).
      { ...process.env, ACCESS_TENANT_ID: SCHEMATHESIS_TENANT.id, SCHEMATHESIS_HOOKS: path.join(repoRoot, 'test/fixtures/schemathesis-hooks.py') },
    );
    writeFileSync(path.join(dir, 'output.txt'), output);
    const verdict = JSON.parse(readFileSync(reportPath, 'utf8')) as Verdict;
    const exchanges = exchangesOf(readFileSync(eventsPath, 'utf8'));
    // Its summary (or its last lines, when it stopped before one); the whole output, every failure with
    // a curl line to replay it, stays in the folder.
    const summaryAt = output.lastIndexOf('= SUMMARY =');
    const said = `schemathesis ${verdict.schemathesis_version}, seed ${SEED}, exit ${code}; all of it in ${dir}:\n${output.slice(summaryAt >= 0 ? summaryAt : -5_000)}`;

    const doc = (await call('GET', '/openapi.json', { token: null, tenant: null })).body as { paths: Record<string, object> };
    const operations = Object.entries(doc.paths).flatMap(([route, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${route}`));
    assert.deepEqual(verdict.failures, [], said);
    assert.deepEqual(verdict.errors, [], said);
    assert.deepEqual(
      [verdict.operations.total, verdict.operations.selected, verdict.operations.tested],
      [operations.length, operations.length, operations.length],
      `every operation of the document is tested: ${said}`,
    );
    assert.deepEqual(verdict.warnings.rate_limited, [], said);
    // Slack's route takes no bearer token: a click is signed with the tenant's Slack signing secret,
    // which a tool reading the document cannot have, so 401 is its right answer here.
    assert.deepEqual(verdict.warnings.missing_auth, ['POST /v1/integrations/slack/interactions'], said);

    const refused = exchanges.filter((e) => e.positive && e.status === 400 && !RULES_NO_SCHEMA_STATES.some((rule) => rule.test(e.body)));
    assert.deepEqual(refused.map((e) => `${e.operation}: ${e.body}`), [], `a schema-valid request is refused only by a rule no schema states: ${said}`);
    // Tested is not yet reached: a route by id that only ever saw made-up ids answers 404 every time.
    // The document's links carry the ids one answer gives to the routes by id; an answer only a found
    // grant or request gets (200, 403 for one's own request to review, 409 for one no longer open) says
    // the stateful phase followed them.
    // The sign-in lookup is by the tenant the client names (as in X-Tenant-ID), not by an id an answer
    // gives: schemathesis.toml names it, and the lookup must have answered.
    const signIn = 'GET /v1/tenants/{tenant_id}/sign-in';
    const byId = operations.filter((o) => o.includes('{') && o !== signIn);
    const reached = new Set(exchanges.filter((e) => e.phase === 'stateful' && [200, 403, 409].includes(e.status)).map((e) => e.operation));
    assert.deepEqual(byId.filter((o) => !reached.has(o)), [], `every route by id is reached with an id the API gave: ${said}`);
    assert.ok(exchanges.some((e) => e.operation === signIn && e.status === 200), `the sign-in lookup answered the tenant's settings: ${said}`);
    assert.equal(code, 0, said);
    rmSync(dir, { recursive: true, force: true });
  });
});
