// Ending AWS sessions with the grant (`aws.revoke_sessions`): the one activity that writes our
// Deny statements into a permission set's inline policy and provisions the permission set again,
// so the accounts' roles carry them. Only the permission set's own workflow calls it
// (workflows/sessions.ts), one call at a time: no lost update between two ends.
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
  fitInlinePolicy,
  InlinePolicyError,
  nextPruneAt,
  parseInlinePolicy,
  renderInlinePolicy,
  type SessionCutoff,
  sessionSecondsOf,
  withCutoffs,
} from '../domain/sessions';
import { heartbeating, settle } from './poll';

export interface CutoffsApplied {
  /** When the next of our statements may be pruned; null when none is left. */
  nextPruneAt: string | null;
  /** The accounts the permission set was provisioned to again. */
  provisioned: string[];
}

export type SessionActivities = ReturnType<typeof createSessionActivities>;

export function createSessionActivities({ ssoOf }: { ssoOf: (tenantId: string) => { sso: SSOAdminClient; instanceArn: string } }) {
  async function provision(sso: SSOAdminClient, InstanceArn: string, PermissionSetArn: string, accountId: string): Promise<void> {
    const started = await sso.send(new ProvisionPermissionSetCommand({ InstanceArn, PermissionSetArn, TargetType: 'AWS_ACCOUNT', TargetId: accountId }));
    const status = await settle(started.PermissionSetProvisioningStatus, async (requestId) => {
      const polled = await sso.send(new DescribePermissionSetProvisioningStatusCommand({ InstanceArn, ProvisionPermissionSetRequestId: requestId }));
      return polled.PermissionSetProvisioningStatus;
    });
    if (status.Status === 'FAILED') {
      throw ApplicationFailure.retryable(`Provisioning the permission set to ${accountId} failed: ${status.FailureReason ?? 'AWS gave no reason'}`, 'PermissionSetProvisioningFailed');
    }
  }

  return {
    /**
     * Adds `add` to the permission set's inline policy (keeping the customer's statements), drops
     * our statements whose sessions have all ended, and provisions the permission set again to
     * every account whose statements changed. Idempotent: a retry finds its own statements there.
     */
    applySessionCutoffs({ tenantId, permissionSetArn, add }: { tenantId: string; permissionSetArn: string; add: SessionCutoff[] }): Promise<CutoffsApplied> {
      return heartbeating(async () => {
        const { sso, instanceArn: InstanceArn } = ssoOf(tenantId);
        const PermissionSetArn = permissionSetArn;
        const [{ PermissionSet }, { InlinePolicy }] = await Promise.all([
          sso.send(new DescribePermissionSetCommand({ InstanceArn, PermissionSetArn })),
          sso.send(new GetInlinePolicyForPermissionSetCommand({ InstanceArn, PermissionSetArn })),
        ]);
        const sessionSeconds = sessionSecondsOf(PermissionSet?.SessionDuration);
        let policy;
        try {
          policy = parseInlinePolicy(InlinePolicy);
        } catch (err) {
          if (err instanceof InlinePolicyError) throw ApplicationFailure.retryable(`${PermissionSetArn}: ${err.message}; fix it, and sessions are ended then`, 'InlinePolicyUnreadable');
          throw err;
        }
        const { kept, pruned } = withCutoffs(policy.ours, add, new Date(), sessionSeconds);
        const fitted = fitInlinePolicy({ ...policy, ours: kept });
        if (!fitted) {
          throw ApplicationFailure.retryable(`${PermissionSetArn}: the inline policy would exceed AWS's size limit even with our statements merged per account`, 'InlinePolicyFull');
        }
        const text = renderInlinePolicy(fitted);
        if (fitted.others.length === 0 && fitted.ours.length === 0) {
          if (InlinePolicy) await sso.send(new DeleteInlinePolicyFromPermissionSetCommand({ InstanceArn, PermissionSetArn }));
        } else if (text !== InlinePolicy) {
          await sso.send(new PutInlinePolicyToPermissionSetCommand({ InstanceArn, PermissionSetArn, InlinePolicy: text }));
        }
        const accounts = [...new Set([...add.map((c) => c.accountId), ...pruned.map((c) => c.accountId)])].sort();
        for (const account of accounts) await provision(sso, InstanceArn, PermissionSetArn, account);
        return { nextPruneAt: nextPruneAt(fitted.ours, sessionSeconds), provisioned: accounts };
      });
    },
  };
}
