// The Identity Store groups of the group grants' tenant (issue 39 §3), made in moto before the
// config is written: some grantable (one named in the config by its id, one production), one
// synced from an external identity provider (as the fault proxy in front of moto describes it),
// and one the tenant does not list. With the tenant's policy folder: the shipped schema and
// policies on the group entity.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateGroupCommand, GetGroupIdCommand, IdentitystoreClient, ResourceNotFoundException } from '@aws-sdk/client-identitystore';
import { ListInstancesCommand, SSOAdminClient } from '@aws-sdk/client-sso-admin';
import { awsClientConfig, repoRoot } from '../../scripts/stack';

export interface SeededGroups {
  identityStoreId: string;
  /** Group name to its id in moto. */
  ids: { dataAdmins: string; prodAdmins: string; scimSynced: string; payroll: string; restricted: string };
  policies: string;
}

let seeded: SeededGroups | undefined;

export function groups(): SeededGroups {
  if (!seeded) throw new Error('the groups are not seeded (startWorld seeds them)');
  return seeded;
}

/** The tenant's `groups` (docs/configuration.md): payroll exists but is not listed. */
export function groupsConfig() {
  const { ids } = groups();
  return [
    { name: 'data-admins', brings: [{ account: '111111111111', permission_set: 'PowerUserAccess' }] },
    { name: 'prod-admins', id: ids.prodAdmins, environment: 'production' },
    { name: 'scim-synced', id: ids.scimSynced },
    { name: 'restricted' },
  ];
}

async function groupNamed(client: IdentitystoreClient, IdentityStoreId: string, name: string): Promise<string> {
  try {
    const { GroupId } = await client.send(new GetGroupIdCommand({ IdentityStoreId, AlternateIdentifier: { UniqueAttribute: { AttributePath: 'displayName', AttributeValue: name } } }));
    return GroupId!;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  const { GroupId } = await client.send(new CreateGroupCommand({ IdentityStoreId, DisplayName: name }));
  return GroupId!;
}

export async function seedGroups(endpoint: string, dir: string): Promise<SeededGroups> {
  const sso = new SSOAdminClient(awsClientConfig(endpoint));
  const identity = new IdentitystoreClient(awsClientConfig(endpoint));
  try {
    const { Instances } = await sso.send(new ListInstancesCommand({}));
    const identityStoreId = Instances![0].IdentityStoreId!;
    const ids = {
      dataAdmins: await groupNamed(identity, identityStoreId, 'data-admins'),
      prodAdmins: await groupNamed(identity, identityStoreId, 'prod-admins'),
      scimSynced: await groupNamed(identity, identityStoreId, 'scim-synced'),
      payroll: await groupNamed(identity, identityStoreId, 'payroll'),
      restricted: await groupNamed(identity, identityStoreId, 'restricted'),
    };
    const policies = path.join(dir, 'group-policies');
    mkdirSync(policies, { recursive: true });
    copyFileSync(path.join(repoRoot, 'policies/schema.cedarschema'), path.join(policies, 'schema.cedarschema'));
    writeFileSync(
      path.join(policies, 'groups.cedar'),
      `// Written by test/support/groups.ts.
@id("groups-member")
permit (principal in Group::"engineering", action == Action::"request", resource is AWS::IdentityStoreGroup)
when { context.role == "member" };

@id("groups-activate-non-production")
@advice("Production groups need a reviewer.")
permit (principal in Group::"engineering", action == Action::"activate", resource is AWS::IdentityStoreGroup)
when { resource.environment != "production" };

@id("groups-review")
permit (principal in Group::"platform-admins", action == Action::"review", resource is AWS::IdentityStoreGroup);

@id("groups-audit")
permit (principal in Group::"security-auditors", action == Action::"audit", resource);

@id("restricted-never")
@advice("Nobody is granted the restricted group.")
forbid (principal, action, resource == AWS::IdentityStoreGroup::"restricted");
`,
    );
    seeded = { identityStoreId, ids, policies };
    return seeded;
  } finally {
    sso.destroy();
    identity.destroy();
  }
}
