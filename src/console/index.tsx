// The web console (docs/console.md): pages for requesters, reviewers and auditors at /t/{tenant}/,
// served by the API process. Every page is a client of the API's routes (./api.ts) with the
// person's token, which stays on the server: the browser holds a sealed, httpOnly session cookie.
import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parse as parseCookies } from 'cookie';
import { stringify as csv } from 'csv-stringify/sync';
import express, { type CookieOptions, type NextFunction, type Request, type Response } from 'express';
import { uuidSchema } from '../api/schemas';
import type { AppConfig } from '../config';
import { tenantById } from '../config';
import type { Logger } from '../log';
import { isLoopback } from '../net';
import { ApiError, ConsoleApi, problemOf, type AccessRequest, type AuditPage, type EntitlementList, type Grant, type GrantList, type Report, type RequestList } from './api';
import { ConsoleProviders, type ConsoleSignIn } from './oidc';
import { accessPage, CURRENT_STATUSES, CurrentGrants, grantPage } from './pages/access';
import { auditPage, type EventQuery, type ReportQuery } from './pages/audit';
import { type Frame, page } from './pages/layout';
import { EMPTY_FORM, type RequestFilters, type RequestForm, requestPage } from './pages/request';
import { RequestCard, requestPage as accessRequestPage, reviewPage } from './pages/review';
import { type ConsoleSession, CookieSeal, randomToken } from './session';
import { LRUCache } from 'lru-cache';
import { renderToString } from 'preact-render-to-string';

/**
 * The cookies, one pair per tenant: `__Host-` (Secure, Path=/, no Domain: no sibling host or plain
 * http page can plant one) wherever the console is https; the seal binds each to its tenant too.
 */
const cookieName = (ctx: { secure: boolean; tenantId: string }, what: 'session' | 'sign_in') => `${ctx.secure ? '__Host-' : ''}access_${what}_${ctx.tenantId}`;
/** Browsers keep a cookie up to about 4 KB, name and attributes included. */
const COOKIE_BYTES = 3800;
/** What a redirect after a change says on the next page: fixed words, never text from the URL. */
const DONE = {
  extended: 'Extended.',
  extension_requested: 'The extension request was sent for review.',
  unchanged: 'No change: it already lasts that long.',
  ended: 'Revoked.',
  removing: 'Being removed: see the notes.',
  approved: 'Approved.',
  denied: 'Denied.',
} as const;
/** How long a person has at the provider's pages before the sign-in must start again. */
const SIGN_IN_SECONDS = 600;
const FORM_LIMIT = '64kb';

const ASSETS = [path.join(__dirname, 'assets'), path.join(__dirname, '../../../src/console/assets')].find((dir) => existsSync(dir))!;
const HTMX = require.resolve('htmx.org/dist/htmx.min.js');

export interface ConsoleOptions {
  config: AppConfig;
  /** CONSOLE_URL's origin; unset: the address the person used, on loopback only. */
  publicOrigin?: string;
  /** CONSOLE_SESSION_KEY; unset: random, and sessions last as long as this process. */
  sessionKey?: string;
  logger: Logger;
}

interface Ctx {
  tenantId: string;
  tenantName: string;
  signIn: ConsoleSignIn;
  origin: string;
  base: string;
  secure: boolean;
  session?: ConsoleSession;
}

const ctxOf = (res: Response): Ctx => res.locals.console as Ctx;
const frameOf = (ctx: Ctx): Frame => ({ base: ctx.base, tenantName: ctx.tenantName, who: ctx.session && { sub: ctx.session.sub, email: ctx.session.email }, csrf: ctx.session?.csrf });
const apiOf = (req: Request, ctx: Ctx): ConsoleApi => {
  // Where this process listens, as the request came in: the console calls the same API it is part of.
  const local = req.socket.localAddress ?? '127.0.0.1';
  return new ConsoleApi(`http://${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort}`, ctx.session!.accessToken, ctx.tenantId);
};

/**
 * The security headers of every console answer: no inline script or style, no framing, no caching
 * of personal pages; forms post only here.
 */
