#!/usr/bin/env node
// `access`: the access API from a terminal or a script (docs/api.md, "CLI"). It talks HTTP only.
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { decodeJwt } from 'jose';
import type { AccessInterval, AuditEvent } from '../domain/audit';
import { ENTITLEMENT_TARGET_PATTERN } from '../domain/grant';
import { type AccessRequest, ApiError, callApi, type Connection, EXIT, type Grant } from './api';
import { DEFAULT_PROFILE, PROFILE_NAME, readProfile, withProfilesLock, writeProfile } from './profiles';
import { accessTokenOf, requireSafeUrl, revokeAtProvider, signInOf, signInWithBrowser, signInWithDevice } from './sign-in';

interface CommonOptions {
  url?: string;
  token?: string;
  tenant?: string;
  profile?: string;
  json?: boolean;
}

const DEFAULT_URL = 'http://localhost:8080';

const STATUSES = ['active', 'pending', 'provisioning', 'expired', 'revoked'];
const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'];

/** `1h`, `30m`, `1h30m`, `90s`, `2d` or plain seconds. */
export function parseDuration(value: string): number {
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(value.trim());
  const [d, h, m, s] = (match?.slice(1) ?? []).map((n) => Number(n ?? 0));
  const seconds = d * 86400 + h * 3600 + m * 60 + s;
  if (!match || !Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new InvalidArgumentError('expected a duration such as 1h, 30m, 1h30m, 90s or a number of seconds');
  }
  return seconds;
}

/**
 * When access is to begin: `HH:MM` is the next such time on this machine's clock (today, or
 * tomorrow once it has passed); anything else must be an RFC 3339 time with its offset.
 */
export function parseStart(value: string, now = new Date()): string {
  const clock = /^(\d{1,2}):(\d{2})$/.exec(value.trim());
  if (clock && Number(clock[1]) < 24 && Number(clock[2]) < 60) {
    const at = new Date(now);
    at.setHours(Number(clock[1]), Number(clock[2]), 0, 0);
    if (at.getTime() <= now.getTime()) at.setDate(at.getDate() + 1);
    return at.toISOString();
  }
  const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;
  if (!rfc3339.test(value.trim()) || Number.isNaN(Date.parse(value.trim()))) {
    throw new InvalidArgumentError('expected a time of day such as 02:00, or an RFC 3339 time such as 2026-12-05T02:00:00Z');
  }
  return new Date(value.trim()).toISOString();
}

/** A whole number of at least 1 (`--limit`, `--poll-interval`): `abc` or `0` is refused, not sent. */
export function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

export function parseProfileName(value: string): string {
  if (!PROFILE_NAME.test(value)) throw new InvalidArgumentError('expected letters, digits, _, . or -, starting with a letter or digit');
  return value;
}

/** An account id or `AWS::Account::{id}`, or a group: `AWS::IdentityStore::Group::{name or id}`. */
export function parseTarget(value: string): string {
  const target = /^\d{12}$/.test(value) ? `AWS::Account::${value}` : value;
  if (!ENTITLEMENT_TARGET_PATTERN.test(target)) throw new InvalidArgumentError('expected a 12-digit account id, AWS::Account::{id} or AWS::IdentityStore::Group::{group name or id}');
  return target;
}

function humanDuration(seconds: number): string {
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
  }
  return parts.join('') || '0s';
}

function until(expiresAt: string | null): string {
  if (!expiresAt) return '';
  const left = Math.max(0, Math.round((Date.parse(expiresAt) - Date.now()) / 1000));
  return `until ${expiresAt} (${humanDuration(left)} left)`;
}

/** The one line that says where a grant stands; `change` gives the verb. */
function describe(grant: Grant, dryRun = false): string {
  const name = `${grant.role} on ${grant.target}`;
  if (dryRun) {
    const verb = { activated: 'WILL ACTIVATE', requested: 'WILL REQUEST', extended: 'WILL EXTEND', none: 'NO CHANGE' }[grant.change];
    const detail = grant.change === 'extended' ? until(grant.expires_at) : `for ${humanDuration(grant.duration_seconds)}`;
    return `${verb.padEnd(14)}${name} ${grant.change === 'none' ? `(${grant.status})` : detail}`;
  }
  const verb =
    grant.change === 'none' ? grant.status.toUpperCase() : { activated: 'ACTIVATED', requested: 'REQUESTED', extended: 'EXTENDED' }[grant.change];
  let detail = '';
  if (grant.status === 'active') detail = until(grant.expires_at);
  const scheduled = grant.status === 'pending' && grant.starts_at ? `starts at ${grant.starts_at}` : '';
  if (grant.status === 'active' && grant.change === 'requested') detail += `; the extension waits for review (request ${grant.access_request_id})`;
  else if (grant.status === 'pending' && grant.approved) detail = `${scheduled}, for ${humanDuration(grant.duration_seconds)}`;
  else if (grant.status === 'pending') detail = [scheduled, `waiting for review (request ${grant.access_request_id})`].filter(Boolean).join(', ');
  else if (grant.status === 'provisioning') detail = `provisioning for ${humanDuration(grant.duration_seconds)}`;
  return `${verb.padEnd(14)}${name} ${detail}`.trimEnd();
}

/** Why a grant is where it is: review needed by whom, warnings, errors. */
function notes(grant: Grant): string[] {
  const lines: string[] = [];
  for (const d of grant.diagnostics) {
    if (d.code === 'expires') continue; // already on the main line
    if (d.level === 'info' && !['scheduled', 'started_now', 'session_revocation_pending', 'sessions_revoked', 'review_required', 'approved', 'denied', 'revoked', 'request_expired', 'extension_requested', 'extension_approved', 'extension_denied', 'break_glass_acknowledged'].includes(d.code)) continue;
    lines.push(`  ${d.level === 'info' ? '' : `${d.level}: `}${d.message}`);
    for (const notice of Array.isArray(d.notices) ? (d.notices as string[]) : []) lines.push(`    ${notice}`);
  }
  return lines;
}

