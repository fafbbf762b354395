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
/** Every other history of this version's folder: other paths and workflows, and runs kept from an earlier version of one workflow (`-1.1`). */
const OTHER_HISTORIES = [
  'audit-activate-expire',
  'audit-request-approve-revoke',
  'audit-extend-cancel',
  'scheduled-activate-revoke',
  'scheduled-activate-revoke-1.1',
  'scheduled-approve-ahead-revoke',
  'scheduled-approve-ahead-revoke-1.1',
  'revoke-sessions',
  'sessions-cutoff-prune',
  'sessions-cutoff-prune-1.1',
  'sessions-continue-as-new',
  'reconcile-removes-leftover',
  'leftover-removed',
  'organization-read',
  'group-activate-expire',
  'group-request-approve-revoke',
  'group-reconcile-removes-leftover',
  // Expiries and extensions as 1.2 made them, before 1.3 ended an expiry with one activity and
  // handed an extension's audit event to the API.
  'activate-then-expire-1.2',
  'activate-extend-expire-1.2',
  'audit-activate-expire-1.2',
  'group-activate-expire-1.2',
  'notify-activate-warn-extend-expire-1.2',
  'preexisting-assignment-1.2',
  'audit-extend-cancel-1.2',
  'extensions-continue-as-new-1.2',
  // Expiries as 1.3 made them: the grant shown `closing` in the timer's task, which also recorded
  // the 1.3 patch, before 1.4 decided the expiry's path at the run's start and showed it once.
  'activate-then-expire-1.3',
  'activate-extend-expire-1.3',
  'audit-activate-expire-1.3',
  'group-activate-expire-1.3',
  'notify-activate-warn-extend-expire-1.3',
  'preexisting-assignment-1.3',
];
/**
 * Recorded under 1.0 while their runs were still open (before recordRun waited for the close):
 * they replay as far as they go, and the 1.0 code that could record them again is gone.
 */
const OPEN_WHEN_RECORDED = ['1.0/request-approve-revoke', '1.0/audit-request-approve-revoke'];
const CLOSING_EVENTS = [
  'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
  'EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT',
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

  it('names every history it holds, and every folder of an earlier version', () => {
    const folders = readdirSync(HISTORIES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.deepEqual(folders.sort(), [...EARLIER_VERSIONS].sort(), 'a folder of versions the test does not list');
    const named = [...MAIN_PATHS, ...OTHER_HISTORIES];
    for (const { workflowId } of histories()) {
      const name = workflowId.includes('/') ? workflowId.slice(workflowId.indexOf('/') + 1) : workflowId;
      assert.ok(named.includes(name), `test/histories/${workflowId}.json is in no list of this test`);
    }
    for (const name of OTHER_HISTORIES) assert.ok(histories().some((h) => h.workflowId === name), `test/histories/${name}.json is missing`);
  });

  it('holds only histories of closed runs: each ends with its run closing', () => {
    for (const { workflowId } of histories()) {
      if (OPEN_WHEN_RECORDED.includes(workflowId)) continue;
      const folder = workflowId.includes('/') ? path.join(HISTORIES, workflowId.slice(0, workflowId.indexOf('/'))) : HISTORIES;
      const events = JSON.parse(readFileSync(path.join(folder, `${path.basename(workflowId)}.json`), 'utf8')).events as { eventType: string }[];
      assert.ok(CLOSING_EVENTS.includes(events.at(-1)!.eventType), `${workflowId} ends with ${events.at(-1)!.eventType}: recorded while its run was open`);
    }
  });

  it('replays every recorded history on the current workflow code', async () => {
    const errors = await replayErrors(require.resolve('../src/workflows'));
    assert.equal(errors.size, histories().length);
    for (const [name, error] of errors) assert.equal(error, undefined, `${name}: ${error?.message}`);
  });

  it('fails when the workflow code changes non-deterministically', async () => {
    const errors = await replayErrors(require.resolve('./fixtures/nondeterministic-workflows'));
    assert.equal(errors.size, histories().length, 'the check ran on every history');
    for (const [name, error] of errors) assert.ok(error instanceof DeterminismViolationError, `${name}: ${error ? error.message : 'replayed without error'}`);
  });
});
