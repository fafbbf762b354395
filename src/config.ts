// The tenants file named by ACCESS_CONFIG (CONTRACT §4), read and checked once at start-up.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { GROUP_TARGET_PATTERN, GROUP_TARGET_PREFIX, NOTIFICATION_EVENTS } from './domain/grant';
import { httpsOrLoopback } from './net';

export type ConsoleClient = NonNullable<NonNullable<z.infer<typeof authSchema>['oidc']>['console']>;

/** The environment policies see for an account the tenant's config does not describe. */
export const UNKNOWN_ENVIRONMENT = 'unknown';

/** The environment the tenant's config gives one of its accounts (UNKNOWN_ENVIRONMENT when it does not say; src/domain/accounts.ts adds what the organisation says). */
export function environmentOf(tenant: Pick<TenantConfig, 'accounts'>, accountId: string): string {
  return tenant.accounts[accountId]?.environment ?? UNKNOWN_ENVIRONMENT;
}

/** The name of an environment variable holding a secret: start-up stops when it is not set. */
const setEnvironmentVariable = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
  .superRefine((name, ctx) => {
    if (!process.env[name]) ctx.addIssue({ code: 'custom', message: `the environment variable ${name} is not set` });
  });

const ACCOUNT_ID = /^\d{12}$/;
const ROOT_ID = /^r-[0-9a-z]{4,32}$/;
const OU_ID = /^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$/;

/**
 * Where the tenant's accounts are in AWS Organizations (docs/configuration.md): every ACTIVE
 * account under these roots or OUs, nested to any depth, less `exclude`. Read by the worker on a
 * Schedule (src/activities/organizations.ts); policies see each account's name, tags and OUs.
 */
/** A group name as a target may carry it (GROUP_TARGET_PATTERN). */
const groupNameSchema = z.string().refine((name) => GROUP_TARGET_PATTERN.test(GROUP_TARGET_PREFIX + name), 'letters, digits, spaces and ._@+=,- (up to 128, no space at either end)');

/** One grantable Identity Store group (docs/configuration.md, "Group grants"). */
const groupSchema = z.strictObject({
  /** Its DisplayName in the Identity Store: what targets, policies (`resource.name`) and the audit trail call it. */
  name: groupNameSchema,
  /** Its GroupId, when known: a target may name it by id too, and the worker does not look the name up. */
  id: groupNameSchema.optional(),
  /** What policies see as `resource.environment` (as for accounts; "unknown" when not said). */
  environment: z.string().default(UNKNOWN_ENVIRONMENT),
  /** What the group's membership brings (its account assignments), as the tenant declares it: shown to requesters and reviewers. */
  brings: z.array(z.strictObject({ account: z.string().regex(/^\d{12}$/), permission_set: z.string().min(1) })).default([]),
});
export type GroupConfig = z.infer<typeof groupSchema>;

const organizationSchema = z.strictObject({
  roots_or_ous: z
    .array(z.string().refine((id) => ROOT_ID.test(id) || OU_ID.test(id), 'a root id (r-...) or an OU id (ou-...-...)'))
    .min(1, 'name at least one root (r-...) or OU (ou-...)'),
  /** Accounts (12 digits) and OUs (with everything under them) that are not the tenant's. */
  exclude: z.array(z.string().refine((id) => ACCOUNT_ID.test(id) || OU_ID.test(id), 'an account id (12 digits) or an OU id (ou-...-...)')).default([]),
  /** The tag whose value is an account's `environment` when `accounts` does not give one. */
  environment_tag: z.string().min(1).max(128).optional(),
  /** How often the worker reads the organisation again (default 900). */
  refresh_interval_seconds: z.int().min(60).optional(),
  /**
   * Tags are one call per account (ListTagsForResource): a read asks for a new account's at once,
   * and for at most this many others (those asked longest ago), so a refresh of 10,000 accounts is
   * under a minute of calls, not nine, and every account's tags are asked again within
   * accounts / this reads (10,000 accounts: 34 reads, 8.5 hours at the default interval).
   */
  tag_reads_per_refresh: z.int().min(0).default(300),
});
export type OrganizationConfig = z.infer<typeof organizationSchema>;

