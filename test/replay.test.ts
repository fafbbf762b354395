// Histories recorded from the real server (`npm run record-histories`) must replay on today's
// workflow code: a change that breaks determinism fails here, not in production. test/histories
// holds the current version's; test/histories/<version> those of each earlier one, whose runs may
// still be in flight when this code is deployed (docs/operations.md, "Workflow code changes").
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';

const HISTORIES = path.resolve(__dirname, '../../test/histories');
const EARLIER_VERSIONS = ['1.0'];
const MAIN_PATHS = [
  'activate-then-expire',
  'activate-extend-expire',
  'preexisting-assignment',
  'request-approve-revoke',
  'request-deny',
  'request-expire',
  'provisioning-failed',
  'reconcile-restore',
  'notify-request-approve-revoke',
  'notify-activate-warn-extend-expire',
  'cancel-active',
  'cancel-pending',
  'cancel-provisioning',
  'extension-approve-revoke',
  'break-glass-acknowledged-revoke',
  'break-glass-denied',
  'request-two-approvals-revoke',
  'provisioning-extended-revoke',
  'extensions-continue-as-new',
];

function historiesIn(dir: string, prefix = '') {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ workflowId: prefix + path.basename(f, '.json'), history: historyFromJSON(JSON.parse(readFileSync(path.join(dir, f), 'utf8'))) }));
}

function histories() {
  return [...historiesIn(HISTORIES), ...EARLIER_VERSIONS.flatMap((v) => historiesIn(path.join(HISTORIES, v), `${v}/`))];
}

async function replayErrors(workflowsPath: string): Promise<Map<string, Error | undefined>> {
  const errors = new Map<string, Error | undefined>();
  for await (const result of Worker.runReplayHistories({ workflowsPath }, histories())) {
    errors.set(result.workflowId, result.error);
  }
  return errors;
}

describe('workflow replay', function () {
  this.timeout(180_000);

  it('has a recorded history of every main path, for this version and each earlier one', () => {
    const recorded = histories().map((h) => h.workflowId);
    for (const version of ['', ...EARLIER_VERSIONS.map((v) => `${v}/`)]) {
      for (const name of MAIN_PATHS) assert.ok(recorded.includes(version + name), `test/histories/${version}${name}.json is missing`);
    }
  });

  it('replays every recorded history on the current workflow code', async () => {
    const errors = await replayErrors(require.resolve('../src/workflows'));
    assert.equal(errors.size, histories().length);
    for (const [name, error] of errors) assert.equal(error, undefined, `${name}: ${error?.message}`);
  });

  it('fails when the workflow code changes non-deterministically', async () => {
    const errors = await replayErrors(require.resolve('./fixtures/nondeterministic-workflows'));
    for (const [name, error] of errors) assert.ok(error instanceof DeterminismViolationError, `${name} replayed without error`);
  });
});