/**
 * Text from the API (grant fields, diagnostics with others' reasons and comments, error messages)
 * as a terminal should show it: no escape sequences (colours, cursor moves, window titles), no
 * other C0 or C1 control characters and no bidirectional overrides, so that it cannot rewrite
 * what is on the screen; a tab or line break is a space, so it cannot pass for a line of our own.
 */
export function terminalText(text: string): string {
  return text
    .replace(/(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]/g, '') // CSI: colours, cursor moves, erasing
    .replace(/(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x9c\x1b]*(?:\x07|\x9c|\x1b\\)?/g, '') // OSC, DCS...: titles, links
    .replace(/\x1b[\s\S]?/g, '')
    .replace(/[\t\n\v\f\r\u2028\u2029]/g, ' ')
    .replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, '');
}

function print(lines: string[]): void {
  if (lines.length > 0) process.stdout.write(lines.map(terminalText).join('\n') + '\n');
}

function printError(lines: string[]): void {
  process.stderr.write(lines.map(terminalText).join('\n') + '\n');
}

/** The API's JSON as it is; JSON escapes C0 controls itself, and here C1 and DEL too. */
function printJson(value: unknown): void {
  const json = JSON.stringify(value, null, 2).replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  process.stdout.write(json + '\n');
}

/**
 * Where to call and as whom: flags, then the environment, then the profile `access login` saved
 * (its token refreshed when it is about to end).
 */
async function connectionOf(opts: CommonOptions): Promise<Connection> {
  const name = opts.profile ?? DEFAULT_PROFILE;
  const profile = readProfile(name);
  if (opts.profile && !profile) throw new ApiError(400, { code: 'invalid_request', message: `No profile "${name}": sign in with access login --profile ${name} --url ... --tenant ...` });
  const url = opts.url ?? profile?.url ?? DEFAULT_URL;
  requireSafeUrl(url);
  if (opts.token) return { url, tenant: opts.tenant ?? profile?.tenant, token: opts.token };
  // The profile's token goes to the profile's API only, whatever --url or ACCESS_URL say.
  if (profile?.tokens && new URL(url).origin !== new URL(profile.url).origin) {
    throw new ApiError(401, {
      code: 'unauthenticated',
      message: `The ${name} profile is signed in to ${profile.url}, not ${url}: sign in there with access login --url ${url} --tenant <id> --profile <another name>, or pass --token.`,
    });
  }
  return { url, tenant: opts.tenant ?? profile?.tenant, token: profile && (await accessTokenOf(name, profile)) };
}

