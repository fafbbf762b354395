// What a grant sends without waiting for it: notifications and audit events. The lifecycle never
// waits on either, except before its run ends or continues as new (`settled`).
import { CancellationScope, condition, log } from '@temporalio/workflow';
import type { Notification } from '../../activities/notify';
import type { AuditRecord } from '../../domain/audit';
import type { GrantState } from '../../domain/grant';
import { auditing, notifying } from './calls';
import { providerReason } from './failures';

/** Audit events one activity writes at most (each is a few KB; an activity's input stays far below Temporal's limits). */
const AUDIT_BATCH_SIZE = 100;
/** Handed-off events a grant keeps at most before it writes them itself (each is in every update's answer until then). */
const HANDED_OFF_MAX = 10;

export class Outbox {
  private notificationsInFlight = 0;
  /**
   * Events waiting for the one activity in flight that writes them: a flood of extensions costs
   * as many activities as the store takes round trips, not one per event, and the events one turn
   * makes (an expiry's two) go together.
   */
  private auditQueue: AuditRecord[] = [];
  private auditDraining = false;
  /**
   * True while the run drains before it continues as new: events made meanwhile (a stream of
   * extensions never stops making them, so the run would never drain) wait in the state, and the
   * next run writes them first.
   */
  private holding = false;

  constructor(private readonly state: GrantState) {}

  notify(notification: Notification): void {
    this.notificationsInFlight++;
    notifying
      .notify(notification)
      .catch((err) => log.warn('notification not delivered', { event: notification.event, reason: providerReason(err) }))
      .finally(() => this.notificationsInFlight--);
  }

  /**
   * Scheduled outside cancellation: a cancelled workflow's revocation is written too. The record's
   * id comes from the grant's event number (kept in the state), so a retry or a replay writes the
   * same object.
   */
  audit(record: AuditRecord): void {
    if (this.holding) {
      this.state.auditBacklog = [...(this.state.auditBacklog ?? []), record];
      return;
    }
    this.auditQueue.push(record);
    if (this.auditDraining) return;
    this.auditDraining = true;
    void this.drainAudits();
  }

  private async drainAudits(): Promise<void> {
    for (;;) {
      await Promise.resolve(); // the rest of this turn's events join the batch
      if (this.auditQueue.length === 0) break;
      const batch = this.auditQueue.slice(0, AUDIT_BATCH_SIZE);
      this.auditQueue = this.auditQueue.slice(AUDIT_BATCH_SIZE);
      await CancellationScope.nonCancellable(() => auditing.writeAuditEvents(batch)).catch((err) =>
        log.error('audit events not written', { events: batch.map((r) => r.event), reason: providerReason(err) }),
      );
    }
    this.auditDraining = false;
  }

  /**
   * An event the update's caller writes (it comes back in the update's answer), kept in the state
   * until the workflow writes it too (`writeHandedOff`): no workflow task of its own now, and a
   * caller that never writes it loses nothing. Written again, it is the same object.
   */
  handOff(record: AuditRecord): void {
    this.state.auditHandedOff = [...(this.state.auditHandedOff ?? []), record];
  }

  /** So many handed-off events that the workflow should write them without waiting for its next wake. */
  handedOffPiling(): boolean {
    return (this.state.auditHandedOff?.length ?? 0) >= HANDED_OFF_MAX;
  }

  /** The handed-off events, to be written now (here, or by whoever takes them). */
  takeHandedOff(): AuditRecord[] {
    const records = this.state.auditHandedOff ?? [];
    delete this.state.auditHandedOff;
    return records;
  }

  writeHandedOff(): void {
    this.takeHandedOff().forEach((record) => this.audit(record));
  }

  /** Until `release`, new audit events wait in the state for the next run. */
  hold(): void {
    this.holding = true;
  }

  /** Writes the events held in the state (by this run, or by the run it continues). */
  release(): void {
    this.holding = false;
    const held = this.state.auditBacklog ?? [];
    delete this.state.auditBacklog;
    held.forEach((record) => this.audit(record));
  }

  /** Notifications are bounded by their own timeout; audit events are retried until written: no run closes with one unwritten. */
  settled(): Promise<void> {
    return condition(() => this.notificationsInFlight === 0 && !this.auditDraining);
  }
}