/**
 * A secret of an outside source (issue 40), from a file or the environment, never from this file:
 * exactly one of token_file (resolved against this file's folder) and token_env.
 */
const secretFields = {
  token_file: z.string().min(1).optional(),
  token_env: setEnvironmentVariable.optional(),
};
const oneSecret = [(s: { token_file?: string; token_env?: string }) => Boolean(s.token_file) !== Boolean(s.token_env), 'give exactly one of token_file and token_env'] as const;
const sourceUrl = z.url().refine(httpsOrLoopback, 'must be an https URL (plain http only for a loopback address)');
/** How long an ensure waits for a source, and how long its answer about a person or a ticket is kept. */
const sourceTiming = {
  timeout_ms: z.int().min(50).max(10_000).default(1500),
  cache_seconds: z.int().min(0).max(3600).default(60),
};

/** Who is on call (docs/configuration.md, "On call"): policies see `context.oncall`. */
const oncallSchema = z
  .strictObject({
    source: z.enum(['pagerduty', 'opsgenie']),
    /** The provider's API (default https://api.pagerduty.com, https://api.opsgenie.com; EU: https://api.eu.opsgenie.com). */
    url: sourceUrl.optional(),
    ...secretFields,
    ...sourceTiming,
    /** At most 5 minutes: a handoff or an override ends a shift early, and a kept answer would not know. */
    cache_seconds: z.int().min(0).max(300).default(60),
  })
  .refine(...oneSecret);
export type OncallConfig = z.infer<typeof oncallSchema>;

/** The ticket a justification names (docs/configuration.md, "Tickets"): policies see `context.ticket`. */
const ticketsSchema = z
  .strictObject({
    source: z.enum(['jira', 'servicenow']),
    /** The site: https://example.atlassian.net, https://example.service-now.com. */
    url: sourceUrl,
    /** Basic authentication's user (Jira: the account's email, with an API token); absent: the token is a bearer token. */
    username: z.string().min(1).optional(),
    ...secretFields,
    /** A ticket key in the reason or the attachments (default Jira `[A-Z][A-Z0-9]+-\d+`, ServiceNow `(?:CHG|INC)\d{7}`): the first match is the ticket. */
    pattern: z
      .string()
      .refine((p) => { try { new RegExp(p); return true; } catch { return false; } }, 'a regular expression')
      .optional(),
    /** Jira: the fields holding a change request's window (e.g. Jira Service Management's customfield_10047/10048). */
    change_window: z.strictObject({ start_field: z.string().min(1), end_field: z.string().min(1) }).optional(),
    ...sourceTiming,
  })
  .refine(...oneSecret);
export type TicketsConfig = z.infer<typeof ticketsSchema>;

