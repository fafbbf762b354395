// What policies see of one action on an entitlement: made in one place for the API's decisions
// (src/service) and the worker's (a scheduled grant's start, src/activities/policy.ts).
import { type GrantState, type Justification, validateJustification } from '../domain/grant';
import type { PolicyRequest } from '.';

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
  };
}

/** A grant as its own request asked for it (not a follow-up): what `revoke`, and who may see it, are decided on. */
export function askedByGrant(grant: Pick<GrantState, 'key' | 'durationSeconds' | 'justification' | 'startsAt' | 'requestedAt'>): Asked {
  return {
    role: grant.key.role,
    durationSeconds: grant.durationSeconds,
    justification: grant.justification,
    breakGlass: false,
    startsAt: grant.startsAt,
    askedAt: grant.requestedAt ? new Date(grant.requestedAt) : new Date(),
  };
}
