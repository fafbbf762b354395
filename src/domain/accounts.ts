// What policies and listings know of one of a tenant's accounts: its config entry, and what the
// latest read of its organisation said (src/activities/organizations.ts). Pure: the API and the
// worker decide on the same facts.
import { environmentOf, grantableGroup, type OrganizationConfig, type TenantConfig, UNKNOWN_ENVIRONMENT } from '../config';
import { accountIdOf, groupOf } from './grant';

/** One ACTIVE account as AWS Organizations lists it. */
export interface OrganizationAccount {
  name: string;
  /** Its state at the read (only ACTIVE accounts are kept). */
  status: string;
  tags: Record<string, string>;
  /** The ids of the root and OUs above it, from the root down. */
  ou_path: string[];
  /** When its tags were last asked for (a read carries older ones over; see tag_reads_per_refresh). */
  tags_read_at: string;
}

/** One read of a tenant's organisation: the result of organizationWorkflow, which the API holds. */
export interface OrganizationReport {
  tenantId: string;
  readAt: string;
  /** Account id to what the organisation says of it: the tenant's accounts there, exclusions applied. */
  accounts: Record<string, OrganizationAccount>;
  /** Root and OU ids to their names (every one on a path). */
  ous: Record<string, string>;
  /** The calls the read made (the bench's figure). */
  calls: number;
}

/** An account as policies see it. */
export interface AccountFacts {
  id: string;
  /** Its name in the config, else in the organisation; null when neither says. */
  name: string | null;
  environment: string;
  tags: Record<string, string>;
  ou_path: string[];
  /** One of the tenant's own accounts: listed in its config, or found in its organisation at the latest read. */
  owned: boolean;
}

/**
 * The facts of `accountId` for the tenant: the config's environment and name first (what the
 * tenant wrote is meant), then the organisation's, the environment from the tag the tenant names.
 * `organization` is the latest read (undefined: none has completed yet).
 */
export function accountFacts(tenant: Pick<TenantConfig, 'accounts' | 'organization'>, accountId: string, organization: OrganizationReport | undefined): AccountFacts {
  const listed = tenant.accounts[accountId];
  const found = tenant.organization ? organization?.accounts[accountId] : undefined;
  const configured = environmentOf(tenant, accountId);
  const tag = tenant.organization?.environment_tag;
  const tagged = tag !== undefined ? found?.tags[tag] : undefined;
  return {
    id: accountId,
    name: listed?.name ?? found?.name ?? null,
    environment: configured !== UNKNOWN_ENVIRONMENT ? configured : (tagged ?? UNKNOWN_ENVIRONMENT),
    tags: found?.tags ?? {},
    ou_path: found?.ou_path ?? [],
    owned: listed !== undefined || found !== undefined,
  };
}

/** The tenant's accounts: those it lists and those its organisation holds, in id order. */
export function tenantAccountIds(tenant: Pick<TenantConfig, 'accounts' | 'organization'>, organization: OrganizationReport | undefined): string[] {
  const ids = new Set(Object.keys(tenant.accounts));
  if (tenant.organization && organization) for (const id of Object.keys(organization.accounts)) ids.add(id);
  return [...ids].sort();
}

/**
 * Whether an account at `ouPath` (from the root down) is in the organisation part of a tenant's
 * config: under one of its roots or OUs, and neither it nor an OU above it excluded.
 */
export function inOrganization(organization: OrganizationConfig, accountId: string, ouPath: readonly string[]): boolean {
  if (organization.exclude.includes(accountId) || ouPath.some((id) => organization.exclude.includes(id))) return false;
  return ouPath.some((id) => organization.roots_or_ous.includes(id));
}

/**
 * What policies see of a target: its account's facts, or a grantable group's name and environment
 * (a group the tenant does not list is seen with environment "unknown").
 */
export function policyResourceOf(tenant: Pick<TenantConfig, 'accounts' | 'organization' | 'groups'>, target: string, organization: OrganizationReport | undefined) {
  const group = groupOf(target);
  if (group !== undefined) {
    const environment = grantableGroup(tenant, group)?.environment ?? UNKNOWN_ENVIRONMENT;
    return { accountId: '', accountEnvironment: environment, group: { name: group, environment } };
  }
  const account = accountFacts(tenant, accountIdOf(target), organization);
  return { accountId: account.id, accountEnvironment: account.environment, account };
}
