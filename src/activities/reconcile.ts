// Drift between the grants and what IAM Identity Center holds, for the reconciliation workflow:
// find it (all the reads), then fix one thing per call. What counts as drift is decided by
// `findDriftIn`, a pure function over the two listings. Tenants may share one instance, so the
// grants of every tenant on it are read: one tenant's round must not take for leaked what another
// tenant's grant holds, or found there before it.
import { paginateListAccountAssignments, paginateListAccountAssignmentsForPrincipal } from '@aws-sdk/client-sso-admin';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy, WorkflowUpdateFailedError, type WorkflowExecutionInfo } from '@temporalio/client';
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, fromPayloadsAtIndex, WorkflowNotFoundError } from '@temporalio/common';
import type { SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { accountIdOf, type GrantState, type GrantStatus, groupOf } from '../domain/grant';
import { GRANT_MEMO, grantStateQuery, reconcileUpdate, type ReconcileOutcome, rejection, searchAttributes } from '../workflows/messages';
import { asBackground, listPermissionSets, semaphore } from './aws';
import { heartbeating } from './poll';
import type { AssignmentIds, AssignmentLookup, AssignmentRef } from './assignment';

/** One account assignment as IAM Identity Center lists it. */
export interface Assignment {
  accountId: string;
  permissionSetArn: string;
  principalType: string;
  principalId: string;
}

/** The latest run of one grant key, with what it says about its assignment. */
export interface GrantRecord {
  tenantId: string;
  workflowId: string;
  runId: string;
  open: boolean;
  closedAt: string | null;
  /**
   * A closed run whose assignment is known removed: it ended its own way (a completed run: its
   * deprovisioning loops until the deletion is confirmed; or one closed after its deprovisioning
   * had returned), or a reconciliation removed what it left. False for a run terminated, timed out
   * or failed before that; false while open.
   */
  removalConfirmed: boolean;
  grantId: string;
  status: GrantStatus | 'new';
  closing: boolean;
  /** "" for a group grant */
  accountId: string;
  /** A group grant's group (its name): its access is a membership (see membershipAsAssignment). */
  group?: string;
  role: string;
  principalId: string;
  assignmentPreexisted: boolean | null;
  ids: AssignmentIds | null;
  /** When the grant became active (its activity's clock); null before. */
  activatedAt: string | null;
  /** When its access ends; null before it is active. */
  expiresAt: string | null;
}

/** A closed grant run whose leftover assignment is gone: the input of leftoverRemovedWorkflow. */
export interface LeftoverRun {
  tenantId: string;
  workflowId: string;
  runId: string;
}

export interface GrantRef {
  workflowId: string;
  grantId: string;
  accountId: string;
  group?: string;
  role: string;
  principalId: string;
}

export interface LeakedAssignment extends GrantRef {
  tenantId: string;
  /** The closed run that created the assignment; removal is skipped if the key has a newer run. */
  runId: string;
  ids: AssignmentIds;
}

export interface ForeignAssignment extends Assignment {
  permissionSetName?: string;
}

export interface Drift {
  /** Active grants whose assignment is gone. */
  missing: GrantRef[];
  /** Assignments a grant run created and never confirmed removing, still there, held by no open grant. */
  leaked: LeakedAssignment[];
  /** Assignments no grant created or holds (capped at MAX_FOREIGN_REPORTED; `foreignTotal` counts all). */
  foreign: ForeignAssignment[];
  foreignTotal: number;
  grantsChecked: number;
  assignmentsChecked: number;
  /** How the round listed the assignments: per (account, permission set) pair, or per user; and how many it listed. */
  listing: 'pairs' | 'users';
  listed: number;
  /** Each permission set's session duration in seconds, by name: what the API's policies see (session_duration_seconds). */
  sessionSeconds: Record<string, number>;
  /** The instance's permission sets, by name: the roles the API lists (GET /v1/access/entitlements). */
  permissionSets: PermissionSetSummary[];
}

/** A permission set as the API lists it. */
export interface PermissionSetSummary {
  name: string;
  description: string;
}

export interface RemovalOutcome {
  removed: boolean;
  reason?: string;
}

const MAX_FOREIGN_REPORTED = 100;
const GRANT_READS_IN_FLIGHT = 10;
const GRANT_READ_TIMEOUT_MS = 5000;
const RESTORE_ANSWER_TIMEOUT_MS = 30_000;

const tripleOf = (accountId: string, permissionSetArn: string, principalType: string, principalId: string) =>
  `${accountId}|${permissionSetArn}|${principalType}|${principalId}`;
/** A keyword search attribute of a listed grant run, if it has one. */
function attributeOf(run: WorkflowExecutionInfo, key: { name: string }): string | undefined {
  const value = run.searchAttributes?.[key.name]?.[0];
  return typeof value === 'string' ? value : undefined;
}

/** A workflow id (of our own listing: principals are percent-encoded) as a visibility literal. */
function quoted(workflowId: string): string {
  if (/['\\]/.test(workflowId)) throw new Error(`refusing an unsafe workflow id in a visibility query: ${JSON.stringify(workflowId)}`);
  return `'${workflowId}'`;
}

/**
 * A group membership, judged by the same rules as an account assignment: the group in the
 * account's place, `member` in the permission set's (a group grant's ids have its GroupId).
 */
export const membershipAsAssignment = (groupId: string, userId: string): Assignment => ({ accountId: `group:${groupId}`, permissionSetArn: 'member', principalType: 'USER', principalId: userId });
const grantTriple = (g: GrantRecord) =>
  !g.ids ? null : g.ids.groupId !== undefined ? tripleOf(`group:${g.ids.groupId}`, 'member', 'USER', g.ids.userId) : tripleOf(g.accountId, g.ids.permissionSetArn, 'USER', g.ids.userId);
const pairOf = (accountId: string, permissionSetArn: string) => `${accountId}|${permissionSetArn}`;
/** Past this after a run closed mid-provisioning, no creation it asked for is still under way (the provisioning activity's start-to-close is 2 minutes). */
const CREATION_SETTLED_MS = 10 * 60_000;
/**
 * A closed run whose removal is not confirmed, but which has nothing of its own left: it made
 * nothing, or what it made is gone where the round looked. A run closed mid-provisioning may have
 * a creation still under way at the provider: its absence counts only once that creation has
 * surely ended.
 */
function leftNothing(record: GrantRecord, looked: (accountId: string, ids: AssignmentIds) => boolean, present: Set<string>): boolean {
  const settled = record.status !== 'provisioning' || Date.parse(record.closedAt ?? '') < Date.now() - CREATION_SETTLED_MS;
  return (
    !record.open &&
    !record.removalConfirmed &&
    (record.assignmentPreexisted === true || record.ids === null || (settled && looked(record.accountId, record.ids) && !present.has(grantTriple(record)!)))
  );
}

/** The workflow id of the record that a reconciliation removed what the run left (see leftoverRemovedWorkflow). */
const leftoverRemovedId = (runId: string) => `leftover-removed/${runId}`;

export interface DriftContext {
  /** The tenant whose round this is: only its grants are restored, only what its runs left is removed. */
  tenantId: string;
  /**
   * When the listing of assignments began. A grant that became active since may hold an assignment
   * the listing had already passed by: it is not judged missing (the next round judges it).
   */
  listedFrom?: string;
  /** (account, permission set ARN) pairs, `account|arn`, with a grant not read or not yet looked: nothing there is removed this round. */
  undecided?: Set<string>;
  /** Whether the listing covered a grant's assignment; one it did not cover is not judged missing. */
  looked?: (accountId: string, ids: AssignmentIds) => boolean;
}

/**
 * What is missing, leaked and foreign, given the assignments at the provider (listed first) and the
 * latest run of every grant key of every tenant on the instance (listed after, so every listed
 * assignment's grant is in it). An assignment is leaked only if the newest closed run that has
 * it created it and closed without confirming its removal (terminated, timed out, failed while
 * deprovisioning), no open grant holds it, and no grant found it already there. Everything else
 * not held is foreign: an assignment made by hand after a grant removed its own is never touched.
 */
export function findDriftIn(assignments: Assignment[], grants: GrantRecord[], { tenantId, listedFrom, undecided, looked }: DriftContext): Omit<Drift, 'listing' | 'listed' | 'sessionSeconds' | 'permissionSets'> {
  const present = new Set(assignments.map((a) => tripleOf(a.accountId, a.permissionSetArn, a.principalType, a.principalId)));
  const byTriple = new Map<string, GrantRecord[]>();
  for (const grant of grants) {
    const triple = grantTriple(grant);
    if (triple) byTriple.set(triple, [...(byTriple.get(triple) ?? []), grant]);
  }
  const ref = (g: GrantRecord): GrantRef => ({ workflowId: g.workflowId, grantId: g.grantId, accountId: g.accountId, ...(g.group !== undefined && { group: g.group }), role: g.role, principalId: g.principalId });

  const missing = grants
    .filter((g) => g.tenantId === tenantId)
    .filter((g) => g.open && g.ids && g.status === 'active' && !g.closing && g.assignmentPreexisted === false && !present.has(grantTriple(g)!))
    .filter((g) => !(listedFrom && g.activatedAt && g.activatedAt >= listedFrom))
    // Expired before the listing began: its access is being removed (from 1.4 the memo shows it
    // active until that is done), not missing.
    .filter((g) => !(listedFrom && g.expiresAt && g.expiresAt <= listedFrom))
    .filter((g) => !looked || looked(g.accountId, g.ids!))
    .map(ref);

  const leaked: LeakedAssignment[] = [];
  const foreign: Assignment[] = [];
  for (const a of assignments) {
    const holders = byTriple.get(tripleOf(a.accountId, a.permissionSetArn, a.principalType, a.principalId)) ?? [];
    if (holders.some((g) => g.open)) continue;
    // Found there by a grant: not ours to remove, whatever created it.
    if (holders.some((g) => g.assignmentPreexisted === true)) {
      foreign.push(a);
      continue;
    }
    // A newer run that confirmed its removal removed whatever an older one left: what is there now came after.
    const newest = holders.reduce<GrantRecord | undefined>((n, g) => (!n || (g.closedAt ?? '') > (n.closedAt ?? '') ? g : n), undefined);
    if (!newest || newest.removalConfirmed || newest.assignmentPreexisted !== false || !newest.ids) {
      foreign.push(a);
    } else if (newest.tenantId === tenantId && !undecided?.has(pairOf(a.accountId, a.permissionSetArn))) {
      leaked.push({ ...ref(newest), tenantId, runId: newest.runId, ids: newest.ids });
    } // else: another tenant's run left it (its own round removes it), or a grant there is not known yet
  }
  return {
    missing,
    leaked,
    foreign: foreign.slice(0, MAX_FOREIGN_REPORTED),
    foreignTotal: foreign.length,
    grantsChecked: grants.length,
    assignmentsChecked: assignments.length,
  };
}

interface Deps {
  client(): Client;
  /** The tenant's SSO client (paced) and instance. */
  ssoOf(tenantId: string): { sso: SSOAdminClient; instanceArn: string };
  /** The tenant's own account ids: those its config names, and its organisation's at the latest read. */
  configuredAccounts(tenantId: string): Promise<string[]>;
  /** Every tenant whose config names the same IAM Identity Center instance, the tenant included. */
  tenantsOnInstanceOf(tenantId: string): string[];
  deleteAssignment(ref: AssignmentRef): Promise<unknown>;
  /** Every member (user id) of an Identity Store group. */
  membersOf(tenantId: string, groupId: string): Promise<string[]>;
}

export function createReconcileActivities({ client: clientOf, ssoOf, configuredAccounts, tenantsOnInstanceOf, deleteAssignment, membersOf }: Deps) {
  /** Every permission set's name by ARN, and the session durations by name. */
  async function permissionSets(tenantId: string): Promise<{ names: Map<string, string>; sessionSeconds: Record<string, number>; summaries: PermissionSetSummary[] }> {
    const { sso, instanceArn } = ssoOf(tenantId);
    const sets = await listPermissionSets(sso, instanceArn);
    return {
      names: new Map(sets.map((set) => [set.arn, set.name])),
      sessionSeconds: Object.fromEntries(sets.map((set) => [set.name, set.sessionSeconds])),
      summaries: sets.map(({ name, description }) => ({ name, description })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    };
  }

  /** Every assignment of the pairs: one ListAccountAssignments (paged) each. */
  async function listByPair(tenantId: string, pairs: Iterable<string>) {
    const { sso, instanceArn } = ssoOf(tenantId);
    const found: Assignment[] = [];
    for (const pair of pairs) {
      const [accountId, permissionSetArn] = pair.split('|');
      for await (const page of paginateListAccountAssignments({ client: sso }, { InstanceArn: instanceArn, AccountId: accountId, PermissionSetArn: permissionSetArn })) {
        for (const a of page.AccountAssignments ?? []) {
          if (a.PrincipalType && a.PrincipalId) found.push({ accountId, permissionSetArn, principalType: a.PrincipalType, principalId: a.PrincipalId });
        }
      }
    }
    return found;
  }

  /** Every assignment of the users, in every account and permission set: one ListAccountAssignmentsForPrincipal (paged) each. */
  async function listByUser(tenantId: string, userIds: Iterable<string>) {
    const { sso, instanceArn } = ssoOf(tenantId);
    const found: Assignment[] = [];
    for (const userId of userIds) {
      const pages = paginateListAccountAssignmentsForPrincipal({ client: sso }, { InstanceArn: instanceArn, PrincipalId: userId, PrincipalType: 'USER' });
      for await (const page of pages) {
        for (const a of page.AccountAssignments ?? []) {
          if (a.AccountId && a.PermissionSetArn) found.push({ accountId: a.AccountId, permissionSetArn: a.PermissionSetArn, principalType: 'USER', principalId: userId });
        }
      }
    }
    return found;
  }

  /**
   * The tenant's grant runs that can be drift, with the latest run of each of their keys: every
   * open run, and every run closed without completing (terminated, timed out, failed), which may
   * have left its assignment. A completed run confirmed its removal, so the rest of the history
   * (however many runs retention holds) is never listed.
   */
  async function runsInScope(tenantId: string): Promise<WorkflowExecutionInfo[]> {
    // Tenant ids are UUIDs (config.ts); workflow ids are checked by `quoted`.
    const base = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant = '${tenantId}'`;
    const listed = await list(`${base} AND ExecutionStatus IN ('Running', 'Terminated', 'TimedOut', 'Failed', 'Canceled')`);
    // A key whose unfinished run was followed by a completed one: that one is the key's latest.
    const unfinished = [...new Set(listed.filter((r) => r.status.name !== 'RUNNING').map((r) => r.workflowId))];
    for (let i = 0; i < unfinished.length; i += 100) {
      const ids = unfinished.slice(i, i + 100).map(quoted).join(', ');
      listed.push(...(await list(`${base} AND ExecutionStatus = 'Completed' AND WorkflowId IN (${ids})`)));
    }
    const latest = new Map<string, WorkflowExecutionInfo>();
    for (const run of listed) {
      const known = latest.get(run.workflowId);
      if (!known || run.startTime > known.startTime) latest.set(run.workflowId, run);
    }
    return [...latest.values()];
  }

  async function list(query: string): Promise<WorkflowExecutionInfo[]> {
    const runs: WorkflowExecutionInfo[] = [];
    for await (const info of clientOf().workflow.list({ query, pageSize: 1000 })) runs.push(info);
    return runs;
  }

  /**
   * What the provisionAssignment activity of a run closed in the middle of it had recorded: its
   * look, which the activity records (as a heartbeat) before it creates anything. Temporal keeps a
   * closed run's pending activities, last heartbeat included. None: the run created nothing.
   */
  async function lookupInFlight(workflowId: string, runId: string): Promise<AssignmentLookup | undefined> {
    const { raw } = await clientOf().workflow.getHandle(workflowId, runId).describe();
    const provisioning = raw.pendingActivities?.find((a) => a.activityType?.name === 'provisionAssignment');
    if (!provisioning?.heartbeatDetails?.payloads?.length) return undefined;
    const details: unknown = fromPayloadsAtIndex(clientOf().options.loadedDataConverter.payloadConverter, 0, provisioning.heartbeatDetails.payloads);
    const lookup = details as Partial<AssignmentLookup> | null;
    return typeof lookup?.preexisted === 'boolean' && typeof lookup.ids?.userId === 'string' ? (lookup as AssignmentLookup) : undefined;
  }

  /**
   * On record that what a closed run may have left is gone (a round removed it, or found it gone):
   * an assignment of the pair made later is then not taken for that run's leftover. Once per run.
   */
  async function recordLeftoverGone(run: LeftoverRun): Promise<void> {
    try {
      // By name: the workflow's module imports this one's types.
      await clientOf().workflow.start<(run: LeftoverRun) => Promise<void>>('leftoverRemovedWorkflow', {
        workflowId: leftoverRemovedId(run.runId),
        taskQueue: Context.current().info.taskQueue,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        args: [{ tenantId: run.tenantId, workflowId: run.workflowId, runId: run.runId }],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  async function leftoverRemoved(runId: string): Promise<boolean> {
    try {
      await clientOf().workflow.getHandle(leftoverRemovedId(runId)).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * A run's grant as its memo holds it (written in the workflow task that changed it); a run from
   * before 1.1 has none and is asked (its result, or a query). Null when it cannot be read now.
   */
  async function recordOf(info: WorkflowExecutionInfo): Promise<GrantRecord | null> {
    const handle = clientOf().workflow.getHandle(info.workflowId, info.runId);
    const open = info.status.name === 'RUNNING';
    const completed = info.status.name === 'COMPLETED';
    const memo = info.memo?.[GRANT_MEMO] as GrantState | undefined;
    let state: GrantState;
    try {
      // A query waits for a worker of the run's task queue; one that has none must not hold the round up.
      state =
        memo ?? (completed ? await handle.result() : await clientOf().withDeadline(Date.now() + GRANT_READ_TIMEOUT_MS, () => handle.query(grantStateQuery)));
      // Closed mid-provisioning (by an operator, a timeout): the look, if any, is still in its activity.
      if (!open && !completed && state.status === 'provisioning' && state.assignmentPreexisted === null) {
        const lookup = await lookupInFlight(info.workflowId, info.runId);
        if (lookup) state = { ...state, assignmentPreexisted: lookup.preexisted, assignmentIds: lookup.ids };
      }
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null; // removed by retention meanwhile
      // A run that cannot be read must not stop the whole reconciliation: nothing on its account
      // and permission set is removed this round, and it is looked at again next time.
      log.warn('grant state unreadable; skipped this round', { workflowId: info.workflowId, runId: info.runId, open, error: (err as Error).message });
      return null;
    }
    const group = groupOf(state.key.target);
    return {
      tenantId: state.key.tenantId,
      workflowId: info.workflowId,
      runId: info.runId,
      open,
      closedAt: info.closeTime?.toISOString() ?? null,
      // Only the end of holdUntilExpiry sets a closed status on a closing grant, once the deletion is done.
      removalConfirmed: completed || (!open && state.closing && (state.status === 'expired' || state.status === 'revoked')),
      grantId: state.id,
      status: state.status,
      closing: state.closing,
      ...(group === undefined ? { accountId: accountIdOf(state.key.target) } : { accountId: '', group }),
      role: state.key.role,
      principalId: state.key.principalId,
      assignmentPreexisted: state.assignmentPreexisted,
      ids: state.assignmentIds,
      activatedAt: state.activatedAt,
      expiresAt: state.expiresAt,
    };
  }

  /**
   * The tenant's runs in scope (runsInScope) as records, and where they say to look: the pairs and
   * users of every grant that may hold an assignment (open and past its look) or have left one
   * (closed without confirming its removal). `undecided`: pairs of a run that could not be read, or
   * of a grant provisioning that has not looked yet (nothing there is removed this round).
   */
  async function readScope(tenantId: string, arnOfRole: Map<string, string>) {
    const reading = semaphore(GRANT_READS_IN_FLIGHT);
    const read = await Promise.all((await runsInScope(tenantId)).map((run) => reading(async () => ({ run, record: await recordOf(run) }))));
    const records: GrantRecord[] = [];
    const undecided = new Set<string>();
    const pairs = new Set<string>();
    const users = new Set<string>();
    /** The groups of group grants that may hold a membership or have left one; `groupsUndecided`: one whose group is not known yet (no membership is removed this round). */
    const groups = new Set<string>();
    let groupsUndecided = false;
    for (const { run, record } of read) {
      const arn = arnOfRole.get(record?.role ?? attributeOf(run, searchAttributes.role) ?? '');
      const target = record ? undefined : attributeOf(run, searchAttributes.target);
      if (target !== undefined && groupOf(target) !== undefined) {
        groupsUndecided = true;
        continue;
      }
      if (!record) {
        if (target && arn) undecided.add(pairOf(accountIdOf(target), arn));
        continue;
      }
      records.push(record);
      const mayHold = (record.open && record.status !== 'pending' && record.status !== 'new') || (!record.open && !record.removalConfirmed);
      if (record.group !== undefined) {
        if (mayHold && record.ids?.groupId !== undefined) groups.add(record.ids.groupId);
        else if (mayHold && record.open) groupsUndecided = true;
        continue;
      }
      const pair = arn ? pairOf(record.accountId, arn) : undefined;
      if (!mayHold || !pair) continue;
      if (record.ids) {
        pairs.add(pair);
        users.add(record.ids.userId);
      } else if (record.open) {
        undecided.add(pair);
      }
    }
    return { records, undecided, pairs, users, groups, groupsUndecided };
  }

  return {
    /**
     * All the reads of one reconciliation. Only where this service can have drift: the assignments
     * of the tenant's open grants (are they there?) and of its runs closed without confirming their
     * removal (are they gone?). Listed per (account, permission set) pair, or per user when there
     * are no more users than pairs; the cost follows the grants, never accounts times permission sets.
     */
    async findDrift(tenantId: string): Promise<Drift> {
      // A round may take many minutes at its share of the pace: it beats, so a worker lost mid-round is noticed within the heartbeat timeout.
      return heartbeating(() => asBackground(async () => {
        const { names: sets, sessionSeconds, summaries } = await permissionSets(tenantId);
        const arnOfRole = new Map([...sets].map(([arn, name]) => [name, arn]));
        // Runs read before the listing say where to look; read again after it, they judge what it
        // found, so an assignment made meanwhile is judged with the grant that made it.
        const { pairs, users, undecided: unreadBefore, groups, groupsUndecided: groupsUnreadBefore } = await readScope(tenantId, arnOfRole);
        // A tenant that shares its instance looks only at its own accounts (config.ts makes them its list).
        const own = tenantsOnInstanceOf(tenantId).length > 1 ? new Set(await configuredAccounts(tenantId)) : undefined;
        // As many users as pairs: per user, which also sees the grantees' assignments elsewhere.
        const byUser = users.size <= pairs.size;
        const listedFrom = new Date().toISOString();
        const assignments = (byUser ? await listByUser(tenantId, users) : await listByPair(tenantId, pairs)).filter((a) => !own || own.has(a.accountId));
        // Group grants' memberships: every member of each group in scope.
        for (const groupId of groups) for (const userId of await membersOf(tenantId, groupId)) assignments.push(membershipAsAssignment(groupId, userId));
        const looked = (accountId: string, ids: AssignmentIds) =>
          ids.groupId !== undefined ? groups.has(ids.groupId) : byUser ? users.has(ids.userId) : pairs.has(pairOf(accountId, ids.permissionSetArn));
        const present = new Set(assignments.map((a) => tripleOf(a.accountId, a.permissionSetArn, a.principalType, a.principalId)));
        const { records, undecided, groupsUndecided } = await readScope(tenantId, arnOfRole);
        for (const pair of unreadBefore) undecided.add(pair);
        if (groupsUndecided || groupsUnreadBefore) for (const groupId of groups) undecided.add(pairOf(`group:${groupId}`, 'member'));

        for (const record of records) {
          if (record.open || record.removalConfirmed) continue;
          // A run that may have left the assignment listed: has a reconciliation removed its leftover already?
          if (record.ids && present.has(grantTriple(record)!)) record.removalConfirmed = await leftoverRemoved(record.runId);
          if (leftNothing(record, looked, present)) {
            // What it may have left is gone already (removed in the console, say), or it made
            // nothing: on record now, so that an assignment made by hand later is never taken for its leftover.
            await recordLeftoverGone(record);
            record.removalConfirmed = true;
          }
        }
        const drift = findDriftIn(assignments, records, { tenantId, listedFrom, undecided, looked });
        return {
          ...drift,
          grantsChecked: records.length,
          listing: byUser ? 'users' : 'pairs',
          listed: byUser ? users.size : pairs.size,
          foreign: drift.foreign.map((a) => ({ ...a, permissionSetName: sets.get(a.permissionSetArn) ?? (a.accountId.startsWith('group:') ? 'member' : undefined) })),
          sessionSeconds,
          permissionSets: summaries,
        };
      }));
    },

    /** Asks the grant's own workflow to check and re-create its assignment (serialized with its expiry). */
    async restoreGrantAssignment(grant: GrantRef): Promise<ReconcileOutcome | { outcome: 'skipped'; message: string }> {
      try {
        // A grant whose worker is away must not hold the round up; the update, once taken, still runs.
        return await clientOf().withDeadline(Date.now() + RESTORE_ANSWER_TIMEOUT_MS, () =>
          clientOf().workflow.getHandle(grant.workflowId).executeUpdate(reconcileUpdate),
        );
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { outcome: 'skipped', message: 'the grant has closed' };
        if (isDeadlineExceeded(err)) return { outcome: 'skipped', message: 'the grant did not answer in time; it is looked at again next round' };
        const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
        if (cause instanceof ApplicationFailure && cause.type === rejection.notHolding) return { outcome: 'skipped', message: cause.message };
        throw err;
      }
    },

    /** Removes an assignment a closed grant run left behind, unless a newer run of the same key exists now. */
    async removeLeakedAssignment(leak: LeakedAssignment): Promise<RemovalOutcome> {
      // describe() of the workflow id is strongly consistent, unlike the listing the leak came from.
      const latest = await clientOf().workflow.getHandle(leak.workflowId).describe();
      if (latest.runId !== leak.runId || latest.status.name === 'RUNNING') {
        return { removed: false, reason: 'a newer grant of the same key exists' };
      }
      await deleteAssignment({
        tenantId: leak.tenantId,
        accountId: leak.accountId,
        ...(leak.group !== undefined && { group: leak.group }),
        role: leak.role,
        principal: { id: leak.principalId },
        ids: leak.ids,
      });
      // Recorded after the deletion, never before: a record of a removal that then failed would
      // leave the leftover in place for good. A crash in between only means one more removal.
      await recordLeftoverGone(leak);
      return { removed: true };
    },
  };
}

function isDeadlineExceeded(err: unknown): boolean {
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: unknown }).code === 4 /* gRPC DEADLINE_EXCEEDED */) return true;
  }
  return false;
}
