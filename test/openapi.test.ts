// GET /openapi.json describes the seed's fields and enums word for word, and the API's real answers
// match the schemas it is generated from.
import assert from 'node:assert/strict';
import { accessRequestSchema, errorSchema, grantListSchema, grantsResponseSchema, requestsResponseSchema } from '../src/api/schemas';
import { call, ensure, freshAccount, target } from './support/world';

// From the seed page (/work/shared/spec/access-ensure-api.txt): every field, what it requires,
// and every "Allowed values" list.
const SEED = {
  request: { fields: ['entitlements', 'justification', 'dry_run'], required: ['entitlements'] },
  entitlement: { fields: ['target', 'role', 'duration_seconds'], required: ['target', 'role'] },
  justification: { fields: ['reason', 'attachments'], required: [] as string[] },
  response: { fields: ['grants'], required: ['grants'] },
  grant: {
    fields: [
      'id', 'name', 'status', 'change', 'approved', 'duration_seconds', 'expires_at', 'activated_at',
      'access_request_id', 'provisioning_status', 'validation', 'diagnostics',
    ],
    required: ['id', 'name', 'status', 'change', 'approved', 'validation', 'diagnostics'],
    nullable: ['expires_at', 'activated_at', 'access_request_id'],
    enums: {
      status: ['active', 'pending', 'provisioning', 'expired', 'revoked'],
      change: ['none', 'activated', 'requested', 'extended'],
      provisioning_status: ['pending', 'successful', 'failed'],
    },
  },
  validation: { fields: ['has_reason', 'has_ticket_attachment'] },
  error: { fields: ['code', 'message', 'details', 'notices'], required: ['code', 'message'] },
};
/** Ours, beyond the seed, on each grant (docs/api.md: the grants endpoints say which entitlement and whose). */
const GRANT_EXTRAS = ['target', 'role', 'principal_id'];
/** Ours, beyond the seed, in `validation`: what the tenant's on-call and ticket sources said (issue 40). */
const VALIDATION_EXTRAS = ['oncall', 'ticket'];

type Schema = { type?: string; properties?: Record<string, Schema>; required?: string[]; items?: Schema; enum?: string[]; anyOf?: Schema[]; format?: string; $ref?: string };

const sorted = (xs: Iterable<string>) => [...xs].sort();