/** The options every command takes; flags win over the environment. */
function common(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', `API base URL (default: the profile's, else ${DEFAULT_URL})`).env('ACCESS_URL'))
    .addOption(new Option('--token <jwt>', "bearer token (default: the profile's, from access login)").env('ACCESS_TOKEN'))
    .addOption(new Option('--tenant <uuid>', "tenant id, X-Tenant-ID (default: the profile's)").env('ACCESS_TENANT_ID'))
    .addOption(new Option('--profile <name>', `the profile access login saved (default: ${DEFAULT_PROFILE})`).env('ACCESS_PROFILE').argParser(parseProfileName))
    .option('--json', "print the API's JSON instead of text");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls each grant until it is active (true) or closed, or the deadline passes (false). Progress goes to stderr. */
async function waitForActive(conn: Connection, grants: Grant[], timeoutSeconds: number, pollMs: number, quiet: boolean): Promise<Grant[]> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const latest = new Map(grants.map((g) => [g.id, g]));
  const said = new Map<string, string>();
  const progress = (g: Grant) => {
    const line = g.status === 'pending' ? `waiting for review of ${g.role} on ${g.target}...` : g.status === 'provisioning' ? `provisioning ${g.role} on ${g.target}...` : '';
    if (!quiet && line && said.get(g.id) !== line) printError([line]);
    said.set(g.id, line);
  };
  grants.forEach(progress);
  for (;;) {
    const open = [...latest.values()].filter((g) => g.status === 'pending' || g.status === 'provisioning');
    if (open.length === 0 || Date.now() >= deadline) return [...latest.values()];
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())));
    for (const g of open) {
      let now: Grant;
      try {
        now = await callApi<Grant>(conn, 'GET', `/v1/access/grants/${g.id}`);
      } catch (err) {
        // Told when to ask again (429, 503): the wait goes on from then, within --timeout.
        if (!(err instanceof ApiError) || err.retryAfterSeconds === undefined || (err.status !== 429 && err.status !== 503)) throw err;
        if (!quiet) printError([`${err.body.code}: asking again in ${err.retryAfterSeconds} s`]);
        await sleep(Math.min(err.retryAfterSeconds * 1000, Math.max(0, deadline - Date.now())));
        break;
      }
      latest.set(g.id, { ...now, change: g.change });
      progress(now);
    }
  }
}

/** What one ensure may hold (the API's MAX_ENTITLEMENTS). */
const MAX_ENTITLEMENTS = 500;

interface Selectors {
  ou?: string;
  tag?: string;
  accountName?: string;
}

/**
 * The accounts a selector names that the caller may request `role` on: the catalogue's pages for
 * that role, filtered by the API (ou, tag, name), read to the end. Refused when none match, or more
 * than one ensure may hold.
 */
async function selectedAccounts(conn: Connection, role: string, { ou, tag, accountName }: Selectors): Promise<Entitlement[]> {
  const found: Entitlement[] = [];
  let cursor: string | undefined;
  do {
    const query = new URLSearchParams({ role, limit: '100' });
    for (const [key, value] of Object.entries({ ou, tag, name: accountName, cursor })) if (value) query.set(key, value);
    const page = await callApi<{ entitlements: Entitlement[]; next_cursor: string | null }>(conn, 'GET', `/v1/access/entitlements?${query}`);
    found.push(...page.entitlements);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  const named = [ou && `--ou ${ou}`, tag && `--tag ${tag}`, accountName && `--account-name ${accountName}`].filter(Boolean).join(' ');
  if (found.length === 0) throw new ApiError(400, { code: 'invalid_request', message: `No account you may request ${role} on matches ${named}; nothing was sent.` });
  if (found.length > MAX_ENTITLEMENTS) {
    throw new ApiError(400, { code: 'invalid_request', message: `${found.length} accounts match ${named}: one ensure holds at most ${MAX_ENTITLEMENTS}; narrow the selector. Nothing was sent.` });
  }
  return found;
}

/** Asks on the terminal; false unless the answer is y or yes. */
async function confirmed(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function ensureCommand(opts: CommonOptions & Selectors & {
  target?: string;
  yes?: boolean;
  role: string;
  duration?: number;
  reason?: string;
  attach: string[];
  dryRun?: boolean;
  breakGlass?: boolean;
  start?: string;
  wait?: boolean;
  timeout: number;
  pollInterval: number;
}): Promise<number> {
  if (opts.breakGlass && !opts.reason?.trim()) throw new ApiError(400, { code: 'invalid_request', message: '--break-glass needs --reason: reviewers are told why.' });
  const selecting = Boolean(opts.ou || opts.tag || opts.accountName);
  if (selecting === Boolean(opts.target)) {
    throw new ApiError(400, { code: 'invalid_request', message: 'Name the accounts with --target, or select them with --ou, --tag or --account-name (not both).' });
  }
  const conn = await connectionOf(opts);
  let targets = [opts.target!];
  if (selecting) {
    const selected = await selectedAccounts(conn, opts.role, opts);
    targets = selected.map((e) => e.target);
    // Shown before anything is sent, on stderr (stdout stays the answer, --json too).
    const rows = selected.map((e) => [e.account.id, e.account.name ?? '-', e.account.environment, e.action === 'activate' ? 'ACTIVATE' : 'REQUEST'].map(terminalText));
    printError([`${selected.length} account${selected.length === 1 ? '' : 's'} for ${opts.role}:`, ...table(['ACCOUNT', 'NAME', 'ENVIRONMENT', 'ENSURE WILL'], rows)]);
    // A dry run changes nothing: no question. Otherwise a person says yes, or --yes does.
    if (!opts.dryRun && !opts.yes) {
      if (!process.stdin.isTTY) {
        throw new ApiError(400, { code: 'invalid_request', message: `Not sent: pass --yes to ensure ${opts.role} on these ${selected.length} accounts without being asked (stdin is not a terminal).` });
      }
      if (!(await confirmed(`Ensure ${opts.role} on these ${selected.length} accounts, as one access request? [y/N] `))) {
        printError(['Not sent.']);
        return EXIT.usage;
      }
    }
  }
  const body = {
    entitlements: targets.map((target) => ({ target, role: opts.role, ...(opts.duration ? { duration_seconds: opts.duration } : {}) })),
    justification: { ...(opts.reason ? { reason: opts.reason } : {}), ...(opts.attach.length ? { attachments: opts.attach } : {}) },
    dry_run: Boolean(opts.dryRun),
    ...(opts.breakGlass ? { break_glass: true } : {}),
    ...(opts.start ? { starts_at: opts.start } : {}),
  };
  let { grants } = await callApi<{ grants: Grant[] }>(conn, 'POST', '/v1/access/ensure', body);
  if (!opts.json) print(grants.flatMap((g) => [describe(g, opts.dryRun), ...notes(g)]));
  let code: number = EXIT.ok;
  if (opts.wait && !opts.dryRun) {
    const waited = await waitForActive(conn, grants, opts.timeout, opts.pollInterval, Boolean(opts.json));
    const settled = waited.filter((g, i) => g.status !== grants[i].status);
    grants = waited;
    if (!opts.json) print(settled.flatMap((g) => [describe({ ...g, change: 'none' }), ...notes(g)]));
    if (grants.some((g) => g.status !== 'active')) {
      code = EXIT.notActive;
      const stuck = grants.filter((g) => g.status === 'pending' || g.status === 'provisioning');
      if (!opts.json && stuck.length > 0) printError([`still not active after ${humanDuration(opts.timeout)}`]);
    }
  }
  if (opts.json) printJson({ grants });
  return code;
}

async function grantsCommand(id: string | undefined, opts: CommonOptions & { status?: string; target?: string; role?: string; limit?: number; cursor?: string }): Promise<number> {
  const conn = await connectionOf(opts);
  if (id) {
    const grant = await callApi<Grant>(conn, 'GET', `/v1/access/grants/${encodeURIComponent(id)}`);
    if (opts.json) printJson(grant);
    else print([describe({ ...grant, change: 'none' }), `  id ${grant.id}, principal ${grant.principal_id}`, ...notes(grant)]);
    return EXIT.ok;
  }
  const query = new URLSearchParams();
  for (const key of ['status', 'target', 'role', 'cursor'] as const) if (opts[key]) query.set(key, opts[key]);
  if (opts.limit) query.set('limit', String(opts.limit));
  // One page, as for requests: a principal of a year's use has thousands of closed grants.
  const page = await callApi<{ grants: Grant[]; next_cursor: string | null }>(conn, 'GET', `/v1/access/grants${query.size ? `?${query}` : ''}`);
  const { grants } = page;
  if (opts.json) {
    printJson(page);
  } else if (grants.length === 0) {
    print(['no grants']);
  } else {
    // A scheduled grant shows when it starts where an active one shows when it ends.
    const when = (g: Grant) => g.expires_at ?? (g.status === 'pending' && g.starts_at ? `starts ${g.starts_at}` : '-');
    const rows = grants.map((g) => [g.status.toUpperCase(), g.role, g.target, when(g), g.id].map(terminalText));
    const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['STATUS', 'ROLE', 'TARGET', 'EXPIRES'][i].length));
    const line = (r: string[]) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c)).join('  ');
    print([line(['STATUS', 'ROLE', 'TARGET', 'EXPIRES', 'ID']), ...rows.map(line), ...(page.next_cursor ? [`(more: --cursor ${page.next_cursor})`] : [])]);
  }
  return EXIT.ok;
}

/** What a review did, one line per grant of the request, then the approvals so far. */
function describeRequest(request: AccessRequest): string[] {
  const verb = request.status.toUpperCase();
  const approvals = `${request.approvals.length} of ${request.approvals_required} approvals${request.approvals.length ? ` (${request.approvals.map((a) => a.reviewer_id).join(', ')})` : ''}`;
  return [
    ...request.grants.map((g) => `${verb.padEnd(14)}${g.role} on ${g.target} for ${request.principal_id}: ${g.status}`),
    `  ${approvals}${request.denial ? `; denied by ${request.denial.reviewer_id}${request.denial.comment ? `: ${request.denial.comment}` : ''}` : ''}`,
  ];
}

async function reviewCommand(requestId: string, decision: 'approve' | 'deny', opts: CommonOptions & { comment?: string }): Promise<number> {
  const request = await callApi<AccessRequest>(await connectionOf(opts), 'POST', `/v1/access/requests/${encodeURIComponent(requestId)}/review`, {
    decision,
    ...(opts.comment ? { comment: opts.comment } : {}),
  });
  if (opts.json) printJson(request);
  else print(describeRequest(request));
  return EXIT.ok;
}

async function requestsCommand(opts: CommonOptions & { status?: string; mine?: boolean; limit?: number; cursor?: string }): Promise<number> {
  const query = new URLSearchParams();
  if (opts.status) query.set('status', opts.status);
  if (opts.mine) query.set('mine', 'true');
  if (opts.limit) query.set('limit', String(opts.limit));
  if (opts.cursor) query.set('cursor', opts.cursor);
  const page = await callApi<{ requests: AccessRequest[]; next_cursor: string | null }>(
    await connectionOf(opts),
    'GET',
    `/v1/access/requests${query.size ? `?${query}` : ''}`,
  );
  if (opts.json) {
    printJson(page);
    return EXIT.ok;
  }
  if (page.requests.length === 0) {
    print(['no requests']);
    return EXIT.ok;
  }
  const headings = ['STATUS', 'REQUESTER', 'APPROVALS', 'CREATED', 'GRANTS', 'ID'];
  const rows = page.requests.map((r) =>
    [
      r.status.toUpperCase(),
      r.principal_id,
      `${r.approvals.length}/${r.approvals_required}`,
      r.created_at,
      r.grants.map((g) => `${g.role} on ${g.target.replace('AWS::Account::', '')}`).join(', '),
      r.id,
    ].map(terminalText),
  );
  const widths = headings.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join('  ');
  print([line(headings), ...rows.map(line), ...(page.next_cursor ? [`(more: --cursor ${page.next_cursor})`] : [])]);
  return EXIT.ok;
}

async function requestCommand(id: string, opts: CommonOptions): Promise<number> {
  const r = await callApi<AccessRequest>(await connectionOf(opts), 'GET', `/v1/access/requests/${encodeURIComponent(id)}`);
  if (opts.json) {
    printJson(r);
    return EXIT.ok;
  }
  print([
    `${r.status.toUpperCase().padEnd(14)}request ${r.id} by ${r.principal_id}${r.principal_email ? ` (${r.principal_email})` : ''}`,
    `  created ${r.created_at}${r.status === 'pending' && r.expires_at ? `, lapses at ${r.expires_at} unless reviewed` : ''}`,
    ...(r.justification.reason ? [`  reason: ${r.justification.reason}`] : []),
    ...((r.justification.attachments ?? []).length ? [`  attachments: ${r.justification.attachments!.join(', ')}`] : []),
    ...describeRequest(r).slice(-1),
    ...r.grants.flatMap((g) => [`  ${describe({ ...g, change: 'none' })}`, ...notes(g).map((n) => `  ${n}`)]),
  ]);
  return EXIT.ok;
}

async function revokeCommand(grantId: string, opts: CommonOptions & { reason?: string }): Promise<number> {
  const grant = await callApi<Grant>(await connectionOf(opts), 'POST', `/v1/access/grants/${encodeURIComponent(grantId)}/revoke`, {
    ...(opts.reason ? { reason: opts.reason } : {}),
  });
  const gone = grant.status === 'revoked' || grant.status === 'expired';
  if (opts.json) printJson(grant);
  else print([`${(gone ? 'REVOKED' : 'REVOKING').padEnd(14)}${grant.role} on ${grant.target} for ${grant.principal_id}${gone ? '' : ' (the assignment is still being removed)'}`]);
  return EXIT.ok;
}

/** One pair the caller may ask for (GET /v1/access/entitlements). */
interface Entitlement {
  target: string;
  role: string;
  account: { id: string; name: string | null; environment: string; tags: Record<string, string>; ou_path: string[] };
  action: 'activate' | 'request';
  approvals_required: number;
  default_duration_seconds: number;
  max_duration_seconds: number;
  requires: string[];
}

type EntitlementFilters = Selectors & { account?: string; role?: string; environment?: string; search?: string; limit?: number; cursor?: string };

function entitlementsPath({ account, role, environment, search, ou, tag, accountName, limit, cursor }: EntitlementFilters): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries({ account, role, environment, q: search, ou, tag, name: accountName, cursor })) if (value) query.set(key, value);
  if (limit) query.set('limit', String(limit));
  return `/v1/access/entitlements${query.size ? `?${query}` : ''}`;
}

async function entitlementsCommand(opts: CommonOptions & EntitlementFilters): Promise<number> {
  const page = await callApi<{ entitlements: Entitlement[]; next_cursor: string | null }>(await connectionOf(opts), 'GET', entitlementsPath(opts));
  if (opts.json) {
    printJson(page);
  } else if (page.entitlements.length === 0) {
    print(['nothing you may ask for (with these filters)']);
  } else {
    const rows = page.entitlements.map((e) => [
      e.account.id,
      e.account.name ?? '-',
      e.account.environment,
      e.role,
      e.action === 'activate' ? 'ACTIVATE' : e.approvals_required > 1 ? `REQUEST (${e.approvals_required} approvals)` : 'REQUEST',
      `${humanDuration(e.default_duration_seconds)} (max ${humanDuration(e.max_duration_seconds)})`,
      e.requires.map((what) => (what === 'ticket_attachment' ? '--attach' : '--reason')).join(' ') || '-',
    ]);
    print([...table(['ACCOUNT', 'NAME', 'ENVIRONMENT', 'ROLE', 'ENSURE WILL', 'DURATION', 'NEEDS'], rows), ...(page.next_cursor ? [`(more: --cursor ${page.next_cursor})`] : [])]);
  }
  return EXIT.ok;
}

/** Pages read for a completion at most: a completion answers at once or not at all. */
const COMPLETION_PAGES = 5;

/**
 * `access __complete accounts|roles [word]`: one candidate a line, for the shell completion
 * scripts (`access completion`). Accounts and roles the caller may ask for, narrowed by the word
 * typed so far (and roles by `--target`); nothing, and exit 0, when the API cannot be asked.
 */
async function completeCommand(what: 'accounts' | 'roles', word: string | undefined, opts: CommonOptions & { target?: string; role?: string }): Promise<number> {
  const found = new Set<string>();
  const filters: EntitlementFilters = {
    limit: 100,
    ...(word ? { search: word.replace(/^AWS::Account::/, '') } : {}),
    ...(what === 'roles' && opts.target ? { account: opts.target } : {}),
    ...(what === 'accounts' && opts.role ? { role: opts.role } : {}),
  };
  try {
    const conn = await connectionOf(opts);
    for (let page = 0; page < COMPLETION_PAGES; page++) {
      const answer: { entitlements: Entitlement[]; next_cursor: string | null } = await callApi(conn, 'GET', entitlementsPath(filters));
      for (const e of answer.entitlements) found.add(what === 'accounts' ? e.account.id : e.role);
      if (!answer.next_cursor) break;
      filters.cursor = answer.next_cursor;
    }
  } catch {
    // A completion that cannot ask offers nothing; the shell goes on.
  }
  // Only what an account id or a permission set name can be: nothing else reaches the shell.
  const wellFormed = what === 'accounts' ? /^\d{12}$/ : /^[A-Za-z0-9_+=,.@-]{1,32}$/;
  print([...found].filter((c) => wellFormed.test(c) && (!word || c.toLowerCase().startsWith(word.toLowerCase().replace(/^aws::account::/, '')))).sort());
  return EXIT.ok;
}

const COMMANDS = ['login', 'logout', 'whoami', 'ensure', 'grants', 'entitlements', 'list', 'requests', 'request', 'review', 'revoke', 'audit', 'report', 'completion'];

/**
 * Shell completion: commands, and `ensure --target` / `--role` from what the caller may ask for
 * (`access __complete`), each narrowed by the other when it is already on the line.
 */
export function completionScript(shell: 'bash' | 'zsh'): string {
  if (shell === 'bash') {
    return `# access completion for bash: eval "$(access completion bash)" (e.g. in ~/.bashrc)
