// HTTP only: parse, authenticate, call the access service, answer in the contract's shape.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { AccessError, type ErrorCode } from '../domain/errors';
import type { AccessService, Caller } from '../service/access';
import type { Authenticator } from './auth';
import { ensureBodySchema, grantFiltersSchema, reviewBodySchema, revokeBodySchema, uuidSchema } from './schemas';

export interface AppDeps {
  service: AccessService;
  auth: Authenticator;
  /** Resolves when Temporal answers, rejects when it does not. */
  checkTemporal: () => Promise<void>;
  log?: (message: string, err: unknown) => void;
}

const STATUS_OF: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  tenant_mismatch: 403,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unavailable: 503,
  internal: 500,
};

export function createApp({ service, auth, checkTemporal, log = defaultLog }: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '64kb', type: () => true }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    await checkTemporal().catch(() => {
      throw new AccessError('unavailable', 'Temporal cannot be reached.');
    });
    res.json({ status: 'ready' });
  });

  const caller = (req: Request): Promise<Caller> => auth.authenticate(req.get('authorization'), req.get('x-tenant-id'));

  app.post('/v1/access/ensure', async (req, res) => {
    const who = await caller(req);
    const body = parse(ensureBodySchema, req.body);
    res.json({ grants: await service.ensure(who, body) });
  });
  app.get('/v1/access/grants', async (req, res) => {
    const who = await caller(req);
    res.json({ grants: await service.listGrants(who, parse(grantFiltersSchema, req.query)) });
  });
  app.get('/v1/access/grants/:id', async (req, res) => {
    const who = await caller(req);
    res.json(await service.getGrant(who, parseId(req.params.id, 'grant')));
  });
  app.post('/v1/access/grants/:id/revoke', async (req, res) => {
    const who = await caller(req);
    const id = parseId(req.params.id, 'grant');
    const body = parse(revokeBodySchema, req.body ?? {});
    res.json(await service.revoke(who, id, body.reason));
  });
  app.post('/v1/access/requests/:id/review', async (req, res) => {
    const who = await caller(req);
    const id = parseId(req.params.id, 'access request');
    const body = parse(reviewBodySchema, req.body);
    res.json(await service.review(who, id, body.decision, body.comment));
  });

  app.use((_req: Request, _res: Response) => {
    throw new AccessError('not_found', 'No such endpoint.');
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const failure = asAccessError(err);
    if (failure.code === 'internal' || failure.code === 'unavailable') log('request failed', err);
    res.status(STATUS_OF[failure.code]).json({ code: failure.code, message: failure.message, ...failure.extra });
  });
  return app;
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AccessError('invalid_request', 'The request is not valid.', { details: { issues: parsed.error.issues } });
  }
  return parsed.data;
}

function parseId(value: unknown, what: string): string {
  const parsed = uuidSchema.safeParse(value);
  // An id that cannot exist is simply not found: no hint about what ids look like is needed.
  if (!parsed.success) throw new AccessError('not_found', `No such ${what} in this tenant.`);
  return parsed.data;
}

const UNAVAILABLE_GRPC_CODES = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

function asAccessError(err: unknown): AccessError {
  if (err instanceof AccessError) return err;
  const bodyError = err as { type?: string; status?: number };
  if (bodyError?.type === 'entity.too.large') return new AccessError('payload_too_large', 'The request body is too large.');
  if (bodyError?.type === 'entity.parse.failed') return new AccessError('invalid_request', 'The request body is not valid JSON.');
  if (bodyError?.status === 400 || bodyError?.status === 415) return new AccessError('invalid_request', 'The request body could not be read.');
  for (let cause: unknown = err; cause; cause = (cause as { cause?: unknown }).cause) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'number' && UNAVAILABLE_GRPC_CODES.has(code)) return new AccessError('unavailable', 'Temporal cannot be reached; try again.');
  }
  return new AccessError('internal', 'Something went wrong on our side; nothing was lost. Try again.');
}

function defaultLog(message: string, err: unknown): void {
  console.error(message, err);
}
