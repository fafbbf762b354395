// The grant workflow's activities: look up, create and delete one IAM Identity Center account
// assignment (CONTRACT §7). Whether an assignment may be deleted (it must not have existed before
// the grant) is the workflow's decision; these functions only do what they are asked, idempotently.
import {
  ConflictException as IdentityConflict,
  CreateGroupMembershipCommand,
  DeleteGroupMembershipCommand,
  DescribeGroupCommand,
  GetGroupIdCommand,
  GetUserIdCommand,
  paginateListGroupMemberships,
  paginateListGroupMembershipsForMember,
  ResourceNotFoundException as IdentityNotFound,
} from '@aws-sdk/client-identitystore';
import {
  CreateAccountAssignmentCommand,
  DeleteAccountAssignmentCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  DescribeAccountAssignmentDeletionStatusCommand,
  DescribePermissionSetCommand,
  ResourceNotFoundException as SsoNotFound,
  paginateListAccountAssignments,
  paginateListAccountAssignmentsForPrincipal,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { env, grantableGroup, ownAccountsOnly, tenantById, type AppConfig, type AwsTenantConfig } from '../config';
import type { AuditRecord } from '../domain/audit';
import type { Principal } from '../domain/grant';
import { sessionSecondsOf } from '../domain/sessions';
import type { WorkerMetrics } from '../metrics';
import { asDeletion, checkedWhenPaced, createTenantClients, inReconciliation, listPermissionSets, pacer, type PermissionSetEntry, semaphore, type TenantClients } from './aws';
import type { QuotaShare } from './fleet';
import { activityContext, heartbeating, heartbeatingWithRecord, type RecordedAttempt, settle } from './poll';
import type { AssignmentIds, AssignmentLookup, AssignmentRef, Provisioned } from './assignment';
import { createReconcileActivities } from './reconcile';
import { createOrganizationActivities } from './organizations';
import { OrganizationMaps } from '../latest-run';
import { type OrganizationReport, tenantAccountIds } from '../domain/accounts';
import { createPolicyActivities } from './policy';
import { createSessionActivities } from './sessions';
import { sessionCutoffSignal, type SessionCutoffRequest, sessionsWorkflowId } from '../workflows/messages';

export type { AssignmentIds, AssignmentLookup, AssignmentRef, Provisioned } from './assignment';

export type GrantActivities = ReturnType<typeof createActivities>;

const PERMISSION_SETS_TTL_MS = 5 * 60_000;

/**
 * Added to a grant's session cut-off: a session AWS stamped a moment after the deletion (its clock
 * a little ahead of ours) is still denied. A session issued that late cannot be from the grant.
 */
export const SESSION_CUTOFF_MARGIN_MS = 1_000;

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
  byName: Promise<Map<string, PermissionSetEntry>>;
}

/**
 * `client` (on the worker's connection) is for the reconciliation activities, which list and
 * message grants; without it they fail (the assignment activities alone need none). `metrics`
 * counts provisioning failures and expiry lag. `quota` is this worker's share of the deployment's
 * provider limits; without it, the worker has all of them.
 */
