// GET /openapi.json: the API as OpenAPI 3.1, generated from the zod schemas the handlers validate
// with (and the response schemas next to them), so the document cannot drift from the code.
import { z } from 'zod';
import {
  auditPageSchema,
  auditQuerySchema,
  ensureBodySchema,
  reportQuerySchema,
  reportSchema,
  errorSchema,
  grantFiltersSchema,
  grantSchema,
  grantsResponseSchema,
  reviewBodySchema,
  revokeBodySchema,
} from './schemas';

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
  '503': errorResponse('Temporal cannot be reached (`unavailable`); try again'),
};

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
  description: 'Echoed back and written to every log line of the request; one is made up when absent.',
  schema: { type: 'string', maxLength: 128 },
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

export function openApiDocument(): JsonSchema {
  const common = { security: [{ bearerAuth: [] }], parameters: [tenantHeader, requestIdHeader] };
  const grantAnswer = { description: 'The grant', content: json(ref('Grant')) };
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
          responses: { '200': { description: 'Access grant results', content: json(ref('EnsureResponse')) }, ...ERRORS },
        },
      },
      '/v1/access/grants': {
        get: {
          operationId: 'listGrants',
          summary: "The caller's grants",
          ...common,
          parameters: [...common.parameters, ...queryParameters(grantFiltersSchema)],
          responses: { '200': { description: 'Grants', content: json(ref('EnsureResponse')) }, ...ERRORS },
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
          responses: { '200': grantAnswer, ...ERRORS, '404': errorResponse('No such grant'), '409': errorResponse('The grant is no longer open (`conflict`)') },
        },
      },
      '/v1/access/requests/{access_request_id}/review': {
        post: {
          operationId: 'reviewRequest',
          summary: "Approve or deny someone else's pending access request",
          ...common,
          parameters: [...common.parameters, pathId('access_request_id', 'The grant’s access_request_id')],
          requestBody: { required: true, content: json(ref('ReviewRequest')) },
          responses: {
            '200': grantAnswer,
            ...ERRORS,
            '403': errorResponse('Your own request (`forbidden`), or `tenant_mismatch`, or a token whose email is not verified'),
            '404': errorResponse('No such access request, or none you may review (the same answer, so no id is confirmed)'),
            '409': errorResponse('The request is no longer pending (`conflict`)'),
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
      '/healthz': { get: { operationId: 'health', summary: 'The process is up', responses: { '200': { description: 'Up' } } } },
      '/readyz': {
        get: { operationId: 'ready', summary: 'Temporal answers', responses: { '200': { description: 'Ready' }, '503': ERRORS['503'] } },
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
        Grant: jsonSchema(grantSchema, 'output'),
        ReviewRequest: jsonSchema(reviewBodySchema, 'input'),
        RevokeRequest: jsonSchema(revokeBodySchema, 'input'),
        Error: jsonSchema(errorSchema, 'output'),
        AuditPage: jsonSchema(auditPageSchema, 'output'),
        AccessReport: jsonSchema(reportSchema, 'output'),
      },
    },
  };
}
