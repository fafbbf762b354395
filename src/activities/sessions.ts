// Ending AWS sessions with the grant (`aws.revoke_sessions`): writing our Deny statements into a
// permission set's inline policy, and provisioning the permission set again to one account, so the
// account's role carries them. Only the permission set's own workflow calls these
// (workflows/sessions.ts), one write at a time.
import {
  DeleteInlinePolicyFromPermissionSetCommand,
  DescribePermissionSetCommand,
  DescribePermissionSetProvisioningStatusCommand,
  GetInlinePolicyForPermissionSetCommand,
  ProvisionPermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { ApplicationFailure } from '@temporalio/common';
import {
  changedAccounts,
  fitInlinePolicy,
  InlinePolicyError,
  nextPruneAt,
  parseInlinePolicy,
  renderInlinePolicy,
  type SessionCutoff,
  sessionSecondsOf,
  withCutoffs,
  writtenCutoff,
} from '../domain/sessions';
import { createLogger } from '../log';
import { activityContext, heartbeating, settle } from './poll';

const log = createLogger('sessions');

/** Whose credentials may write to an instance: a configured tenant on it. */
export interface InstanceWriter {
  tenantId: string;
  sso: SSOAdminClient;
  instanceArn: string;
}

export interface CutoffsWritten {
  /** The tenant whose credentials wrote. */
  tenantId: string;
  /**
   * Per cut-off handed in, the moment actually written (never earlier than its own); its own, with
   * `ended`, where its sessions had all ended already (nothing written for it).
   */
  written: (SessionCutoff & { ended?: true })[];
  /**
   * The accounts to provision the permission set to again: those whose statements changed, and
   * those of `add` (an earlier attempt may have written them and never got to provisioning).
   */
  accountsToProvision: string[];
  /** When the next of our statements may be pruned; null when none is left. */
  nextPruneAt: string | null;
  /** The session duration pruning went by: the longest of the permission set's current one and `longestSessionSeconds`. */
  sessionSeconds: number;
  /** Over AWS's size limit, the bucket (in seconds) the account's cut-offs were merged in; null when they fitted as they were. */
  bucketSeconds: number | null;
  /** What an operator should hear (customer statements that use our prefix). */
  warnings: string[];
}

export type SessionActivities = ReturnType<typeof createSessionActivities>;

// A re-read that finds the policy changed since the read starts over on the new text; another
// writer changing it this often is not something to outlast.
const MAX_WRITE_TRIES = 5;

/** Credential failures: another tenant on the instance may still write. */
const CREDENTIAL_FAILURES = new Set(['AccessDeniedException', 'UnrecognizedClientException', 'InvalidSignatureException', 'ExpiredTokenException']);

export function createSessionActivities({ writersOf }: { writersOf: (permissionSetArn: string, preferred: string[]) => InstanceWriter[] }) {
  /** `work` with the first of the writers whose credentials work: a tenant removed or refused does not stall the others of the instance. */
  async function asWriter<T>(permissionSetArn: string, tenantIds: string[], work: (writer: InstanceWriter) => Promise<T>): Promise<T> {
    const writers = writersOf(permissionSetArn, tenantIds);
    if (writers.length === 0) throw ApplicationFailure.retryable(`No configured tenant is on the instance of ${permissionSetArn}`, 'NoWriter');
    let last: unknown;
    for (const writer of writers) {
      try {
        return await work(writer);
      } catch (err) {
        if (!CREDENTIAL_FAILURES.has((err as Error)?.name)) throw err;
        log.warn({ tenant_id: writer.tenantId, permission_set_arn: permissionSetArn, err: (err as Error).message }, 'this tenant cannot write the permission set; trying another tenant on its instance');
        last = err;
      }
    }
    throw last;
  }

  /** Throws once the worker gave up on this attempt: a newer attempt may write, and an older text must not follow it. */
  function stillCurrent(): void {
    const signal = activityContext()?.cancellationSignal;
    if (signal?.aborted) throw signal.reason ?? new Error('the attempt is over');
  }

  const activities = {
    /**
     * Adds `add` to the permission set's inline policy (keeping the customer's statements exactly
     * as they are) and drops our statements whose sessions have all ended. The policy is read again
     * just before the write: if it changed since the read, the write is worked out again on the new
     * text. Idempotent: a retry finds its own statements there and writes nothing.
     */
    writeSessionCutoffs({ tenantIds, permissionSetArn, add, longestSessionSeconds = 0 }: { tenantIds: string[]; permissionSetArn: string; add: SessionCutoff[]; longestSessionSeconds?: number }): Promise<CutoffsWritten> {
      return heartbeating(() =>
        asWriter(permissionSetArn, tenantIds, async ({ tenantId, sso, instanceArn: InstanceArn }) => {
          const ids = { InstanceArn, PermissionSetArn: permissionSetArn };
          const { PermissionSet } = await sso.send(new DescribePermissionSetCommand(ids));
          const sessionSeconds = Math.max(sessionSecondsOf(PermissionSet?.SessionDuration), longestSessionSeconds);
          const read = async () => (await sso.send(new GetInlinePolicyForPermissionSetCommand(ids))).InlinePolicy ?? '';
          let text = await read();
          for (let tries = 1; ; tries++) {
            let policy;
            try {
              policy = parseInlinePolicy(text);
            } catch (err) {
              if (err instanceof InlinePolicyError) throw ApplicationFailure.retryable(`${permissionSetArn}: ${err.message}; fix it, and sessions are ended then`, 'InlinePolicyUnreadable');
              throw err;
            }
            const { kept } = withCutoffs(policy.ours, add, new Date(), sessionSeconds);
            const fitted = fitInlinePolicy({ ...policy, ours: kept });
            if (!fitted) {
              throw ApplicationFailure.retryable(
                `${permissionSetArn}: the inline policy would exceed AWS's size limit even with each account's cut-offs merged by the hour; sessions are ended once older statements are pruned or the customer's statements shrink`,
                'InlinePolicyFull',
              );
            }
            const changed = changedAccounts(policy.ours, fitted.policy.ours);
            if (changed.length > 0) {
              stillCurrent();
              const now = await read();
              if (now !== text) {
                if (tries >= MAX_WRITE_TRIES) throw ApplicationFailure.retryable(`${permissionSetArn}: the inline policy kept changing while it was written`, 'InlinePolicyChanging');
                text = now;
                continue;
              }
              stillCurrent();
              // Nothing left, the customer's part included (the text just read is ours alone): no policy at all.
              if (fitted.policy.others.length === 0 && fitted.policy.ours.length === 0) await sso.send(new DeleteInlinePolicyFromPermissionSetCommand(ids));
              else await sso.send(new PutInlinePolicyToPermissionSetCommand({ ...ids, InlinePolicy: renderInlinePolicy(fitted.policy) }));
            }
            const warnings = policy.lookalikes.map((sid) => `statement ${sid} uses this service's Sid prefix but is not of its shape: kept as the customer's`);
            for (const warning of warnings) log.warn({ permission_set_arn: permissionSetArn }, warning);
            return {
              tenantId,
              written: add.map((c) => {
                const at = writtenCutoff(fitted.policy.ours, c.userId, c.accountId);
                return at === undefined ? { ...c, ended: true as const } : { ...c, at };
              }),
              accountsToProvision: [...new Set([...changed, ...add.map((c) => c.accountId)])].sort(),
              nextPruneAt: nextPruneAt(fitted.policy.ours, sessionSeconds),
              sessionSeconds,
              bucketSeconds: fitted.bucketSeconds,
              warnings,
            };
          }
        }),
      );
    },

    /**
     * Provisions the permission set again to one account, so its role carries the policy as
     * written, once the policy is seen to hold `expect` (the cut-offs of the round in that account):
     * an attempt of an earlier round, given up on but still running, may have written an older
     * text since, and a round that provisioned that would report cut-offs that are not there. The
     * provisioning's request id is in the heartbeat details: a retry polls it rather than
     * provisioning once more.
     */
    provisionSessionCutoffs({ tenantIds, permissionSetArn, accountId, expect = [] }: { tenantIds: string[]; permissionSetArn: string; accountId: string; expect?: SessionCutoff[] }): Promise<void> {
      const context = activityContext();
      const progress = { requestId: (context?.info.heartbeatDetails as { requestId?: string } | undefined)?.requestId };
      return heartbeating(
        () =>
          asWriter(permissionSetArn, tenantIds, async (writer) => {
            if (expect.length > 0) {
              const ours = parseInlinePolicy((await writer.sso.send(new GetInlinePolicyForPermissionSetCommand({ InstanceArn: writer.instanceArn, PermissionSetArn: permissionSetArn }))).InlinePolicy).ours;
              const missing = expect.filter((c) => !(Date.parse(writtenCutoff(ours, c.userId, c.accountId) ?? '') >= Date.parse(c.at)));
              if (missing.length > 0) {
                throw ApplicationFailure.retryable(`${permissionSetArn}: ${missing.length} cut-off(s) in ${accountId} are no longer in the inline policy; written again at the next round`, 'CutoffMissing');
              }
            }
            await provision(writer, permissionSetArn, accountId, progress.requestId, (requestId) => {
              progress.requestId = requestId;
              context?.heartbeat(progress);
            });
          }),
        { details: () => progress },
      );
    },
  };

  /** `earlier`: a provisioning an earlier attempt started, polled instead of starting another; `started` hears each one started. */
  async function provision({ sso, instanceArn: InstanceArn }: InstanceWriter, PermissionSetArn: string, accountId: string, earlier?: string, started?: (requestId: string) => void): Promise<void> {
    const poll = async (requestId: string) =>
      (await sso.send(new DescribePermissionSetProvisioningStatusCommand({ InstanceArn, ProvisionPermissionSetRequestId: requestId }))).PermissionSetProvisioningStatus;
    let first = earlier ? await poll(earlier) : undefined;
    if (!first || first.Status === 'FAILED') {
      stillCurrent();
      first = (await sso.send(new ProvisionPermissionSetCommand({ InstanceArn, PermissionSetArn, TargetType: 'AWS_ACCOUNT', TargetId: accountId }))).PermissionSetProvisioningStatus;
      if (first?.RequestId) started?.(first.RequestId);
    }
    const status = await settle(first, poll);
    if (status.Status === 'FAILED') {
      throw ApplicationFailure.retryable(`Provisioning the permission set to ${accountId} failed: ${status.FailureReason ?? 'AWS gave no reason'}`, 'PermissionSetProvisioningFailed');
    }
  }

  return {
    ...activities,
    /**
     * What runs from before 1.2 (versions.sessionsPerAccount) call: the write, then each account to
     * provision in turn, each provisioned anew (no request id of another account's in its heartbeat).
     */
    async applySessionCutoffs({ tenantId, permissionSetArn, add }: { tenantId: string; permissionSetArn: string; add: SessionCutoff[] }): Promise<{ nextPruneAt: string | null; provisioned: string[] }> {
      const written = await activities.writeSessionCutoffs({ tenantIds: [tenantId], permissionSetArn, add });
      for (const accountId of written.accountsToProvision) await heartbeating(() => asWriter(permissionSetArn, [tenantId], (writer) => provision(writer, permissionSetArn, accountId)));
      return { nextPruneAt: written.nextPruneAt, provisioned: written.accountsToProvision };
    },
  };
}
