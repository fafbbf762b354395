// The audit trail's events (docs/audit.md): their names and shape, schema 1. Imported by the
// workflows (deterministic: no I/O here) and by the writer in src/activities/audit.ts.

export const AUDIT_SCHEMA_VERSION = 1;

/**
 * Every decision and state change. `withdrawn`, `extension_requested` and `break_glass_used` are
 * defined for the features that will emit them (issue 12); nothing emits them yet.
 */
export const AUDIT_EVENTS = [
  'ensure_denied',
  'requested',
  'approved',
  'denied',
  'withdrawn',
  'activated',
  'extended',
  'extension_requested',
  'revoked',
  'expired',
  'provisioning_failed',
  'deprovisioned',
  'assignment_restored',
  'leaked_assignment_removed',
  'break_glass_used',
  'sessions_revoked',
  'sessions_revocation_failed',
] as const;
export type AuditEventName = (typeof AUDIT_EVENTS)[number];

/**
 * Who acted: the grant's own `principal`; a `reviewer` (another user, by policy: a review or a
 * revoke); an `operator` (through Temporal: a cancelled workflow, a signal); the service itself.
 */
export interface AuditActor {
  type: 'principal' | 'reviewer' | 'operator' | 'system';
  id: string;
}

export interface AuditEvent {
  schema: typeof AUDIT_SCHEMA_VERSION;
  /** Deterministic: the same event written twice has the same id (and the same object). */
  event_id: string;
  at: string;
  tenant_id: string;
  event: AuditEventName;
  actor: AuditActor;
  principal: { id: string; email?: string };
  target: string;
  role: string;
  grant_id: string | null;
  access_request_id: string | null;
  details: Record<string, unknown>;
}

/**
 * What a writer is given: the event without its id and schema, and `occurrence`, which tells this
 * event apart from the others of its grant (the workflow's event sequence number, or a request id):
 * with the tenant, grant and event name it makes the id.
 */
export type AuditRecord = Omit<AuditEvent, 'schema' | 'event_id'> & { occurrence: string };

// ---------------------------------------------------------------------------------------------
// Reading: the rules over events read back from the store (the reading itself is in src/activities/audit.ts).

/** The widest range one audit or report call reads: a quarter. */
export const MAX_RANGE_DAYS = 92;
const DAY_MS = 86_400_000;

export interface AuditFilters {
  from: Date;
  to: Date;
  principal?: string;
  target?: string;
  role?: string;
  event?: AuditEventName;
}

/** Where a page ended: the last event it held, in newest-first order. */
export interface AuditCursor {
  at: string;
  event_id: string;
}

/** Newest first; events of the same instant by id, so the order (and every page) is stable. */
export function newestFirst(a: AuditCursor, b: AuditCursor): number {
  return b.at.localeCompare(a.at) || b.event_id.localeCompare(a.event_id);
}

export function matchesFilters(e: AuditEvent, f: AuditFilters): boolean {
  const at = Date.parse(e.at);
  return (
    at >= f.from.getTime() &&
    at <= f.to.getTime() &&
    (f.principal === undefined || e.principal.id === f.principal) &&
    entitlementsOf(e).some((x) => (f.target === undefined || x.target === f.target) && (f.role === undefined || x.role === f.role)) &&
    (f.event === undefined || e.event === f.event)
  );
}

interface Entitlement {
  target: string;
  role: string;
}

/** What an event is about: its own (target, role), or every refused entitlement of an ensure_denied. */
function entitlementsOf(e: AuditEvent): Entitlement[] {
  const denied = e.event === 'ensure_denied' ? (e.details as { denied?: unknown }).denied : undefined;
  return Array.isArray(denied) && denied.length > 0 ? (denied as Entitlement[]) : [{ target: e.target, role: e.role }];
}

/**
 * An ensure_denied event as an auditor narrowed to a target or role sees it: only the entitlements
 * they asked about (the refused call may have named accounts they may not audit). Other events
 * are about one entitlement, which the filter already matched.
 */
