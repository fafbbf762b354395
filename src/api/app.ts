// HTTP only: parse, authenticate, call the access service, answer in the contract's shape.
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { z } from 'zod';
import { AccessError, type ErrorCode } from '../domain/errors';
import { grantWorkflowId, type GrantView } from '../domain/grant';
import { createLogger, type Logger } from '../log';
import { type ApiMetrics, createApiMetrics } from '../metrics';
import type { EnsureService } from '../service/ensure';
import type { EntitlementService } from '../service/entitlements';
import type { GrantService } from '../service/grants';
import { CallRates } from '../service/rate-limit';
import type { RequestService } from '../service/requests';
import type { Caller } from '../service/runs';
import { ABSENT_RETRY_AFTER_SECONDS, temporalUnavailableError } from '../service/temporal-errors';
import type { AuditService } from '../service/audit';
import { MAX_RANGE_DAYS } from '../domain/audit';
import type { SlackInteractions } from '../service/slack';
import type { Authenticator } from './auth';
import { openApiDocument } from './openapi';
import { auditQuerySchema, BODY_LIMIT_BYTES, ensureBodySchema, entitlementFiltersSchema, grantFiltersSchema, reportQuerySchema, requestFiltersSchema, reviewBodySchema, revokeBodySchema, uuidSchema } from './schemas';

export interface AppDeps {
  ensurer: EnsureService;
  grants: GrantService;
  entitlements: EntitlementService;
  requests: RequestService;
  /** Absent: the audit endpoints answer 404. */
  audit?: AuditService;
  auth: Authenticator;
  /** Resolves when Temporal answers, rejects when it does not. */
  checkTemporal: () => Promise<void>;
  /** True once the API is shutting down. */
  draining?: () => boolean;
  logger?: Logger;
  metrics?: ApiMetrics;
  /** Approve and Deny buttons in Slack; without it, the endpoint answers 401. */
  slack?: SlackInteractions;
  /** The callers' buckets, shared with the service (a look for an id visibility lags is a read too). */
  rates?: CallRates;
  /** Express's `trust proxy` (TRUST_PROXY): whose X-Forwarded-For gives the client address. */
  trustProxy?: number | string[] | false;
  /** The web console's pages (src/console), a client of the routes below. */
  console?: express.Router;
}

/** Slack's signed forms are small: a click. */
const SLACK_BODY_LIMIT = '64kb';

