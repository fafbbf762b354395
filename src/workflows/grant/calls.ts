// The activities a grant calls, each with the timeouts and retries its part of the lifecycle needs.
import { proxyActivities } from '@temporalio/workflow';
import type { GrantActivities } from '../../activities';
import type { AuditActivities } from '../../activities/audit';
import type { NotifyActivities } from '../../activities/notify';

export const provisioning = proxyActivities<GrantActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  // Transient provider errors are retried for up to ten minutes; then the grant fails closed.
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

// A scheduled grant's start, decided again (lifecycle.ts, awaitStart): retried until it answers;
// the grant is not provisioned on a guess.
export const deciding = proxyActivities<GrantActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export const restoring = proxyActivities<GrantActivities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

// Deprovisioning never gives up: the workflow keeps calling until the assignment is gone. Each
// round is short (two attempts, each with the SDK's own retries), so a failing deletion shows as a
// `deprovisioning_retrying` diagnostic within seconds; the rounds then back off up to a minute.
export const deprovisioning = proxyActivities<GrantActivities>({
  startToCloseTimeout: '2 minutes',
  // A deletion cut off by a crash is retried after this, and access lasts that much longer. Half
  // provisioning's: a deletion beats through the SDK every 5 s from its start (the SDK sends them
  // within 80% of this), while provisioning's first beats go around the SDK, whose own local timer
  // would cut a look that waits long for the pacer.
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 2 },
});

// Notifications are best effort and bounded: a dead webhook is given up after 30 seconds (so a
// closed grant's run ends soon after), and the workflow never waits for one before provisioning
// or deprovisioning.
export const notifying = proxyActivities<NotifyActivities>({
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '15 seconds' },
});

// The audit trail is written whatever it takes (no maximumAttempts), and the grant never waits
// for it: a store that is down delays only the record, never provisioning or expiry. No local
// activity: one inside a workflow task that carries an update's acceptance is what made an ensure
// answer 500 under load (issue 24, docs/reliability.md).
export const auditing = proxyActivities<AuditActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