_access_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" i
  local -a given=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.join(' ')}" -- "$cur"))
    return
  fi
  [[ "\${COMP_WORDS[1]}" == ensure ]] || return
  for ((i = 2; i < COMP_CWORD - 1; i++)); do
    case "\${COMP_WORDS[i]}" in --target | --role) given+=("\${COMP_WORDS[i]}" "\${COMP_WORDS[i+1]}") ;; esac
  done
  case "$prev" in
    # One candidate a line, taken as it is: compgen -W would expand $(...) in what the API answered.
    --target) mapfile -t COMPREPLY < <(access __complete accounts "$cur" "\${given[@]}" 2>/dev/null) ;;
    --role) mapfile -t COMPREPLY < <(access __complete roles "$cur" "\${given[@]}" 2>/dev/null) ;;
  esac
}
complete -F _access_complete access
`;
  }
  return `#compdef access
# access completion for zsh: eval "$(access completion zsh)" (e.g. in ~/.zshrc, after compinit)
_access() {
  local -a found given
  local i
  if (( CURRENT == 2 )); then
    compadd -- ${COMMANDS.join(' ')}
    return
  fi
  [[ \${words[2]} == ensure ]] || return
  for (( i = 3; i < CURRENT - 1; i++ )); do
    [[ \${words[i]} == --target || \${words[i]} == --role ]] && given+=(\${words[i]} \${words[i+1]})
  done
  case \${words[CURRENT-1]} in
    --target) found=(\${(f)"$(access __complete accounts "\${words[CURRENT]}" "\${given[@]}" 2>/dev/null)"}) ;;
    --role) found=(\${(f)"$(access __complete roles "\${words[CURRENT]}" "\${given[@]}" 2>/dev/null)"}) ;;
    *) return ;;
  esac
  compadd -a found
}
compdef _access access
`;
}

/** Rows as aligned columns: every cell terminal-safe, the last column unpadded. */
function table(header: string[], rows: string[][]): string[] {
  const cells = rows.map((r) => r.map(terminalText));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join('  ');
  return [line(header), ...cells.map(line)];
}

async function auditCommand(opts: CommonOptions & { from?: string; to?: string; principal?: string; target?: string; role?: string; event?: string; limit: number }): Promise<number> {
  const conn = await connectionOf(opts);
  const query = new URLSearchParams();
  for (const key of ['from', 'to', 'principal', 'target', 'role', 'event'] as const) if (opts[key]) query.set(key, opts[key]);
  // Pages of up to 100 until --limit events or the last page.
  const events: AuditEvent[] = [];
  let cursor: string | null = null;
  do {
    query.set('limit', String(Math.min(100, opts.limit - events.length)));
    if (cursor) query.set('cursor', cursor);
    const page: { events: AuditEvent[]; next_cursor: string | null } = await callApi(conn, 'GET', `/v1/access/audit?${query}`);
    events.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor && events.length < opts.limit);
  if (opts.json) {
    printJson({ events });
  } else if (events.length === 0) {
    print(['no events']);
  } else {
    const rows = events.map((e) => [e.at, e.event.toUpperCase(), `${e.actor.type}:${e.actor.id}`, e.principal.id, `${e.role} on ${e.target}`, e.grant_id ?? '-']);
    print(table(['AT', 'EVENT', 'ACTOR', 'PRINCIPAL', 'ACCESS', 'GRANT'], rows));
    if (cursor) printError([`(first ${events.length} events; raise --limit or narrow the range for more)`]);
  }
  return EXIT.ok;
}

const REPORT_COLUMNS = ['principal_id', 'principal_email', 'target', 'role', 'from', 'to', 'grant_id', 'access_request_id', 'approved_by', 'reason', 'ended', 'preexisted'] as const;

/**
 * One CSV cell (RFC 4180), as terminal-safe as printed text (a CSV is often `cat`): no escape
 * sequence or control character. Text that a spreadsheet would take for a formula (a requester's
 * reason starting with `=`) is prefixed with `'`, so opening the report never runs it.
 */