const awsSchema = z.strictObject({
  region: z.string().min(1),
  sso_instance_arn: z.string().regex(/^arn:aws:sso:::instance\/ssoins-[a-zA-Z0-9.-]+$/, 'an IAM Identity Center instance ARN'),
  identity_store_id: z.string().regex(/^d-[0-9a-z]{10}$/, 'an identity store id like d-0123456789'),
  /**
   * A role the worker assumes (from its own credentials, the SDK's default chain) to reach the
   * instance, e.g. in the management or delegated administrator account. docs/aws-iam.md lists
   * what the role must allow and trust.
   */
  assume_role_arn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN like arn:aws:iam::123456789012:role/jit-access').optional(),
  /** What the role's trust policy requires as sts:ExternalId. */
  external_id: z.string().regex(/^[\w+=,.@:/-]{2,1224}$/, '2 to 1224 letters, digits or +=,.@:/-_').optional(),
  /** Shown in CloudTrail as the acting session. */
  role_session_name: z.string().regex(/^[\w+=,.@-]{2,64}$/, '2 to 64 letters, digits or +=,.@-_').optional(),
  /** Lifetime of each set of temporary credentials; they are renewed before they expire. */
  role_duration_seconds: z.int().min(900).max(43200).optional(),
  endpoint: z.url().optional(),
  /**
   * When a grant ends, also end the user's AWS sessions from it: a Deny in the permission set's
   * inline policy for sessions issued before the assignment was deleted (docs/aws-iam.md).
   */
  revoke_sessions: z.boolean().default(false),
  /**
   * What the whole deployment allows itself against the Identity Center instance (AWS quotas:
   * about 20 admin API calls per second, a few assignment operations at once); each worker
   * process takes an equal share (src/activities/fleet.ts).
   */
  limits: z
    .strictObject({
      /** Admin API calls (retries included) started in any one-second window. */
      calls_per_second: z.int().positive().default(20),
      /** Assignment creations and deletions started and not yet finished. */
      assignment_operations_in_flight: z.int().positive().default(10),
      /** The most of calls_per_second a reconciliation round takes (its calls also wait behind every other). */
      reconcile_share: z.number().gt(0).max(1).default(0.25),
    })
    .prefault({}),
}).superRefine((aws, ctx) => {
  for (const field of ['external_id', 'role_session_name', 'role_duration_seconds'] as const) {
    if (aws[field] !== undefined && !aws.assume_role_arn) ctx.addIssue({ code: 'custom', path: [field], message: 'applies only with assume_role_arn' });
  }
});

/** Keys fetched over plain http could be swapped by anyone on the path; loopback has no path. */

/**
 * A Slack app whose Approve and Deny buttons review requests (docs/configuration.md, "Approve and
 * deny from Slack"). The API reads the two secret files at start-up.
 */
const slackSchema = z.strictObject({
  /** The app's signing secret: Slack signs each interaction request with it. */
  signing_secret_file: z.string().min(1),
  /** A bot token with users:read and users:read.email, for users.info. */
  bot_token_file: z.string().min(1),
  /** Slack's Web API (another only for a local stand-in). */
  api_url: z.url().refine(httpsOrLoopback, 'must be an https URL (plain http only for a loopback address)').default('https://slack.com/api'),
  /**
   * Who a Slack user is here: their Slack email (lower case) to the principal id and groups the
   * policies see, as a token would give them, and `user`, the value of `auth.user_claim` their
   * tokens carry (default: the email). A Slack user not listed reviews nothing.
   */
  reviewers: z
    .record(
      z.string().min(1).transform((email) => email.toLowerCase()),
      z.strictObject({ id: z.string().min(1).max(256), groups: z.array(z.string().min(1)).default([]), user: z.string().min(1).max(256).transform((u) => u.toLowerCase()).optional() }),
    )
    .default({}),
  /**
   * Clicks the whole tenant may send per minute, per API process, and at once: a ceiling over the
   * per Slack user buckets (each at the tenant's ensure rate), so many Slack users cannot together
   * flood the service.
   */
  clicks_per_minute: z.int().positive().default(600),
  clicks_burst: z.int().positive().default(100),
});

/** Slack-compatible incoming webhooks (docs/configuration.md, "Notifications"). */
const notificationsSchema = z
  .strictObject({
    webhooks: z
      .array(
        z.strictObject({
          url: z.url({ protocol: /^https?$/ }),
          events: z.array(z.enum(NOTIFICATION_EVENTS)).min(1),
        }),
      )
      .default([]),
    expiry_warning_seconds: z.int().positive().default(300),
    slack: slackSchema.optional(),
  })
  .prefault({});

const jwksUrlSchema = z.url().refine(httpsOrLoopback, 'must be an https URL (plain http only for a loopback address)');

