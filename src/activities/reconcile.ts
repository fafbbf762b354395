// Drift between the grants and what IAM Identity Center holds, for the reconciliation workflow:
// find it (all the reads), then fix one thing per call. What counts as drift is decided by
// `findDriftIn`, a pure function over the two listings. Tenants may share one instance, so the
// grants of every tenant on it are read: one tenant's round must not take for leaked what another
// tenant's grant holds, or found there before it.
import {
  paginateListAccountAssignments,
  paginateListAccountsForProvisionedPermissionSet,
  paginateListPermissionSets,
  DescribePermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy, WorkflowUpdateFailedError, type WorkflowExecutionInfo } from '@temporalio/client';
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, fromPayloadsAtIndex, WorkflowNotFoundError } from '@temporalio/common';
import type { SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { accountIdOf, type GrantState, type GrantStatus } from '../domain/grant';
import { grantStateQuery, reconcileUpdate, type ReconcileOutcome, rejection, searchAttributes } from '../workflows/messages';
import { semaphore } from './aws';
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
  accountId: string;
  role: string;
  principalId: string;
  assignmentPreexisted: boolean | null;
  ids: AssignmentIds | null;
  /** When the grant became active (its activity's clock); null before. */
  activatedAt: string | null;
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
  /** A cap was reached: some assignments or grants were not looked at in this run. */
  truncated: boolean;
}

export interface RemovalOutcome {
  removed: boolean;
  reason?: string;
}

// Bounds per run, so one tenant's reconciliation stays a few minutes of paced calls at most.
const MAX_GRANT_RUNS = 5000;
const MAX_ACCOUNT_PERMISSION_SET_PAIRS = 2000;
const MAX_ASSIGNMENTS = 20_000;
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

const grantTriple = (g: GrantRecord) => (g.ids ? tripleOf(g.accountId, g.ids.permissionSetArn, 'USER', g.ids.userId) : null);
const pairOf = (accountId: string, permissionSetArn: string) => `${accountId}|${permissionSetArn}`;
/** Past this after a run closed mid-provisioning, no creation it asked for is still under way (the provisioning activity's start-to-close is 2 minutes). */
const CREATION_SETTLED_MS = 10 * 60_000;
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
}

/**
 * What is missing, leaked and foreign, given the assignments at the provider (listed first) and the
 * latest run of every grant key of every tenant on the instance (listed after, so every listed
 * assignment's grant is in it). An assignment is leaked only if the newest closed run that has
 * it created it and closed without confirming its removal (terminated, timed out, failed while
 * deprovisioning), no open grant holds it, and no grant found it already there. Everything else
 * not held is foreign: an assignment made by hand after a grant removed its own is never touched.
 */
export function findDriftIn(assignments: Assignment[], grants: GrantRecord[], { tenantId, listedFrom, undecided }: DriftContext): Omit<Drift, 'truncated'> {
  const present = new Set(assignments.map((a) => tripleOf(a.accountId, a.permissionSetArn, a.principalType, a.principalId)));
  const byTriple = new Map<string, GrantRecord[]>();
  for (const grant of grants) {
    const triple = grantTriple(grant);
    if (triple) byTriple.set(triple, [...(byTriple.get(triple) ?? []), grant]);
  }
  const ref = (g: GrantRecord): GrantRef => ({ workflowId: g.workflowId, grantId: g.grantId, accountId: g.accountId, role: g.role, principalId: g.principalId });

  const missing = grants
    .filter((g) => g.tenantId === tenantId)
    .filter((g) => g.open && g.ids && g.status === 'active' && !g.closing && g.assignmentPreexisted === false && !present.has(grantTriple(g)!))
    .filter((g) => !(listedFrom && g.activatedAt && g.activatedAt >= listedFrom))
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
  /** Account ids the tenant's config names. */
  configuredAccounts(tenantId: string): string[];
  /** Every tenant whose config names the same IAM Identity Center instance, the tenant included. */
  tenantsOnInstanceOf(tenantId: string): string[];
  deleteAssignment(ref: AssignmentRef): Promise<void>;
}