export function csvCell(value: unknown): string {
  let text = terminalText(value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value));
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

async function reportCommand(opts: CommonOptions & { target: string; role?: string; from: string; to: string; csv?: boolean }): Promise<number> {
  const query = new URLSearchParams({ target: opts.target, from: opts.from, to: opts.to, ...(opts.role ? { role: opts.role } : {}) });
  const { intervals } = await callApi<{ intervals: AccessInterval[] }>(await connectionOf(opts), 'GET', `/v1/access/report?${query}`);
  if (opts.json) {
    printJson({ intervals });
  } else if (opts.csv) {
    // CSV is data, not terminal text: written as it is (quoted), with the formula guard above.
    process.stdout.write([REPORT_COLUMNS.join(','), ...intervals.map((i) => REPORT_COLUMNS.map((c) => csvCell(i[c])).join(','))].join('\r\n') + '\r\n');
  } else if (intervals.length === 0) {
    print(['nobody held access in that range']);
  } else {
    const rows = intervals.map((i) => [
      i.principal_email ?? i.principal_id,
      i.role,
      i.from,
      i.to ?? '-',
      i.ended.toUpperCase() + (i.preexisted ? ' (pre-existing)' : ''),
      i.approved_by.join(',') || '-',
      i.reason ?? '',
    ]);
    print(table(['PRINCIPAL', 'ROLE', 'FROM', 'TO', 'ENDED', 'APPROVED BY', 'REASON'], rows));
  }
  return EXIT.ok;
}

