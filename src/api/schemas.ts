// Request schemas: the seed's field names, checked strictly (unknown fields are errors).
import { z } from 'zod';
import { AUDIT_EVENTS } from '../domain/audit';
import { ENTITLEMENT_TARGET_PATTERN, GROUP_TARGET_PATTERN, TARGET_PATTERN } from '../domain/grant';
import { REQUEST_STATUSES } from '../domain/request';

export const targetSchema = z
  .string()
  .regex(ENTITLEMENT_TARGET_PATTERN, 'must be AWS::Account::{12-digit account id} or AWS::IdentityStore::Group::{group name or id}')
  .meta({
    description: 'Entitlement target: AWS::Account::{account_id}, or AWS::IdentityStore::Group::{group name or id} (role `member`: membership of a grantable group)',
    examples: ['AWS::Account::123456789012', 'AWS::IdentityStore::Group::data-admins'],
  });
/** An account target only (the audit trail's and the catalogue's filters). */
const accountOnlyTargetSchema = z.string().regex(TARGET_PATTERN, 'must be AWS::Account::{12-digit account id}');
/** IAM Identity Center permission-set names (ASCII spelled out: \w is wider in some JSON Schema tools). */
export const roleSchema = z
  .string()
  .regex(/^[A-Za-z0-9_+=,.@-]{1,32}$/, 'must be a permission set name')
  .meta({ description: 'Permission set / role name', examples: ['ReadOnlyAccess'] });
export const grantStatusSchema = z.enum(['active', 'pending', 'provisioning', 'expired', 'revoked']);
export const uuidSchema = z.uuid({ version: undefined }).transform((id) => id.toLowerCase());

/** Not blank: what String.trim() would leave something of (JS's \s is exactly what trim removes). */
const NON_BLANK = /\S/;

/**
 * The break-glass rules below, as JSON Schema for the OpenAPI (zod does not turn a refine into
 * one); the refines are what the API runs, with their messages.
 */
const breakGlassRules = {
  if: { properties: { break_glass: { const: true } }, required: ['break_glass'] },
  then: {
    not: { required: ['starts_at'] },
    required: ['justification'],
    properties: { justification: { required: ['reason'], properties: { reason: { pattern: NON_BLANK.source } } } },
  },
};

/** Entitlements one ensure may hold: one access request, reviewed as a whole (an organisation's accounts for one role). */
export const MAX_ENTITLEMENTS = 500;

/**
 * JSON bodies: an ensure of MAX_ENTITLEMENTS at their longest (about 60 KB), with a reason and
 * attachments at their longest (about 45 KB in ASCII), pretty-printed, fits with room to spare.
 */
export const BODY_LIMIT_BYTES = 256 * 1024;

export const ensureBodySchema = z
  .strictObject({
    entitlements: z
      .array(z.strictObject({ target: targetSchema, role: roleSchema, duration_seconds: z.int().positive().optional() }))
      .min(1)
      .max(MAX_ENTITLEMENTS)
      .meta({ description: `1 to ${MAX_ENTITLEMENTS} (target, role) pairs, each once: one access request, reviewed as a whole, all or nothing by policy; one grant each in the answer` }),
    justification: z
      .strictObject({
        reason: z.string().max(4000).optional(),
        attachments: z.array(z.string().max(2048)).max(20).optional(),
      })
      .optional(),
    dry_run: z.boolean().optional(),
    break_glass: z
      .boolean()
      .optional()
      .meta({ description: 'Emergency access: active at once where policy allows it with break-glass (context.break_glass), announced, and followed by a request reviewers acknowledge or deny (a denial revokes the grant). Needs a non-blank justification.reason.' }),
    starts_at: z.iso
      .datetime({ offset: true })
      .optional()
      .meta({ description: "When every entitlement of the call begins (RFC 3339), at most the tenant's grants.max_schedule_ahead_seconds ahead (default 30 days); absent or past: now. The grant is pending until then (info diagnostic `scheduled`); its clock starts at activation. Policies see context.scheduled and context.starts_in_seconds." }),
  })
  .refine((body) => !(body.break_glass && body.starts_at), {
    message: 'break_glass is access now: it cannot have a starts_at',
    path: ['starts_at'],
  })
  .refine((body) => !body.break_glass || NON_BLANK.test(body.justification?.reason ?? ''), {
    message: 'break_glass needs a non-blank justification.reason',
    path: ['break_glass'],
  })
  .refine(
    (body) => new Set(body.entitlements.map((e) => `${e.target}|${e.role}`)).size === body.entitlements.length,
    { message: 'each target and role may appear once', path: ['entitlements'] },
  )
  .meta(breakGlassRules);

export const reviewBodySchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  comment: z.string().max(4000).optional(),
});

export const revokeBodySchema = z.strictObject({ reason: z.string().max(4000).optional() });

