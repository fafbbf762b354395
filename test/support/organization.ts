// An organisation in moto for ORG_TENANT (test/organizations.test.ts), made before the config is
// written (its OU ids are moto's), with a policy folder that names those OUs:
//
//   root
//   ├── workloads                   the tenant's (roots_or_ous)
//   │   ├── prod
//   │   │   └── payments            payments-prod (tags env=production), vault (data-classification=restricted)
//   │   ├── dev                     sandbox (env=development), excluded (in `exclude`)
//   │   └── attic                   excluded OU, with an account in it
//   └── elsewhere                   not the tenant's, with an account in it
//
// Idempotent on a moto that already has it (TEST_REUSE_TEMPORAL with a shared moto): OUs and
// accounts are found by name.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  AlreadyInOrganizationException,
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
  paginateListAccounts,
  paginateListOrganizationalUnitsForParent,
  TagResourceCommand,
} from '@aws-sdk/client-organizations';
import { awsClientConfig, repoRoot } from '../../scripts/stack';

export interface SeededOrganization {
  rootId: string;
  ous: { workloads: string; prod: string; payments: string; dev: string; attic: string; elsewhere: string };
  accounts: { paymentsProd: string; vault: string; sandbox: string; excluded: string; inAttic: string; elsewhere: string };
  /** The tenant's policy folder (the shipped schema, policies on the OUs above). */
  policies: string;
}

let seeded: SeededOrganization | undefined;

/** The organisation startWorld made. */
export function organization(): SeededOrganization {
  if (!seeded) throw new Error('the organisation is not seeded (startWorld seeds it)');
  return seeded;
}

export function organizationsClient(endpoint: string): OrganizationsClient {
  return new OrganizationsClient(awsClientConfig(endpoint));
}

/** An OU of that name under the parent: found, or made. */
export async function ouNamed(client: OrganizationsClient, parentId: string, name: string): Promise<string> {
  for await (const page of paginateListOrganizationalUnitsForParent({ client }, { ParentId: parentId })) {
    const found = page.OrganizationalUnits?.find((ou) => ou.Name === name);
    if (found?.Id) return found.Id;
  }
  const { OrganizationalUnit } = await client.send(new CreateOrganizationalUnitCommand({ ParentId: parentId, Name: name }));
  return OrganizationalUnit!.Id!;
}

/** An account of that name, in `parentId` with `tags`: found (and moved there, tagged), or made. */
export async function accountNamed(client: OrganizationsClient, rootId: string, parentId: string, name: string, tags: Record<string, string> = {}): Promise<string> {
  let id: string | undefined;
  for await (const page of paginateListAccounts({ client }, {})) id ??= page.Accounts?.find((a) => a.Name === name)?.Id;
  if (!id) {
    const { CreateAccountStatus } = await client.send(new CreateAccountCommand({ AccountName: name, Email: `${name}@org.example` }));
    id = CreateAccountStatus!.AccountId!;
    await client.send(new MoveAccountCommand({ AccountId: id, SourceParentId: rootId, DestinationParentId: parentId }));
  }
  if (Object.keys(tags).length > 0) await client.send(new TagResourceCommand({ ResourceId: id, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }));
  return id;
}

export async function rootOf(client: OrganizationsClient): Promise<string> {
  try {
    await client.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' }));
  } catch (err) {
    if (!(err instanceof AlreadyInOrganizationException)) throw err;
  }
  const { Roots } = await client.send(new ListRootsCommand({}));
  return Roots![0].Id!;
}

export async function seedOrganization(endpoint: string, dir: string): Promise<SeededOrganization> {
  const client = organizationsClient(endpoint);
  try {
    const rootId = await rootOf(client);
    const workloads = await ouNamed(client, rootId, 'workloads');
    const prod = await ouNamed(client, workloads, 'prod');
    const payments = await ouNamed(client, prod, 'payments');
    const dev = await ouNamed(client, workloads, 'dev');
    const attic = await ouNamed(client, workloads, 'attic');
    const elsewhere = await ouNamed(client, rootId, 'elsewhere');
    const accounts = {
      paymentsProd: await accountNamed(client, rootId, payments, 'payments-prod', { env: 'production', team: 'payments' }),
      vault: await accountNamed(client, rootId, payments, 'vault', { 'data-classification': 'restricted' }),
      sandbox: await accountNamed(client, rootId, dev, 'sandbox', { env: 'development' }),
      excluded: await accountNamed(client, rootId, dev, 'excluded-one'),
      inAttic: await accountNamed(client, rootId, attic, 'in-attic'),
      elsewhere: await accountNamed(client, rootId, elsewhere, 'elsewhere-one'),
    };
    const policies = path.join(dir, 'organization-policies');
    mkdirSync(policies, { recursive: true });
    copyFileSync(path.join(repoRoot, 'policies/schema.cedarschema'), path.join(policies, 'schema.cedarschema'));
    writeFileSync(
      path.join(policies, 'organization.cedar'),
      `// Written by test/support/organization.ts: the OU ids are the test moto's.
@id("workloads-read-only")
permit (principal in Group::"engineering", action in [Action::"request", Action::"activate"], resource in AWS::OrgUnit::"${workloads}")
when { context.role == "ReadOnlyAccess" };

@id("workloads-review")
permit (principal in Group::"platform-admins", action == Action::"review", resource in AWS::OrgUnit::"${workloads}");

@id("prod-reviewed")
@advice("Accounts under the prod OU need a reviewer.")
forbid (principal, action == Action::"activate", resource in AWS::OrgUnit::"${prod}");

@id("restricted-never")
@advice("Restricted accounts are not offered.")
forbid (principal, action == Action::"request", resource)
when { resource.tags.contains({key: "data-classification", value: "restricted"}) };
`,
    );
    seeded = { rootId, ous: { workloads, prod, payments, dev, attic, elsewhere }, accounts, policies };
    return seeded;
  } finally {
    client.destroy();
  }
}