async function loginCommand(opts: CommonOptions & { device?: boolean; browser: boolean; timeout: number }): Promise<number> {
  const name = opts.profile ?? DEFAULT_PROFILE;
  const saved = readProfile(name);
  const url = opts.url ?? saved?.url ?? DEFAULT_URL;
  const tenant = opts.tenant ?? saved?.tenant;
  if (!tenant) throw new ApiError(400, { code: 'invalid_request', message: 'Which tenant? Pass --tenant <uuid> (your administrator has it) the first time.' });
  const signIn = await signInOf(url, tenant);
  // The API names the provider, the client and the audience: say them before anyone types a password.
  const lines = [`Signing in to ${url} (tenant ${tenant}) at ${signIn.issuer}, as client ${signIn.client_id}, for ${signIn.audience}.`];
  const changed = saved && (['issuer', 'client_id', 'audience'] as const).filter((k) => saved[k] !== signIn[k]);
  if (changed?.length) lines.push(`warning: the ${changed.join(', ')} differ from the last sign-in of this profile (${changed.map((k) => saved![k]).join(', ')}).`);
  printError(lines);
  const timeoutMs = opts.timeout * 1000;
  const tokens = opts.device
    ? await signInWithDevice(signIn, {
        show: (uri, code, complete) => printError([`To sign in, visit ${uri} and enter the code ${code}`, ...(complete ? [`  (or open ${complete})`] : []), 'Waiting...']),
        timeoutMs,
      })
    : await signInWithBrowser(signIn, {
        open: opts.browser,
        show: (address) => printError([`${opts.browser ? 'Opening your browser to sign in; if it does not open, visit' : 'To sign in, visit'}:`, `  ${address}`]),
        timeoutMs,
      });
  const profile = { url, tenant, issuer: signIn.issuer, client_id: signIn.client_id, audience: signIn.audience, resource: signIn.resource, tokens };
  await withProfilesLock(async () => writeProfile(name, profile));
  const claims = decodeJwt(tokens.access_token);
  print([`Signed in to ${url} (tenant ${tenant}) as ${String(claims.email ?? claims.sub)}${name === DEFAULT_PROFILE ? '' : `, profile ${name}`}.`]);
  return EXIT.ok;
}

