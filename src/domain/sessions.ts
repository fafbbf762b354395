// Ending AWS sessions with the grant (`aws.revoke_sessions`, CONTRACT §7): the Deny statements
// this service keeps in a permission set's inline policy, beside the customer's own statements.
// Pure rules over the policy document; the activities (activities/sessions.ts) read and write it.
import { createHash } from 'node:crypto';

/** Our statements' Sid prefix. A statement is ours only if it has exactly our shape as well (`ourStatementOf`). */
export const CUTOFF_SID_PREFIX = 'JitAccessSessionCutoff';

/** AWS's limit on a permission set's inline policy, in characters. */
export const INLINE_POLICY_MAX_CHARS = 32_768;

/**
 * Over the size limit, one account's cut-offs that fall in the same bucket of time become one
 * statement whose moment is the bucket's end: never earlier than any user's own cut-off. The
 * smallest bucket that fits is used: a user granted again before their bucket's end has to sign in
 * again after it.
 */
export const CUTOFF_BUCKETS_SECONDS = [60, 300, 900, 3600] as const;

/** One grant's end: the user's sessions in the account issued before `at` are denied everything. */
export interface SessionCutoff {
  userId: string;
  accountId: string;
  at: string;
}

/** One Deny statement of ours: these users' sessions in this account issued before `at`. */
export interface CutoffStatement {
  userIds: string[];
  accountId: string;
  at: string;
}

export interface InlinePolicy {
  /** The document's fields other than `Statement`, as the customer wrote them (`Version`, `Id`). */
  header: Record<string, unknown>;
  /** The customer's statements, untouched. */
  others: unknown[];
  ours: CutoffStatement[];
  /** Sids of customer statements that use our prefix without being of our shape: kept, and reported. */
  lookalikes: string[];
}

/** Thrown when the policy text is not a policy document we can keep the customer's part of. */
export class InlinePolicyError extends Error {}

export function parseInlinePolicy(text: string | undefined): InlinePolicy {
  if (!text || !text.trim()) return { header: { Version: '2012-10-17' }, others: [], ours: [], lookalikes: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InlinePolicyError('the inline policy is not JSON');
  }
  if (!isRecord(doc)) throw new InlinePolicyError('the inline policy is not a JSON object');
  const { Statement, ...header } = doc;
  const statements = Array.isArray(Statement) ? Statement : Statement === undefined ? [] : [Statement];
  const policy: InlinePolicy = { header, others: [], ours: [], lookalikes: [] };
  for (const s of statements) {
    const ours = ourStatementOf(s);
    if (ours) policy.ours.push(ours);
    else {
      policy.others.push(s);
      if (isRecord(s) && typeof s.Sid === 'string' && s.Sid.startsWith(CUTOFF_SID_PREFIX)) policy.lookalikes.push(s.Sid);
    }
  }
  return policy;
}

/** The statement as one of ours, if it has exactly the shape we write; anything else is the customer's. */
function ourStatementOf(s: unknown): CutoffStatement | undefined {
  if (!isRecord(s) || typeof s.Sid !== 'string' || !s.Sid.startsWith(CUTOFF_SID_PREFIX)) return undefined;
  if (!hasKeys(s, ['Action', 'Condition', 'Effect', 'Resource', 'Sid']) || s.Effect !== 'Deny' || s.Action !== '*' || s.Resource !== '*') return undefined;
  const condition = s.Condition;
  if (!isRecord(condition) || !hasKeys(condition, ['DateLessThan', 'StringEquals'])) return undefined;
  const { StringEquals: equals, DateLessThan: before } = condition;
  if (!isRecord(equals) || !hasKeys(equals, ['aws:PrincipalAccount', 'identitystore:userId'])) return undefined;
  if (!isRecord(before) || !hasKeys(before, ['aws:TokenIssueTime'])) return undefined;
  const users = equals['identitystore:userId'];
  const accountId = equals['aws:PrincipalAccount'];
  const at = before['aws:TokenIssueTime'];
  const userIds = typeof users === 'string' ? [users] : Array.isArray(users) && users.length > 0 && users.every((u) => typeof u === 'string') ? (users as string[]) : undefined;
  if (!userIds || typeof accountId !== 'string' || !/^\d{12}$/.test(accountId) || typeof at !== 'string' || Number.isNaN(Date.parse(at))) return undefined;
  return { userIds, accountId, at };
}

/**
 * The document as AWS takes it: the customer's header and statements as they were, then ours.
 * Characters outside what AWS's pattern for this call allows (tab, newlines, U+0020 to U+00FF) are
 * written as JSON escapes, which read back as the same text.
 */
