// GET /openapi.json: the API as OpenAPI 3.1, generated from the zod schemas the handlers validate
// with (and the response schemas next to them), so the document cannot drift from the code.
import { z } from 'zod';
import {
  BODY_LIMIT_BYTES,
  auditPageSchema,
  auditQuerySchema,
  ensureBodySchema,
  entitlementFiltersSchema,
  entitlementListSchema,
  reportQuerySchema,
  reportSchema,
  errorSchema,
  grantFiltersSchema,
  grantSchema,
  grantListSchema,
  grantsResponseSchema,
  accessRequestSchema,
  requestFiltersSchema,
  requestsResponseSchema,
  reviewBodySchema,
  revokeBodySchema,
  signInSchema,
} from './schemas';

import { SIGN_IN_LOOKUPS_BURST, SIGN_IN_LOOKUPS_PER_MINUTE, SIGN_IN_MISSES_BURST, SIGN_IN_MISSES_PER_MINUTE } from '../service/rate-limit';

type JsonSchema = Record<string, unknown>;

/** OpenAPI 3.1's schema dialect is JSON Schema 2020-12; requests are described as clients send them. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

const ERRORS = {
  '400': errorResponse('Bad request (`invalid_request`, with the validation issues in `details`)'),
  '401': errorResponse(
    'Unauthenticated (`unauthenticated`): no token, or one that does not verify, has expired, lacks exp, sub or the user claim, or carries no tenant\'s required_claims',
  ),
  '403': errorResponse(
    'Forbidden (`tenant_mismatch`: the token is another tenant\'s; `forbidden`: with the policy `notices`, or a token whose email is not verified)',
  ),
  '429': {
    description:
      'Too many calls from this principal (`rate_limited`): reads (GET) past `grants.read_rate_per_minute` and `read_burst`, or calls that change access (ensure, review, revoke) past `grants.ensure_rate_per_minute` and `ensure_burst`; try again after Retry-After seconds',
    headers: { 'Retry-After': { description: 'Seconds until the next call is accepted', schema: { type: 'integer', minimum: 1 } } },
    content: json(ref('Error')),
  },
  '500': errorResponse('Something went wrong on our side (`internal`); nothing was lost, try again'),
  '503': errorResponse(
    'Temporal cannot be reached, does not know the namespace yet, or cannot take the call just now (`unavailable`, with Retry-After): nothing was changed; try again',
  ),
};

/** Every route with a body. */
const BODY_TOO_LARGE = errorResponse(`The body is larger than ${BODY_LIMIT_BYTES / 1024} KiB (\`payload_too_large\`)`);

const tenantHeader = {
  name: 'X-Tenant-ID',
  in: 'header',
  required: true,
  description:
    'Tenant identifier. Must match the tenant associated with the credential. Returns 403 tenant_mismatch if the credential and header belong to different tenants.',
  schema: { type: 'string', format: 'uuid' },
};
const requestIdHeader = {
  name: 'X-Request-ID',
  in: 'header',
  required: false,
  // Any value is accepted, so the schema says any string: one that is not a plain token is replaced, not refused.
  description:
    'Echoed back and written to every log line of the request when it is 1 to 128 letters, digits, `_`, `.`, `:` or `-`; otherwise (or when absent) one is made up.',
  schema: { type: 'string' },
};
const pathId = (name: string, description: string) => ({ name, in: 'path', required: true, description, schema: { type: 'string', format: 'uuid' } });

function queryParameters(schema: z.ZodObject): JsonSchema[] {
  return Object.entries(schema.shape).map(([name, field]) => ({
    name,
    in: 'query',
    required: !(field as z.ZodType).safeParse(undefined).success,
    schema: jsonSchema(field instanceof z.ZodOptional ? (field.unwrap() as z.ZodType) : (field as z.ZodType), 'input'),
  }));
}

/**
 * OpenAPI links: which route an id in an answer leads to, so a client (or a tool such as Schemathesis,
 * whose stateful phase follows them) goes from one call to the next with ids the API gave. `at` is
 * the id's JSON pointer in the answer.
 */
const grantLinks = (at: string) => ({
  GetGrant: { operationId: 'getGrant', parameters: { id: `$response.body#${at}` }, description: 'The grant, as it is now' },
  RevokeGrant: { operationId: 'revokeGrant', parameters: { id: `$response.body#${at}` }, description: 'End the grant early' },
});
const requestLinks = (at: string) => ({
  GetAccessRequest: { operationId: 'getAccessRequest', parameters: { access_request_id: `$response.body#${at}` }, description: 'The access request the grant waits on (null: none)' },
  ReviewAccessRequest: { operationId: 'reviewRequest', parameters: { access_request_id: `$response.body#${at}` }, description: 'Approve or deny it (a reviewer other than its requester)' },
});