const authSchema = z
  .strictObject({
    issuer: z.string().min(1),
    audience: z.string().min(1),
    jwks_file: z.string().optional(),
    jwks_url: jwksUrlSchema.optional(),
    /**
     * Claims a token must carry to be this tenant's: claim name to a value or a list of values
     * (strings, compared exactly; an array claim matches if it holds one of them). Tenants that
     * share an issuer and audience must be told apart by them.
     */
    required_claims: z.record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)])).default({}),
    /** Leeway for exp, nbf and iat against this host's clock. */
    clock_tolerance_seconds: z.int().min(0).max(300).default(30),
    /** Refuses tokens whose iat is longer ago than this (and tokens without iat). */
    max_token_age_seconds: z.int().positive().optional(),
    /** The token claim whose value finds the caller's Identity Store user (as userName, then as email). */
    user_claim: z.string().min(1).default('email'),
    /**
     * Sign-in with the issuer by OpenID Connect (`access login`): the public client people sign in
     * with, and what it asks for. The API publishes them (GET /v1/tenants/{id}/sign-in); the tokens
     * the issuer gives are verified as any other.
     */
    oidc: z
      .strictObject({
        client_id: z.string().min(1),
        scopes: z
          .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token (RFC 6749 §3.3)'))
          .refine((scopes) => scopes.includes('openid'), 'must include openid: the CLI signs in by OpenID Connect')
          .default(['openid', 'email', 'offline_access']),
        /** Sent as `resource` (RFC 8707) where the provider picks the access token's audience by it. */
        resource: z.url().optional(),
        /**
         * The web console's client at the provider (docs/console.md): its redirect URI is
         * `{CONSOLE_URL}/t/{tenant id}/callback`. A confidential client's secret is read from the
         * environment variable named here, never from this file; without one the client is public (PKCE).
         */
        console: z
          .strictObject({
            client_id: z.string().min(1),
            client_secret_env: setEnvironmentVariable.optional(),
          })
          .optional(),
      })
      .optional(),
  })
  .refine((a) => Boolean(a.jwks_file) !== Boolean(a.jwks_url), 'give exactly one of jwks_file and jwks_url')
  .refine((a) => !a.oidc || (URL.canParse(a.issuer) && httpsOrLoopback(a.issuer)), {
    path: ['issuer'],
    message: 'with oidc, the issuer is where clients discover the provider: an https URL (plain http only for a loopback address)',
  });

/** Where the tenant's audit trail goes (docs/audit.md): one S3 object per event. */
const auditSchema = z.strictObject({
  s3: z.strictObject({
    bucket: z.string().min(3),
    /** Keys start `{prefix}/tenant=...`; no leading or trailing slash needed. */
    prefix: z.string().refine((p) => !p.startsWith('/') && !p.endsWith('/'), 'no leading or trailing slash').default('audit'),
    region: z.string().min(1).optional(),
    endpoint: z.url().optional(),
    kms_key_id: z.string().min(1).optional(),
    /** Each object written in Object Lock compliance mode for this many days (the bucket must have Object Lock on). */
    object_lock_days: z.int().positive().optional(),
  }),
});

