// Deciding again when a scheduled grant starts (issue 35 §5): the call was decided up to
// `grants.max_schedule_ahead_seconds` earlier, and policies, the tenant's accounts and the
// permission set may have changed since. Today's policies decide, with the account as configured
// now, the permission set's session duration as AWS says now, and the requester as the grant
// keeps them (their groups at the call).
import { type AppConfig, grantableGroup, ownAccountsOnly, tenantById } from '../config';
import { type OrganizationReport, policyResourceOf } from '../domain/accounts';
import type { GrantState } from '../domain/grant';
import { loadPolicySet, type PolicySet } from '../policy';
import { askedByGrant, policyContext } from '../policy/context';

/** What the start is decided on: the grant as it waits. */
export type ScheduledGrant = Pick<GrantState, 'key' | 'principal' | 'durationSeconds' | 'justification' | 'startsAt' | 'requestedAt' | 'review'> & {
  /** With the facts the call was decided on (issue 40); absent from grants started before. */
  validation?: GrantState['validation'];
};

export interface StartDecision {
  allowed: boolean;
  /** The determining policies' @advice, or why it is refused when no policy says. */
  notices: string[];
  policyIds: string[];
}

export type PolicyActivities = ReturnType<typeof createPolicyActivities>;

export function createPolicyActivities(
  config: AppConfig,
  { sessionSeconds, organizationOf }: { sessionSeconds: (tenantId: string, role: string) => Promise<number>; organizationOf: (tenantId: string) => Promise<OrganizationReport | undefined> },
) {
  // Loaded at start-up, as the API does: a policy folder that does not load stops the worker.
  const byFolder = new Map<string, PolicySet>();
  for (const tenant of config.tenants) if (!byFolder.has(tenant.policies)) byFolder.set(tenant.policies, loadPolicySet(tenant.policies));

  return {
    /**
     * Whether the grant may still start: `request` permitted, and `activate` too unless a reviewer
     * approved it. A grant that policy would now only let one ask for is refused: ask again.
     */
    async authorizeStart(grant: ScheduledGrant): Promise<StartDecision> {
      const { key } = grant;
      const tenant = tenantById(config, key.tenantId);
      const refused = (notice: string, policyIds: readonly string[] = []): StartDecision => ({ allowed: false, notices: [notice], policyIds: [...policyIds] });
      if (!tenant) return refused('The tenant is no longer configured.');
      // As the API sees it: the organisation as last read (an account moved out, or closed, since the call is refused).
      const resource = policyResourceOf(tenant, key.target, await organizationOf(tenant.id));
      if (resource.group && !grantableGroup(tenant, resource.group.name)) return refused(`${key.target} is no longer a grantable group of this tenant.`);
      if (resource.account && ownAccountsOnly(tenant) && !resource.account.owned) return refused(`${key.target} is no longer one of this tenant's accounts.`);
      if (grant.durationSeconds > tenant.grants.max_duration_seconds) {
        return refused(`${key.role} on ${key.target}: at most ${tenant.grants.max_duration_seconds} seconds may now be requested (the grant is for ${grant.durationSeconds}).`);
      }
      // As the API decided at the call: the same context, `starts_in_seconds` counted from the call.
      const context = policyContext(askedByGrant(grant), { [key.role]: await sessionSeconds(tenant.id, key.role) });
      const policies = byFolder.get(tenant.policies) ?? loadPolicySet(tenant.policies);
      const decide = (action: 'request' | 'activate') =>
        policies.authorize({ principal: grant.principal, action, ...resource, context });
      const asked = decide('request');
      if (!asked.allowed) {
        return { allowed: false, notices: asked.notices.length > 0 ? [...asked.notices] : [`No policy allows ${grant.principal.id} to request ${key.role} on ${key.target} any more.`], policyIds: [...asked.policyIds] };
      }
      if (grant.review?.decision === 'approve') return { allowed: true, notices: [], policyIds: [...asked.policyIds] };
      const activate = decide('activate');
      if (!activate.allowed) {
        return { allowed: false, notices: [...activate.notices, `${key.role} on ${key.target} now needs a reviewer's approval: ask again.`], policyIds: [...activate.policyIds] };
      }
      return { allowed: true, notices: [], policyIds: [...activate.policyIds] };
    },
  };
}