function securityHeaders(res: Response): void {
  res.set({
    'Content-Security-Policy': `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    'X-Content-Type-Options': 'nosniff',
    // same-origin, not no-referrer: with no-referrer a form's POST carries `Origin: null`, which the CSRF check refuses.
    'Referrer-Policy': 'same-origin',
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
  });
}

export function createConsole({ config, publicOrigin, sessionKey, logger }: ConsoleOptions): express.Router {
  const seal = new CookieSeal(sessionKey ?? CookieSeal.randomKey());
  if (!sessionKey) logger.warn('CONSOLE_SESSION_KEY is not set: console sessions are sealed with a random key and end with this process');
  const providers = new ConsoleProviders();
  /** Sessions signed out here, by id, until they would have expired (another process does not know them: docs/console.md). */
  const signedOut = new LRUCache<string, true>({ max: 100_000, ttlAutopurge: false });
  const router = express.Router();

  router.get('/console/assets/console.css', (_req, res) => res.set('Cache-Control', 'public, max-age=3600').sendFile(path.join(ASSETS, 'console.css')));
  router.get('/console/assets/htmx.min.js', (_req, res) => res.set('Cache-Control', 'public, max-age=3600').sendFile(HTMX));

  const tenant = express.Router({ mergeParams: true });
  router.use('/t/:tenant', tenant);

  // The tenant, its console client, and where the console is reached.
  tenant.use(async (req, res, next) => {
    securityHeaders(res);
    const id = String(req.params.tenant ?? '');
    const t = isUuid(id) ? tenantById(config, id) : undefined;
    const oidc = t?.auth.oidc;
    if (!t || !oidc?.console) return void res.status(404).type('html').send(plainPage('Not found', 'No console for this address: the tenant does not exist or has no console sign-in (auth.oidc.console).'));
    // The local provider knows the console at 127.0.0.1 only (as npm run dev prints it).
    if (!publicOrigin && /^localhost(:\d+)?$/.test(req.headers.host ?? '')) return res.redirect(303, `http://${req.headers.host!.replace('localhost', '127.0.0.1')}${req.originalUrl}`);
    const origin = publicOrigin ?? loopbackOrigin(req);
    if (!origin) return void res.status(404).type('html').send(plainPage('Not found', 'The console answers only on its configured address (CONSOLE_URL).'));
    const ctx: Ctx = {
      tenantId: t.id,
      tenantName: t.name,
      signIn: { tenantId: t.id, issuer: t.auth.issuer, client: oidc.console, scopes: oidc.scopes, resource: oidc.resource ?? null },
      origin,
      base: `/t/${t.id}`,
      secure: origin.startsWith('https:'),
    };
    const session = await seal.open('session', parseCookies(req.headers.cookie ?? '')[cookieName(ctx, 'session')], t.id);
    ctx.session = session && !signedOut.has(session.sid) ? session : undefined;
    res.locals.console = ctx;
    next();
  });

  const cookieOptions = (ctx: Ctx, maxAgeMs?: number): CookieOptions => ({ httpOnly: true, secure: ctx.secure, sameSite: 'lax', path: '/', ...(maxAgeMs !== undefined && { maxAge: maxAgeMs }) });
  const redirectUri = (ctx: Ctx) => `${ctx.origin}${ctx.base}/callback`;

  tenant.get('/', (_req, res) => res.redirect(303, `${ctxOf(res).base}/access`));

  tenant.get('/sign-in', async (req, res) => {
    const ctx = ctxOf(res);
    const returnTo = typeof req.query.return === 'string' && req.query.return.startsWith(`${ctx.base}/`) && !req.query.return.includes('//') ? req.query.return : `${ctx.base}/access`;
    let started;
    try {
      started = await providers.start(ctx.signIn, redirectUri(ctx), returnTo);
    } catch (err) {
      logger.warn({ tenant: ctx.tenantId, reason: ConsoleProviders.reason(err) }, 'console sign-in: the identity provider does not answer');
      return void res.status(503).set('Retry-After', '10').type('html').send(plainPage('Sign-in unavailable', 'Your identity provider does not answer; try again in a moment.', `${ctx.base}/sign-in`));
    }
    const { url, transaction } = started;
    res.cookie(cookieName(ctx, 'sign_in'), await seal.seal('sign-in', transaction, Math.floor(Date.now() / 1000) + SIGN_IN_SECONDS), cookieOptions(ctx, SIGN_IN_SECONDS * 1000));
    res.redirect(303, url.href);
  });

  tenant.get('/callback', async (req, res) => {
    const ctx = ctxOf(res);
    const transaction = await seal.open('sign-in', parseCookies(req.headers.cookie ?? '')[cookieName(ctx, 'sign_in')], ctx.tenantId);
    res.clearCookie(cookieName(ctx, 'sign_in'), cookieOptions(ctx));
    if (!transaction) return void res.status(400).type('html').send(plainPage('Sign-in not recognised', 'This sign-in was not started here, or took too long.', `${ctx.base}/sign-in`));
    let signedIn;
    try {
      signedIn = await providers.finish(ctx.signIn, new URL(req.originalUrl, ctx.origin), transaction);
    } catch (err) {
      logger.info({ tenant: ctx.tenantId, reason: ConsoleProviders.reason(err) }, 'console sign-in refused');
      const code = ConsoleProviders.oauthError(err);
      return void res.status(400).type('html').send(plainPage('Sign-in refused', `The identity provider's answer was not accepted${code ? ` (${code})` : ''}. Try again.`, `${ctx.base}/sign-in`));
    }
    const session: ConsoleSession = { tenantId: ctx.tenantId, ...signedIn, csrf: randomToken(), sid: randomToken() };
    const sealed = await seal.seal('session', session);
    if (sealed.length > COOKIE_BYTES) {
      logger.warn({ tenant: ctx.tenantId, bytes: sealed.length }, 'console session too large for a cookie');
      return void res.status(400).type('html').send(plainPage('Sign-in too large', "Your identity provider's access token is too large for the console's session cookie (often: very many groups in it). Ask your administrator to trim the token's claims."));
    }
    res.cookie(cookieName(ctx, 'session'), sealed, cookieOptions(ctx, (signedIn.expiresAt - Date.now() / 1000) * 1000));
    res.redirect(303, transaction.returnTo);
  });

  tenant.get('/signed-out', async (_req, res) => {
    const ctx = ctxOf(res);
    const provider = await providers.endSessionUrl(ctx.signIn);
    res.type('html').send(
      page(frameOf({ ...ctx, session: undefined }), 'Signed out', undefined, (
        <>
          <p>You are signed out of the console.</p>
          {provider && (
            <p>
              Your identity provider may still remember you: <a href={provider.href}>sign out there too</a> on a shared computer.
            </p>
          )}
          <p>
            <a href={`${ctx.base}/sign-in`}>Sign in again</a>
          </p>
        </>
      )),
    );
  });

  // Below: a session is needed; state-changing requests must carry its CSRF token, from this origin.
  tenant.use((req, res, next) => {
    const ctx = ctxOf(res);
    if (!ctx.session) {
      const signIn = `${ctx.base}/sign-in?${new URLSearchParams({ return: req.method === 'GET' && !req.get('hx-request') ? req.originalUrl : `${ctx.base}/access` })}`;
      if (req.get('hx-request')) return void res.status(401).set('HX-Redirect', signIn).end();
      if (req.method !== 'GET') return void res.status(401).type('html').send(plainPage('Signed out', 'Your session has ended; nothing was changed. Sign in and try again.', signIn));
      return res.redirect(303, signIn);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const fromHere = (req.get('origin') ?? ctx.origin) === ctx.origin && req.get('sec-fetch-site') !== 'cross-site';
      return void express.urlencoded({ extended: false, limit: FORM_LIMIT, parameterLimit: 200 })(req, res, (err?: unknown) => {
        if (err) return next(err);
        const given = String(req.get('x-csrf-token') ?? (req.body as Record<string, unknown> | undefined)?._csrf ?? '');
        if (!fromHere || !sameToken(given, ctx.session!.csrf)) {
          return void res.status(403).type('html').send(plainPage('Refused', 'This form did not come from your console session (CSRF check); nothing was changed.', `${ctx.base}/access`));
        }
        next();
      });
    }
    next();
  });

  // A grant or request id is a UUID, or no such page: nothing else goes into the API's paths.
  tenant.param('id', (req, res, next, id) => {
    if (isUuid(String(id))) return next();
    res.status(404).type('html').send(page(frameOf(ctxOf(res)), 'Not found', undefined, <p role="alert">No such grant or request.</p>));
  });

  tenant.post('/sign-out', async (_req, res) => {
    const ctx = ctxOf(res);
    res.clearCookie(cookieName(ctx, 'session'), cookieOptions(ctx));
    // A copy of the cookie is refused by this process until it would have expired anyway.
    signedOut.set(ctx.session!.sid, true, { ttl: Math.max(1, ctx.session!.expiresAt * 1000 - Date.now()) });
    res.redirect(303, `${ctx.base}/signed-out`);
  });

  // Request access.
  const filtersOf = (source: Record<string, unknown>, prefix = ''): RequestFilters => {
    const pick = (name: string) => (typeof source[`${prefix}${name}`] === 'string' && source[`${prefix}${name}`] !== '' ? (source[`${prefix}${name}`] as string) : undefined);
    return { q: pick('q'), environment: pick('environment'), role: pick('role'), cursor: pick('cursor') };
  };
  const entitlementsOf = (req: Request, ctx: Ctx, f: RequestFilters) => apiOf(req, ctx).get<EntitlementList>('/v1/access/entitlements', { q: f.q, environment: f.environment, role: f.role, cursor: f.cursor });

  tenant.get('/request', async (req, res) => {
    const ctx = ctxOf(res);
    const filters = filtersOf(req.query as Record<string, unknown>);
    try {
      res.type('html').send(requestPage(frameOf(ctx), { filters, list: await entitlementsOf(req, ctx, filters), form: EMPTY_FORM }));
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      res.status(err.status || 503).type('html').send(requestPage(frameOf(ctx), { filters, list: { entitlements: [], next_cursor: null }, form: EMPTY_FORM, problem: problemOf(err) }));
    }
  });

  tenant.post('/request', async (req, res) => {
    const ctx = ctxOf(res);
    const body = req.body as Record<string, string | string[] | undefined>;
    const filters = filtersOf(body, 'filter_');
    const form: RequestForm = {
      pairs: ([] as string[]).concat(body.pair ?? []),
      otherAccount: String(body.other_account ?? '').trim(),
      otherRole: String(body.other_role ?? '').trim(),
      reason: String(body.reason ?? ''),
      ticket: String(body.ticket ?? '').trim(),
      durationMinutes: String(body.duration_minutes ?? '').trim(),
      startsAt: String(body.starts_at ?? ''),
      breakGlass: body.break_glass === 'true',
    };
    const preview = body.action === 'preview';
    const minutes = form.durationMinutes === '' ? undefined : Number(form.durationMinutes);
    const asked = [...new Set([...form.pairs, ...(form.otherAccount || form.otherRole ? [`${form.otherAccount}|${form.otherRole}`] : [])])];
    const ensure = {
      entitlements: asked.map((p) => {
        const [account, role] = p.split('|');
        return { target: `AWS::Account::${account}`, role, ...(minutes !== undefined && { duration_seconds: Math.round(minutes * 60) }) };
      }),
      justification: { ...(form.reason.trim() && { reason: form.reason }), ...(form.ticket && { attachments: [form.ticket] }) },
      ...(form.breakGlass && { break_glass: true }),
      // datetime-local has no zone: the page says it is UTC.
      ...(form.startsAt && { starts_at: `${form.startsAt.length === 16 ? `${form.startsAt}:00` : form.startsAt}Z` }),
      ...(preview && { dry_run: true }),
    };
    const again = async (view: { preview?: Grant[]; problem?: ReturnType<typeof problemOf> }, status = 200) => {
      let list: EntitlementList = { entitlements: [], next_cursor: null };
      try {
        list = await entitlementsOf(req, ctx, filters);
      } catch {
        // the call's own answer is what the page is for; an empty catalogue says the rest
      }
      res.status(status).type('html').send(requestPage(frameOf(ctx), { filters, list, form, ...view }));
    };
    if (asked.length === 0) {
      return again({ problem: { status: 400, code: 'invalid_request', message: 'Choose at least one account and role.' } }, 400);
    }
    try {
      const answer = await apiOf(req, ctx).post<{ grants: Grant[] }>('/v1/access/ensure', ensure);
      if (preview) return again({ preview: answer.grants });
      const activated = answer.grants.filter((g) => g.change === 'activated').length;
      const requested = answer.grants.filter((g) => g.change === 'requested').length;
      res.redirect(303, `${ctx.base}/access?${new URLSearchParams({ sent: [activated, requested, answer.grants.length - activated - requested].join('.') })}`);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      return again({ problem: problemOf(err) }, err.status || 503);
    }
  });

  // My access.
  /** The words for what a redirect after a change reports (`done`, or `sent` counts). */
  const noticeOf = (req: Request): string | undefined => {
    const done = req.query.done;
    if (typeof done === 'string' && Object.hasOwn(DONE, done)) return DONE[done as keyof typeof DONE];
    const sent = typeof req.query.sent === 'string' ? /^(\d{1,2})\.(\d{1,2})\.(\d{1,2})$/.exec(req.query.sent) : null;
    if (!sent) return undefined;
    const [activated, requested, unchanged] = sent.slice(1).map(Number);
    return `Sent: ${[activated && `${activated} active`, requested && `${requested} sent for review`, unchanged && `${unchanged} unchanged`].filter(Boolean).join(', ')}.`;
  };
  /** What the person holds or waits for, by status: however long their history, none is missed. */
  const currentGrants = async (req: Request, ctx: Ctx): Promise<Grant[]> => {
    const api = apiOf(req, ctx);
    const pages = await Promise.all(CURRENT_STATUSES.map((status) => api.get<GrantList>('/v1/access/grants', { status, limit: '100' })));
    return pages.flatMap((p) => p.grants);
  };
  tenant.get('/access', async (req, res) => {
    const ctx = ctxOf(res);
    const cursor = typeof req.query.cursor === 'string' ? req.query.cursor : undefined;
    const [current, list] = await Promise.all([currentGrants(req, ctx), apiOf(req, ctx).get<GrantList>('/v1/access/grants', { limit: '50', cursor })]);
    res.type('html').send(accessPage(frameOf(ctx), { current, list, cursor, notice: noticeOf(req) }));
  });
  tenant.get('/access/current', async (req, res) => {
    const ctx = ctxOf(res);
    res.type('html').send(renderToString(CurrentGrants({ frame: frameOf(ctx), grants: await currentGrants(req, ctx) })));
  });
  const grantOf = (req: Request, ctx: Ctx): Promise<Grant> => apiOf(req, ctx).get<Grant>(`/v1/access/grants/${encodeURIComponent(String(req.params.id))}`);
  tenant.get('/access/:id', async (req, res) => {
    const ctx = ctxOf(res);
    res.type('html').send(grantPage(frameOf(ctx), { grant: await grantOf(req, ctx), notice: noticeOf(req) }));
  });
  tenant.post('/access/:id/extend', async (req, res) => {
    const ctx = ctxOf(res);
    const grant = await grantOf(req, ctx);
    const body = req.body as Record<string, string | undefined>;
    const minutes = Number(body.duration_minutes);
    try {
      const ticket = body.ticket?.trim();
      const answer = await apiOf(req, ctx).post<{ grants: Grant[] }>('/v1/access/ensure', {
        entitlements: [{ target: grant.target, role: grant.role, duration_seconds: Math.round(minutes * 60) }],
        justification: { ...(body.reason?.trim() && { reason: body.reason }), ...(ticket && { attachments: [ticket] }) },
      });
      const change = answer.grants[0]?.change;
      const done = change === 'extended' ? 'extended' : change === 'requested' ? 'extension_requested' : 'unchanged';
      res.redirect(303, `${ctx.base}/access/${grant.id}?${new URLSearchParams({ done })}`);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      res.status(err.status || 503).type('html').send(grantPage(frameOf(ctx), { grant, problem: problemOf(err) }));
    }
  });
  tenant.post('/access/:id/revoke', async (req, res) => {
    const ctx = ctxOf(res);
    const reason = (req.body as Record<string, string | undefined>).reason?.trim();
    try {
      const grant = await apiOf(req, ctx).post<Grant>(`/v1/access/grants/${encodeURIComponent(String(req.params.id))}/revoke`, reason ? { reason } : {});
      res.redirect(303, `${ctx.base}/access/${grant.id}?${new URLSearchParams({ done: grant.status === 'revoked' ? 'ended' : 'removing' })}`);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      res.status(err.status || 503).type('html').send(grantPage(frameOf(ctx), { grant: await grantOf(req, ctx), problem: problemOf(err) }));
    }
  });

  // Review.
  tenant.get('/review', async (req, res) => {
    const ctx = ctxOf(res);
    const status = typeof req.query.status === 'string' && ['pending', 'approved', 'denied', 'expired', 'withdrawn'].includes(req.query.status) ? req.query.status : 'pending';
    const cursor = typeof req.query.cursor === 'string' ? req.query.cursor : undefined;
    const mine = req.query.mine === 'true';
    const list = await apiOf(req, ctx).get<RequestList>('/v1/access/requests', { status, cursor, limit: '50', mine: mine ? 'true' : undefined });
    res.type('html').send(reviewPage(frameOf(ctx), { list, status, mine, cursor, notice: noticeOf(req) }));
  });
  const accessRequestOf = (req: Request, ctx: Ctx) => apiOf(req, ctx).get<AccessRequest>(`/v1/access/requests/${encodeURIComponent(String(req.params.id))}`);
  tenant.get('/review/:id', async (req, res) => {
    const ctx = ctxOf(res);
    res.type('html').send(accessRequestPage(frameOf(ctx), { request: await accessRequestOf(req, ctx), notice: noticeOf(req) }));
  });
  tenant.post('/review/:id', async (req, res) => {
    const ctx = ctxOf(res);
    const body = req.body as Record<string, string | undefined>;
    const decision = body.decision;
    if (decision !== 'approve' && decision !== 'deny') return void res.status(400).type('html').send(plainPage('Refused', 'Choose Approve or Deny; nothing was changed.', `${ctx.base}/review`));
    const comment = body.comment?.trim();
    const partial = Boolean(req.get('hx-request'));
    try {
      const request = await apiOf(req, ctx).post<AccessRequest>(`/v1/access/requests/${encodeURIComponent(String(req.params.id))}/review`, { decision, ...(comment && { comment }) });
      if (partial) return void res.type('html').send(renderToString(RequestCard({ frame: frameOf(ctx), request })));
      res.redirect(303, `${ctx.base}/review/${request.id}?${new URLSearchParams({ done: decision === 'approve' ? 'approved' : 'denied' })}`);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      const request = await accessRequestOf(req, ctx);
      if (partial) return void res.type('html').send(renderToString(RequestCard({ frame: frameOf(ctx), request, problem: problemOf(err) })));
      res.status(err.status || 503).type('html').send(accessRequestPage(frameOf(ctx), { request, problem: problemOf(err) }));
    }
  });

  // Audit.
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const reportQueryOf = (q: Record<string, unknown>): ReportQuery => ({ target: str(q.target), role: str(q.role), from: str(q.from), to: str(q.to) });
  tenant.get('/audit', async (req, res) => {
    const ctx = ctxOf(res);
    const q = req.query as Record<string, unknown>;
    const view: Parameters<typeof auditPage>[1] = {};
    try {
      if (q.view === 'report') {
        const query = reportQueryOf(q);
        view.report = { query };
        view.report.result = await apiOf(req, ctx).get<Report>('/v1/access/report', { ...query });
      } else if (q.view === 'events') {
        const query: EventQuery = { principal: str(q.principal), target: str(q.target), role: str(q.role), from: str(q.from), to: str(q.to), cursor: str(q.cursor) };
        view.events = { query };
        view.events.result = await apiOf(req, ctx).get<AuditPage>('/v1/access/audit', { ...query, limit: '100' });
      }
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      if (view.report) view.report.problem = problemOf(err);
      if (view.events) view.events.problem = problemOf(err);
      res.status(err.status || 503);
    }
    res.type('html').send(auditPage(frameOf(ctx), view));
  });
  tenant.get('/audit/report.csv', async (req, res) => {
    const ctx = ctxOf(res);
    const query = reportQueryOf(req.query as Record<string, unknown>);
    const report = await apiOf(req, ctx).get<Report>('/v1/access/report', { ...query });
    const rows = report.intervals.map((i) => ({ ...i, approved_by: i.approved_by.join(' '), to: i.to ?? '' }));
    const columns = ['principal_id', 'principal_email', 'target', 'role', 'from', 'to', 'ended', 'approved_by', 'reason', 'grant_id', 'access_request_id', 'preexisted'];
    res
      .type('text/csv')
      .attachment(`access-report-${query.target ?? 'account'}-${query.from ?? ''}-${query.to ?? ''}.csv`.replace(/[^\w.-]/g, '_'))
      // A reason of `=HYPERLINK(...)` stays text in a spreadsheet (OWASP's CSV injection).
      .send(csv(rows, { header: true, columns, escape_formulas: true, cast: { boolean: (b) => String(b) } }));
  });

  // The API refused the person's token (it expired or was revoked): sign in again. Anything else
  // the API refused, or a failure here, is a page in words, never a stack.
  tenant.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const ctx = ctxOf(res) as Ctx | undefined;
    if (!ctx) {
      req.log.error({ err }, 'console page failed');
      return void res.status(500).type('html').send(plainPage('Something went wrong', 'The page could not be drawn; nothing was lost. Try again.'));
    }
    if (err instanceof ApiError && err.status === 401) {
      res.clearCookie(cookieName(ctx, 'session'), cookieOptions(ctx));
      const signIn = `${ctx.base}/sign-in?${new URLSearchParams({ return: req.method === 'GET' ? req.originalUrl : `${ctx.base}/access` })}`;
      if (req.get('hx-request')) return void res.status(401).set('HX-Redirect', signIn).end();
      return res.redirect(303, signIn);
    }
    if (err instanceof ApiError) {
      return void res.status(err.status || 503).type('html').send(page(frameOf(ctx), err.status === 404 ? 'Not found' : 'Refused', undefined, <p role="alert">{err.body.message}</p>));
    }
    const bodyError = err as { type?: string };
    if (bodyError?.type === 'entity.too.large') return void res.status(413).type('html').send(plainPage('Too large', 'The form was larger than the console takes; nothing was changed.', `${ctx.base}/access`));
    req.log.error({ err }, 'console page failed');
    res.status(500).type('html').send(plainPage('Something went wrong', 'The page could not be drawn; nothing was lost. Try again.', `${ctx.base}/access`));
  });

  return router;
}

/**
 * Without CONSOLE_URL, the console is a developer's on their own machine: a request from loopback to
 * loopback, for a loopback name; its origin is then the address used (`npm run dev` prints it).
 */
function loopbackOrigin(req: Request): string | undefined {
  const host = req.headers.host ?? '';
  const fromHere = isLoopback(req.socket.remoteAddress ?? '') && isLoopback(req.socket.localAddress ?? '');
  return fromHere && LOOPBACK_HOST.test(host) ? `http://${host}` : undefined;
}
const LOOPBACK_HOST = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])(:\d{1,5})?$/;

/** An id as the API's routes take one (the same schema). */
const isUuid = (value: string): boolean => uuidSchema.safeParse(value).success;

/** A page outside a session: a message and where to go on. */
function plainPage(title: string, message: string, next?: string): string {
  return page({ base: '', tenantName: 'console' }, title, undefined, (
    <>
      <p>{message}</p>
      {next && (
        <p>
          <a href={next}>{next.endsWith('/sign-in') ? 'Sign in' : 'Go on'}</a>
        </p>
      )}
    </>
  ));
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
