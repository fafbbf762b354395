// What a caller may ask for: every (account, role) pair of the tenant that policy lets them
// request, with what an ensure of it would do. Decided as ensure decides, without an ensure.
import type { TenantConfig } from '../config';
import { type AccountFacts, type OrganizationReport, tenantAccountIds } from '../domain/accounts';
import { accountIdOf, type GrantKey, type Justification } from '../domain/grant';
import type { PolicyDecision, PolicySet } from '../policy';
import { policyContext } from '../policy/context';
import { type Caller, cursorValue, type GrantRuns, signedCursor } from './runs';

export interface EntitlementFilters {
  /** AWS::Account::{id} */
  account?: string;
  role?: string;
  environment?: string;
  /** Text in the account's id or name, or in the role's name (any case). */
  q?: string;
  /** An OU or root id: only accounts under it, at any depth. */
  ou?: string;
  /** key=value: only accounts with that tag. */
  tag?: string;
  /** A name pattern (* any run, ? one character), whole, any case. */
  name?: string;
  limit?: number;
  cursor?: string;
}

/** One pair the caller may request, and what an ensure of it would do. */
export interface EntitlementView {
  target: string;
  role: string;
  role_description: string;
  account: { id: string; name: string | null; environment: string; tags: Record<string, string>; ou_path: string[] };
  /** `activate`: an ensure makes it active at once; `request`: it waits for reviewers. */
  action: 'activate' | 'request';
  /** Distinct reviewers an ensure's request needs (0 when it activates). */
  approvals_required: number;
  /** What an ensure without duration_seconds asks for (the tenant's default, or the maximum when that is shorter). */
  default_duration_seconds: number;
  /** The longest duration_seconds policy and the tenant allow. */
  max_duration_seconds: number;
  /** What the justification must hold, or an ensure is refused (403): a reason, a ticket attachment. */
  requires: ('reason' | 'ticket_attachment')[];
}

/** What an ensure of one role on one kind of account would do (null: policy lets the caller request it at no duration). */
type Offer = Pick<EntitlementView, 'action' | 'approvals_required' | 'default_duration_seconds' | 'max_duration_seconds' | 'requires'> | null;

/**
 * The justification a listing assumes: a reason and a ticket, the most a requester can give. A
 * role that needs either is listed, with what it needs (`requires`), each found by asking again
 * without it.
 */
const FULL_JUSTIFICATION: Justification = { reason: 'listing what may be asked for', attachments: ['ACCESS-1'] };
const WITHOUT: Record<EntitlementView['requires'][number], Justification> = {
  reason: { attachments: FULL_JUSTIFICATION.attachments },
  ticket_attachment: { reason: FULL_JUSTIFICATION.reason },
};

/**
 * Kinds of account and role one call decides at most (each a few Cedar decisions of about 0.2 ms):
 * past it, the call answers a short page with a cursor, so one read never holds the API for long.
 */
export const MAX_OFFERS_PER_CALL = 250;

/** The tenant's accounts in id order, each with its class under the tenant's policy set, and one account per class that decides for it. */
interface AccountIndex {
  policies: PolicySet;
  /** The organisation read it was made from (undefined: none). */
  organization: OrganizationReport | undefined;
  accounts: (AccountFacts & { kind: string })[];
  /** The first account of each class: the one its decisions are asked about (so the decision memo serves every call). */
  deciding: Map<string, string>;
}

export class EntitlementService {
  /** Per tenant config, for as long as its policy set and organisation read are the same (a reload or a newer read makes a new index). */
  private readonly indexes = new WeakMap<TenantConfig, AccountIndex>();

  constructor(private readonly runs: GrantRuns) {}

  /**
   * A page of the pairs the caller may request, in account id then role name order. Each kind of
   * account (accountClass) is decided once per role and call, lazily as the page fills; the policy
   * set's memo keeps the decisions between calls. The cursor is the last pair answered, signed with
   * the filters.
   */
  async list(caller: Caller, filters: EntitlementFilters): Promise<{ entitlements: EntitlementView[]; next_cursor: string | null }> {
    const { tenant } = caller;
    const { sets, sessionSeconds } = await this.runs.permissionSets(tenant.id);
    const index = this.indexOf(tenant);
    const scope = JSON.stringify(['entitlements', tenant.id, filters.account ?? null, filters.role ?? null, filters.environment ?? null, filters.q ?? null, filters.ou ?? null, filters.tag ?? null, filters.name ?? null]);
    const placed = accountSelector(filters);
    const after = filters.cursor === undefined ? undefined : cursorValue<{ a: string; r: string }>(filters.cursor, scope, this.runs.cursorKey);
    const limit = filters.limit ?? 50;
    const q = filters.q?.toLowerCase();
    const accountId = filters.account === undefined ? undefined : accountIdOf(filters.account);
    const roles = sets.filter((set) => filters.role === undefined || set.name === filters.role);
    const offers = new Map<string, Offer>();
    const entitlements: EntitlementView[] = [];
    let scanned: { a: string; r: string } | undefined;
    for (const account of index.accounts) {
      if ((accountId !== undefined && account.id !== accountId) || (after && account.id < after.a)) continue;
      if (filters.environment !== undefined && account.environment !== filters.environment) continue;
      if (!placed(account)) continue;
      const accountFound = q === undefined || account.id.includes(q) || (account.name?.toLowerCase().includes(q) ?? false);
      for (const role of roles) {
        if (after && account.id === after.a && role.name <= after.r) continue;
        if (!accountFound && !role.name.toLowerCase().includes(q!)) continue;
        const key = `${account.kind}\n${role.name}`;
        let offer = offers.get(key);
        if (offer === undefined) {
          // Decisions are synchronous work: a call that has made its share answers the page so far,
          // and the next page goes on from here (policies naming many accounts, a filter that
          // matches little).
          if (offers.size === MAX_OFFERS_PER_CALL && scanned) {
            return { entitlements, next_cursor: signedCursor(scanned, scope, this.runs.cursorKey) };
          }
          offer = this.offerOf(caller, index.deciding.get(account.kind)!, role.name, sessionSeconds);
          offers.set(key, offer);
        }
        scanned = { a: account.id, r: role.name };
        if (!offer) continue;
        if (entitlements.length === limit) {
          // One more found: there is a next page, and it starts after the last pair answered.
          const last = entitlements[limit - 1];
          return { entitlements, next_cursor: signedCursor({ a: last.account.id, r: last.role }, scope, this.runs.cursorKey) };
        }
        entitlements.push({
          target: `AWS::Account::${account.id}`,
          role: role.name,
          role_description: role.description,
          account: { id: account.id, name: account.name, environment: account.environment, tags: account.tags, ou_path: account.ou_path },
          ...offer,
        });
      }
    }
    return { entitlements, next_cursor: null };
  }

