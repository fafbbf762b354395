// Where a tenant's accounts are: AWS Organizations read into facts (name, state, tags, OU path) for
// the policies, one read per run of organizationWorkflow. Every call is the tenant's paced client's,
// at background priority (after every grant's call, with what the instance's quota has left): a
// read of 10,000 accounts is a minute of calls, never a grant's turn. A read resumes where its last beat
// left it, so a worker lost mid-read costs the OU it was in, not the whole organisation.
import {
  DescribeOrganizationalUnitCommand,
  type OrganizationsClient,
  paginateListAccountsForParent,
  paginateListOrganizationalUnitsForParent,
  paginateListParents,
  paginateListRoots,
  paginateListTagsForResource,
} from '@aws-sdk/client-organizations';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TenantConfig } from '../config';
import { accountIdOf, TARGET_PATTERN } from '../domain/grant';
import { accountFacts, inOrganization, type OrganizationAccount, type OrganizationReport } from '../domain/accounts';
import { packed, packOrganization, type PackedOrganizationReport, unpacked, unpackOrganization } from '../latest-run';
import { createLogger } from '../log';
import { revokeSignal, searchAttributes } from '../workflows/messages';
import { asBackground } from './aws';
import { activityContext, heartbeating } from './poll';

const log = createLogger('organizations');
/** Who a grant ended by a read is revoked by, in its diagnostic and audit event (an operator's kind). */
export const ORGANIZATION_REVOKER = 'organization';

/** A root or OU still to read, with the ids from the root down to it (itself included). */
interface Parent {
  id: string;
  path: string[];
}

/** What a read has found so far: its heartbeat details (packed), and where a retry starts from. */
interface Progress {
  /** Parents still to read; empty before the first beat. */
  queue: Parent[];
  started: boolean;
  /** Set once every parent is read: the accounts whose tags are still to ask for. */
  tagsDue?: string[];
  accounts: Record<string, OrganizationAccount>;
  ous: Record<string, string>;
  calls: number;
}

// Parents read at once, and tag reads in flight: enough that the pacer, not the round trips one
// after another, sets the pace (AWS answers in about 100 ms; the default pace is 20 calls a second).
const PARENTS_AT_ONCE = 4;
const TAG_READS_AT_ONCE = 20;
/** The most Organizations' listings give in one page (without it, AWS may give fewer). */
const MOST_PER_PAGE = 20;

interface Deps {
  /** The tenant's config and its paced Organizations client. */
  organizationsOf(tenantId: string): { tenant: TenantConfig; organizations: OrganizationsClient };
  /** The other tenants on the tenant's IAM Identity Center instance. */
  neighboursOf(tenantId: string): TenantConfig[];
  /** The tenant's latest completed read: its tags are carried over. */
  previousOf(tenantId: string): Promise<OrganizationReport | undefined>;
  /** The worker's Temporal client: grants are listed in visibility and sent a revoke. */
  client(): Client;
}

