// Every change to the workflows' commands since the 1.0 baseline, one patch each
// (docs/operations.md, "Workflow code changes"): a run recorded before a change replays without it.
import { patched } from '@temporalio/workflow';

export const versions = {
  /** 1.1: the grant's state in its memo, so the API reads grants and requests from visibility alone. */
  grantMemo: () => patched('1.1-grant-memo'),
  /** 1.2 (sessionsWorkflow): the policy written in one activity, then the permission set provisioned to each account in its own. */
  sessionsPerAccount: () => patched('1.2-sessions-per-account'),
  /** 1.2: a scheduled grant's start is decided again by today's policies before anything is made. */
  scheduledStartCheck: () => patched('1.2-scheduled-start-check'),
  /** 1.3: an expiry ends with one activity (the deletion, then the last audit events), and the run completes in the task that sees it done. */
  expiryInOneActivity: () => patched('1.3-expiry-in-one-activity'),
  /**
   * 1.4: an expiry shows the grant once, when access has ended, not `closing` first: the timer's
   * task records this patch and schedules the activity, nothing else. Decided in that task (where
   * 1.3 is, and in its place), so a worker of either version that runs it acts as it decided.
   */
  expiryShownOnce: () => patched('1.4-expiry-shown-once'),
  /** 1.3: an extension's audit event is written by the API from the update's answer; the workflow writes it at its next wake. */
  extensionAuditByCaller: () => patched('1.3-extension-audit-by-caller'),
};