const tenantSchema = z.strictObject({
  id: z.uuid({ version: undefined }).transform((id) => id.toLowerCase()),
  name: z.string().min(1),
  auth: authSchema,
  aws: awsSchema,
  policies: z.string().default('./policies'),
  grants: z
    .strictObject({
      default_duration_seconds: z.int().positive().default(3600),
      max_duration_seconds: z.int().positive().default(12 * 3600),
      pending_request_ttl_seconds: z.int().positive().default(24 * 3600),
      /** Open grants (pending, provisioning, active) one principal may hold in the tenant. */
      max_open_per_principal: z.int().positive().default(50),
      /** How far ahead an ensure may schedule its start (`starts_at`). */
      max_schedule_ahead_seconds: z.int().positive().default(30 * 24 * 3600),
      /** Scheduled grants (a later `starts_at`, not yet begun) one principal may hold in the tenant; absent: only max_open_per_principal bounds them. */
      max_scheduled_per_principal: z.int().positive().optional(),
      /** Calls that change access (ensure, review, revoke) one principal may make per minute, per API process (a token bucket)... */
      ensure_rate_per_minute: z.int().positive().default(60),
      /** ...and at once after a quiet spell (the bucket's size). */
      ensure_burst: z.int().positive().default(20),
      /** Reads (every GET of /v1/access) one principal may make per minute, per API process, in a bucket of their own... */
      read_rate_per_minute: z.int().positive().default(600),
      /** ...and at once after a quiet spell. */
      read_burst: z.int().positive().default(120),
    })
    .prefault({}),
  notifications: notificationsSchema,
  /** Absent: the events go to the worker's and the API's log only. */
  audit: auditSchema.optional(),
  /** How often the reconciliation Schedule compares grants with the assignments at AWS (default 300). */
  reconcile_interval_seconds: z.int().min(10).optional(),
  /**
   * Account attributes the policies see (e.g. `environment: production`). An account not listed,
   * or listed without one, has the environment UNKNOWN_ENVIRONMENT, so a policy can forbid it.
   */
  accounts: z
    .record(
      z.string().regex(/^\d{12}$/),
      z.strictObject({
        environment: z.string().default(UNKNOWN_ENVIRONMENT),
        /** What people call the account (its name in AWS Organizations): listed with it, and searched by `q`. */
        name: z.string().min(1).max(256).optional(),
      }),
    )
    .default({}),
  /** Only the accounts listed under `accounts` may be targets (with `organization`: those and the organisation's). */
  accounts_only: z.boolean().default(false),
  /**
   * The tenant's accounts in AWS Organizations, besides or instead of `accounts`: only these (and
   * the ones listed) may be targets, as with accounts_only.
   */
  organization: organizationSchema.optional(),
  /**
   * The Identity Store groups whose membership may be granted (target
   * `AWS::IdentityStore::Group::{name or id}`, role `member`); no other group may be a target.
   */
  groups: z.array(groupSchema).default([]),
  /** Who is on call now, for policies (`context.oncall`). */
  oncall: oncallSchema.optional(),
  /** The ticket a justification names, for policies (`context.ticket`) and the answer's `validation`. */
  tickets: ticketsSchema.optional(),
});

const configSchema = z.strictObject({ tenants: z.array(tenantSchema).min(1) });