/**
 * A grants or requests listing's cursor: its position in base64url, a dot, and the position's
 * HMAC-SHA256 with the filters (43 base64url characters; src/service/runs.ts). The pattern is what a
 * cursor looks like; the API accepts only one it signed, for the same filters (else 400), which no
 * schema can say.
 */
const signedCursorSchema = (maxLength: number) =>
  z
    .string()
    .max(maxLength)
    .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'must be the next_cursor of a page')
    .meta({ description: "The previous page's next_cursor, as it was given (and with the same filters)" });

export const grantFiltersSchema = z.strictObject({
  status: grantStatusSchema.optional(),
  target: targetSchema.optional(),
  role: roleSchema.optional(),
  limit: z.coerce.number().int().min(1).max(100).optional().meta({ description: 'Page size (default 50, at most 100)' }),
  cursor: signedCursorSchema(4096).optional(),
});

export const requestStatusSchema = z.enum(REQUEST_STATUSES);

export const requestFiltersSchema = z.strictObject({
  status: requestStatusSchema.optional(),
  mine: z.enum(['true', 'false']).transform((v) => v === 'true').optional().meta({ description: 'true: only your own requests' }),
  limit: z.coerce.number().int().min(1).max(200).optional().meta({ description: 'Page size (default 50, at most 200)' }),
  cursor: signedCursorSchema(1024).optional(),
});

// Response schemas: what the API answers, in the seed's words. They are the source of
// GET /openapi.json, and the tests check real answers against them.
export const grantChangeSchema = z.enum(['none', 'activated', 'requested', 'extended']);
export const provisioningStatusSchema = z.enum(['pending', 'successful', 'failed']);

export const diagnosticSchema = z
  .object({ level: z.enum(['info', 'warning', 'error']), code: z.string(), message: z.string() })
  .catchall(z.unknown())
  .meta({ description: 'Why the grant is as it is: review needed, who may review, when it expires, a provider failure.' });

const namedSchema = z.strictObject({ id: z.string(), name: z.string() });

const oncallFactsSchema = z
  .strictObject({
    status: z.enum(['on_call', 'not_on_call', 'unknown']),
    source: z.string(),
    schedules: z.array(namedSchema),
    services: z.array(namedSchema),
    level: z.int().nullable(),
    until: z.iso.datetime({ offset: true }).nullable(),
    note: z.string().optional(),
  })
  .meta({ description: "What the tenant's on-call source said of the requester at the call (PagerDuty, Opsgenie): what policies saw as context.oncall." });

const ticketFactsSchema = z
  .strictObject({
    status: z.enum(['found', 'not_found', 'none', 'unknown']),
    source: z.string(),
    key: z.string().nullable(),
    type: z.string().nullable(),
    status_category: z.enum(['open', 'in_progress', 'done']).nullable(),
    status_name: z.string().nullable(),
    priority: z.string().nullable(),
    requester_is_assignee: z.boolean(),
    requester_is_reporter: z.boolean(),
    change_window: z.strictObject({ start: z.iso.datetime({ offset: true }), end: z.iso.datetime({ offset: true }) }).nullable(),
    note: z.string().optional(),
  })
  .meta({ description: "What the tenant's ticket source said of the ticket the justification names (Jira, ServiceNow): what policies saw as context.ticket." });

export const grantSchema = z.strictObject({
  id: z.uuid({ version: undefined }),
  name: z.string(),
  status: grantStatusSchema,
  change: grantChangeSchema,
  approved: z.boolean(),
  duration_seconds: z.int().optional(),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
  activated_at: z.iso.datetime({ offset: true }).nullable().optional(),
  access_request_id: z.uuid({ version: undefined }).nullable().optional(),
  provisioning_status: provisioningStatusSchema.optional(),
  validation: z.strictObject({
    has_reason: z.boolean().optional(),
    has_ticket_attachment: z.boolean().optional(),
    oncall: oncallFactsSchema.optional(),
    ticket: ticketFactsSchema.optional(),
  }),
  diagnostics: z.array(diagnosticSchema),
  starts_at: z.iso.datetime({ offset: true }).nullable().optional().meta({ description: 'When a scheduled grant begins (or began); null when it was asked for at once.' }),
  // Beyond the seed: which entitlement and whose, for the grants endpoints.
  target: targetSchema,
  role: z.string(),
  principal_id: z.string(),
});

export const grantsResponseSchema = z.strictObject({ grants: z.array(grantSchema) });

export const grantListSchema = z.strictObject({
  grants: z.array(grantSchema),
  next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
});

const decisionSchema = z.strictObject({ reviewer_id: z.string(), at: z.iso.datetime({ offset: true }), comment: z.string().nullable() });

