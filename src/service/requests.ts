// Access requests: what a caller may review or asked for, and the reviews themselves.
import { AccessError } from '../domain/errors';
import { alreadyDecided, approvedAsAnother, encodePrincipal, type GrantState, grantName, grantWorkflowId, personOf, reviewsOwn } from '../domain/grant';
import { type AccessRequestView, requestGrantsOf, requestIdsOf, requestPartOf, type RequestPart, requestStatus, type RequestStatus, toRequestView } from '../domain/request';
import { reviewUpdate, searchAttributes } from '../workflows/messages';
import { type Asked, policyContext } from '../policy/context';
import { allBounded, among, type Caller, equals, GRANT_CALLS_AT_ONCE, type GrantRow, type GrantRuns, notFound, pause, settledBounded, sortGrants, VISIBILITY_WAIT_MS } from './runs';
import { rejectionsAsErrors } from './temporal-errors';

export interface RequestFilters {
  status?: RequestStatus;
  mine?: boolean;
  limit?: number;
  cursor?: string;
}

export class RequestService {
  constructor(private readonly runs: GrantRuns) {}

  /**
   * A page of the requests the caller may review or made, in the order visibility lists their
   * grants (latest first). Pending requests are narrowed in visibility to grants awaiting review; a
   * request is listed on the page of one of its grants (the first by workflow id of those the
   * filter matches), composed from all of them: one more visibility call finds them for a page
   * holding a request that may span grants (EnsureRequest.requestGrants).
   */
  async list(caller: Caller, filters: RequestFilters): Promise<{ requests: AccessRequestView[]; next_cursor: string | null }> {
    const pendingOnly = filters.status === 'pending';
    const clauses = [pendingOnly ? `${searchAttributes.awaitingReview.name} = true` : `${searchAttributes.requestIds.name} IS NOT NULL`];
    if (filters.mine) clauses.push(equals(searchAttributes.principal, encodePrincipal(caller.principal.id)));
    const listedBy = (row: GrantRow) => !pendingOnly || row.awaitingReview;
    const sessionSeconds = await this.runs.sessionSeconds(caller.tenant.id);
    const { items, nextCursor } = await this.runs.page(caller.tenant, clauses, filters.limit ?? 50, filters.cursor, async (rows) => {
      // Only a request that may span grants needs the others found (one more call, for the page).
      const ids = [...new Set(rows.flatMap((row) => requestIdsOf(row.state).filter((id) => requestGrantsOf(row.state, id) !== 1)))];
      // By run: a key's closed run and its newer one are two grants, each with requests of its own.
      const grants = new Map((ids.length > 0 ? await this.runs.all(caller.tenant, [among(searchAttributes.requestIds, ids)]) : []).map((r) => [r.runId, r]));
      for (const row of rows) if (!grants.has(row.runId)) grants.set(row.runId, row);
      const grantsOf = new Map<string, GrantRow[]>();
      for (const g of grants.values()) {
        for (const id of new Set(requestIdsOf(g.state))) {
          const of = grantsOf.get(id);
          if (of) of.push(g);
          else grantsOf.set(id, [g]);
        }
      }
      const now = new Date();
      const listed: AccessRequestView[] = [];
      for (const row of rows) {
        const views = requestIdsOf(row.state).flatMap((id) => {
          const of = grantsOf.get(id) ?? [];
          const lead = of.filter(listedBy).sort((a, b) => a.workflowId.localeCompare(b.workflowId))[0];
          if (lead?.runId !== row.runId) return [];
          const parts = partsOf(of, id, now);
          if (!this.seesRequest(caller, parts, sessionSeconds)) return [];
          const view = toRequestView(id, parts);
          return !filters.status || view.status === filters.status ? [view] : [];
        });
        listed.push(...views.sort(newestFirst));
      }
      return listed;
    });
    return { requests: items, next_cursor: nextCursor };
  }

