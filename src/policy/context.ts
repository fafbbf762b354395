// What policies see of one action on an entitlement: made in one place for the API's decisions
// (src/service) and the worker's (a scheduled grant's start, src/activities/policy.ts).
import { type Facts, type Named, NO_ONCALL_SOURCE, NO_TICKET_SOURCE, NOT_ON_CALL_LEVEL, type OncallFacts, shiftSecondsLeft, type TicketFacts } from '../domain/facts';
import { type GrantState, type Justification, validateJustification } from '../domain/grant';
import type { OncallContext, PolicyRequest, TicketContext } from '.';

/**
 * An entitlement as it was asked for, which every action on it is decided on: an ensure call's, a
 * grant's own request, or one of its follow-ups (an extension or a break-glass use, with their own
 * duration and justification).
 */
export interface Asked {
  role: string;
  durationSeconds: number;
  justification: Justification;
  breakGlass: boolean;
  /** When access is to begin; absent or null: at once. */
  startsAt?: string | null;
  /**
   * When it was asked for. How far ahead the start is counts from then, so the reviewer's policy
   * sees what the requester's saw, however close the start has come meanwhile.
   */
  askedAt: Date;
  /** What the tenant's sources said at the call (issue 40); a source absent here is "unknown" ("none" for a ticket). */
  facts?: Facts;
}

/**
 * What policies see of one action on an entitlement (CONTRACT §5): the one place the context is
 * made, so `request` and `activate` at the ensure, `review` and `revoke` later, and every read that
 * asks who may review or revoke, all see the same (issue 35 §6: a review once missed the schedule).
 */
export function policyContext(asked: Asked, sessionSeconds: Record<string, number>): PolicyRequest['context'] {
  const validation = validateJustification(asked.justification);
  const startsAt = asked.startsAt ?? undefined;
  return {
    role: asked.role,
    duration_seconds: asked.durationSeconds,
    has_reason: validation.has_reason,
    has_ticket_attachment: validation.has_ticket_attachment,
    break_glass: asked.breakGlass,
    scheduled: startsAt !== undefined,
    starts_in_seconds: startsAt === undefined ? 0 : Math.max(0, Math.round((Date.parse(startsAt) - asked.askedAt.getTime()) / 1000)),
    session_duration_seconds: sessionSeconds[asked.role] ?? 0,
    reason_length: reasonLength(asked.justification.reason),
    oncall: oncallContext(asked.facts?.oncall ?? NO_ONCALL_SOURCE, asked.askedAt),
    ticket: ticketContext(asked.facts?.ticket ?? NO_TICKET_SOURCE, startsAt === undefined ? asked.askedAt : new Date(startsAt)),
  };
}

/** Letters and digits in the reason: "." or "-" say nothing, and policies can refuse them. */
export function reasonLength(reason: string | undefined): number {
  return (reason ?? '').match(/[\p{L}\p{N}]/gu)?.length ?? 0;
}

/** `context.oncall`: NOT_ON_CALL_LEVEL and no time left when not on call, so no level or time test holds by accident. */
function oncallContext(facts: OncallFacts, askedAt: Date): OncallContext {
  const onCall = facts.status === 'on_call';
  const exact = shiftSecondsLeft(facts, askedAt);
  // In whole minutes (as seconds): the context of a person's calls within a minute is the same, so
  // their decisions come from the policy set's memo, not from Cedar each time.
  const left = exact === null ? Number.MAX_SAFE_INTEGER : Math.floor(exact / 60) * 60;
  // Names apart from ids: a name is what people read, and anyone who may create a schedule may give it one already in use.
  const names = (items: Named[]) => [...new Set(items.map((i) => i.name))].sort();
  const ids = (items: Named[]) => [...new Set(items.map((i) => i.id))].sort();
  return {
    status: facts.status,
    schedules: names(facts.schedules),
    schedule_ids: ids(facts.schedules),
    services: names(facts.services),
    service_ids: ids(facts.services),
    level: onCall ? (facts.level ?? NOT_ON_CALL_LEVEL) : NOT_ON_CALL_LEVEL, seconds_left: left };
}

/** `context.ticket`, with whether `at` (the start asked for: now, or starts_at) is inside a change window. */
function ticketContext(facts: TicketFacts, at: Date): TicketContext {
  const window = facts.change_window;
  return {
    status: facts.status,
    key: facts.key ?? '',
    type: facts.type ?? '',
    status_category: facts.status_category ?? '',
    priority: facts.priority ?? '',
    requester_is_assignee: facts.requester_is_assignee,
    requester_is_reporter: facts.requester_is_reporter,
    has_change_window: window !== null,
    in_change_window: window !== null && Date.parse(window.start) <= at.getTime() && at.getTime() <= Date.parse(window.end),
  };
}

/** A grant as its own request asked for it (not a follow-up): what `revoke`, and who may see it, are decided on. */
export function askedByGrant(grant: Pick<GrantState, 'key' | 'durationSeconds' | 'justification' | 'startsAt' | 'requestedAt'> & { validation?: GrantState['validation'] }): Asked {
  return {
    role: grant.key.role,
    durationSeconds: grant.durationSeconds,
    justification: grant.justification,
    breakGlass: false,
    startsAt: grant.startsAt,
    askedAt: grant.requestedAt ? new Date(grant.requestedAt) : new Date(),
    // As the sources answered at the call: a review, a revoke or a scheduled start decides on the facts the requester was decided on.
    facts: { oncall: grant.validation?.oncall, ticket: grant.validation?.ticket },
  };
}