export function renderInlinePolicy(policy: InlinePolicy): string {
  const taken = new Set(policy.others.flatMap((s) => (isRecord(s) && typeof s.Sid === 'string' ? [s.Sid] : [])));
  const ours = policy.ours.map((c) => ({
    Sid: uniqueSid(sidOf(c), taken),
    Effect: 'Deny',
    Action: '*',
    Resource: '*',
    Condition: {
      StringEquals: { 'identitystore:userId': c.userIds.length === 1 ? c.userIds[0] : c.userIds, 'aws:PrincipalAccount': c.accountId },
      DateLessThan: { 'aws:TokenIssueTime': c.at },
    },
  }));
  return JSON.stringify({ ...policy.header, Statement: [...policy.others, ...ours] }).replace(
    /[^\t\n\r\x20-\xff]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The prefix and a hash of the users and the account: one statement's Sid, the same on every write. */
function sidOf(c: CutoffStatement): string {
  return CUTOFF_SID_PREFIX + createHash('sha256').update(`${[...c.userIds].sort().join(',')}|${c.accountId}`).digest('hex').slice(0, 16);
}

function uniqueSid(sid: string, taken: Set<string>): string {
  let unique = sid;
  for (let n = 2; taken.has(unique); n++) unique = `${sid}N${n}`;
  taken.add(unique);
  return unique;
}

/**
 * Our statements with `add` applied and those whose sessions have all ended dropped (a session
 * lasts at most the permission set's session duration past its cut-off): every user appears once
 * per account, with their latest cut-off; users of one account with the same moment share a
 * statement (as a merge over the size limit left them).
 */
export function withCutoffs(ours: CutoffStatement[], add: SessionCutoff[], now: Date, sessionSeconds: number): { kept: CutoffStatement[]; pruned: CutoffStatement[] } {
  const latest = new Map<string, SessionCutoff>();
  for (const c of [...ours.flatMap(cutoffsOf), ...add]) {
    const key = `${c.userId}|${c.accountId}`;
    const before = latest.get(key);
    if (!before || Date.parse(before.at) < Date.parse(c.at)) latest.set(key, c);
  }
  const live = (c: SessionCutoff) => Date.parse(c.at) + sessionSeconds * 1000 > now.getTime();
  const all = [...latest.values()];
  return { kept: statementsOf(all.filter(live)), pruned: statementsOf(all.filter((c) => !live(c))) };
}

function cutoffsOf(s: CutoffStatement): SessionCutoff[] {
  return s.userIds.map((userId) => ({ userId, accountId: s.accountId, at: s.at }));
}

/** One statement per account and moment. */
function statementsOf(cutoffs: SessionCutoff[]): CutoffStatement[] {
  const byMoment = new Map<string, CutoffStatement>();
  for (const c of cutoffs) {
    const key = `${c.accountId}|${c.at}`;
    const s = byMoment.get(key);
    if (s) s.userIds.push(c.userId);
    else byMoment.set(key, { userIds: [c.userId], accountId: c.accountId, at: c.at });
  }
  return [...byMoment.values()]
    .map((s) => ({ ...s, userIds: s.userIds.sort() }))
    .sort((a, b) => a.accountId.localeCompare(b.accountId) || Date.parse(a.at) - Date.parse(b.at) || a.userIds[0].localeCompare(b.userIds[0]));
}

/**
 * The policy within AWS's size limit, or undefined when it cannot be. Over the limit, each
 * account's cut-offs in the same bucket of time share a statement, at the bucket's end (the
 * smallest of CUTOFF_BUCKETS_SECONDS that fits): a user's cut-off is never moved earlier. Accounts
 * are never merged: a list of users and a list of accounts in one statement would deny a user in
 * an account where their grant still holds.
 */
export function fitInlinePolicy(policy: InlinePolicy): { policy: InlinePolicy; bucketSeconds: number | null } | undefined {
  if (fits(policy)) return { policy, bucketSeconds: null };
  const cutoffs = policy.ours.flatMap(cutoffsOf);
  for (const bucketSeconds of CUTOFF_BUCKETS_SECONDS) {
    const bucketed = { ...policy, ours: statementsOf(cutoffs.map((c) => ({ ...c, at: bucketEnd(c.at, bucketSeconds) }))) };
    if (fits(bucketed)) return { policy: bucketed, bucketSeconds };
  }
  return undefined;
}

const fits = (policy: InlinePolicy) => renderInlinePolicy(policy).length <= INLINE_POLICY_MAX_CHARS;

function bucketEnd(at: string, seconds: number): string {
  const ms = seconds * 1000;
  return new Date(Math.ceil(Date.parse(at) / ms) * ms).toISOString();
}

/** The moment written for this user in this account: sessions issued before it are denied. */
export function writtenCutoff(ours: CutoffStatement[], userId: string, accountId: string): string | undefined {
  return ours.find((s) => s.accountId === accountId && s.userIds.includes(userId))?.at;
}

/** The accounts whose statements differ between two versions of ours: where the permission set is provisioned again. */
export function changedAccounts(before: CutoffStatement[], after: CutoffStatement[]): string[] {
  const byAccount = (ours: CutoffStatement[]) => {
    const m = new Map<string, string[]>();
    for (const s of ours) m.set(s.accountId, [...(m.get(s.accountId) ?? []), `${s.at}|${[...s.userIds].sort().join(',')}`]);
    return new Map([...m].map(([account, lines]) => [account, lines.sort().join(';')]));
  };
  const [a, b] = [byAccount(before), byAccount(after)];
  return [...new Set([...a.keys(), ...b.keys()])].filter((account) => a.get(account) !== b.get(account)).sort();
}

/** When the earliest of our statements may go: its cut-off plus the session duration. */
export function nextPruneAt(ours: CutoffStatement[], sessionSeconds: number): string | null {
  if (ours.length === 0) return null;
  const earliest = Math.min(...ours.map((c) => Date.parse(c.at)));
  return new Date(earliest + sessionSeconds * 1000).toISOString();
}

/** A permission set's SessionDuration (ISO 8601, e.g. PT1H, PT12H, PT30M) in seconds; AWS's default, one hour, if absent. */
export function sessionSecondsOf(duration: string | undefined): number {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$/.exec(duration ?? '');
  if (!m || (!m[1] && !m[2] && !m[3])) return 3600;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasKeys(v: Record<string, unknown>, keys: string[]): boolean {
  return Object.keys(v).sort().join('\n') === keys.join('\n');
}