export function createActivities(
  config: AppConfig,
  { client, metrics, quota, writeAuditEvents }: { client?: Client; metrics?: WorkerMetrics; quota?: QuotaShare; writeAuditEvents?: (records: AuditRecord[]) => Promise<void> } = {},
) {
  const tenants = new Map<string, Tenant>();
  const instances = new Map<string, { pace: () => Promise<void>; inFlight: ReturnType<typeof semaphore> }>();
  const permissionSets = new Map<string, PermissionSetListing>();
  const organizations = new OrganizationMaps(() => client ?? failNoClient(), () => env.organizationCheckMs);

  /**
   * The tenant's latest completed organisation read, as the API holds it. Undefined when the
   * tenant names no organization, or none has completed yet.
   */
  /** The tenants on the tenant's IAM Identity Center instance, itself included (tenantOf refuses one the config does not hold). */
  function tenantsOnInstanceOf(tenantId: string) {
    const instanceArn = tenantOf(tenantId).aws.sso_instance_arn;
    return config.tenants.filter((t) => t.aws.sso_instance_arn === instanceArn);
  }

  async function organizationOf(tenantId: string): Promise<OrganizationReport | undefined> {
    if (!tenantById(config, tenantId)?.organization) return undefined;
    await organizations.refresh(tenantId);
    return organizations.get(tenantId);
  }

  // Per instance: the config's `aws.limits` (one per instance, see config.ts), for the whole
  // deployment: each worker process takes its `quota` share of them (fleet.ts), or all of them.
  function limitsOf(aws: AwsTenantConfig) {
    let limits = instances.get(aws.sso_instance_arn);
    if (!limits) {
      const { calls_per_second: calls, assignment_operations_in_flight: operations, reconcile_share: share } = aws.limits;
      const waiting = (n: number) => metrics?.operationsWaiting.set({ instance: aws.sso_instance_arn }, n);
      const callsNow = () => (quota ? quota.of(calls) : calls);
      const shared = pacer(callsNow);
      // Reconciliation's calls first wait for its share, then for the instance's pacer (last in line).
      const reconcileShare = pacer(() => callsNow() * share);
      limits = {
        pace: () => (inReconciliation() ? reconcileShare().then(shared) : shared()),
        inFlight: quota ? semaphore(() => quota.of(operations), waiting) : semaphore(operations, waiting),
      };
      instances.set(aws.sso_instance_arn, limits);
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
    const tenant = { aws, ...createTenantClients(aws, limitsOf(aws).pace, tenantConfig.name) };
    tenants.set(tenantConfig.id, tenant);
    return tenant;
  }

  function ssoOf(tenantId: string) {
    const tenant = tenantOf(tenantId);
    return { sso: tenant.sso, instanceArn: tenant.aws.sso_instance_arn };
  }

  async function userIdOf(tenant: Tenant, principal: AssignmentRef['principal']): Promise<string> {
    const name = principal.identityStoreUser ?? principal.email ?? principal.id;
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

  function reloadPermissionSets(tenant: Tenant): PermissionSetListing {
    const instanceArn = tenant.aws.sso_instance_arn;
    const listing = { loadedAt: Date.now(), byName: listPermissionSets(tenant.sso, instanceArn).then((sets) => new Map(sets.map((set) => [set.name, set]))) };
    permissionSets.set(instanceArn, listing);
    // A failed listing must not stay cached for the TTL.
    listing.byName.catch(() => permissionSets.get(instanceArn) === listing && permissionSets.delete(instanceArn));
    return listing;
  }

  async function permissionSetOf(tenant: Tenant, name: string): Promise<PermissionSetEntry> {
    const instanceArn = tenant.aws.sso_instance_arn;
    const cached = permissionSets.get(instanceArn);
    let listing = cached && Date.now() - cached.loadedAt < PERMISSION_SETS_TTL_MS ? cached : reloadPermissionSets(tenant);
    let entry = (await listing.byName).get(name);
    if (entry === undefined && listing === cached) {
      // Maybe created since the listing. If another call has already listed again, share that.
      const current = permissionSets.get(instanceArn);
      listing = current && current !== cached ? current : reloadPermissionSets(tenant);
      entry = (await listing.byName).get(name);
    }
    if (entry === undefined) {
      throw ApplicationFailure.nonRetryable(`Permission set "${name}" does not exist in ${instanceArn}`, 'PermissionSetNotFound');
    }
    return entry;
  }

  async function resolve(ref: AssignmentRef): Promise<Resolved> {
    // Checked here because AWS-compatible emulators accept any target id.
    if (!/^\d{12}$/.test(ref.accountId)) {
      throw ApplicationFailure.nonRetryable(`Not an AWS account id: "${ref.accountId}"`, 'InvalidAccountId');
    }
    const tenant = tenantOf(ref.tenantId);
    if (ref.ids?.permissionSetArn !== undefined) return { tenant, userId: ref.ids.userId, permissionSetArn: ref.ids.permissionSetArn };
    const [userId, { arn: permissionSetArn }] = await Promise.all([userIdOf(tenant, ref.principal), permissionSetOf(tenant, ref.role)]);
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


  // ---- Group grants: a membership of an Identity Store group instead of an account assignment ----

  /**
   * The group's id, for a group the tenant lists as grantable and the identity store manages
   * itself. A group provisioned by an external identity provider (SCIM: it has ExternalIds) is
   * refused: the provider's next sync would undo the membership, or refuse the change.
   */
  async function groupIdOf(tenant: Tenant, tenantId: string, nameOrId: string): Promise<string> {
    const configured = grantableGroup(tenantById(config, tenantId) ?? { groups: [] }, nameOrId);
    if (!configured) throw ApplicationFailure.nonRetryable(`Group "${nameOrId}" is not a grantable group of tenant ${tenantId} (its config's groups)`, 'GroupNotGrantable');
    const IdentityStoreId = tenant.aws.identity_store_id;
    let groupId = configured.id;
    if (groupId === undefined) {
      try {
        ({ GroupId: groupId } = await tenant.identity.send(
          new GetGroupIdCommand({ IdentityStoreId, AlternateIdentifier: { UniqueAttribute: { AttributePath: 'displayName', AttributeValue: configured.name } } }),
        ));
      } catch (err) {
        if (!(err instanceof IdentityNotFound)) throw err;
      }
    }
    const group = groupId === undefined ? undefined : await tenant.identity.send(new DescribeGroupCommand({ IdentityStoreId, GroupId: groupId })).catch((err) => {
      if (err instanceof IdentityNotFound) return undefined;
      throw err;
    });
    if (!group?.GroupId) throw ApplicationFailure.nonRetryable(`Group "${configured.name}" is not in identity store ${IdentityStoreId}`, 'GroupNotFound');
    if ((group.ExternalIds ?? []).length > 0) {
      const issuers = [...new Set(group.ExternalIds!.map((e) => e.Issuer))].join(', ');
      throw ApplicationFailure.nonRetryable(
        `Group "${configured.name}" is provisioned by an external identity provider (${issuers}): its next sync would undo or refuse a membership made here; grant it in the provider instead`,
        'GroupManagedExternally',
      );
    }
    // A configured id is taken as given, so it must be the group the tenant named (policies decide on the name).
    if (group.DisplayName !== configured.name) {
      throw ApplicationFailure.nonRetryable(`Group id ${group.GroupId} is "${group.DisplayName}" in identity store ${IdentityStoreId}, not "${configured.name}" as the config says`, 'GroupMismatch');
    }
    await refuseForeignAssignments(tenant, tenantId, configured.name, group.GroupId);
    return group.GroupId;
  }

  /**
   * A tenant that owns only its accounts (accounts_only, organization: as on an instance shared
   * with other tenants) may grant a group only if everything the group is assigned is on those
   * accounts: else the membership would bring access to an account the tenant's policies do not
   * decide (another tenant's, on a shared instance).
   */
  async function refuseForeignAssignments(tenant: Tenant, tenantId: string, name: string, groupId: string): Promise<void> {
    const tenantConfig = tenantById(config, tenantId)!;
    if (!ownAccountsOnly(tenantConfig)) return;
    const own = new Set(tenantAccountIds(tenantConfig, await organizationOf(tenantId)));
    const pages = paginateListAccountAssignmentsForPrincipal({ client: tenant.sso }, { InstanceArn: tenant.aws.sso_instance_arn, PrincipalId: groupId, PrincipalType: 'GROUP' });
    for await (const page of pages) {
      const foreign = (page.AccountAssignments ?? []).find((a) => a.AccountId && !own.has(a.AccountId));
      if (foreign) {
        throw ApplicationFailure.nonRetryable(
          `Group "${name}" is assigned on account ${foreign.AccountId}, which is not one of tenant ${tenantId}'s accounts: a membership would bring access its policies do not decide`,
          'GroupOutsideTenant',
        );
      }
    }
  }

  async function resolveGroup(ref: AssignmentRef): Promise<{ tenant: Tenant; userId: string; groupId: string }> {
    const tenant = tenantOf(ref.tenantId);
    if (ref.ids?.groupId !== undefined) return { tenant, userId: ref.ids.userId, groupId: ref.ids.groupId };
    const [userId, groupId] = await Promise.all([userIdOf(tenant, ref.principal), groupIdOf(tenant, ref.tenantId, ref.group!)]);
    return { tenant, userId, groupId };
  }

  /** The user's membership of the group, if any (ListGroupMembershipsForMember: a user has few). */
  async function membershipIdOf({ tenant, userId, groupId }: { tenant: Tenant; userId: string; groupId: string }): Promise<string | undefined> {
    const pages = paginateListGroupMembershipsForMember({ client: tenant.identity }, { IdentityStoreId: tenant.aws.identity_store_id, MemberId: { UserId: userId } });
    try {
      for await (const page of pages) {
        const found = page.GroupMemberships?.find((m) => m.GroupId === groupId);
        if (found) return found.MembershipId;
      }
    } catch (err) {
      // A user deleted from the identity store has lost its memberships with it.
      if (!(err instanceof IdentityNotFound)) throw err;
    }
    return undefined;
  }

  async function findMembership(ref: AssignmentRef): Promise<{ exists: boolean; ids: AssignmentIds }> {
    const resolved = await resolveGroup(ref);
    return { exists: (await membershipIdOf(resolved)) !== undefined, ids: { userId: resolved.userId, groupId: resolved.groupId } };
  }

  async function createMembership(ref: AssignmentRef, opts: { justChecked?: boolean; stillCurrent?: () => void }): Promise<{ created: boolean; assignedAt: string }> {
    const resolved = await resolveGroup(ref);
    if (!opts.justChecked && (await membershipIdOf(resolved)) !== undefined) return { created: false, assignedAt: new Date().toISOString() };
    const { tenant, userId, groupId } = resolved;
    await limitsOf(tenant.aws).inFlight(async () => {
      opts.stillCurrent?.();
      try {
        await checkedWhenPaced(opts.stillCurrent, () =>
          tenant.identity.send(new CreateGroupMembershipCommand({ IdentityStoreId: tenant.aws.identity_store_id, GroupId: groupId, MemberId: { UserId: userId } })),
        );
      } catch (err) {
        // Already a member: made by an earlier attempt of this grant (the look before it found none).
        if (!(err instanceof IdentityConflict && (await membershipIdOf(resolved)) !== undefined)) throw err;
      }
    });
    return { created: true, assignedAt: new Date().toISOString() };
  }

  /** The membership is gone (looked up by user and group: its id is not kept). Undefined when nothing of ours can have existed. */
  async function deleteMembership(ref: AssignmentRef): Promise<true | undefined> {
    let resolved;
    try {
      resolved = await resolveGroup(ref);
    } catch (err) {
      // Only without ids, i.e. nothing was ever found, so nothing of ours can exist.
      if (err instanceof ApplicationFailure && ['UserNotFound', 'GroupNotFound', 'GroupNotGrantable', 'GroupManagedExternally'].includes(err.type ?? '')) return undefined;
      throw err;
    }
    const membershipId = await membershipIdOf(resolved);
    if (membershipId === undefined) return true;
    const { tenant } = resolved;
    await limitsOf(tenant.aws).inFlight(async () => {
      try {
        await tenant.identity.send(new DeleteGroupMembershipCommand({ IdentityStoreId: tenant.aws.identity_store_id, MembershipId: membershipId }));
      } catch (err) {
        if (!(err instanceof IdentityNotFound)) throw err;
      }
    });
    return true;
  }

  /** Counts a failed attempt (Temporal retries it unless it is non-retryable) and passes it on. */
  async function counted<T>(operation: 'provision' | 'deprovision', attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      const nonRetryable = err instanceof ApplicationFailure && err.nonRetryable;
      const type = err instanceof ApplicationFailure ? (err.type ?? 'Error') : ((err as Error)?.name ?? 'Error');
      metrics?.provisioningFailures.inc({ operation, retryable: String(!nonRetryable), type });
      throw err;
    }
  }

  const describe = (ref: AssignmentRef) => `${ref.role} on ${ref.group ?? ref.accountId} for ${ref.principal.email ?? ref.principal.id}`;

  const grantActivities = {
    findAssignment: (ref: AssignmentRef): Promise<{ exists: boolean; ids: AssignmentIds }> =>
      heartbeating(() => counted('provision', () => findAssignment(ref))),

    provisionAssignment: (ref: AssignmentRef): Promise<Provisioned> =>
      heartbeatingWithRecord<Provisioned, AssignmentLookup>(
        () => (client ?? failNoClient()).activity,
        (attempt) => counted('provision', () => provisionAssignment(ref, attempt)),
      ),

    // The workflow's look counts for the first attempt only: the attempt before a retry may have created it.
    createAssignment: (ref: AssignmentRef, opts: { justChecked?: boolean } = {}): Promise<{ created: boolean; assignedAt: string }> =>
      heartbeating(() =>
        counted('provision', () => (ref.group !== undefined ? createMembership : createAssignment)(ref, { justChecked: opts.justChecked === true && firstAttempt() })),
      ),

    /**
     * A grant's end at expiry (lifecycle.ts, endAtExpiry): the deletion (without `ref`, an
     * assignment that existed before the grant, none), then the grant's last audit events, which
     * never delay it. `deprovisioned` is dated `endedAt`, when the deletion was confirmed (never
     * before the events it follows). `audited` is false when the store failed: the workflow's
     * outbox then writes them, and a retry of this activity for its events alone never happens.
     */
    async endAccess({ ref, events, deprovisioned }: { ref?: AssignmentRef; events: AuditRecord[]; deprovisioned?: AuditRecord }): Promise<{ audited: boolean; endedAt: string; sessionCutoff?: string }> {
      const { sessionCutoff } = ref ? await grantActivities.deleteAssignment(ref) : {};
      const endedAt = new Date(Math.max(Date.now(), ...events.map((e) => Date.parse(e.at) + 1))).toISOString();
      const all = deprovisioned ? [...events, { ...deprovisioned, at: endedAt }] : events;
      const audited = writeAuditEvents !== undefined && (await heartbeating(() => writeAuditEvents(all)).then(() => true, () => false));
      return { audited, endedAt, ...(sessionCutoff && { sessionCutoff }) };
    },

    /** `sessionCutoff`: the tenant ends sessions too (`aws.revoke_sessions`), and this moment's cut-off was handed to the permission set's workflow. */
    async deleteAssignment(ref: AssignmentRef): Promise<{ sessionCutoff?: string }> {
      // Every call it makes, lookups and status polls included, goes before creations' (aws.ts).
      const group = ref.group !== undefined;
      const resolved = await heartbeating(() => counted('deprovision', () => asDeletion(async () => (group ? void (await deleteMembership(ref)) : deleteAssignment(ref)))));
      // Confirmed gone (or never there): how long after its expiry the access lasted.
      if (ref.expiredAt) metrics?.expiryLag.observe(Math.max(0, (Date.now() - Date.parse(ref.expiredAt)) / 1000));
      // A group's sessions are not cut (groupSessionWarning): the membership's removal is all.
      if (group || !resolved?.tenant.aws.revoke_sessions) return {};
      return { sessionCutoff: await handOffSessionCutoff(ref, resolved) };
    },
  };

  /**
   * The user's sessions from before this moment are to be ended: handed to the permission set's
   * own workflow (started if need be), the one writer of its inline policy. A retry of the
   * deletion hands in a later moment, which the workflow keeps instead (one statement per user and
   * account).
   */
  async function handOffSessionCutoff(ref: AssignmentRef, { userId, permissionSetArn, deletedAt }: Resolved & { deletedAt?: Date }): Promise<string> {
    // No earlier than the deletion by AWS's clock or ours, whichever is later, plus a margin for
    // the skew between the two and TokenIssueTime's (docs/aws-iam.md).
    const at = new Date(Math.max(Date.now(), deletedAt?.getTime() ?? 0) + SESSION_CUTOFF_MARGIN_MS).toISOString();
    const info = activityContext()?.info;
    const workflowId = info?.workflowType === 'grantWorkflow' && ref.grantId !== undefined ? info.workflowExecution?.workflowId : undefined;
    const request: SessionCutoffRequest = {
      tenantId: ref.tenantId,
      userId,
      accountId: ref.accountId,
      at,
      ...(workflowId && {
        grant: {
          workflowId,
          id: ref.grantId!,
          principal: { id: ref.principal.id, ...(ref.principal.email !== undefined && { email: ref.principal.email }) },
          target: `AWS::Account::${ref.accountId}`,
          role: ref.role,
        },
      }),
    };
    await (client ?? failNoClient()).workflow.signalWithStart('sessionsWorkflow', {
      workflowId: sessionsWorkflowId(permissionSetArn),
      taskQueue: info?.taskQueue ?? env.taskQueue,
      args: [{ permissionSetArn, tenantId: ref.tenantId }],
      signal: sessionCutoffSignal,
      signalArgs: [request],
    });
    return at;
  }

  async function findAssignment(ref: AssignmentRef): Promise<{ exists: boolean; ids: AssignmentIds }> {
    if (ref.group !== undefined) return findMembership(ref);
    const resolved = await resolve(ref);
    return { exists: await exists(resolved, ref.accountId), ids: { userId: resolved.userId, permissionSetArn: resolved.permissionSetArn } };
  }

  /**
   * Looks, then creates the assignment unless it existed before the grant: one activity, so an
   * activation costs one workflow task and one activity task less than a look and a creation apart.
   * The look is recorded with the server before anything is created, and a retry goes by that
   * record: after a crash mid-creation, the assignment this grant made must not be taken for one
   * that existed before it (it would then outlive the grant). A failure after the look carries the
   * look in its details, so the workflow knows whether there is something to remove.
   */
  async function provisionAssignment(ref: AssignmentRef, attempt: RecordedAttempt<AssignmentLookup>): Promise<Provisioned> {
    let lookup = attempt.recorded;
    if (!lookup) {
      const found = await findAssignment(ref);
      lookup = { preexisted: found.exists, ids: found.ids };
      await attempt.record(lookup);
    }
    try {
      const made = lookup.preexisted
        ? undefined
        : await (ref.group !== undefined ? createMembership : createAssignment)({ ...ref, ids: lookup.ids }, { justChecked: !attempt.recorded, stillCurrent: attempt.stillCurrent });
      // Without `aws.revoke_sessions`, a session from the grant may outlive it: the grant says so.
      // (A group grant's answer says so at the API: groupSessionWarning.)
      const tenant = tenantOf(ref.tenantId);
      const sessionSeconds = tenant.aws.revoke_sessions || ref.group !== undefined ? undefined : (await permissionSetOf(tenant, ref.role).catch(() => undefined))?.sessionSeconds;
      return { ...lookup, assignedAt: made?.assignedAt ?? new Date().toISOString(), ...(sessionSeconds !== undefined && { sessionSeconds }) };
    } catch (err) {
      throw withLookup(err, lookup);
    }
  }

  /**
   * `created: false` when the assignment already existed. With `justChecked` (a look in this
   * attempt, or just before it, saw none) it does not look again: one paced call less per
   * activation.
   * `assignedAt` is when the assignment was found in place: the grant's activation time, recorded
   * in the workflow history, so every replay of the grant agrees on it.
   */
  async function createAssignment(
    ref: AssignmentRef,
    opts: { justChecked?: boolean; stillCurrent?: () => void },
  ): Promise<{ created: boolean; assignedAt: string }> {
    const resolved = await resolve(ref);
    if (!opts.justChecked && (await exists(resolved, ref.accountId))) return { created: false, assignedAt: new Date().toISOString() };
    const { sso, aws } = resolved.tenant;
    await limitsOf(aws).inFlight(async () => {
      opts.stillCurrent?.();
      // Checked again once paced: an attempt timed out meanwhile must not create what its retry may already have made and removed.
      const started = await checkedWhenPaced(opts.stillCurrent, () => sso.send(new CreateAccountAssignmentCommand(assignment(resolved, ref.accountId))));
      // Polled to its end even if this attempt is over meanwhile: until then it counts at AWS.
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
    return { created: true, assignedAt: new Date().toISOString() };
  }

  /** The assignment is gone: answers whose it was, or undefined when nothing of ours can have existed. */
  /** `deletedAt`: AWS's own time of the deletion (its status's CreatedDate), when this call made it. */
  async function deleteAssignment(ref: AssignmentRef): Promise<(Resolved & { deletedAt?: Date }) | undefined> {
    let resolved: Resolved;
    try {
      resolved = await resolve(ref);
    } catch (err) {
      // Only without ids, i.e. nothing was ever found, so nothing of ours can exist. (And IAM
      // Identity Center removes a user's or permission set's assignments with it.)
      if (err instanceof ApplicationFailure && (err.type === 'UserNotFound' || err.type === 'PermissionSetNotFound')) return undefined;
      throw err;
    }
    // First attempt: delete straight away (a missing assignment is handled below). A retry looks
    // first. One paced call per expiry instead of two, which is what bounds a fleet's expiry lag.
    if (!(firstAttempt() && ref.ids) && !(await exists(resolved, ref.accountId))) return resolved;
    const { sso, aws } = resolved.tenant;
    let deletedAt: Date | undefined;
    await limitsOf(aws).inFlight(async () => {
      let started;
      try {
        started = await sso.send(new DeleteAccountAssignmentCommand(assignment(resolved, ref.accountId)));
      } catch (err) {
        // Already gone (removed by someone else, or never made): that is what we wanted.
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
      deletedAt = status.CreatedDate;
    });
    return { ...resolved, deletedAt };
  }

  return {
    ...grantActivities,
    ...createReconcileActivities({
      client: () => client ?? failNoClient(),
      ssoOf,
      configuredAccounts: async (tenantId) => {
        const tenant = tenantById(config, tenantId);
        return tenant ? tenantAccountIds(tenant, await organizationOf(tenantId)) : [];
      },
      tenantsOnInstanceOf: (tenantId) => tenantsOnInstanceOf(tenantId).map((t) => t.id),
      deleteAssignment: grantActivities.deleteAssignment,
      membersOf: async (tenantId, groupId) => {
        const { identity, aws } = tenantOf(tenantId);
        const members: string[] = [];
        for await (const page of paginateListGroupMemberships({ client: identity }, { IdentityStoreId: aws.identity_store_id, GroupId: groupId })) {
          for (const m of page.GroupMemberships ?? []) if (m.MemberId && 'UserId' in m.MemberId && m.MemberId.UserId) members.push(m.MemberId.UserId);
        }
        return members;
      },
    }),
    ...createOrganizationActivities({
      // tenantOf first: it refuses a tenant the config does not hold.
      organizationsOf: (tenantId) => ({ organizations: tenantOf(tenantId).organizations, tenant: tenantById(config, tenantId)! }),
      neighboursOf: (tenantId) => tenantsOnInstanceOf(tenantId).filter((t) => t !== tenantById(config, tenantId)),
      // Without a client (a test's direct call), no previous read: every account's tags are asked for.
      previousOf: (tenantId) => (client ? organizationOf(tenantId) : Promise.resolve(undefined)),
      client: () => client ?? failNoClient(),
    }),
    ...createPolicyActivities(config, {
      organizationOf,
      // As AWS says now (the cached listing's may be minutes old); 0 when AWS does not say, as policies see a duration not known.
      sessionSeconds: async (tenantId, role) => {
        const tenant = tenantOf(tenantId);
        try {
          const { arn } = await permissionSetOf(tenant, role);
          const { PermissionSet } = await tenant.sso.send(new DescribePermissionSetCommand({ InstanceArn: tenant.aws.sso_instance_arn, PermissionSetArn: arn }));
          return sessionSecondsOf(PermissionSet?.SessionDuration);
        } catch {
          // Not known, as the API's policies see it then: a start never waits on AWS answering.
          return 0;
        }
      },
    }),
    ...createSessionActivities({
      // The tenants handed in first, then every other configured tenant on the permission set's instance.
      writersOf: (permissionSetArn, preferred) => {
        const instanceId = permissionSetArn.split('/').at(-2);
        const onInstance = config.tenants.filter((t) => t.aws.sso_instance_arn.endsWith(`/${instanceId}`)).map((t) => t.id.toLowerCase());
        const ids = [...new Set([...preferred.map((id) => id.toLowerCase()).filter((id) => onInstance.includes(id)), ...onInstance])];
        return ids.map((tenantId) => ({ tenantId, ...ssoOf(tenantId) }));
      },
    }),
  };
}

/** The same failure (message, type, retryability) with the lookup as its details. */
function withLookup(err: unknown, lookup: AssignmentLookup): ApplicationFailure {
  const cause = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({
    message: cause.message,
    type: (cause instanceof ApplicationFailure ? cause.type : cause.name) ?? undefined,
    nonRetryable: cause instanceof ApplicationFailure && cause.nonRetryable === true,
    details: [lookup],
    cause,
  });
}

function failNoClient(): never {
  throw ApplicationFailure.nonRetryable('This worker was created without a Temporal client for reconciliation', 'NoClient');
}

/** True in an activity's first attempt; false in a retry, or when called outside a worker. */
function firstAttempt(): boolean {
  return activityContext()?.info.attempt === 1;
}