async function logoutCommand(opts: CommonOptions): Promise<number> {
  const name = opts.profile ?? DEFAULT_PROFILE;
  const profile = readProfile(name);
  if (!profile?.tokens) {
    print([`Not signed in${name === DEFAULT_PROFILE ? '' : ` (profile ${name})`}.`]);
    return EXIT.ok;
  }
  // Under the lock: a refresh finishing meanwhile would write the session back.
  const revoked = await withProfilesLock(async () => {
    const latest = readProfile(name);
    if (!latest?.tokens) return true;
    const done = await revokeAtProvider(latest);
    // The API and tenant stay: the next access login needs neither.
    writeProfile(name, { ...latest, tokens: undefined });
    return done;
  });
  const which = name === DEFAULT_PROFILE ? '' : ` of profile ${name}`;
  print([
    revoked
      ? `Signed out${which}; ${profile.issuer} revoked the session.`
      : `Signed out${which} here; ${profile.issuer} did not confirm ending the session, which lasts until its refresh token expires there.`,
  ]);
  return EXIT.ok;
}

async function whoamiCommand(opts: CommonOptions): Promise<number> {
  const conn = await connectionOf(opts);
  if (!conn.token) throw new ApiError(401, { code: 'unauthenticated', message: 'Not signed in: access login, or pass --token / set ACCESS_TOKEN.' });
  // What the token says; the API checks it on every call (and answers 401 when it does not hold).
  let claims;
  try {
    claims = decodeJwt(conn.token);
  } catch {
    throw new ApiError(401, { code: 'unauthenticated', message: 'The token is not a JWT.' });
  }
  const profile = opts.token ? undefined : readProfile(opts.profile ?? DEFAULT_PROFILE);
  const expires = claims.exp ? new Date(claims.exp * 1000).toISOString() : 'never';
  const renewal = profile?.tokens?.refresh_token ? `; renewed from ${profile.issuer} until the provider ends the session (access logout ends it)` : '';
  if (opts.json) {
    printJson({ url: conn.url, tenant: conn.tenant, principal: claims.sub, email: claims.email, groups: claims.groups ?? [], expires_at: expires, renewable: Boolean(renewal) });
    return EXIT.ok;
  }
  print([
    `tenant     ${conn.tenant ?? '(none: pass --tenant)'} at ${conn.url}`,
    `principal  ${String(claims.sub)}${claims.email ? ` (${String(claims.email)})` : ''}`,
    `groups     ${Array.isArray(claims.groups) && claims.groups.length ? claims.groups.join(', ') : '(none)'}`,
    `session    token expires ${expires}${renewal}`,
  ]);
  return EXIT.ok;
}

/** A 400's failing fields and why (`details.issues`, zod's), one line each. */
function invalidFields(details: unknown): string[] {
  const issues = (details as { issues?: unknown } | undefined)?.issues;
  if (!Array.isArray(issues)) return [];
  return issues.map((i: { path?: unknown[]; message?: unknown }) => `  ${Array.isArray(i.path) && i.path.length ? i.path.join('.') : '(body)'}: ${String(i.message)}`);
}

/** Runs one command and turns its outcome (or API error) into an exit code. */
function action<A extends unknown[]>(run: (...args: A) => Promise<number>) {
  return async (...args: A) => {
    const opts = args.at(-2) as CommonOptions;
    try {
      process.exitCode = await run(...args);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (opts.json) printJson(err.body);
      else printError([`error: ${err.body.message} (${err.body.code})`, ...invalidFields(err.body.details), ...(err.body.notices ?? []).map((n) => `  ${n}`)]);
      process.exitCode = err.exitCode;
    }
  };
}