export type TenantConfig = z.infer<typeof tenantSchema>;
export type AuthConfig = z.infer<typeof authSchema>;
export type AwsTenantConfig = z.infer<typeof awsSchema>;
export type AppConfig = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Reads and checks the config; relative paths in it are resolved against the file's folder. */
export function loadConfig(file = process.env.ACCESS_CONFIG): AppConfig {
  if (!file) throw new ConfigError('ACCESS_CONFIG is not set: name the tenants file (YAML or JSON)');
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new ConfigError(`${file}: invalid config\n${lines.join('\n')}`);
  }
  const base = path.dirname(path.resolve(file));
  const ids = new Set<string>();
  const limitsByInstance = new Map<string, string>();
  for (const [i, tenant] of parsed.data.tenants.entries()) {
    if (ids.has(tenant.id)) throw new ConfigError(`${file}: tenants: duplicate id ${tenant.id}`);
    ids.add(tenant.id);
    const groupNames = new Set<string>();
    for (const [g, group] of tenant.groups.entries()) {
      const again = [group.name, group.id].find((n) => n !== undefined && groupNames.has(n));
      if (again !== undefined) throw new ConfigError(`${file}: tenants.${i}.groups.${g}: ${again} names two groups; a target names one group`);
      groupNames.add(group.name);
      if (group.id !== undefined) groupNames.add(group.id);
    }
    // The limits are the instance's: tenants on one instance share one pacer, so they must agree.
    const limits = JSON.stringify(tenant.aws.limits);
    const seen = limitsByInstance.get(tenant.aws.sso_instance_arn);
    if (seen !== undefined && seen !== limits) {
      throw new ConfigError(`${file}: tenants.${i}.aws.limits: differs from another tenant's on ${tenant.aws.sso_instance_arn} (tenants on one instance share its limits)`);
    }
    limitsByInstance.set(tenant.aws.sso_instance_arn, limits);
    for (const other of parsed.data.tenants.slice(0, i)) {
      // Tenants on one instance share its organisation: without their own accounts, one tenant's
      // policies would decide access to the other's accounts.
      if (other.aws.sso_instance_arn === tenant.aws.sso_instance_arn) {
        const both = `tenants "${other.name}" (${other.id}) and "${tenant.name}" (${tenant.id}) share sso_instance_arn ${tenant.aws.sso_instance_arn}`;
        if (!ownAccountsOnly(other) || !ownAccountsOnly(tenant)) {
          throw new ConfigError(
            `${file}: tenants.${i}.accounts_only: ${both}; an account belongs to one tenant per instance, so each must set accounts_only: true and list its own accounts, or say where they are (organization)`,
          );
        }
        const listedByBoth = Object.keys(tenant.accounts).find((account) => Object.hasOwn(other.accounts, account));
        if (listedByBoth) {
          throw new ConfigError(`${file}: tenants.${i}.accounts.${listedByBoth}: listed by both ${both}; an account belongs to one tenant per instance`);
        }
        // What can be told without asking AWS; an OU inside another's, or a listed account in
        // another's OU, is found by each refresh of the organisation (src/activities/organizations.ts).
        // A group is the instance's (one identity store): its members' access is one tenant's to decide.
        const otherGroups = new Set(other.groups.flatMap((g) => [g.name, g.id].filter((n): n is string => n !== undefined)));
        const groupOfBoth = tenant.groups.flatMap((g) => [g.name, g.id]).find((n) => n !== undefined && otherGroups.has(n));
        if (groupOfBoth) {
          throw new ConfigError(`${file}: tenants.${i}.groups: ${groupOfBoth} listed by both ${both}; a group belongs to one tenant per instance`);
        }
        const namedByBoth = tenant.organization?.roots_or_ous.find((id) => other.organization?.roots_or_ous.includes(id));
        if (namedByBoth) {
          throw new ConfigError(`${file}: tenants.${i}.organization.roots_or_ous: ${namedByBoth} named by both ${both}; an account belongs to one tenant per instance`);
        }
      }
      // Otherwise a token of one would pass for the other's, X-Tenant-ID choosing which.
      const sameIdp = other.auth.issuer === tenant.auth.issuer && other.auth.audience === tenant.auth.audience;
      if (sameIdp && !toldApart(other.auth.required_claims, tenant.auth.required_claims)) {
        throw new ConfigError(
          `${file}: tenants.${i}.auth.required_claims: tenants "${other.name}" (${other.id}) and "${tenant.name}" (${tenant.id}) share ` +
            `issuer ${tenant.auth.issuer} and audience ${tenant.auth.audience}; give both a required_claims claim with different values ` +
            '(e.g. org_id), so that each token belongs to one of them',
        );
      }
    }
    tenant.policies = path.resolve(base, tenant.policies);
    if (tenant.auth.jwks_file) tenant.auth.jwks_file = path.resolve(base, tenant.auth.jwks_file);
    const slack = tenant.notifications.slack;
    if (slack) {
      // A click is by the person whose tokens carry `user`: with another claim than email, an
      // entry without it would be someone else to the self-review and one-approval-each checks.
      const claim = tenant.auth.user_claim;
      const unnamed = claim === 'email' ? undefined : Object.entries(slack.reviewers).find(([, r]) => r.user === undefined)?.[0];
      if (unnamed !== undefined) {
        throw new ConfigError(
          `${file}: tenants.${i}.notifications.slack.reviewers.${unnamed}.user: tenant "${tenant.name}" (${tenant.id}) finds users by auth.user_claim "${claim}", ` +
            `so its Slack reviewer "${unnamed}" needs user: (the value of that claim in their tokens)`,
        );
      }
      slack.signing_secret_file = path.resolve(base, slack.signing_secret_file);
      slack.bot_token_file = path.resolve(base, slack.bot_token_file);
    }
    for (const source of [tenant.oncall, tenant.tickets]) if (source?.token_file) source.token_file = path.resolve(base, source.token_file);
  }
  return parsed.data;
}