  async get(caller: Caller, accessRequestId: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller, accessRequestId, false);
    if (!this.seesRequest(caller, parts, await this.runs.sessionSeconds(caller.tenant.id))) throw notFound('access request');
    return toRequestView(accessRequestId, parts);
  }

  /**
   * Sends the decision to every grant of the request, once all of them are checked. A reviewer's
   * repeated decision is a no-op answered with the request as it is, so a review cut off half-way
   * (one grant's update failed) is completed by sending it again.
   */
  async review(caller: Caller, accessRequestId: string, decision: 'approve' | 'deny', comment?: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller, accessRequestId, true);
    const states = parts.map((p) => p.state);
    // Its requester sees it (and may not review it); so does whoever may review it. To anyone
    // else it does not exist: the same 404 as an unknown id, so no answer confirms an id.
    // One person, whichever way they came (a token, a Slack click): by id, user claim or email (reviewsOwn).
    const review = { decision, reviewerId: caller.principal.id, reviewerUser: personOf(caller.principal), reviewerEmail: caller.principal.email?.toLowerCase(), comment, accessRequestId };
    if (reviewsOwn(review, states[0].principal)) throw new AccessError('forbidden', 'Nobody reviews their own request.');
    const sessionSeconds = await this.runs.sessionSeconds(caller.tenant.id);
    const refused = parts.filter((p) => !this.mayReview(caller, p, sessionSeconds)).map((p) => p.state);
    if (refused.length === states.length) throw notFound('access request');
    if (refused.length > 0) {
      throw new AccessError('forbidden', `Policy does not allow you to review ${refused.map((st) => grantName(st.key)).join(', ')}; nothing was reviewed.`, {
        details: { grants: refused.map((st) => ({ id: st.id, target: st.key.target, role: st.key.role })) },
      });
    }
    const earlier = parts.map((p) => approvedAsAnother(p.approvals, review)).find((a) => a !== undefined);
    if (earlier) throw new AccessError('conflict', `You have already approved this request (as ${earlier.reviewerId}); one person counts once.`);
    const toSend = parts.filter((p) => p.awaitsReview && !alreadyDecided(p, review)).map((p) => p.state);
    if (toSend.length === 0 && !parts.some((p) => alreadyDecided(p, review))) {
      throw new AccessError('conflict', `The request is ${requestStatus(parts)}, not pending.`);
    }
    const sent = await settledBounded(toSend, (st) => {
      const workflowId = grantWorkflowId(st.key);
      this.runs.changing(workflowId, st.id, accessRequestId);
      return rejectionsAsErrors(() => this.runs.client.workflow.getHandle(workflowId).executeUpdate(reviewUpdate, { args: [review] }));
    });
    const failed = sent.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    // The decision is taken; the grants leave `pending` in their next step. Answer with that.
    const deadline = Date.now() + VISIBILITY_WAIT_MS;
    // An approval ahead of a scheduled start leaves the grant pending until then: settled.
    const settling = (st: GrantState) => st.status === 'pending' && st.review && !(st.approved && st.startsAt && Date.parse(st.startsAt) > Date.now());
    // Read again only the grants still settling: a request of hundreds is not read whole each round.
    const after = [...states];
    for (let round = 0; ; round++) {
      const waiting = round === 0 ? after.map((_, i) => i) : after.flatMap((st, i) => (settling(st) ? [i] : []));
      await allBounded(waiting, async (i) => void (after[i] = await this.runs.latestState(states[i])));
      const now = new Date();
      if (!after.some(settling) || Date.now() > deadline) return toRequestView(accessRequestId, after.map((st) => requestPartOf(st, accessRequestId, now)!));
      await pause(waiting.length > GRANT_CALLS_AT_ONCE ? 250 : 100);
    }
  }

  /**
   * Its requester, and whoever may review any of its grants: GET answers them as review does (a
   * reviewer of some of them is told by review which ones are not theirs; issue 19).
   */
  private seesRequest(caller: Caller, parts: RequestPart[], sessionSeconds: Record<string, number>): boolean {
    return parts[0].state.key.principalId === caller.principal.id || parts.some((p) => this.mayReview(caller, p, sessionSeconds));
  }

  private mayReview(caller: Caller, part: RequestPart, sessionSeconds: Record<string, number>): boolean {
    return this.runs.decide(caller, 'review', part.state.key, policyContext(askedByRequest(part), sessionSeconds)).allowed;
  }

  /**
   * What the request's grants hold of it (404 if none in this tenant): one visibility call finds
   * them by any of their request ids. `forWrite`, each is then read as its run holds it now, since
   * visibility may lag a decision of a moment ago (and a repeated review must be seen as one);
   * else as `readState` answers.
   */
  private async requestParts(caller: Caller, accessRequestId: string, forWrite: boolean): Promise<RequestPart[]> {
    // A request of many grants may be listed in part for a moment after its call (visibility
    // lags each grant on its own): while visibility may lag, wait until it lists as many grants
    // as the call made (EnsureRequest.requestGrants, at most that many), so that a review reaches
    // them all; past that, what is listed is the request.
    let listed: GrantRow[] = [];
    const rows = await this.runs.whenVisible(caller, accessRequestId, async () => {
      listed = await this.runs.all(caller.tenant, [equals(searchAttributes.requestIds, accessRequestId)]);
      const expected = Math.max(1, ...listed.map((row) => requestGrantsOf(row.state, accessRequestId) ?? 1));
      return listed.length >= expected ? listed : undefined;
    });
    if (!rows && listed.length === 0) throw notFound('access request');
    const fresh = await allBounded(rows ?? listed, async (row) => ({ ...row, state: await (forWrite ? this.runs.latestState(row.state) : this.runs.readState(row)) }));
    const parts = partsOf(fresh, accessRequestId, new Date());
    if (parts.length === 0) throw notFound('access request');
    return parts;
  }
}

/**
 * What a request asks, which `review` is decided on: an extension or break-glass follow-up with its
 * own duration, justification and kind, never the grant's first (a 12-hour extension of a 1-hour
 * grant is reviewed as 12 hours; issue 19); the grant's own request with its schedule, counted
 * from when it was asked for.
 */
function askedByRequest(part: RequestPart): Asked {
  return {
    role: part.state.key.role,
    durationSeconds: part.durationSeconds,
    justification: part.justification,
    breakGlass: part.kind === 'break_glass',
    // A follow-up is about a grant already active: it has no start of its own.
    startsAt: part.kind === 'access' ? part.state.startsAt : null,
    askedAt: part.createdAt ? new Date(part.createdAt) : new Date(),
  };
}

/** What each of the grants holds of request `id`, in the order of their names. */
function partsOf(rows: GrantRow[], id: string, now: Date): RequestPart[] {
  return sortGrants(rows.map((r) => r.state))
    .map((st) => requestPartOf(st, id, now))
    .filter((p): p is RequestPart => p !== null);
}

/** Newest first: by creation time, then id (both descending): the order of a grant's own requests in a listing. */
function newestFirst(a: Pick<AccessRequestView, 'created_at' | 'id'>, b: Pick<AccessRequestView, 'created_at' | 'id'>): number {
  return b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);
}