export function program(): Command {
  const root = new Command('access')
    .description('Just-in-time AWS access through the access API.')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Environment: ACCESS_URL, ACCESS_TOKEN, ACCESS_TENANT_ID, ACCESS_PROFILE (flags win; then the profile
             access login saved, in $XDG_CONFIG_HOME/access/profiles.json).
Exit codes: 0 ok, 1 usage or rejected input, 2 forbidden by policy, 3 not active after --wait,
            4 unauthenticated, 5 API unavailable, 6 rate limited (try again later).`,
    );

  common(root.command('login'))
    .description("sign in with your organisation's identity provider; saves the API, tenant and tokens in a profile")
    .option('--device', 'sign in on another device with a code (for machines without a browser)')
    .option('--no-browser', 'print the sign-in address instead of opening a browser')
    .addOption(new Option('--timeout <time>', 'give up after this long').argParser(parseDuration).default(5 * 60, '5m'))
    .action(action(loginCommand));

  common(root.command('logout'))
    .description("forget the profile's tokens (and ask the identity provider to end the session)")
    .action(action(logoutCommand));

  common(root.command('whoami'))
    .description('who you are signed in as: tenant, principal, groups, and when the token ends')
    .action(action(whoamiCommand));

  common(root.command('ensure'))
    .description('make sure you hold a role on an account or group (or on every account a selector names): activate it, request it or extend it')
    .option('--target <account>', 'account id, AWS::Account::{id}, or AWS::IdentityStore::Group::{group}', parseTarget)
    .option('--ou <id>', 'instead of --target: every account under this OU (ou-...) you may request the role on, at any depth')
    .option('--tag <key=value>', 'instead of --target: every account with this tag you may request the role on')
    .option('--account-name <pattern>', "instead of --target: every account whose name matches, e.g. 'data-*' (* any run, ? one character)")
    .option('--yes', 'with a selector: send without asking (needed when stdin is not a terminal)')
    .requiredOption('--role <name>', 'permission set name')
    .option('--duration <time>', 'how long, e.g. 1h, 30m, 1h30m (default: the tenant default)', parseDuration)
    .option('--reason <text>', 'why you need it')
    .option('--attach <ticket>', 'ticket key or URL (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--dry-run', 'say what would happen (WILL ACTIVATE / WILL REQUEST / WILL EXTEND) and change nothing')
    .option('--break-glass', 'emergency: active at once where policy allows break-glass (needs --reason); reviewers are told and may revoke it')
    .option('--start <time>', 'begin later: a time of day such as 02:00 (the next one), or an RFC 3339 time', (v: string) => parseStart(v))
    .option('--wait', 'wait until the grant is active, denied or closed')
    .addOption(new Option('--timeout <time>', 'with --wait: give up after this long').argParser(parseDuration).default(15 * 60, '15m'))
    .addOption(new Option('--poll-interval <ms>', 'with --wait: milliseconds between checks').argParser(parseCount).default(2000).hideHelp())
    .action(action(ensureCommand));

  common(root.command('grants'))
    .description('list your grants (and those you may review or revoke), or show one by id')
    .argument('[id]', 'grant id')
    .addOption(new Option('--status <status>', 'only grants in this status').choices(STATUSES))
    .option('--target <account>', 'only this account', parseTarget)
    .option('--role <name>', 'only this role')
    .option('--limit <n>', 'at most this many (default 50, at most 100)', parseCount)
    .option('--cursor <cursor>', 'the next page, as the previous one said')
    .action(action(grantsCommand));

  common(root.command('entitlements'))
    .alias('list')
    .description('what you may ask for: the accounts and roles policy lets you request, and what an ensure of each would do')
    .option('--account <account>', 'only this account', parseTarget)
    .option('--role <name>', 'only this role')
    .option('--environment <name>', 'only accounts of this environment')
    .option('--search <text>', "text in the account's id or name, or the role's name")
    .option('--ou <id>', 'only accounts under this OU (ou-...), at any depth')
    .option('--tag <key=value>', 'only accounts with this tag')
    .option('--account-name <pattern>', "only accounts whose name matches, e.g. 'data-*'")
    .option('--limit <n>', 'at most this many (default 50, at most 100)', parseCount)
    .option('--cursor <cursor>', 'the next page, as the previous one said')
    .action(action(entitlementsCommand));

  root
    .command('completion')
    .description('print a shell completion script: eval "$(access completion bash)" (or zsh)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(completionScript(shell));
    });

  common(root.command('__complete', { hidden: true }))
    .description('candidates for the completion scripts, one a line')
    .addArgument(new Argument('<what>').choices(['accounts', 'roles']))
    .argument('[word]', 'what has been typed so far')
    .option('--target <account>', 'roles of this account')
    .option('--role <name>', 'accounts of this role')
    .action(action(completeCommand));

  common(root.command('review'))
    .description('approve or deny an access request (its access_request_id), all its grants at once')
    .argument('<request-id>', 'access request id')
    .addArgument(new Argument('<decision>', 'approve or deny').choices(['approve', 'deny']))
    .option('--comment <text>', 'shown to the requester')
    .action(action(reviewCommand));

  common(root.command('requests'))
    .description('list the access requests you may review, and your own (newest first)')
    .addOption(new Option('--status <status>', 'only requests in this status').choices(REQUEST_STATUSES))
    .option('--mine', 'only your own requests')
    .option('--limit <n>', 'at most this many (default 50, at most 200)', parseCount)
    .option('--cursor <cursor>', 'the next page, as the previous one said')
    .action(action(requestsCommand));

  common(root.command('request'))
    .description('show one access request: its status, approvals and grants')
    .argument('<request-id>', 'access request id')
    .action(action(requestCommand));

  common(root.command('revoke'))
    .description('end a grant now; answers once the account assignment is removed')
    .argument('<grant-id>', 'grant id')
    .option('--reason <text>', 'why')
    .action(action(revokeCommand));

  common(root.command('audit'))
    .description('the audit trail, newest first (needs the audit permission)')
    .option('--from <time>', 'ISO time or date (default: 7 days before --to)')
    .option('--to <time>', 'ISO time or date (default: now)')
    .option('--principal <id>', "only this principal's events")
    .option('--target <account>', 'only this account', parseTarget)
    .option('--role <name>', 'only this role')
    .option('--event <name>', 'only this event, e.g. approved, ensure_denied')
    .addOption(new Option('--limit <n>', 'at most this many events').argParser(parseCount).default(1000))
    .action(action(auditCommand));

  common(root.command('report'))
    .description('who held which role on an account, when: intervals from the audit trail')
    .requiredOption('--target <account>', 'account id, AWS::Account::{id}, or AWS::IdentityStore::Group::{group}', parseTarget)
    .option('--role <name>', 'only this role')
    .requiredOption('--from <time>', 'ISO time or date, e.g. 2026-10-01')
    .requiredOption('--to <time>', 'ISO time or date (a date counts to its end), at most 92 days after --from')
    .option('--csv', 'CSV (one row per interval) instead of text')
    .action(action(reportCommand));

  return root;
}

if (require.main === module) {
  program()
    .parseAsync(process.argv)
    .catch((err) => {
      printError([`error: ${err instanceof Error ? err.message : String(err)}`]);
      process.exitCode = EXIT.unavailable;
    });
}