export const accessRequestSchema = z
  .strictObject({
    id: z.uuid({ version: undefined }),
    kind: z
      .enum(['access', 'extension', 'break_glass'])
      .meta({ description: 'access: what an ensure call asked for; extension: a longer active grant; break_glass: a break-glass use, approved to acknowledge it or denied to revoke the grant' }),
    status: requestStatusSchema,
    principal_id: z.string(),
    principal_email: z.string().nullable(),
    created_at: z.iso.datetime({ offset: true }),
    expires_at: z.iso.datetime({ offset: true }).nullable().meta({ description: 'When the request lapses unless reviewed' }),
    justification: z.strictObject({ reason: z.string().optional(), attachments: z.array(z.string()).optional() }),
    approvals_required: z.int().positive(),
    approvals: z.array(decisionSchema),
    denial: decisionSchema.nullable(),
    grants: z.array(grantSchema),
  })
  .meta({ description: 'What one ensure call asked reviewers for: the unit a reviewer approves or denies.' });

export const requestsResponseSchema = z.strictObject({
  requests: z.array(accessRequestSchema),
  next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
});

/** GET /v1/tenants/{id}/sign-in: what a client needs to sign in with the tenant's OpenID Connect provider. */
export const signInSchema = z.strictObject({
  tenant_id: z.uuid({ version: undefined }),
  issuer: z.string().meta({ description: 'The OpenID Connect issuer: its discovery document is at {issuer}/.well-known/openid-configuration.' }),
  client_id: z.string().meta({ description: 'The public client to sign in as (no secret): authorization code with PKCE, or the device grant.' }),
  scopes: z.array(z.string()).meta({ description: 'The scopes to ask for.' }),
  audience: z.string().meta({ description: 'The audience the API verifies access tokens are for.' }),
  resource: z.string().nullable().meta({ description: 'The resource indicator (RFC 8707) to send when asking for tokens; null: the provider picks the audience by the client or scopes.' }),
});

export const errorSchema = z.strictObject({
  code: z.string().meta({ description: 'Machine-readable error code (e.g. “not_found”, “tenant_mismatch”).' }),
  message: z.string().meta({ description: 'Human-readable description of the error.' }),
  details: z.record(z.string(), z.unknown()).optional().meta({ description: 'Optional additional context about the error.' }),
  notices: z.array(z.string()).optional().meta({ description: 'Policy notices from determining Cedar rules, if applicable.' }),
});

// The audit trail (docs/audit.md).
const timeSchema = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()])
  .meta({ description: 'An ISO 8601 time, or a date: as `from` its start, as `to` its end (UTC)' });
/**
 * A 12-digit account id or AWS::Account::{id}, read as the target. The pattern is on the input, where
 * the OpenAPI (which describes what a client sends) can show it.
 */
const accountTargetSchema = z
  .string()
  .regex(/^(?:AWS::Account::)?[0-9]{12}$/, 'must be a 12-digit account id or AWS::Account::{account id}')
  .transform((v) => (v.startsWith('AWS::Account::') ? v : `AWS::Account::${v}`))
  .pipe(accountOnlyTargetSchema)
  .meta({ description: 'An account: AWS::Account::{account_id} or the 12-digit id' });

/** The audit trail's and the access report's target: an account as above, or a group grant's target (by the group's name, as grants keep it). */
const auditTargetSchema = z
  .string()
  .regex(new RegExp(`^(?:(?:AWS::Account::)?[0-9]{12}|${GROUP_TARGET_PATTERN.source.slice(1, -1)})$`), 'must be a 12-digit account id, AWS::Account::{account id} or AWS::IdentityStore::Group::{group name}')
  .transform((v) => (/^[0-9]{12}$/.test(v) ? `AWS::Account::${v}` : v))
  .meta({ description: 'An account (AWS::Account::{account_id} or the 12-digit id), or a group: AWS::IdentityStore::Group::{group name}' });

export const auditQuerySchema = z.strictObject({
  from: timeSchema.optional().meta({ description: 'Default: 7 days before `to`; at most 92 days before it' }),
  to: timeSchema.optional().meta({ description: 'Default: now' }),
  principal: z.string().min(1).max(256).optional().meta({ description: "The grant's (or the refused caller's) principal id" }),
  target: auditTargetSchema.optional(),
  role: roleSchema.optional(),
  event: z.enum(AUDIT_EVENTS).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  // base64url of the last event's time and id (src/service/audit.ts); one that does not decode to them is 400.
  cursor: z
    .string()
    .max(1024)
    .regex(/^[A-Za-z0-9_-]+$/, "must be the previous page's next_cursor")
    .optional()
    .meta({ description: "The previous page's next_cursor, as it was given" }),
});

export const reportQuerySchema = z.strictObject({
  target: auditTargetSchema,
  role: roleSchema.optional(),
  from: timeSchema,
  to: timeSchema,
});

