// Ending AWS sessions with the grant (`aws.revoke_sessions`, CONTRACT §7): the Deny statements
// this service keeps in a permission set's inline policy, one per cut-off, beside the customer's
// own statements. Pure rules over the policy document; the activity (activities/sessions.ts)
// reads and writes it.

/** Our statements' Sid prefix: everything else in the policy is the customer's and kept as it is. */
export const CUTOFF_SID_PREFIX = 'JitAccessSessionCutoff';

/** AWS's limit on a permission set's inline policy, in characters. */
export const INLINE_POLICY_MAX_CHARS = 32_768;

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
  version: string;
  /** The customer's statements, untouched. */
  others: unknown[];
  ours: CutoffStatement[];
}

/** Thrown when the policy text is not a policy document we can keep the customer's part of. */
export class InlinePolicyError extends Error {}

export function parseInlinePolicy(text: string | undefined): InlinePolicy {
  if (!text || !text.trim()) return { version: '2012-10-17', others: [], ours: [] };
  let doc: { Version?: string; Statement?: unknown };
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InlinePolicyError('the inline policy is not JSON');
  }
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement === undefined ? [] : [doc.Statement];
  const others: unknown[] = [];
  const ours: CutoffStatement[] = [];
  for (const s of statements) {
    const ourStatement = cutoffOf(s);
    if (ourStatement) ours.push(ourStatement);
    else others.push(s);
  }
  return { version: doc.Version ?? '2012-10-17', others, ours };
}

function cutoffOf(s: unknown): CutoffStatement | undefined {
  const st = s as { Sid?: unknown; Condition?: { StringEquals?: Record<string, unknown>; DateLessThan?: Record<string, unknown> } };
  if (typeof st?.Sid !== 'string' || !st.Sid.startsWith(CUTOFF_SID_PREFIX)) return undefined;
  const users = st.Condition?.StringEquals?.['identitystore:userId'];
  const accountId = st.Condition?.StringEquals?.['aws:PrincipalAccount'];
  const at = st.Condition?.DateLessThan?.['aws:TokenIssueTime'];
  const userIds = typeof users === 'string' ? [users] : Array.isArray(users) ? users.filter((u): u is string => typeof u === 'string') : [];
  if (userIds.length === 0 || typeof accountId !== 'string' || typeof at !== 'string' || Number.isNaN(Date.parse(at))) return undefined;
  return { userIds, accountId, at };
}

export function renderInlinePolicy(policy: InlinePolicy): string {
  const ours = policy.ours.map((c, i) => ({
    Sid: `${CUTOFF_SID_PREFIX}${i + 1}`,
    Effect: 'Deny',
    Action: '*',
    Resource: '*',
    Condition: {
      StringEquals: { 'identitystore:userId': c.userIds.length === 1 ? c.userIds[0] : c.userIds, 'aws:PrincipalAccount': c.accountId },
      DateLessThan: { 'aws:TokenIssueTime': c.at },
    },
  }));
  return JSON.stringify({ Version: policy.version, Statement: [...policy.others, ...ours] });
}

/**
 * Our statements after dropping those whose sessions have all ended (a session lasts at most the
 * permission set's session duration past its cut-off) and adding `add`: one statement per user and
 * account, with that user's latest cut-off there.
 */
export function withCutoffs(ours: CutoffStatement[], add: SessionCutoff[], now: Date, sessionSeconds: number): { kept: CutoffStatement[]; pruned: CutoffStatement[] } {
  const live = (c: CutoffStatement) => Date.parse(c.at) + sessionSeconds * 1000 > now.getTime();
  const pruned = ours.filter((c) => !live(c));
  const byUser = new Map<string, CutoffStatement>();
  const merged: CutoffStatement[] = [];
  for (const c of ours.filter(live)) {
    if (c.userIds.length > 1) merged.push(c);
    else byUser.set(`${c.userIds[0]}|${c.accountId}`, c);
  }
  for (const c of add) {
    const key = `${c.userId}|${c.accountId}`;
    const before = byUser.get(key);
    if (!before || before.at < c.at) byUser.set(key, { userIds: [c.userId], accountId: c.accountId, at: c.at });
  }
  const kept = [...merged, ...byUser.values()].sort((a, b) => a.accountId.localeCompare(b.accountId) || a.at.localeCompare(b.at));
  return { kept, pruned };
}

/**
 * The policy within AWS's size limit, or undefined when it cannot be. Over the limit, each
 * account's statements become one, naming all its users with the earliest of their cut-offs: a
 * session issued after a user's own cut-off is never denied (some before it may then live on to
 * their natural end). Accounts are never merged: a list of users and a list of accounts in one
 * statement would deny a user in an account where their grant still holds.
 */
export function fitInlinePolicy(policy: InlinePolicy): InlinePolicy | undefined {
  if (renderInlinePolicy(policy).length <= INLINE_POLICY_MAX_CHARS) return policy;
  const byAccount = new Map<string, CutoffStatement>();
  for (const c of policy.ours) {
    const before = byAccount.get(c.accountId);
    byAccount.set(
      c.accountId,
      before
        ? { accountId: c.accountId, userIds: [...new Set([...before.userIds, ...c.userIds])].sort(), at: before.at < c.at ? before.at : c.at }
        : { ...c, userIds: [...c.userIds] },
    );
  }
  const merged = { ...policy, ours: [...byAccount.values()] };
  return renderInlinePolicy(merged).length <= INLINE_POLICY_MAX_CHARS ? merged : undefined;
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