export function createOrganizationActivities({ organizationsOf, neighboursOf, previousOf, client: temporal }: Deps) {
  return {
    /**
     * Every ACTIVE account under the tenant's roots and OUs (nested to any depth), less its
     * exclusions. Refused (non-retryable, one line) when one of them belongs to another tenant on
     * the same instance: the run fails and the API keeps the previous read.
     */
    async readOrganization(tenantId: string): Promise<PackedOrganizationReport> {
      const { tenant, organizations: client } = organizationsOf(tenantId);
      const organization = tenant.organization;
      if (!organization) throw ApplicationFailure.nonRetryable(`Tenant ${tenant.name} (${tenant.id}) names no organization`, 'NoOrganization');
      const resumed = activityContext()?.info.heartbeatDetails as { packed: string } | undefined;
      const progress: Progress = resumed ? unpacked<Progress>(resumed.packed) : { queue: [], started: false, accounts: {}, ous: {}, calls: 0 };
      const previous = (await previousOf(tenantId))?.accounts ?? {};
      const counted = <T>(page: T): T => {
        progress.calls += 1;
        return page;
      };

      /** The ids from the root down to an OU, and the names of those OUs, asked upwards (ListParents). */
      async function pathTo(ouId: string): Promise<string[]> {
        const path = [ouId];
        for (let id = ouId; !id.startsWith('r-'); ) {
          let parent: string | undefined;
          for await (const page of paginateListParents({ client }, { ChildId: id })) parent ??= counted(page).Parents?.[0]?.Id;
          if (!parent) throw ApplicationFailure.nonRetryable(`${id} has no parent in the organization`, 'OrganizationUnreadable');
          path.unshift(parent);
          id = parent;
        }
        for (const id of path.filter((p) => p.startsWith('ou-') && progress.ous[p] === undefined)) {
          const { OrganizationalUnit } = counted(await client.send(new DescribeOrganizationalUnitCommand({ OrganizationalUnitId: id })));
          progress.ous[id] = OrganizationalUnit?.Name ?? id;
        }
        return path;
      }

      async function tagsOf(accountId: string): Promise<Record<string, string>> {
        const tags: Record<string, string> = {};
        for await (const page of paginateListTagsForResource({ client }, { ResourceId: accountId })) {
          for (const { Key, Value } of counted(page).Tags ?? []) if (Key) tags[Key] = Value ?? '';
        }
        return tags;
      }

      /**
       * One parent's accounts and child OUs: read whole, then added to the progress at once. An
       * account the previous read knew keeps its tags (asked for again in turn, see tagsDue).
       */
      async function read(parent: Parent): Promise<{ accounts: Record<string, OrganizationAccount>; children: Parent[]; names: Record<string, string> }> {
        const accounts: Record<string, OrganizationAccount> = {};
        for await (const page of paginateListAccountsForParent({ client, pageSize: MOST_PER_PAGE }, { ParentId: parent.id })) {
          for (const a of counted(page).Accounts ?? []) {
            // Closed, suspended or not yet active: not an account anyone can be given access to.
            if (!a.Id || (a.State ?? a.Status) !== 'ACTIVE' || organization!.exclude.includes(a.Id)) continue;
            const known = previous[a.Id];
            accounts[a.Id] = { name: a.Name ?? a.Id, status: 'ACTIVE', tags: known?.tags ?? {}, ou_path: parent.path, tags_read_at: known?.tags_read_at ?? '' };
          }
        }
        const children: Parent[] = [];
        const names: Record<string, string> = {};
        for await (const page of paginateListOrganizationalUnitsForParent({ client, pageSize: MOST_PER_PAGE }, { ParentId: parent.id })) {
          for (const ou of counted(page).OrganizationalUnits ?? []) {
            if (!ou.Id || organization!.exclude.includes(ou.Id)) continue;
            names[ou.Id] = ou.Name ?? ou.Id;
            children.push({ id: ou.Id, path: [...parent.path, ou.Id] });
          }
        }
        return { accounts, children, names };
      }

      return heartbeating(
        () =>
          asBackground(async () => {
            if (!progress.started) {
              for await (const page of paginateListRoots({ client }, {})) for (const root of counted(page).Roots ?? []) if (root.Id) progress.ous[root.Id] = root.Name ?? root.Id;
              const queue: Parent[] = [];
              for (const id of organization.roots_or_ous) {
                if (organization.exclude.includes(id)) continue;
                queue.push({ id, path: id.startsWith('r-') ? [id] : await pathTo(id) });
              }
              Object.assign(progress, { queue, started: true });
            }
            while (progress.queue.length > 0) {
              const taken = progress.queue.slice(0, PARENTS_AT_ONCE);
              const found = await Promise.all(taken.map(read));
              // In one step, so a beat never holds half a parent.
              for (const { accounts, names } of found) Object.assign(progress.accounts, accounts), Object.assign(progress.ous, names);
              progress.queue = [...progress.queue.slice(taken.length), ...found.flatMap((f) => f.children)];
            }
            // New accounts' tags (never asked: ''), then those asked longest ago, up to the budget.
            progress.tagsDue ??= Object.entries(progress.accounts)
              .sort(([a, x], [b, y]) => x.tags_read_at.localeCompare(y.tags_read_at) || a.localeCompare(b))
              .filter(([, account], i) => account.tags_read_at === '' || i < organization.tag_reads_per_refresh)
              .map(([id]) => id);
            while (progress.tagsDue.length > 0) {
              const taken = progress.tagsDue.slice(0, TAG_READS_AT_ONCE);
              const tags = await Promise.all(taken.map(tagsOf));
              const readAt = new Date().toISOString();
              taken.forEach((id, i) => Object.assign(progress.accounts[id], { tags: tags[i], tags_read_at: readAt }));
              progress.tagsDue = progress.tagsDue.slice(taken.length);
            }
            refuseOverlap(tenant, progress.accounts, neighboursOf(tenantId));
            return packOrganization({ tenantId: tenant.id, readAt: new Date().toISOString(), accounts: progress.accounts, ous: progress.ous, calls: progress.calls });
          }, 'organization'),
        { details: () => ({ packed: packed(progress) }) },
      );
    },

    /**
     * Ends the open grants on accounts that are no longer the tenant's by the read just made
     * (moved out of its OUs, closed, suspended; not listed in its config): a revoke, as an
     * operator's, so each grant removes its assignment, says why in a diagnostic and writes its
     * audit event. Every open grant is looked at, not only those on accounts that left since the
     * previous read: a grant an API process made on its older map meanwhile ends at the next read.
     */
    async endGrantsOutsideOrganization(report: PackedOrganizationReport): Promise<number> {
      const { tenant } = organizationsOf(report.tenantId);
      const organization = unpackOrganization(report);
      const query = `WorkflowType = 'grantWorkflow' AND ExecutionStatus = 'Running' AND ${searchAttributes.tenant.name} = '${tenant.id}'`;
      let ended = 0;
      for await (const run of temporal().workflow.list({ query, pageSize: 1000 })) {
        const target = run.typedSearchAttributes.get(searchAttributes.target);
        // Other targets (an Identity Store group) are not accounts of the organisation.
        const accountId = target && TARGET_PATTERN.test(target) ? accountIdOf(target) : undefined;
        if (!accountId || accountFacts(tenant, accountId, organization).owned) continue;
        const reason = `account ${accountId} is no longer in this tenant's organization (read at ${organization.readAt}): moved out of its OUs, closed or suspended`;
        await temporal().workflow.getHandle(run.workflowId).signal(revokeSignal, { revokedBy: ORGANIZATION_REVOKER, reason });
        log.info({ tenant: tenant.id, workflow_id: run.workflowId, account: accountId }, 'grant ended: its account left the organization');
        ended++;
      }
      return ended;
    },
  };
}

/**
 * An account belongs to one tenant per instance (CONTRACT §4): one that another tenant on the
 * instance lists, or that lies in its part of the organisation, is refused with one line. The path
 * runs from the root, so an OU of one tenant's inside another's is seen from either side.
 */
function refuseOverlap(tenant: TenantConfig, accounts: Record<string, OrganizationAccount>, neighbours: TenantConfig[]): void {
  for (const [id, account] of Object.entries(accounts)) {
    for (const other of neighbours) {
      const how = Object.hasOwn(other.accounts, id)
        ? 'listed under accounts by'
        : other.organization && inOrganization(other.organization, id, account.ou_path)
          ? 'in the organization of'
          : undefined;
      if (!how) continue;
      throw ApplicationFailure.nonRetryable(
        `Account ${id} (${account.name}, in ${account.ou_path.join('/')}) is in the organization of tenant "${tenant.name}" (${tenant.id}) and ${how} tenant ` +
          `"${other.name}" (${other.id}), both on ${tenant.aws.sso_instance_arn}: an account belongs to one tenant per instance`,
        'AccountOverlap',
      );
    }
  }
}