export function createReconcileActivities({ client: clientOf, ssoOf, configuredAccounts, tenantsOnInstanceOf, deleteAssignment }: Deps) {
  /** Every permission set's name and ARN. */
  async function permissionSets(tenantId: string): Promise<Map<string, string>> {
    const { sso, instanceArn } = ssoOf(tenantId);
    const byArn = new Map<string, string>();
    for await (const page of paginateListPermissionSets({ client: sso }, { InstanceArn: instanceArn })) {
      for (const arn of page.PermissionSets ?? []) {
        const { PermissionSet } = await sso.send(new DescribePermissionSetCommand({ InstanceArn: instanceArn, PermissionSetArn: arn }));
        byArn.set(arn, PermissionSet?.Name ?? arn);
      }
    }
    return byArn;
  }

  /**
   * The (account, permission set) pairs to look at: where AWS says the set is provisioned, plus
   * every pair a grant names (an emulator may not track provisioning), plus configured accounts.
   * A tenant that shares its instance looks only at its own accounts (config.ts makes them its
   * list, disjoint from the other tenants'): the rest of the organisation is not its business.
   */
  async function pairsToScan(tenantId: string, sets: Map<string, string>, grants: { accountId: string; role: string }[]) {
    const { sso, instanceArn } = ssoOf(tenantId);
    const arnByName = new Map([...sets].map(([arn, name]) => [name, arn]));
    const pairs = new Map<string, { accountId: string; permissionSetArn: string }>();
    const own = tenantsOnInstanceOf(tenantId).length > 1 ? new Set(configuredAccounts(tenantId)) : undefined;
    const add = (accountId: string, permissionSetArn: string) => {
      if (!own || own.has(accountId)) pairs.set(`${accountId}|${permissionSetArn}`, { accountId, permissionSetArn });
    };
    for (const arn of sets.keys()) {
      const pages = paginateListAccountsForProvisionedPermissionSet({ client: sso }, { InstanceArn: instanceArn, PermissionSetArn: arn });
      for await (const page of pages) for (const accountId of page.AccountIds ?? []) add(accountId, arn);
    }
    for (const g of grants) {
      const arn = arnByName.get(g.role);
      if (arn) add(g.accountId, arn);
    }
    for (const accountId of configuredAccounts(tenantId)) for (const arn of sets.keys()) add(accountId, arn);
    return [...pairs.values()];
  }

  async function listAssignments(tenantId: string, pairs: { accountId: string; permissionSetArn: string }[]) {
    const { sso, instanceArn } = ssoOf(tenantId);
    const found: Assignment[] = [];
    /** The pairs listed whole: what is absent from `found` there is absent at the provider. */
    const scanned = new Set<string>();
    let truncated = pairs.length > MAX_ACCOUNT_PERMISSION_SET_PAIRS;
    for (const { accountId, permissionSetArn } of pairs.slice(0, MAX_ACCOUNT_PERMISSION_SET_PAIRS)) {
      const pages = paginateListAccountAssignments({ client: sso }, { InstanceArn: instanceArn, AccountId: accountId, PermissionSetArn: permissionSetArn });
      for await (const page of pages) {
        for (const a of page.AccountAssignments ?? []) {
          if (a.PrincipalType && a.PrincipalId) found.push({ accountId, permissionSetArn, principalType: a.PrincipalType, principalId: a.PrincipalId });
        }
      }
      scanned.add(pairOf(accountId, permissionSetArn));
      if (found.length >= MAX_ASSIGNMENTS) {
        truncated = true;
        break;
      }
    }
    return { assignments: found, scanned, truncated };
  }

  /** The latest run of every grant key of the tenants (continued-as-new runs are earlier pages of a later one). */
  async function latestGrantRuns(tenantIds: string[]) {
    // Tenant ids are UUIDs (config.ts): nothing to escape.
    const query = `WorkflowType = 'grantWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND AccessTenant IN (${tenantIds.map((id) => `'${id}'`).join(', ')})`;
    const latest = new Map<string, WorkflowExecutionInfo>();
    let seen = 0;
    for await (const info of clientOf().workflow.list({ query, pageSize: 1000 })) {
      const known = latest.get(info.workflowId);
      if (!known || info.startTime > known.startTime) latest.set(info.workflowId, info);
      if (++seen >= MAX_GRANT_RUNS) break;
    }
    return { runs: [...latest.values()], truncated: seen >= MAX_GRANT_RUNS };
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

  async function recordOf(info: WorkflowExecutionInfo): Promise<GrantRecord | null> {
    const handle = clientOf().workflow.getHandle(info.workflowId, info.runId);
    const open = info.status.name === 'RUNNING';
    const completed = info.status.name === 'COMPLETED';
    let state: GrantState;
    try {
      // A completed run's result is its final state; other closed runs (terminated...) are replayed for it.
      // A query waits for a worker of the run's task queue; one that has none must not hold the round up.
      state = completed ? await handle.result() : await clientOf().withDeadline(Date.now() + GRANT_READ_TIMEOUT_MS, () => handle.query(grantStateQuery));
      // Closed mid-provisioning (by an operator, a timeout): the look, if any, is still in its activity.
      if (!open && !completed && state.status === 'provisioning' && state.assignmentPreexisted === null) {
        const lookup = await lookupInFlight(info.workflowId, info.runId);
        if (lookup) state = { ...state, assignmentPreexisted: lookup.preexisted, assignmentIds: lookup.ids };
      }
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null; // removed by retention meanwhile
      // A run that cannot be read (no worker serves its task queue, say) must not stop the whole
      // reconciliation: nothing on its account and permission set is removed this round (see
      // grantRecords), and it is looked at again next time.
      log.warn('grant state unreadable; skipped this round', { workflowId: info.workflowId, runId: info.runId, open, error: (err as Error).message });
      return null;
    }
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
      accountId: accountIdOf(state.key.target),
      role: state.key.role,
      principalId: state.key.principalId,
      assignmentPreexisted: state.assignmentPreexisted,
      ids: state.assignmentIds,
      activatedAt: state.activatedAt,
    };
  }

  /**
   * The records findDriftIn needs, reading as few grants as it can: each read is a query (a replay
   * when the grant is not in a worker's cache), and a tenant may hold thousands of grants.
   * - A pending grant holds no assignment, and a closed one can only have left one behind where an
   *   account and permission set still has a user's assignment: the others are not read.
   * - An active grant whose assignment is there is not read either: one read per principal gives
   *   its user id, and the search attributes give the account and permission set. Only an active
   *   grant of the tenant whose assignment looks missing is read, to be sure.
   * - Other tenants' grants matter only where they may hold or have left a listed assignment.
   * `undecided`: the pairs with a grant that could not be read, or is provisioning and has not
   * looked yet (it may be about to find the assignment there and count on it).
   */
  async function grantRecords(runs: WorkflowExecutionInfo[], assignments: Assignment[], scanned: Set<string>, sets: Map<string, string>, tenantId: string) {
    const arnOfRole = new Map([...sets].map(([arn, name]) => [name, arn]));
    const present = new Set(assignments.map((a) => tripleOf(a.accountId, a.permissionSetArn, a.principalType, a.principalId)));
    const pairsWithUsers = new Set(assignments.filter((a) => a.principalType === 'USER').map((a) => pairOf(a.accountId, a.permissionSetArn)));
    const accountOf = (run: WorkflowExecutionInfo) => {
      try {
        return accountIdOf(attributeOf(run, searchAttributes.target) ?? '');
      } catch {
        return ''; // no target recorded yet: matches no assignment
      }
    };
    const arnOf = (run: WorkflowExecutionInfo) => arnOfRole.get(attributeOf(run, searchAttributes.role) ?? '');
    const pairOfRun = (run: WorkflowExecutionInfo) => pairOf(accountOf(run), arnOf(run) ?? '');
    const ownTenant = (run: WorkflowExecutionInfo) => attributeOf(run, searchAttributes.tenant) === tenantId;
    const principalOf = (run: WorkflowExecutionInfo) => attributeOf(run, searchAttributes.principal);
    // A principal names a user within its tenant only.
    const userKeyOf = (run: WorkflowExecutionInfo) => `${attributeOf(run, searchAttributes.tenant)}|${principalOf(run) ?? run.workflowId}`;
    const isActive = (run: WorkflowExecutionInfo) => run.status.name === 'RUNNING' && attributeOf(run, searchAttributes.status) === 'active';

    /**
     * A closed run whose removal is not confirmed, but which has nothing of its own left: it made
     * nothing, or what it made is gone. A run closed mid-provisioning may have a creation still
     * under way at the provider: its absence counts only once that creation has surely ended.
     */
    const settled = (record: GrantRecord) => record.status !== 'provisioning' || Date.parse(record.closedAt ?? '') < Date.now() - CREATION_SETTLED_MS;
    const leftNothing = (record: GrantRecord) =>
      !record.open &&
      !record.removalConfirmed &&
      (record.assignmentPreexisted === true ||
        record.ids === null ||
        (settled(record) && scanned.has(pairOf(record.accountId, record.ids.permissionSetArn)) && !present.has(grantTriple(record)!)));

    const records: GrantRecord[] = [];
    const undecided = new Set<string>();
    const userIds = new Map<string, string>(); // by userKeyOf
    const inFlight = semaphore(GRANT_READS_IN_FLIGHT);
    const read = (batch: WorkflowExecutionInfo[]) =>
      Promise.all(
        batch.map((run) =>
          inFlight(async () => {
            const record = await recordOf(run);
            if (!record || (record.open && !record.ids && record.status !== 'pending')) undecided.add(pairOfRun(run));
            if (!record) return;
            // A run that may have left the assignment listed: has a reconciliation removed its leftover already?
            if (!record.open && !record.removalConfirmed && record.ids && present.has(grantTriple(record)!)) {
              record.removalConfirmed = await leftoverRemoved(record.runId);
            }
            // What it may have left is gone already (removed in the console, say), or it made nothing:
            // on record now, so that an assignment made by hand later is never taken for its leftover.
            if (leftNothing(record)) {
              await recordLeftoverGone(record);
              record.removalConfirmed = true;
            }
            records.push(record);
            if (record.ids) userIds.set(userKeyOf(run), record.ids.userId);
          }),
        ),
      );

    // Read first: one active grant per principal (for its user id), and every run that can be
    // neither skipped nor judged from its search attributes.
    const readFirst: WorkflowExecutionInfo[] = [];
    const active: WorkflowExecutionInfo[] = [];
    const seen = new Set<string>();
    for (const run of runs.filter((r) => ownTenant(r) || pairsWithUsers.has(pairOfRun(r)))) {
      if (isActive(run)) {
        if (seen.has(userKeyOf(run))) active.push(run);
        else (seen.add(userKeyOf(run)), readFirst.push(run));
      } else if (run.status.name === 'RUNNING') {
        if (attributeOf(run, searchAttributes.status) !== 'pending') readFirst.push(run); // provisioning, or not yet known
      } else if (pairsWithUsers.has(pairOfRun(run))) {
        readFirst.push(run);
      } else if (ownTenant(run) && run.status.name !== 'COMPLETED' && scanned.has(pairOfRun(run))) {
        // Closed without confirming its removal (terminated, say), its pair now empty: read once,
        // to put on record that what it may have left is gone; a run already on record is not read.
        if (!(await leftoverRemoved(run.runId))) readFirst.push(run);
      }
    }
    await read(readFirst);

    const unsure: WorkflowExecutionInfo[] = [];
    for (const run of active) {
      const principal = principalOf(run);
      const userId = userIds.get(userKeyOf(run));
      const accountId = accountOf(run);
      const permissionSetArn = arnOf(run);
      const grantId = attributeOf(run, searchAttributes.grantId);
      const holds = userId && permissionSetArn && present.has(tripleOf(accountId, permissionSetArn, 'USER', userId));
      if (principal && holds && grantId) {
        records.push({
          tenantId: attributeOf(run, searchAttributes.tenant)!,
          workflowId: run.workflowId,
          runId: run.runId,
          open: true,
          closedAt: null,
          removalConfirmed: false,
          grantId,
          status: 'active',
          closing: false,
          accountId,
          role: attributeOf(run, searchAttributes.role)!,
          principalId: decodeURIComponent(principal),
          assignmentPreexisted: null,
          ids: { userId, permissionSetArn },
          activatedAt: null,
        });
      } else if (ownTenant(run) || !userId) {
        unsure.push(run);
      } // else another tenant's grant that holds none of the listed assignments: not needed
    }
    await read(unsure);
    return { records, undecided };
  }

  return {
    /** All the reads of one reconciliation: assignments first, then grants (see findDriftIn). */
    async findDrift(tenantId: string): Promise<Drift> {
      const sets = await permissionSets(tenantId);
      const tenants = tenantsOnInstanceOf(tenantId);
      const ownRuns = (runs: WorkflowExecutionInfo[]) => runs.filter((r) => attributeOf(r, searchAttributes.tenant) === tenantId);
      // The tenant's grant targets widen the scan; the grants' states are read after the assignments.
      const before = await latestGrantRuns(tenants);
      const targets = ownRuns(before.runs).flatMap((r) => {
        const target = attributeOf(r, searchAttributes.target);
        const role = attributeOf(r, searchAttributes.role);
        return target && role ? [{ accountId: accountIdOf(target), role }] : [];
      });
      const listedFrom = new Date().toISOString();
      const { assignments, scanned, truncated } = await listAssignments(tenantId, await pairsToScan(tenantId, sets, targets));
      const after = await latestGrantRuns(tenants);
      const { records, undecided } = await grantRecords(after.runs, assignments, scanned, sets, tenantId);
      const drift = findDriftIn(assignments, records, { tenantId, listedFrom, undecided });
      return {
        ...drift,
        grantsChecked: ownRuns(after.runs).length,
        foreign: drift.foreign.map((a) => ({ ...a, permissionSetName: sets.get(a.permissionSetArn) })),
        truncated: truncated || before.truncated || after.truncated,
      };
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
