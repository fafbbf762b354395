// The provider quota is the deployment's (CONTRACT §7), however many workers run: each worker
// takes an equal share, counting the workers Temporal itself sees polling. No coordinator of our
// own: every worker process also polls a presence task queue that never gets a task, and
// Temporal's list of that queue's pollers is the list of live workers. (The main queue would not
// do: a worker whose activity slots are all taken stops polling it, and would drop out of the
// others' count exactly when it is busiest.)
import type { Client } from '@temporalio/client';

/** How often a worker reads the list of workers, by default (WORKER_FLEET_REFRESH_SECONDS). */
export const FLEET_REFRESH_MS = 5_000;
/**
 * Temporal records a poller when its long poll (up to a minute) starts, and a worker starts the
 * next as the last ends. A worker not seen for this long is gone; one that died still counts until
 * then (less quota used meanwhile, never more).
 */
const SEEN_WITHIN_MS = 150_000;

// temporal.api.enums.v1 values (@temporalio/proto is the client's, not a dependency of ours).
const TASK_QUEUE_TYPE_ACTIVITY = 2;
const TASK_QUEUE_KIND_NORMAL = 1;
const DESCRIBE_TASK_QUEUE_MODE_ENHANCED = 1;

type PollerInfo = NonNullable<Awaited<ReturnType<Client['workflowService']['describeTaskQueue']>>['pollers']>[number];

/** The task queue whose pollers are the worker processes serving `taskQueue`. */
export const presenceQueueOf = (taskQueue: string): string => `${taskQueue}-workers`;

export interface QuotaShare {
  /** This worker's part of a deployment-wide limit: 0 while it must make no call at all. */
  of(total: number): number;
}

interface FleetOptions {
  namespace: string;
  taskQueue: string;
  /** This worker's identity on the presence queue. */
  identity: string;
  /**
   * How often this worker (and, the same setting deployed, every other) reads the list. A
   * newcomer waits two of these before its first AWS call: the others' refresh, and a margin as long
   * for the round trip to Temporal. Default FLEET_REFRESH_MS.
   */
  refreshMs?: number;
  onError?: (err: unknown) => void;
}

/**
 * An equal share: floor(total / workers), and one more for the first `total % workers` workers in the
 * order of their identities, so the shares add up to the total; at least 1. Safe across changes: a
 * newcomer makes no call until every other worker has refreshed since it first appeared, so all
 * divide by the new count; a worker whose view is older than two refreshes makes no call either (it
 * could have missed a newcomer). A view that still holds a dead worker never gives a larger share
 * than one without it, so views that differ for a while never add up to more than the total. (More
 * workers than the total exceed it: each keeps 1, or it could never call at all.)
 */
export function fleetShare(client: Client, opts: FleetOptions): QuotaShare & { stop(): void } {
  let workers = 1;
  let rank = 0; // this worker's place among the identities, in order
  let refreshedAt = -Infinity;
  let seenSince: number | undefined; // when this worker first appeared in the list
  const refresh = async () => {
    const seen = await pollersOf(client, opts.namespace, presenceQueueOf(opts.taskQueue));
    const now = performance.now();
    if (!seen.has(opts.identity)) seenSince = undefined;
    else seenSince ??= now;
    seen.add(opts.identity);
    workers = seen.size;
    rank = [...seen].sort().indexOf(opts.identity);
    refreshedAt = now;
  };
  const refreshMs = opts.refreshMs ?? FLEET_REFRESH_MS;
  const joinMarginMs = refreshMs;
  const timer = setInterval(() => refresh().catch((err) => opts.onError?.(err)), refreshMs);
  refresh().catch((err) => opts.onError?.(err));
  return {
    of(total) {
      const now = performance.now();
      if (seenSince === undefined || now - seenSince < refreshMs + joinMarginMs) return 0;
      if (now - refreshedAt > 2 * refreshMs + joinMarginMs) return 0;
      return Math.max(1, Math.floor(total / workers) + (rank < total % workers ? 1 : 0));
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Identities that polled `taskQueue` lately (the bench counts the workers with it too). Both ways
 * Temporal answers: the default mode, and the (deprecated) enhanced one that asks every partition
 * of the queue; the union, so a poller only one of them reports still counts.
 */
export async function pollersOf(client: Client, namespace: string, taskQueue: string): Promise<Set<string>> {
  const cutoff = Date.now() - SEEN_WITHIN_MS;
  const identities = new Set<string>();
  const add = (pollers: PollerInfo[] | null | undefined) => {
    for (const p of pollers ?? []) {
      const at = p.lastAccessTime ? Number(p.lastAccessTime.seconds ?? 0) * 1000 : Date.now();
      if (p.identity && at >= cutoff) identities.add(p.identity);
    }
  };
  const [plain, enhanced] = await Promise.allSettled([
    client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: TASK_QUEUE_TYPE_ACTIVITY }),
    client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
      apiMode: DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
      taskQueueTypes: [TASK_QUEUE_TYPE_ACTIVITY],
      reportPollers: true,
      versions: { unversioned: true },
    }),
  ]);
  if (plain.status === 'rejected') throw plain.reason;
  add(plain.value.pollers);
  if (enhanced.status === 'fulfilled') {
    for (const version of Object.values(enhanced.value.versionsInfo ?? {})) {
      for (const type of Object.values(version.typesInfo ?? {})) add(type.pollers);
    }
  }
  return identities;
}