/** GET /v1/access/entitlements: what the caller may ask for (src/service/entitlements.ts). */
export const entitlementFiltersSchema = z.strictObject({
  account: accountTargetSchema.optional(),
  role: roleSchema.optional(),
  environment: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be an environment name (1 to 64 letters, digits or _.:-)')
    .optional()
    .meta({ description: "Only accounts of this environment (the tenant's `accounts`; `unknown` for one listed without)" }),
  q: z.string().min(1).max(100).optional().meta({ description: "Text in the account's id or name, or the role's name (any case)" }),
  ou: z
    .string()
    .regex(/^(?:ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$/, 'must be an OU id (ou-...) or a root id (r-...)')
    .optional()
    .meta({ description: 'Only accounts under this OU or root, at any depth (as the latest read of the organisation placed them)', examples: ['ou-ab12-cdef3456'] }),
  tag: z
    .string()
    .max(513)
    .regex(/^[^=]+=/, 'must be key=value')
    .optional()
    .meta({ description: 'Only accounts with this tag, as key=value (split at the first =; the value may be empty)', examples: ['env=dev'] }),
  name: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .meta({ description: "Only accounts whose name matches this pattern, whole and in any case: * for any run of characters, ? for one", examples: ['data-*'] }),
  limit: z.coerce.number().int().min(1).max(100).optional().meta({ description: 'Page size (default 50, at most 100)' }),
  cursor: signedCursorSchema(1024).optional(),
});

export const entitlementSchema = z
  .strictObject({
    target: targetSchema,
    role: z.string().meta({ description: 'The permission set name, as ensure takes it' }),
    role_description: z.string().meta({ description: "The permission set's description in IAM Identity Center ('' when it has none)" }),
    account: z.strictObject({
      id: z.string(),
      name: z.string().nullable().meta({ description: "The account's name in the tenant's config (null: none given)" }),
      environment: z.string().meta({ description: 'What policies see as resource.environment' }),
      tags: z.record(z.string(), z.string()),
      ou_path: z.array(z.string()).meta({ description: 'Organizational units from the root down (empty until the service reads AWS Organizations)' }),
    }),
    action: z.enum(['activate', 'request']).meta({ description: 'What an ensure does: activate (active at once) or request (waits for reviewers)' }),
    approvals_required: z.int().min(0).meta({ description: 'Distinct reviewers who must approve (0 when it activates)' }),
    default_duration_seconds: z.int().positive().meta({ description: "The tenant's default duration, or the maximum where that is shorter" }),
    max_duration_seconds: z.int().positive().meta({ description: 'The longest duration_seconds the policies and the tenant allow' }),
    requires: z
      .array(z.enum(['reason', 'ticket_attachment']))
      .meta({ description: 'What the justification must hold, or an ensure is refused: a non-blank reason, a ticket attachment (the listing assumes both are given)' }),
  })
  .meta({ description: 'An (account, role) pair the caller may request, and what an ensure of it would do, decided by the policies as ensure decides' });

export const entitlementListSchema = z.strictObject({
  entitlements: z.array(entitlementSchema),
  next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
});

export const auditEventSchema = z
  .strictObject({
    schema: z.literal(1),
    event_id: z.uuid({ version: undefined }),
    at: z.iso.datetime(),
    tenant_id: z.uuid({ version: undefined }),
    event: z.enum(AUDIT_EVENTS),
    actor: z.strictObject({ type: z.enum(['principal', 'reviewer', 'operator', 'system']), id: z.string() }),
    principal: z.strictObject({ id: z.string(), email: z.string().optional() }),
    target: targetSchema,
    role: z.string(),
    grant_id: z.uuid({ version: undefined }).nullable(),
    access_request_id: z.uuid({ version: undefined }).nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ description: 'One audit event, schema 1 (docs/audit.md)' });

export const auditPageSchema = z.strictObject({
  events: z.array(auditEventSchema),
  next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next (older) page; null on the last' }),
});

export const reportSchema = z.strictObject({
  intervals: z.array(
    z.strictObject({
      principal_id: z.string(),
      principal_email: z.string().nullable(),
      target: targetSchema,
      role: z.string(),
      from: z.iso.datetime().meta({ description: 'Activation' }),
      to: z.iso.datetime().nullable().meta({ description: 'Assignment confirmed removed (pre-existing: grant ended); null while held' }),
      grant_id: z.uuid({ version: undefined }),
      access_request_id: z.uuid({ version: undefined }).nullable(),
      approved_by: z.array(z.string()),
      reason: z.string().nullable(),
      ended: z.enum(['expired', 'revoked', 'still_active']),
      preexisted: z.boolean().meta({ description: 'The assignment existed before the grant and was left in place' }),
    }),
  ),
});
