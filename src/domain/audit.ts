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