  private indexOf(tenant: TenantConfig): AccountIndex {
    const policies = this.runs.policySet(tenant);
    const organization = this.runs.organization(tenant.id);
    const known = this.indexes.get(tenant);
    if (known?.policies === policies && known.organization === organization) return known;
    const accounts = tenantAccountIds(tenant, organization).map((id) => {
      const facts = this.runs.accountOf(tenant, id);
      return { ...facts, kind: policies.accountClass(id, facts.environment, facts) };
    });
    const deciding = new Map<string, string>();
    for (const a of accounts) if (!deciding.has(a.kind)) deciding.set(a.kind, a.id);
    const index = { policies, organization, accounts, deciding };
    this.indexes.set(tenant, index);
    return index;
  }

  /**
   * What an ensure of `role` on `accountId` would do, as ensure decides it (authorizeEntitlement):
   * the tenant's maximum and policy's `request` at each duration where policy can change its mind
   * (longest first) give the maximum; `activate` at the default duration says whether it needs
   * review, and the `request` permits' @approvals how many approvals.
   */
  private offerOf(caller: Caller, accountId: string, role: string, sessionSeconds: Record<string, number>): Offer {
    const { tenant, principal } = caller;
    const policies = this.runs.policySet(tenant);
    const key: GrantKey = { tenantId: tenant.id, principalId: principal.id, target: `AWS::Account::${accountId}`, role };
    const askedAt = new Date();
    const decide = (action: 'request' | 'activate', durationSeconds: number, justification = FULL_JUSTIFICATION): PolicyDecision =>
      this.runs.decide(caller, action, key, policyContext({ role, durationSeconds, justification, breakGlass: false, askedAt }, sessionSeconds));
    const limit = tenant.grants.max_duration_seconds;
    let max: number | undefined;
    let allowed: PolicyDecision | undefined;
    for (const duration of [limit, ...policies.durationSteps(limit, sessionSeconds[role] ? [sessionSeconds[role]] : [])]) {
      const decision = decide('request', duration);
      if (decision.allowed) {
        [max, allowed] = [duration, decision];
        break;
      }
      // Refused with no policy determining it: no permit applies, and none would at another duration.
      if (decision.policyIds.length === 0 && !policies.reads('duration_seconds', 'permit')) return null;
    }
    if (max === undefined || !allowed) return null;
    const defaultSeconds = Math.min(tenant.grants.default_duration_seconds, max);
    const durations = { default_duration_seconds: defaultSeconds, max_duration_seconds: max };
    const asked = decide('request', defaultSeconds);
    const requires = (['reason', 'ticket_attachment'] as const).filter(
      (what) => asked.allowed && policies.reads(`has_${what}`) && !decide('request', defaultSeconds, WITHOUT[what]).allowed,
    );
    if (decide('activate', defaultSeconds).allowed) return { action: 'activate', approvals_required: 0, ...durations, requires };
    return { action: 'request', approvals_required: policies.approvalsRequired((asked.allowed ? asked : allowed).policyIds), ...durations, requires };
  }
}

/**
 * The selector filters (`ou`, `tag`, `name`) as one test of an account: what `access ensure --ou,
 * --tag, --account-name` expand through. Only accounts the latest organisation read placed have an
 * OU path and tags; a name is the config's or the organisation's.
 */
function accountSelector({ ou, tag, name }: Pick<EntitlementFilters, 'ou' | 'tag' | 'name'>): (account: AccountFacts) => boolean {
  const at = tag?.indexOf('=') ?? -1;
  const [tagKey, tagValue] = tag === undefined ? [] : [tag.slice(0, at), tag.slice(at + 1)];
  const pattern = name?.toLowerCase();
  return (account) =>
    (ou === undefined || account.ou_path.includes(ou)) &&
    (tagKey === undefined || (Object.hasOwn(account.tags, tagKey) && account.tags[tagKey] === tagValue)) &&
    (pattern === undefined || (account.name !== null && globMatches(pattern, account.name.toLowerCase())));
}

/**
 * Whether `text` matches `pattern` whole (* any run, ? one character). Greedy, going back only to
 * the last *: at most pattern x text steps, whatever the caller writes (a regular expression of
 * many .* could take exponential time on a name that does not match).
 */
export function globMatches(pattern: string, text: string): boolean {
  let [p, t, star, resume] = [0, 0, -1, 0];
  while (t < text.length) {
    if (pattern[p] === '*') [star, resume, p] = [p, t, p + 1];
    else if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) [p, t] = [p + 1, t + 1];
    else if (star >= 0) [p, t, resume] = [star + 1, resume + 1, resume + 1];
    else return false;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