/** A client's X-Request-ID is kept when it is a plain token; anything else is replaced. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

const STATUS_OF: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  tenant_mismatch: 403,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export function createApp({
  ensurer,
  grants,
  entitlements,
  requests,
  audit,
  auth,
  checkTemporal,
  draining = () => false,
  logger = createLogger('api'),
  metrics = createApiMetrics(),
  slack,
  rates = new CallRates(),
  trustProxy = false,
  console: consolePages,
}: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', trustProxy);
  app.use(
    pinoHttp({
      logger,
      quietReqLogger: true,
      customAttributeKeys: { reqId: 'request_id' },
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-ID', id);
        return id;
      },
      // Method and path only: headers carry the bearer token, and bodies carry justifications.
      serializers: {
        // The console's paths without their query: its sign-in callback carries a code and state.
        req: (req: { method: string; url: string }) => ({ method: req.method, url: req.url.startsWith('/t/') ? req.url.split('?')[0] : req.url }),
        res: (res: { statusCode: number }) => ({ status: res.statusCode }),
      },
      customProps: (_req, res) => callerFields((res as Response).locals?.caller),
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    }),
  );
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = req.route ? `${req.baseUrl}${req.route.path}` : 'unmatched';
      const status = String(res.statusCode);
      metrics.requests.inc({ method: req.method, route, status });
      if (route === '/v1/access/ensure') metrics.ensureDuration.observe({ status }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  });
  // A path the API has, asked with a method it does not answer there, is 405 with Allow (RFC 9110
  // §15.5.6), not 404: a client learns it used the wrong method, not a wrong path. Decided before any
  // body is read (a TRACE with a form body is not a bad JSON body) and before authentication.
  app.use((req, res, next) => {
    const allowed = methodsOf(app, req.path);
    if (allowed.length === 0 || allowed.includes(req.method)) return next();
    res.setHeader('Allow', allowed.join(', '));
    throw new AccessError('method_not_allowed', `${req.method} is not a method of this endpoint; it answers ${allowed.join(', ')}.`);
  });
  // The console's pages read forms, not JSON: before the JSON parser.
  if (consolePages) app.use(consolePages);
  // Slack signs the raw form body, so this one route reads it as bytes, before the JSON parser.
  // Slack wants an answer within 3 s and a review may wait 5 s for visibility: the click is
  // acknowledged once its signature checks out, and the outcome goes to its response_url.
  app.post('/v1/integrations/slack/interactions', express.raw({ limit: SLACK_BODY_LIMIT, type: () => true }), (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    if (!slack) throw new AccessError('unauthenticated', 'The request is not a signed Slack interaction for a tenant of this service.');
    const click = slack.take(raw, req.get('x-slack-request-timestamp'), req.get('x-slack-signature'));
    res.status(200).end();
    slack.act(click, req.log).catch((err) => req.log.error({ err }, 'Slack click failed'));
  });
  app.use(express.json({ limit: BODY_LIMIT_BYTES, type: () => true }));

  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const openApi = JSON.stringify(openApiDocument());
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(openApi);
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    if (draining()) throw new AccessError('unavailable', 'The API is shutting down.');
    await checkTemporal().catch((err) => {
      throw temporalUnavailableError(err) ?? new AccessError('unavailable', 'Temporal cannot be reached.', {}, ABSENT_RETRY_AFTER_SECONDS);
    });
    res.json({ status: 'ready' });
  });

  // Sign-in discovery (`access login --url U --tenant T`): no token yet, so limited per address.
  app.get('/v1/tenants/:id/sign-in', (req, res) => {
    const tenantId = uuidSchema.safeParse(req.params.id);
    const signIn = tenantId.success ? auth.signInOf(tenantId.data) : undefined;
    rates.takeSignIn(req.ip ?? req.socket.remoteAddress ?? 'unknown', signIn !== undefined);
    if (!signIn) throw new AccessError('not_found', 'No such tenant with sign-in (auth.oidc) on this service.');
    res.set('Cache-Control', 'public, max-age=300').json(signIn);
  });

  /** The authenticated caller, once the call is within their rate (reads and writes apart). */
  const caller = async (req: Request, res: Response, entitlements = 1): Promise<Caller> => {
    const who = await auth.authenticate(req.get('authorization'), req.get('x-tenant-id'));
    res.locals.caller = who;
    req.log = req.log.child(callerFields(who));
    rates.take(who, req.method === 'GET' ? 'read' : 'write', entitlements);
    return who;
  };
  /** One log line per grant an answer changed or reports on, with the ids an operator searches by. */
  const logGrants = (req: Request, who: Caller, event: string, grants: GrantView[]) => {
    for (const g of grants) {
      const key = { tenantId: who.tenant.id, principalId: g.principal_id, target: g.target, role: g.role };
      req.log.info({ grant_id: g.id, workflow_id: grantWorkflowId(key), change: g.change, status: g.status }, event);
    }
  };

  app.post('/v1/access/ensure', async (req, res) => {
    // Counted as sent, before validation: an invalid body of many entitlements costs as much.
    const who = await caller(req, res, Array.isArray(req.body?.entitlements) ? req.body.entitlements.length : 1);
    const body = parse(ensureBodySchema, req.body);
    const grants = await ensurer.ensure(who, body, String(req.id));
    if (!body.dry_run) {
      for (const g of grants) metrics.grants.inc({ change: g.change, status: g.status });
      logGrants(req, who, 'grant ensured', grants);
    }
    res.json({ grants });
  });
  app.get('/v1/access/grants', async (req, res) => {
    const who = await caller(req, res);
    res.json(await grants.list(who, parse(grantFiltersSchema, req.query)));
  });
  app.get('/v1/access/entitlements', async (req, res) => {
    const who = await caller(req, res);
    res.json(await entitlements.list(who, parse(entitlementFiltersSchema, req.query)));
  });
  app.get('/v1/access/grants/:id', async (req, res) => {
    const who = await caller(req, res);
    res.json(await grants.get(who, parseId(req.params.id, 'grant')));
  });
  app.post('/v1/access/grants/:id/revoke', async (req, res) => {
    const who = await caller(req, res);
    const id = parseId(req.params.id, 'grant');
    const body = parse(revokeBodySchema, req.body ?? {});
    const grant = await grants.revoke(who, id, body.reason);
    logGrants(req, who, 'grant revoked', [grant]);
    res.json(grant);
  });
  app.post('/v1/access/requests/:id/review', async (req, res) => {
    const who = await caller(req, res);
    const id = parseId(req.params.id, 'access request');
    const body = parse(reviewBodySchema, req.body);
    const request = await requests.review(who, id, body.decision, body.comment);
    logGrants(req, who, `request reviewed (${body.decision}): ${request.status}`, request.grants);
    res.json(request);
  });
  app.get('/v1/access/requests', async (req, res) => {
    const who = await caller(req, res);
    res.json(await requests.list(who, parse(requestFiltersSchema, req.query)));
  });
  app.get('/v1/access/requests/:id', async (req, res) => {
    const who = await caller(req, res);
    res.json(await requests.get(who, parseId(req.params.id, 'access request')));
  });

  if (audit) {
    app.get('/v1/access/audit', async (req, res) => {
      const who = await caller(req, res);
      const q = parse(auditQuerySchema, req.query);
      const range = timeRange(q.from, q.to);
      res.json(await audit.list(who, { ...range, principal: q.principal, target: q.target, role: q.role, event: q.event }, q.limit, q.cursor));
    });
    app.get('/v1/access/report', async (req, res) => {
      const who = await caller(req, res);
      const q = parse(reportQuerySchema, req.query);
      res.json({ intervals: await audit.report(who, { ...timeRange(q.from, q.to), target: q.target, role: q.role }) });
    });
  }

  app.use((_req: Request, _res: Response) => {
    throw new AccessError('not_found', 'No such endpoint.');
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const failure = asAccessError(err);
    if (failure.code === 'internal' || failure.code === 'unavailable') req.log.error({ err }, 'request failed');
    if (failure.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(failure.retryAfterSeconds));
    res.status(STATUS_OF[failure.code]).json({ code: failure.code, message: failure.message, ...failure.extra });
  });
  return app;
}

