// The grant workflow's activities: look up, create and delete one IAM Identity Center account
// assignment (CONTRACT §7). Whether an assignment may be deleted (it must not have existed before
// the grant) is the workflow's decision; these functions only do what they are asked, idempotently.
import { GetUserIdCommand, ResourceNotFoundException as IdentityNotFound } from '@aws-sdk/client-identitystore';
import {
  CreateAccountAssignmentCommand,
  DeleteAccountAssignmentCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  DescribeAccountAssignmentDeletionStatusCommand,
  DescribePermissionSetCommand,
  ResourceNotFoundException as SsoNotFound,
  paginateListAccountAssignments,
  paginateListPermissionSets,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { ApplicationFailure } from '@temporalio/common';
import { tenantById, type AppConfig, type AwsTenantConfig } from '../config';
import { createTenantClients, pacer, semaphore, type TenantClients } from './aws';
import { settle } from './poll';

export interface AssignmentRef {
  tenantId: string;
  /** 12 digits */
  accountId: string;
  /** Permission set name */
  role: string;
  principal: { id: string; email?: string };
  /**
   * The ids findAssignment resolved. Later calls use them as they are, so a user renamed or a
   * permission set renamed since still has its assignment removed.
   */
  ids?: AssignmentIds;
}

export interface AssignmentIds {
  userId: string;
  permissionSetArn: string;
}

export type GrantActivities = ReturnType<typeof createActivities>;

// AWS quotas per instance: about 20 API calls per second, 10 assignment operations in flight.
// 15/s sustained plus a burst of 5 keeps any one second at about 20 calls.
const CALLS_PER_SECOND = 15;
const CALLS_BURST = 5;
const OPERATIONS_IN_FLIGHT = 10;
const PERMISSION_SETS_TTL_MS = 5 * 60_000;

interface Tenant extends TenantClients {
  aws: AwsTenantConfig;
}

/** One assignment with every name resolved to the id AWS wants. */
interface Resolved {
  tenant: Tenant;
  userId: string;
  permissionSetArn: string;
}

interface PermissionSetListing {
  loadedAt: number;
  byName: Promise<Map<string, string>>;
}

export function createActivities(config: AppConfig) {
  const tenants = new Map<string, Tenant>();
  const instances = new Map<string, { pace: () => Promise<void>; inFlight: ReturnType<typeof semaphore> }>();
  const permissionSets = new Map<string, PermissionSetListing>();

  function limitsOf(instanceArn: string) {
    let limits = instances.get(instanceArn);
    if (!limits) {
      limits = { pace: pacer(CALLS_PER_SECOND, CALLS_BURST), inFlight: semaphore(OPERATIONS_IN_FLIGHT) };
      instances.set(instanceArn, limits);
    }
    return limits;
  }

  // Created on first use and kept: the clients hold the keep-alive connections.
  function tenantOf(tenantId: string): Tenant {
    const cached = tenants.get(tenantId.toLowerCase());
    if (cached) return cached;
    const tenantConfig = tenantById(config, tenantId);
    if (!tenantConfig) throw ApplicationFailure.nonRetryable(`Unknown tenant ${tenantId}`, 'UnknownTenant');
    const { aws } = tenantConfig;
    const tenant = { aws, ...createTenantClients(tenantConfig.id, aws, limitsOf(aws.sso_instance_arn).pace) };
    tenants.set(tenantConfig.id, tenant);
    return tenant;
  }

  async function userIdOf(tenant: Tenant, principal: AssignmentRef['principal']): Promise<string> {
    const name = principal.email ?? principal.id;
    for (const AttributePath of ['userName', 'emails.value']) {
      try {
        const { UserId } = await tenant.identity.send(
          new GetUserIdCommand({
            IdentityStoreId: tenant.aws.identity_store_id,
            AlternateIdentifier: { UniqueAttribute: { AttributePath, AttributeValue: name } },
          }),
        );
        if (UserId) return UserId;
      } catch (err) {
        if (!(err instanceof IdentityNotFound)) throw err;
      }
    }
    throw ApplicationFailure.nonRetryable(
      `User "${name}" (principal ${principal.id}) is not in identity store ${tenant.aws.identity_store_id} ` +
        '(looked up by userName, then by email)',
      'UserNotFound',
    );
  }

  async function listPermissionSets(sso: SSOAdminClient, instanceArn: string): Promise<Map<string, string>> {
    const arns: string[] = [];
    for await (const page of paginateListPermissionSets({ client: sso }, { InstanceArn: instanceArn })) {
      arns.push(...(page.PermissionSets ?? []));
    }
    const described = await Promise.all(
      arns.map((arn) => sso.send(new DescribePermissionSetCommand({ InstanceArn: instanceArn, PermissionSetArn: arn }))),
    );
    const byName = new Map<string, string>();
    for (const { PermissionSet: set } of described) if (set?.Name && set.PermissionSetArn) byName.set(set.Name, set.PermissionSetArn);
    return byName;
  }

  function reloadPermissionSets(tenant: Tenant): PermissionSetListing {
    const instanceArn = tenant.aws.sso_instance_arn;
    const listing = { loadedAt: Date.now(), byName: listPermissionSets(tenant.sso, instanceArn) };
    permissionSets.set(instanceArn, listing);
    // A failed listing must not stay cached for the TTL.
    listing.byName.catch(() => permissionSets.get(instanceArn) === listing && permissionSets.delete(instanceArn));
    return listing;
  }

  async function permissionSetArnOf(tenant: Tenant, name: string): Promise<string> {
    const instanceArn = tenant.aws.sso_instance_arn;
    const cached = permissionSets.get(instanceArn);
    let listing = cached && Date.now() - cached.loadedAt < PERMISSION_SETS_TTL_MS ? cached : reloadPermissionSets(tenant);
    let arn = (await listing.byName).get(name);
    if (arn === undefined && listing === cached) {
      // Maybe created since the listing. If another call has already listed again, share that.
      const current = permissionSets.get(instanceArn);
      listing = current && current !== cached ? current : reloadPermissionSets(tenant);
      arn = (await listing.byName).get(name);
    }
    if (arn === undefined) {
      throw ApplicationFailure.nonRetryable(`Permission set "${name}" does not exist in ${instanceArn}`, 'PermissionSetNotFound');
    }
    return arn;
  }

  async function resolve(ref: AssignmentRef): Promise<Resolved> {
    // Checked here because AWS-compatible emulators accept any target id.
    if (!/^\d{12}$/.test(ref.accountId)) {
      throw ApplicationFailure.nonRetryable(`Not an AWS account id: "${ref.accountId}"`, 'InvalidAccountId');
    }
    const tenant = tenantOf(ref.tenantId);
    if (ref.ids) return { tenant, ...ref.ids };
    const [userId, permissionSetArn] = await Promise.all([userIdOf(tenant, ref.principal), permissionSetArnOf(tenant, ref.role)]);
    return { tenant, userId, permissionSetArn };
  }

  async function exists({ tenant, userId, permissionSetArn }: Resolved, accountId: string): Promise<boolean> {
    const pages = paginateListAccountAssignments(
      { client: tenant.sso },
      { InstanceArn: tenant.aws.sso_instance_arn, AccountId: accountId, PermissionSetArn: permissionSetArn },
    );
    for await (const page of pages) {
      if (page.AccountAssignments?.some((a) => a.PrincipalType === 'USER' && a.PrincipalId === userId)) return true;
    }
    return false;
  }

  function assignment({ tenant, userId, permissionSetArn }: Resolved, accountId: string) {
    return {
      InstanceArn: tenant.aws.sso_instance_arn,
      TargetId: accountId,
      TargetType: 'AWS_ACCOUNT',
      PermissionSetArn: permissionSetArn,
      PrincipalType: 'USER',
      PrincipalId: userId,
    } as const;
  }

  const describe = (ref: AssignmentRef) => `${ref.role} on ${ref.accountId} for ${ref.principal.email ?? ref.principal.id}`;

  return {
    async findAssignment(ref: AssignmentRef): Promise<{ exists: boolean; ids: AssignmentIds }> {
      const resolved = await resolve(ref);
      return { exists: await exists(resolved, ref.accountId), ids: { userId: resolved.userId, permissionSetArn: resolved.permissionSetArn } };
    },

    /**
     * Returns when the assignment was found in place: the grant's activation time, recorded in the
     * workflow history, so every replay of the grant agrees on it.
     */
    async createAssignment(ref: AssignmentRef): Promise<{ assignedAt: string }> {
      const resolved = await resolve(ref);
      if (await exists(resolved, ref.accountId)) return { assignedAt: new Date().toISOString() };
      const { sso, aws } = resolved.tenant;
      await limitsOf(aws.sso_instance_arn).inFlight(async () => {
        const started = await sso.send(new CreateAccountAssignmentCommand(assignment(resolved, ref.accountId)));
        const status = await settle(started.AccountAssignmentCreationStatus, async (requestId) => {
          const out = await sso.send(
            new DescribeAccountAssignmentCreationStatusCommand({ InstanceArn: aws.sso_instance_arn, AccountAssignmentCreationRequestId: requestId }),
          );
          return out.AccountAssignmentCreationStatus;
        });
        if (status.Status === 'FAILED') {
          // Retrying the same request would fail the same way (bad permission set, account not in the org...).
          throw ApplicationFailure.nonRetryable(
            `Assigning ${describe(ref)} failed: ${status.FailureReason ?? 'AWS gave no reason'}`,
            'ProvisioningFailed',
          );
        }
      });
      return { assignedAt: new Date().toISOString() };
    },

    async deleteAssignment(ref: AssignmentRef): Promise<void> {
      let resolved: Resolved;
      try {
        resolved = await resolve(ref);
      } catch (err) {
        // Only without ids, i.e. nothing was ever found, so nothing of ours can exist. (And IAM
        // Identity Center removes a user's or permission set's assignments with it.)
        if (err instanceof ApplicationFailure && (err.type === 'UserNotFound' || err.type === 'PermissionSetNotFound')) return;
        throw err;
      }
      if (!(await exists(resolved, ref.accountId))) return;
      const { sso, aws } = resolved.tenant;
      await limitsOf(aws.sso_instance_arn).inFlight(async () => {
        let started;
        try {
          started = await sso.send(new DeleteAccountAssignmentCommand(assignment(resolved, ref.accountId)));
        } catch (err) {
          // Removed by someone else since the check: that is what we wanted.
          if (err instanceof SsoNotFound && !(await exists(resolved, ref.accountId))) return;
          throw err;
        }
        const status = await settle(started.AccountAssignmentDeletionStatus, async (requestId) => {
          const out = await sso.send(
            new DescribeAccountAssignmentDeletionStatusCommand({ InstanceArn: aws.sso_instance_arn, AccountAssignmentDeletionRequestId: requestId }),
          );
          return out.AccountAssignmentDeletionStatus;
        });
        if (status.Status === 'FAILED') {
          // Retryable: access must not outlive the grant, so the workflow keeps at it.
          throw ApplicationFailure.retryable(
            `Removing ${describe(ref)} failed: ${status.FailureReason ?? 'AWS gave no reason'}`,
            'DeprovisioningFailed',
          );
        }
      });
    },
  };
}