/** The tenant's grantable group a target's name or id names (GROUP_TARGET_PATTERN), if any. */
export function grantableGroup(tenant: Pick<TenantConfig, 'groups'>, nameOrId: string): GroupConfig | undefined {
  return tenant.groups.find((g) => g.name === nameOrId) ?? tenant.groups.find((g) => g.id === nameOrId);
}

/** Whether only the tenant's own accounts may be targets: those it lists, and its organisation's. */
export function ownAccountsOnly(tenant: Pick<TenantConfig, 'accounts_only' | 'organization'>): boolean {
  return tenant.accounts_only || tenant.organization !== undefined;
}

/** True when some claim both require has no value both allow: no token can meet both. */
function toldApart(a: AuthConfig['required_claims'], b: AuthConfig['required_claims']): boolean {
  return Object.entries(a).some(([claim, allowed]) => {
    if (!Object.hasOwn(b, claim)) return false;
    const others = [b[claim]].flat();
    return [allowed].flat().every((value) => !others.includes(value));
  });
}

/** The shortest ACCESS_CURSOR_KEY accepted: a key that can be guessed signs nothing. */
const CURSOR_KEY_MIN_LENGTH = 32;

/**
 * The key listing cursors are signed with: ACCESS_CURSOR_KEY, else one derived from the tenants
 * file as loaded. Several API processes serve one tenant and a client's next page may reach any
 * of them, so the key is the deployment's, never a process's own: they all read the same file.
 */
export function cursorKeyOf(config: AppConfig, given = process.env.ACCESS_CURSOR_KEY): Buffer {
  if (given !== undefined && given.length < CURSOR_KEY_MIN_LENGTH) {
    throw new ConfigError(`ACCESS_CURSOR_KEY: at least ${CURSOR_KEY_MIN_LENGTH} characters (e.g. \`openssl rand -base64 32\`), or unset to derive it from the tenants file`);
  }
  return createHmac('sha256', given ?? JSON.stringify(config)).update('jit-access listing cursors').digest();
}

export function tenantById(config: AppConfig, tenantId: string): TenantConfig | undefined {
  return config.tenants.find((t) => t.id === tenantId.toLowerCase());
}

/** CONSOLE_URL's origin: https, as the session cookie is then Secure (plain http only on loopback). */
function consoleUrlOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (!URL.canParse(value) || !httpsOrLoopback(value)) throw new Error(`CONSOLE_URL=${value}: the console's address must be an https URL (plain http only on loopback)`);
  return new URL(value).origin;
}

/**
 * Environment (CONTRACT §4). The Temporal connection is what @temporalio/envconfig reads
 * (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS settings, a profile file), with
 * the dev server's address as the default.
 */
function trustProxyOf(value: string | undefined): number | string[] | false {
  if (!value) return false;
  return /^\d+$/.test(value) ? Number(value) : value.split(',').map((v) => v.trim()).filter(Boolean);
}