describe('GET /openapi.json', () => {
  let doc: any;
  let schemas: Record<string, Schema>;
  before(async () => {
    const reply = await call('GET', '/openapi.json', { token: null, tenant: null });
    assert.equal(reply.status, 200);
    doc = reply.body;
    schemas = doc.components.schemas;
  });

  it('is OpenAPI 3.1 with every endpoint', () => {
    assert.equal(doc.openapi, '3.1.0');
    const paths = Object.entries(doc.paths as Record<string, object>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    for (const endpoint of [
      'POST /v1/access/ensure',
      'GET /v1/access/grants',
      'GET /v1/access/grants/{id}',
      'POST /v1/access/grants/{id}/revoke',
      'POST /v1/access/requests/{access_request_id}/review',
      'GET /v1/access/requests',
      'GET /v1/access/requests/{access_request_id}',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      'POST /v1/integrations/slack/interactions',
    ]) {
      assert.ok(paths.includes(endpoint), `${endpoint} is missing`);
    }
  });

  it('has the seed request: fields, required fields, the X-Tenant-ID header', () => {
    const ensureOp = doc.paths['/v1/access/ensure'].post;
    const header = ensureOp.parameters.find((p: any) => p.name === 'X-Tenant-ID');
    assert.deepEqual([header.in, header.required, header.schema.format], ['header', true, 'uuid']);
    assert.equal(ensureOp.requestBody.content['application/json'].schema.$ref, '#/components/schemas/EnsureRequest');
    const request = schemas.EnsureRequest;
    // Beyond the seed: break_glass and starts_at (CONTRACT §2), optional.
    assert.deepEqual(sorted(Object.keys(request.properties!)), sorted([...SEED.request.fields, 'break_glass', 'starts_at']));
    assert.equal(request.properties!.break_glass.type, 'boolean');
    assert.deepEqual([request.properties!.starts_at.type, request.properties!.starts_at.format], ['string', 'date-time']);
    assert.deepEqual(sorted(request.required!), sorted(SEED.request.required));
    const entitlement = request.properties!.entitlements.items!;
    assert.deepEqual(sorted(Object.keys(entitlement.properties!)), sorted(SEED.entitlement.fields));
    assert.deepEqual(sorted(entitlement.required!), sorted(SEED.entitlement.required));
    assert.equal(entitlement.properties!.duration_seconds.type, 'integer');
    const justification = request.properties!.justification;
    assert.deepEqual(sorted(Object.keys(justification.properties!)), sorted(SEED.justification.fields));
    assert.equal(justification.required, undefined);
    assert.equal(request.properties!.dry_run.type, 'boolean');
  });

  it('has the seed response: every grant field, its enums, nullables and formats', () => {
    const response = schemas.EnsureResponse;
    assert.deepEqual(sorted(Object.keys(response.properties!)), sorted(SEED.response.fields));
    assert.deepEqual(response.required, SEED.response.required);
    for (const grant of [response.properties!.grants.items!, schemas.Grant]) {
      // starts_at (CONTRACT §2, scheduled start): optional, as the seed's own times are.
      assert.deepEqual(sorted(Object.keys(grant.properties!)), sorted([...SEED.grant.fields, ...GRANT_EXTRAS, 'starts_at']));
      assert.ok(grant.properties!.starts_at.anyOf?.some((s) => s.type === 'null'), 'starts_at is nullable');
      assert.deepEqual(sorted(grant.required!), sorted([...SEED.grant.required, ...GRANT_EXTRAS]));
      for (const [field, values] of Object.entries(SEED.grant.enums)) assert.deepEqual(grant.properties![field].enum, values, field);
      for (const field of SEED.grant.nullable) {
        assert.ok(grant.properties![field].anyOf?.some((s) => s.type === 'null'), `${field} is nullable`);
      }
      assert.equal(grant.properties!.id.format, 'uuid');
      assert.equal(grant.properties!.expires_at.anyOf![0].format, 'date-time');
      assert.deepEqual(sorted(Object.keys(grant.properties!.validation.properties!)), sorted([...SEED.validation.fields, ...VALIDATION_EXTRAS]));
      assert.equal(grant.properties!.diagnostics.type, 'array');
    }
  });

  it('has the seed error shape on every error answer', () => {
    assert.deepEqual(sorted(Object.keys(schemas.Error.properties!)), sorted(SEED.error.fields));
    assert.deepEqual(sorted(schemas.Error.required!), sorted(SEED.error.required));
    for (const status of ['400', '401', '403', '429']) {
      assert.equal(doc.paths['/v1/access/ensure'].post.responses[status].content['application/json'].schema.$ref, '#/components/schemas/Error');
    }
    assert.equal(doc.paths['/v1/access/ensure'].post.responses['429'].headers['Retry-After'].schema.type, 'integer');
  });

  it('lists every status each route can answer', () => {
    const statusesOf = (route: string, method: string) => Object.keys(doc.paths[route][method].responses).sort();
    const has = (route: string, method: string, statuses: string[]) =>
      assert.deepEqual(statuses.filter((s) => !statusesOf(route, method).includes(s)), [], `${method.toUpperCase()} ${route}: ${statusesOf(route, method)}`);
    has('/v1/access/ensure', 'post', ['200', '400', '401', '403', '409', '413', '429', '500', '503']);
    has('/v1/access/requests/{access_request_id}/review', 'post', ['200', '400', '401', '403', '404', '409', '413', '429', '500', '503']);
    has('/v1/access/grants/{id}/revoke', 'post', ['200', '400', '401', '403', '404', '409', '413', '429', '500', '503']);
    for (const route of ['/v1/access/grants', '/v1/access/grants/{id}', '/v1/access/requests', '/v1/access/requests/{access_request_id}', '/v1/access/audit', '/v1/access/report']) {
      has(route, 'get', ['200', '400', '401', '403', '429', '500', '503']);
    }
  });

  it('links the ids of an answer to the routes by id: ensure to its grant and request, a request to its review', () => {
    const operationIds = new Set(Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap((ops) => Object.values(ops).map((op) => op.operationId)));
    const linksOf = (route: string, method: string) => doc.paths[route][method].responses['200'].links as Record<string, { operationId: string; parameters: Record<string, string> }>;
    const ensured = linksOf('/v1/access/ensure', 'post');
    assert.deepEqual([ensured.GetGrant.operationId, ensured.GetGrant.parameters], ['getGrant', { id: '$response.body#/grants/0/id' }]);
    assert.deepEqual([ensured.GetAccessRequest.operationId, ensured.GetAccessRequest.parameters], ['getAccessRequest', { access_request_id: '$response.body#/grants/0/access_request_id' }]);
    const request = linksOf('/v1/access/requests/{access_request_id}', 'get');
    assert.deepEqual([request.ReviewAccessRequest.operationId, request.ReviewAccessRequest.parameters], ['reviewRequest', { access_request_id: '$response.body#/id' }]);
    for (const [route, methods] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { links?: Record<string, { operationId: string }> }> }>>)) {
      for (const [method, op] of Object.entries(methods)) {
        for (const [name, link] of Object.entries(op.responses['200']?.links ?? {})) assert.ok(operationIds.has(link.operationId), `${method} ${route}: ${name}`);
      }
    }
  });

  it('describes what the API really answers', async () => {
    const account = freshAccount();
    const activated = await ensure([{ target: target(account), role: 'ReadOnlyAccess', duration_seconds: 600 }]);
    assert.equal(activated.status, 200);
    grantsResponseSchema.parse(activated.body);
    const requested = await ensure([{ target: target(account), role: 'AdministratorAccess' }], { reason: 'debugging' });
    grantsResponseSchema.parse(requested.body);
    const dryRun = await ensure([{ target: target(freshAccount()), role: 'ReadOnlyAccess' }], { dryRun: true });
    grantsResponseSchema.parse(dryRun.body);
    const listed = await call('GET', '/v1/access/grants');
    grantListSchema.parse(listed.body);
    const denied = await ensure([{ target: target(account), role: 'AdministratorAccess' }], { as: 'mallory' });
    assert.equal(denied.status, 403);
    errorSchema.parse(denied.body);
    const requestId = requested.body.grants[0].access_request_id;
    const one = await call('GET', `/v1/access/requests/${requestId}`);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    accessRequestSchema.parse(one.body);
    const page = await call('GET', '/v1/access/requests?mine=true&limit=1');
    assert.equal(page.status, 200, JSON.stringify(page.body));
    requestsResponseSchema.parse(page.body);
    const reviewed = await call('POST', `/v1/access/requests/${requestId}/review`, { as: 'carol', body: { decision: 'approve', comment: 'ok' } });
    assert.equal(reviewed.status, 200, JSON.stringify(reviewed.body));
    accessRequestSchema.parse(reviewed.body);
    const badCursor = await call('GET', '/v1/access/requests?cursor=%%%');
    assert.equal(badCursor.status, 400);
    errorSchema.parse(badCursor.body);
    const invalid = await call('POST', '/v1/access/ensure', { body: { entitlements: [] } });
    assert.equal(invalid.status, 400);
    errorSchema.parse(invalid.body);
  });
});
