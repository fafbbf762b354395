// Access requests: what a caller may review or asked for, and the reviews themselves.
import { AccessError } from '../domain/errors';
import { alreadyDecided, approvedAsAnother, encodePrincipal, grantName, type GrantState, grantWorkflowId, personOf, validateJustification } from '../domain/grant';
import { type AccessRequestView, requestIdsOf, requestPartOf, type RequestPart, requestStatus, type RequestStatus, toRequestView } from '../domain/request';
import { reviewUpdate, searchAttributes } from '../workflows/messages';
import { type Caller, equals, type GrantRuns, notFound, pause, type RunRef, sortGrants, VISIBILITY_WAIT_MS, whenVisible } from './runs';
import { rejectionsAsErrors } from './temporal-errors';

export interface RequestFilters {
  status?: RequestStatus;
  mine?: boolean;
  limit?: number;
  cursor?: string;
}

/** How many of a tenant's latest grant runs a request listing looks through (README: a bounded scan). */
const REQUEST_SCAN_LIMIT = 1000;

export class RequestService {
  constructor(private readonly runs: GrantRuns) {}

  async list(caller: Caller, filters: RequestFilters): Promise<{ requests: AccessRequestView[]; next_cursor: string | null }> {
    const after = filters.cursor === undefined ? null : decodeCursor(filters.cursor);
    const clauses = filters.mine ? [equals(searchAttributes.principal, encodePrincipal(caller.principal.id))] : [];
    // Only runs of grants with a request carry a request id. A pending request has a pending grant
    // (or, for an extension or break-glass follow-up, an active one), so that filter is narrowed in
    // visibility; the rest is decided from the grants' states, which hold every request they were part of.
    const waits = (status?: string) => status === 'pending' || status === 'active' || status === 'provisioning';
    const runs = (await this.runs.find(caller.tenant, clauses, REQUEST_SCAN_LIMIT)).filter((r) => r.requestId && (filters.status !== 'pending' || waits(r.status)));
    const states = await this.statesOf(runs);
    const now = new Date();
    const byRequest = new Map<string, RequestPart[]>();
    for (const st of sortGrants(states)) {
      for (const id of requestIdsOf(st)) byRequest.set(id, [...(byRequest.get(id) ?? []), requestPartOf(st, id, now)!]);
    }
    const composed = [...byRequest.entries()].map(([id, parts]) => (this.seesRequest(caller, parts) ? toRequestView(id, parts) : null));
    const listed = composed
      .filter((r): r is AccessRequestView => r !== null && (!filters.status || r.status === filters.status))
      .sort(newestFirst)
      .filter((r) => !after || newestFirst(r, { created_at: after.createdAt, id: after.id }) > 0);
    const limit = filters.limit ?? 50;
    const page = listed.slice(0, limit);
    const last = page.at(-1);
    return { requests: page, next_cursor: listed.length > limit && last ? encodeCursor(last) : null };
  }