export const env = (() => {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  return {
    port: Number(process.env.PORT ?? 8080),
    /** The worker's Prometheus endpoint (its own metrics and the Temporal SDK's); 0 turns it off. */
    workerMetricsPort: Number(process.env.WORKER_METRICS_PORT ?? 9464),
    /** Where it listens: loopback unless told otherwise (e.g. 0.0.0.0 for a scraper on another host). */
    workerMetricsHost: process.env.WORKER_METRICS_HOST || '127.0.0.1',
    /** How long the API waits for in-flight requests after SIGTERM before it exits anyway. */
    shutdownGraceMs: Number(process.env.SHUTDOWN_GRACE_SECONDS ?? 30) * 1000,
    /**
     * Express's `trust proxy`: which proxies' X-Forwarded-For to believe for the client address
     * (the sign-in lookup's rate is per address). Unset: none, the socket's address. A number of
     * hops, or addresses and subnets, comma-separated (e.g. `10.0.0.0/8` for a load balancer).
     */
    trustProxy: trustProxyOf(process.env.TRUST_PROXY),
    /**
     * The console's public origin (e.g. https://access.example.com): its redirect URIs and cookies
     * are made for it. Unset: the address the person used, on loopback only (npm run dev).
     */
    consoleUrl: consoleUrlOf(process.env.CONSOLE_URL),
    /** Seals the console's cookies (src/console/session.ts); the same in every API process. Unset: a random one per process. */
    consoleSessionKey: process.env.CONSOLE_SESSION_KEY,
    /** How long a revoke call waits for the assignment to be removed before it answers "still under way". */
    revokeWaitMs: Number(process.env.REVOKE_WAIT_SECONDS ?? 30) * 1000,
    temporal: { ...connectionOptions, address: connectionOptions.address ?? 'localhost:7233' },
    temporalNamespace: namespace ?? 'default',
    taskQueue: process.env.TEMPORAL_TASK_QUEUE ?? 'access-grants',
    /**
     * Grants the worker keeps in memory between their events; an evicted one costs a replay of its
     * (short) history when it is next touched. The SDK's default follows the heap limit (about 2,300
     * at Node's default heap), which took the worker past 1 GiB; about half a MiB each, measured.
     */
    workerMaxCachedWorkflows: Number(process.env.WORKER_MAX_CACHED_WORKFLOWS ?? 1000),
    /**
     * Activities the worker runs at once. Most of them wait in the per-instance pacing, where
     * deletions go before creations; a task left waiting for a worker slot at Temporal waits in
     * arrival order, so a flood of activations there would hold back expiries (at the SDK's 100,
     * a deletion behind 200 activations waits for the first hundred or so of them to finish). A
     * waiting activity costs a promise and a heartbeat.
     */
    workerMaxConcurrentActivities: Number(process.env.WORKER_MAX_CONCURRENT_ACTIVITIES ?? 1000),
    /**
     * How long a workflow task, or a query, waits on the worker's sticky queue (where the worker
     * that holds the grant in memory takes it) before Temporal hands it to any worker. Set, not
     * left to the SDK, at the SDK's 10 s: 30 s made a burst's late tasks wait rather than replay
     * elsewhere, but a query of a grant held by a dead or stalled worker then used the API's whole
     * 30 s before the normal queue answered it (the reliability suite's api-crashes and many-calls
     * on PostgreSQL), and a worker crash delayed expiries by 30 s instead of 10
     * (test/reliability/worker-crashes.test.ts prints it).
     */
    workerStickyTimeoutMs: Number(process.env.WORKER_STICKY_TIMEOUT_SECONDS ?? 10) * 1000,
    /**
     * The workflow code bundled ahead (a file `bundleWorkflowCode` wrote from this build's
     * src/workflows): the worker starts without bundling it, a few seconds less per start. Unset:
     * the worker bundles at start.
     */
    workflowBundle: process.env.WORKFLOW_BUNDLE,
    /**
     * How often each worker counts the deployment's workers (fleet.ts); a new worker makes no AWS
     * call for twice this. The same on every worker of a deployment.
     */
    workerFleetRefreshMs: Number(process.env.WORKER_FLEET_REFRESH_SECONDS ?? 5) * 1000,
    /**
     * How often the API (and the worker) look for a newer read of a tenant's organisation; the map
     * itself is fetched only when there is one. Read at each look.
     */
    organizationCheckMs: Number(process.env.ORGANIZATION_CHECK_SECONDS ?? 60) * 1000,
  };
})();
