// Where a tenant's accounts are: AWS Organizations read into facts (name, state, tags, OU path) for
// the policies, one read per run of organizationWorkflow. Every call is the tenant's paced client's,
// at background priority (after grants' calls, within the reconciliation share): a read of
// thousands of accounts takes minutes, never a grant's turn. A read resumes where its last beat
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
import { ApplicationFailure } from '@temporalio/common';
import type { TenantConfig } from '../config';
import { inOrganization, type OrganizationAccount, type OrganizationReport } from '../domain/accounts';
import { asBackground } from './aws';
import { activityContext, heartbeating } from './poll';

/** A root or OU still to read, with the ids from the root down to it (itself included). */
interface Parent {
  id: string;
  path: string[];
}

/** What a read has found so far: its heartbeat details, and where a retry starts from. */
interface Progress {
  /** Parents still to read; empty before the first beat. */
  queue: Parent[];
  started: boolean;
  accounts: Record<string, OrganizationAccount>;
  ous: Record<string, string>;
  calls: number;
}

interface Deps {
  /** The tenant's config and its paced Organizations client. */
  organizationsOf(tenantId: string): { tenant: TenantConfig; organizations: OrganizationsClient };
  /** The other tenants on the tenant's IAM Identity Center instance. */
  neighboursOf(tenantId: string): TenantConfig[];
}

export function createOrganizationActivities({ organizationsOf, neighboursOf }: Deps) {
  return {
    /**
     * Every ACTIVE account under the tenant's roots and OUs (nested to any depth), less its
     * exclusions. Refused (non-retryable, one line) when one of them belongs to another tenant on
     * the same instance: the run fails and the API keeps the previous read.
     */
    async readOrganization(tenantId: string): Promise<OrganizationReport> {
      const { tenant, organizations: client } = organizationsOf(tenantId);
      const organization = tenant.organization;
      if (!organization) throw ApplicationFailure.nonRetryable(`Tenant ${tenant.name} (${tenant.id}) names no organization`, 'NoOrganization');
      const resumed = activityContext()?.info.heartbeatDetails as Progress | undefined;
      const progress: Progress = resumed?.started ? resumed : { queue: [], started: false, accounts: {}, ous: {}, calls: 0 };
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

      /** One parent's accounts (with their tags) and child OUs: read whole, then added to the progress at once. */
      async function read(parent: Parent): Promise<{ accounts: Record<string, OrganizationAccount>; children: Parent[]; names: Record<string, string> }> {
        const accounts: Record<string, OrganizationAccount> = {};
        for await (const page of paginateListAccountsForParent({ client }, { ParentId: parent.id })) {
          // Closed, suspended or not yet active: not an account anyone can be given access to.
          const active = (counted(page).Accounts ?? []).filter((a) => a.Id && (a.State ?? a.Status) === 'ACTIVE' && !organization!.exclude.includes(a.Id));
          // A page's tags at once: the pacer sets the rate, not the round trips one after another.
          const tags = await Promise.all(active.map((a) => tagsOf(a.Id!)));
          active.forEach((a, i) => (accounts[a.Id!] = { name: a.Name ?? a.Id!, status: (a.State ?? a.Status)!, tags: tags[i], ou_path: parent.path }));
        }
        const children: Parent[] = [];
        const names: Record<string, string> = {};
        for await (const page of paginateListOrganizationalUnitsForParent({ client }, { ParentId: parent.id })) {
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
              const found = await read(progress.queue[0]);
              // In one step, so a beat never holds half a parent.
              Object.assign(progress.accounts, found.accounts);
              Object.assign(progress.ous, found.names);
              progress.queue = [...progress.queue.slice(1), ...found.children];
            }
            refuseOverlap(tenant, progress.accounts, neighboursOf(tenantId));
            return { tenantId: tenant.id, readAt: new Date().toISOString(), accounts: progress.accounts, ous: progress.ous, calls: progress.calls };
          }),
        { details: () => progress },
      );
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
