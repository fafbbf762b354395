// An outside tool reads the API from its own OpenAPI (issue 36 §6). Schemathesis, run as a new user
// runs it (`schemathesis run .../openapi.json` with a token and the tenant header, every check on),
// generates requests from GET /openapi.json alone, follows the document's links from one answer's
// ids to the routes by id, and checks every answer against the document. Nothing here names a
// route: what is tested is what the document says, so a route the document gets wrong fails here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TENANT, call, current, tokenFor } from './support/world';

/**
 * Cases per operation and phase. Hypothesis' own default is 100; this many already finds each of the
 * failures this test was written against, and keeps the run near a minute on a 2-core CI machine.
 */
const MAX_EXAMPLES = 20;

interface Verdict {
  schemathesis_version: string;
  operations: { total: number; selected: number; tested: number; errored: number; skipped: number; skip_reasons: string[] };
  failures: { title: string; count: number; operations: string[] }[];
  errors: { title: string; count: number }[];
  /** Each kind of warning, with the operations it names. */
  warnings: Record<string, string[]>;
}

/** Runs a command to its end; its exit code and everything it printed, whatever the code. */
function run(command: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 8 * 60_000 }, (err, stdout, stderr) => {
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
    // stan: a principal of a tenant whose rate limits are far above what the run sends, so no answer is a 429.
    const token = await tokenFor('stan');
    const { code, output } = await run(
      'schemathesis',
      [
        'run', `${current().baseUrl}/openapi.json`,
        '-H', `Authorization: Bearer ${token}`,
        '-H', `X-Tenant-ID: ${TENANT.id}`,
        '--checks', 'all',
        '--max-examples', String(MAX_EXAMPLES),
        // Examples found in one run are not replayed in the next: each CI run is its own.
        '--generation-database', 'none',
        '--report', 'json', '--report-json-path', reportPath,
        '--no-color',
      ],
      dir,
    );
    const verdict = JSON.parse(readFileSync(reportPath, 'utf8')) as Verdict;
    // The seed as printed: the report's JSON number has lost digits by the time JSON.parse reads it.
    const seed = /^Seed: (\d+)/m.exec(output)?.[1];
    const said = `schemathesis ${verdict.schemathesis_version} (exit ${code}; again with --seed ${seed}):\n${output.slice(-20_000)}`;

    const doc = (await call('GET', '/openapi.json', { token: null, tenant: null })).body as { paths: Record<string, object> };
    const operations = Object.values(doc.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
    assert.deepEqual(verdict.failures, [], said);
    assert.deepEqual(verdict.errors, [], said);
    assert.deepEqual(
      [verdict.operations.total, verdict.operations.selected, verdict.operations.tested],
      [operations, operations, operations],
      `every operation of the document is tested: ${said}`,
    );
    // Tested is not yet reached: an operation by id that only ever saw made-up ids (404), or only 429s,
    // never got past them. The document's links carry the ids one answer gives to the routes by id.
    assert.deepEqual(verdict.warnings.missing_test_data, [], `every route by id is reached with an id the API gave: ${said}`);
    assert.deepEqual(verdict.warnings.rate_limited, [], said);
    // Slack's route takes no bearer token: a click is signed with the tenant's Slack signing secret,
    // which a tool reading the document cannot have, so 401 is its right answer here.
    assert.deepEqual(verdict.warnings.missing_auth, ['POST /v1/integrations/slack/interactions'], said);
    assert.equal(code, 0, said);
  });
});