  async get(caller: Caller, accessRequestId: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller, accessRequestId);
    if (!this.seesRequest(caller, parts)) throw notFound('access request');
    return toRequestView(accessRequestId, parts);
  }

  /**
   * Sends the decision to every grant of the request, once all of them are checked. A reviewer's
   * repeated decision is a no-op answered with the request as it is, so a review cut off half-way
   * (one grant's update failed) is completed by sending it again.
   */
  async review(caller: Caller, accessRequestId: string, decision: 'approve' | 'deny', comment?: string): Promise<AccessRequestView> {
    const parts = await this.requestParts(caller, accessRequestId);
    const states = parts.map((p) => p.state);
    // Its requester sees it (and may not review it); so does whoever may review it. To anyone
    // else it does not exist: the same 404 as an unknown id, so no answer confirms an id.
    // One person, whichever way they came (a token, a Slack click): by id, and by the user claim (personOf).
    const reviewer = personOf(caller.principal);
    if (states[0].key.principalId === caller.principal.id || personOf(states[0].principal) === reviewer) {
      throw new AccessError('forbidden', 'Nobody reviews their own request.');
    }
    const refused = parts.filter((p) => !this.mayReview(caller, p)).map((p) => p.state);
    if (refused.length === states.length) throw notFound('access request');
    if (refused.length > 0) {
      throw new AccessError('forbidden', `Policy does not allow you to review ${refused.map((st) => grantName(st.key)).join(', ')}; nothing was reviewed.`, {
        details: { grants: refused.map((st) => ({ id: st.id, target: st.key.target, role: st.key.role })) },
      });
    }
    const review = { decision, reviewerId: caller.principal.id, reviewerUser: reviewer, comment, accessRequestId };
    const earlier = parts.map((p) => approvedAsAnother(p.approvals, review)).find((a) => a !== undefined);
    if (earlier) throw new AccessError('conflict', `You have already approved this request (as ${earlier.reviewerId}); one person counts once.`);
    const toSend = parts.filter((p) => p.awaitsReview && !alreadyDecided(p, review)).map((p) => p.state);
    if (toSend.length === 0 && !parts.some((p) => alreadyDecided(p, review))) {
      throw new AccessError('conflict', `The request is ${requestStatus(parts)}, not pending.`);
    }
    const sent = await Promise.allSettled(
      toSend.map((st) =>
        rejectionsAsErrors(() => this.runs.client.workflow.getHandle(grantWorkflowId(st.key)).executeUpdate(reviewUpdate, { args: [review] })),
      ),
    );
    const failed = sent.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    // The decision is taken; the grants leave `pending` in their next step. Answer with that.
    const deadline = Date.now() + VISIBILITY_WAIT_MS;
    for (;;) {
      const after = await Promise.all(states.map((st) => this.runs.latestState(st)));
      const settling = after.some((st) => st.status === 'pending' && st.review);
      const now = new Date();
      if (!settling || Date.now() > deadline) return toRequestView(accessRequestId, after.map((st) => requestPartOf(st, accessRequestId, now)!));
      await pause(100);
    }
  }

  /**
   * Its requester, and whoever may review any of its grants: GET answers them as review does (a
   * reviewer of some of them is told by review which ones are not theirs; issue 19).
   */
  private seesRequest(caller: Caller, parts: RequestPart[]): boolean {
    return parts[0].state.key.principalId === caller.principal.id || parts.some((p) => this.mayReview(caller, p));
  }

  /**
   * Action `review` on what the request itself asks: an extension or break-glass follow-up with its
   * own duration, justification and kind, never the grant's first (a 12-hour extension of a
   * 1-hour grant is reviewed as 12 hours; issue 19).
   */
  private mayReview(caller: Caller, part: RequestPart): boolean {
    const validation = validateJustification(part.justification);
    return this.runs.decideFor(caller.tenant, caller.principal, 'review', part.state.key, {
      role: part.state.key.role,
      duration_seconds: part.durationSeconds,
      has_reason: validation.has_reason,
      has_ticket_attachment: validation.has_ticket_attachment,
      break_glass: part.kind === 'break_glass',
    }).allowed;
  }

  /**
   * What the request's grants hold of it (404 if none in this tenant). A grant is found by its
   * latest request id (AccessRequestId); an earlier one of a grant that has since had a follow-up
   * (its original request, an earlier extension) by a bounded scan of the tenant's grants.
   */
  private async requestParts({ tenant }: Caller, accessRequestId: string): Promise<RequestPart[]> {
    const partsOf = async (runs: RunRef[]) => {
      const now = new Date();
      return sortGrants(await this.statesOf(runs))
        .map((st) => requestPartOf(st, accessRequestId, now))
        .filter((p): p is RequestPart => p !== null);
    };
    const parts = await whenVisible(async () => {
      const found = await partsOf(await this.runs.find(tenant, [equals(searchAttributes.requestId, accessRequestId)], 100));
      return found.length > 0 ? found : undefined;
    });
    if (parts) return parts;
    const scanned = await partsOf((await this.runs.find(tenant, [], REQUEST_SCAN_LIMIT)).filter((r) => r.requestId && r.requestId !== accessRequestId));
    if (scanned.length > 0) return scanned;
    throw notFound('access request');
  }

  private async statesOf(runs: RunRef[]): Promise<GrantState[]> {
    return (await Promise.all(runs.map((run) => this.runs.stateOf(run)))).filter((st): st is GrantState => st !== null);
  }
}

/** Newest first: by creation time, then id (both descending), so pages never overlap. */
function newestFirst(a: Pick<AccessRequestView, 'created_at' | 'id'>, b: Pick<AccessRequestView, 'created_at' | 'id'>): number {
  return b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);
}

/** The cursor is the last listed request's (created_at, id), opaque to clients. */
function encodeCursor(last: AccessRequestView): string {
  return Buffer.from(JSON.stringify({ c: last.created_at, i: last.id })).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const { c, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { c: unknown; i: unknown };
    if (typeof c === 'string' && !Number.isNaN(Date.parse(c)) && typeof i === 'string' && /^[0-9a-f-]{36}$/.test(i)) return { createdAt: c, id: i };
  } catch {
    // Falls through to the error below.
  }
  throw new AccessError('invalid_request', 'The cursor is not one this API gave (use next_cursor as it is).');
}