export function openApiDocument(): JsonSchema {
  const common = { security: [{ bearerAuth: [] }], parameters: [tenantHeader, requestIdHeader] };
  const grantAnswer = { description: 'The grant', content: json(ref('Grant')), links: { ...grantLinks('/id'), ...requestLinks('/access_request_id') } };
  const requestAnswer = { description: 'The access request', content: json(ref('AccessRequest')), links: { ...requestLinks('/id'), ...grantLinks('/grants/0/id') } };
  return {
    openapi: '3.1.0',
    info: {
      title: 'jit-access',
      version: '0.1.0',
      description: 'Just-in-time AWS IAM Identity Center access, decided by Cedar policy and run by Temporal workflows.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths: {
      '/v1/access/ensure': {
        post: {
          operationId: 'ensureAccess',
          summary: 'Ensure access entitlements (JIT access request hook)',
          ...common,
          requestBody: { required: true, content: json(ref('EnsureRequest')) },
          responses: {
            '200': {
              description: 'Access grant results',
              content: json(ref('EnsureResponse')),
              // The first grant's; every grant of the answer has its id and access_request_id.
              links: { ...grantLinks('/grants/0/id'), ...requestLinks('/grants/0/access_request_id') },
            },
            ...ERRORS,
            '403': errorResponse(
              'Forbidden: `tenant_mismatch`, or `forbidden` with `notices` (a policy, an account outside `accounts_only`, a duration past the maximum, or open grants past `max_open_per_principal`); nothing was changed',
            ),
            '409': errorResponse(
              'A grant of the call is still being closed (its access is being removed) after the API waited for it (`conflict`); try again once it has closed',
            ),
            '413': BODY_TOO_LARGE,
          },
        },
      },
      '/v1/access/grants': {
        get: {
          operationId: 'listGrants',
          summary: "The caller's grants",
          ...common,
          parameters: [...common.parameters, ...queryParameters(grantFiltersSchema)],
          responses: { '200': { description: 'One page of grants, newest first', content: json(ref('GrantList')), links: grantLinks('/grants/0/id') }, ...ERRORS },
        },
      },
      '/v1/access/entitlements': {
        get: {
          operationId: 'listEntitlements',
          summary: 'The (account, role) pairs you may request, and what an ensure of each would do (decided by the policies as ensure decides; never calls AWS)',
          ...common,
          parameters: [...common.parameters, ...queryParameters(entitlementFiltersSchema)],
          responses: { '200': { description: 'One page of pairs, in account id then role order', content: json(ref('EntitlementList')) }, ...ERRORS },
        },
      },
      '/v1/access/grants/{id}': {
        get: {
          operationId: 'getGrant',
          summary: 'One grant (its grantee, reviewers and revokers see it)',
          ...common,
          parameters: [...common.parameters, pathId('id', 'Grant id')],
          responses: { '200': grantAnswer, ...ERRORS, '404': errorResponse('No such grant in this tenant') },
        },
      },
      '/v1/access/grants/{id}/revoke': {
        post: {
          operationId: 'revokeGrant',
          summary: 'End a grant early; answers once the account assignment is gone (or after 30 s)',
          ...common,
          parameters: [...common.parameters, pathId('id', 'Grant id')],
          requestBody: { required: false, content: json(ref('RevokeRequest')) },
          responses: { '200': grantAnswer, ...ERRORS, '404': errorResponse('No such grant'), '409': errorResponse('The grant is no longer open (`conflict`)'), '413': BODY_TOO_LARGE },
        },
      },
      '/v1/access/requests': {
        get: {
          operationId: 'listAccessRequests',
          summary: 'Requests you may review (policy `review` for every grant of it) and your own, newest first',
          ...common,
          parameters: [...common.parameters, ...queryParameters(requestFiltersSchema)],
          responses: { '200': { description: 'One page of requests', content: json(ref('AccessRequestList')), links: requestLinks('/requests/0/id') }, ...ERRORS },
        },
      },
      '/v1/access/requests/{access_request_id}': {
        get: {
          operationId: 'getAccessRequest',
          summary: 'One access request (its requester and its reviewers see it)',
          ...common,
          parameters: [...common.parameters, pathId('access_request_id', 'The grants’ access_request_id')],
          responses: { '200': requestAnswer, ...ERRORS, '404': errorResponse('No such access request, or none you may see') },
        },
      },
      '/v1/access/requests/{access_request_id}/review': {
        post: {
          operationId: 'reviewRequest',
          summary: "Approve or deny someone else's pending access request, all its grants at once; answers the request after the decision",
          ...common,
          parameters: [...common.parameters, pathId('access_request_id', 'The grant’s access_request_id')],
          requestBody: { required: true, content: json(ref('ReviewRequest')) },
          responses: {
            '200': requestAnswer,
            ...ERRORS,
            '403': errorResponse(
              'Your own request, or one holding grants you may not review (`forbidden`, naming them), or `tenant_mismatch`, or a token whose email is not verified',
            ),
            '404': errorResponse('No such access request, or none you may review (the same answer, so no id is confirmed)'),
            '409': errorResponse('The request is no longer pending, or you already approved it as another principal (`conflict`)'),
            '413': BODY_TOO_LARGE,
          },
        },
      },
      '/v1/integrations/slack/interactions': {
        post: {
          operationId: 'slackInteraction',
          summary:
            "Slack's interactivity request URL: a click on a review_requested message's Approve or Deny button, signed with the tenant's Slack signing secret; the outcome goes to the click's response_url",
          security: [],
          parameters: [
            { name: 'X-Slack-Request-Timestamp', in: 'header', required: true, description: 'Unix seconds; within 5 minutes of the server clock', schema: { type: 'string' } },
            {
              name: 'X-Slack-Signature',
              in: 'header',
              required: true,
              description: '`v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret of the tenant the button names',
              schema: { type: 'string' },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/x-www-form-urlencoded': {
                schema: {
                  type: 'object',
                  required: ['payload'],
                  properties: { payload: { type: 'string', description: "Slack's block_actions payload as JSON; the button value is `{tenant id}:{access request id}`" } },
                },
              },
            },
          },
          responses: {
            '200': { description: 'Accepted (empty body): the review follows, and its outcome or refusal is posted to the response_url' },
            '401': errorResponse('Not a signed Slack click for a tenant with `notifications.slack` (`unauthenticated`): missing or wrong signature, a timestamp more than 5 minutes off, an unknown tenant; nothing was changed'),
            '413': BODY_TOO_LARGE,
          },
        },
      },
      '/v1/access/audit': {
        get: {
          operationId: 'listAuditEvents',
          summary: "The tenant's audit events, newest first, in pages (action `audit`; at most 92 days a call)",
          ...common,
          parameters: [...common.parameters, ...queryParameters(auditQuerySchema)],
          responses: {
            '200': { description: 'A page of events', content: json(ref('AuditPage')) },
            ...ERRORS,
            '400': errorResponse('Bad filters, a range over 92 days, or a cursor this API did not hand out (`invalid_request`)'),
            '404': errorResponse('The tenant has no audit store configured'),
          },
        },
      },
      '/v1/access/report': {
        get: {
          operationId: 'accessReport',
          summary: 'Who held which role on the target, when: intervals rebuilt from the audit events (action `audit`)',
          ...common,
          parameters: [...common.parameters, ...queryParameters(reportQuerySchema)],
          responses: {
            '200': { description: 'Access intervals', content: json(ref('AccessReport')) },
            ...ERRORS,
            '404': errorResponse('The tenant has no audit store configured'),
          },
        },
      },
      '/v1/tenants/{tenant_id}/sign-in': {
        get: {
          operationId: 'getSignIn',
          summary: "How to sign in to the tenant: its OpenID Connect provider, public client and scopes (no token needed)",
          parameters: [pathId('tenant_id', 'The tenant (X-Tenant-ID of every other call)'), requestIdHeader],
          responses: {
            '200': { description: 'Sign-in settings', content: json(ref('SignIn')) },
            '404': errorResponse('No such tenant, or the tenant has no sign-in (`auth.oidc`) configured (`not_found`)'),
            '429': {
              ...ERRORS['429'],
              description: `Too many lookups from this client address (\`rate_limited\`): ${SIGN_IN_LOOKUPS_PER_MINUTE} a minute (${SIGN_IN_LOOKUPS_BURST} at once), of which ${SIGN_IN_MISSES_PER_MINUTE} a minute (${SIGN_IN_MISSES_BURST} at once) that find no sign-in; try again after Retry-After seconds`,
            },
          },
        },
      },
      '/healthz': { get: { operationId: 'health', summary: 'The process is up', responses: { '200': { description: 'Up' } } } },
      '/readyz': {
        get: { operationId: 'ready', summary: 'Temporal answers for the namespace', responses: { '200': { description: 'Ready' }, '503': ERRORS['503'] } },
      },
      '/metrics': {
        get: { operationId: 'metrics', summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': {} } } } },
      },
    },
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        EnsureRequest: jsonSchema(ensureBodySchema, 'input'),
        EnsureResponse: jsonSchema(grantsResponseSchema, 'output'),
        GrantList: jsonSchema(grantListSchema, 'output'),
        EntitlementList: jsonSchema(entitlementListSchema, 'output'),
        Grant: jsonSchema(grantSchema, 'output'),
        AccessRequest: jsonSchema(accessRequestSchema, 'output'),
        AccessRequestList: jsonSchema(requestsResponseSchema, 'output'),
        ReviewRequest: jsonSchema(reviewBodySchema, 'input'),
        RevokeRequest: jsonSchema(revokeBodySchema, 'input'),
        Error: jsonSchema(errorSchema, 'output'),
        SignIn: jsonSchema(signInSchema, 'output'),
        AuditPage: jsonSchema(auditPageSchema, 'output'),
        AccessReport: jsonSchema(reportSchema, 'output'),
      },
    },
  };
}