/** A route of Express's router, as far as reading which methods a path has goes. */
interface RouteLayer {
  route?: { methods: Record<string, boolean> };
  match(path: string): unknown;
}

/**
 * The methods the routes declared on `app` answer at `path` (none: not a path of the API), read from
 * Express's own router so the list cannot drift from the routes. HEAD comes with GET, as Express
 * answers it.
 */
function methodsOf(app: express.Express, path: string): string[] {
  const methods = new Set<string>();
  for (const layer of (app.router as unknown as { stack: RouteLayer[] }).stack) {
    if (!layer.route || !layer.match(path)) continue;
    for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') methods.add(method.toUpperCase());
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AccessError('invalid_request', 'The request is not valid.', { details: { issues: parsed.error.issues } });
  }
  return parsed.data;
}

const DAY_MS = 86_400_000;

/** `from` and `to` as times (a date is its day's start, or end as `to`), at most MAX_RANGE_DAYS apart. */
function timeRange(fromText?: string, toText?: string): { from: Date; to: Date } {
  const to = toText === undefined ? new Date() : new Date(toText.length === 10 ? `${toText}T23:59:59.999Z` : toText);
  const from = fromText === undefined ? new Date(to.getTime() - 7 * DAY_MS) : new Date(fromText.length === 10 ? `${fromText}T00:00:00Z` : fromText);
  if (from.getTime() > to.getTime()) throw new AccessError('invalid_request', '`from` is after `to`.');
  if (to.getTime() - from.getTime() > MAX_RANGE_DAYS * DAY_MS) {
    throw new AccessError('invalid_request', `\`from\` and \`to\` are at most ${MAX_RANGE_DAYS} days apart; ask for the range in parts (or query the bucket with Athena).`);
  }
  return { from, to };
}

function parseId(value: unknown, what: string): string {
  const parsed = uuidSchema.safeParse(value);
  // An id that cannot exist is simply not found: no hint about what ids look like is needed.
  if (!parsed.success) throw new AccessError('not_found', `No such ${what} in this tenant.`);
  return parsed.data;
}

function asAccessError(err: unknown): AccessError {
  if (err instanceof AccessError) return err;
  const bodyError = err as { type?: string; status?: number };
  if (bodyError?.type === 'entity.too.large') return new AccessError('payload_too_large', 'The request body is too large.');
  if (bodyError?.type === 'entity.parse.failed') return new AccessError('invalid_request', 'The request body is not valid JSON.');
  if (bodyError?.status === 400 || bodyError?.status === 415) return new AccessError('invalid_request', 'The request body could not be read.');
  return temporalUnavailableError(err) ?? new AccessError('internal', 'Something went wrong on our side; nothing was lost. Try again.');
}

function callerFields(who: Caller | undefined): Record<string, string> {
  return who ? { tenant: who.tenant.id, principal: who.principal.id } : {};
}