export function narrowedTo(e: AuditEvent, f: Pick<AuditFilters, 'target' | 'role'>): AuditEvent {
  if (e.event !== 'ensure_denied' || (f.target === undefined && f.role === undefined)) return e;
  const fits = (x: Partial<Entitlement>) => (f.target === undefined || x.target === f.target) && (f.role === undefined || x.role === f.role);
  const details = e.details as { entitlements?: Partial<Entitlement>[]; denied?: (Entitlement & { policies?: string[]; notices?: string[] })[] };
  const denied = (details.denied ?? []).filter(fits);
  const first = denied[0] ?? { target: e.target, role: e.role };
  return {
    ...e,
    target: first.target,
    role: first.role,
    details: {
      ...e.details,
      ...(details.entitlements && { entitlements: details.entitlements.filter(fits) }),
      ...(details.denied && {
        denied,
        denied_count: denied.length,
        policies: [...new Set(denied.flatMap((d) => d.policies ?? []))],
        notices: [...new Set(denied.flatMap((d) => d.notices ?? []))],
      }),
    },
  };
}

/** The UTC days (YYYY-MM-DD) from `to` back to `from`, newest first: the store's date folders to read. */
export function daysNewestFirst(from: Date, to: Date): string[] {
  const days: string[] = [];
  // The start of `to`'s UTC day by arithmetic: Date.UTC would read the years 0 to 99 as 1900 to 1999.
  for (let t = Math.floor(to.getTime() / DAY_MS) * DAY_MS; t >= from.getTime() - DAY_MS + 1; t -= DAY_MS) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

export type IntervalEnd = 'expired' | 'revoked' | 'still_active';

/** One stretch of time a principal held a role on a target, through one grant. */
export interface AccessInterval {
  principal_id: string;
  principal_email: string | null;
  target: string;
  role: string;
  /** Activation. */
  from: string;
  /** When the assignment was confirmed removed (or, if it pre-existed the grant, when the grant ended); null while held. */
  to: string | null;
  grant_id: string;
  access_request_id: string | null;
  approved_by: string[];
  reason: string | null;
  ended: IntervalEnd;
  /** The assignment existed before the grant (and was left in place after it). */
  preexisted: boolean;
}

/**
 * Who held what, when: one interval per activated grant, from its events alone, that overlaps
 * [from, to]. A grant activated before the events read has no interval.
 */
export function accessIntervals(events: AuditEvent[], from: Date, to: Date): AccessInterval[] {
  const byGrant = new Map<string, AuditEvent[]>();
  for (const e of events) {
    if (!e.grant_id) continue;
    const list = byGrant.get(e.grant_id) ?? [];
    list.push(e);
    byGrant.set(e.grant_id, list);
  }
  const intervals: AccessInterval[] = [];
  for (const [grantId, list] of byGrant) {
    const first = (name: AuditEventName) => list.filter((e) => e.event === name).sort((a, b) => a.at.localeCompare(b.at))[0];
    const activated = first('activated');
    if (!activated) continue;
    const end = first('revoked') ?? list.find((e) => e.event === 'expired' && e.details.phase !== 'pending');
    const removed = first('deprovisioned');
    const preexisted = activated.details.preexisted === true;
    const until = removed?.at ?? (preexisted ? end?.at : undefined) ?? null;
    if (Date.parse(activated.at) > to.getTime() || (until !== null && Date.parse(until) < from.getTime())) continue;
    const approvedBy = new Set<string>([
      ...list.filter((e) => e.event === 'approved').map((e) => e.actor.id),
      ...((activated.details.approved_by as string[] | undefined) ?? []),
    ]);
    const requested = first('requested');
    intervals.push({
      principal_id: activated.principal.id,
      principal_email: activated.principal.email ?? null,
      target: activated.target,
      role: activated.role,
      from: activated.at,
      to: until,
      grant_id: grantId,
      access_request_id: activated.access_request_id,
      approved_by: [...approvedBy],
      reason: ((activated.details.reason ?? requested?.details.reason ?? null) as string | null),
      ended: end ? (end.event as 'expired' | 'revoked') : 'still_active',
      preexisted,
    });
  }
  return intervals.sort((a, b) => a.from.localeCompare(b.from) || a.grant_id.localeCompare(b.grant_id));
}
