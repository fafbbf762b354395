// The audit trail's one writer (docs/audit.md): each event as one S3 object at
// `{prefix}/tenant={tenant_id}/date={YYYY-MM-DD}/{event_id}.json`, under Object Lock when the
// tenant asks for it, and one `audit: true` line on the log. The worker's activity and the API
// (for ensure_denied) both write through it.
import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { type AppConfig, ConfigError, tenantById, type TenantConfig } from '../config';
import { AUDIT_SCHEMA_VERSION, type AuditEvent, type AuditRecord } from '../domain/audit';
import { createLogger, type Logger } from '../log';
import { afterDeletions, semaphore } from './aws';
import { activityContext } from './poll';

export type AuditStoreConfig = NonNullable<TenantConfig['audit']>['s3'];

/** A UUID-shaped sha256 (version nibble 5) of what makes the event itself: a rewrite gets the same id. */
export function auditEventId(record: Pick<AuditRecord, 'tenant_id' | 'grant_id' | 'event' | 'occurrence'>): string {
  const hex = createHash('sha256').update(JSON.stringify([record.tenant_id, record.grant_id, record.event, record.occurrence])).digest('hex');
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function auditEventOf(record: AuditRecord): AuditEvent {
  return {
    schema: AUDIT_SCHEMA_VERSION,
    event_id: auditEventId(record),
    at: record.at,
    tenant_id: record.tenant_id,
    event: record.event,
    actor: record.actor,
    principal: record.principal,
    target: record.target,
    role: record.role,
    grant_id: record.grant_id,
    access_request_id: record.access_request_id,
    details: record.details,
  };
}

/** The tenant's folder of one day: `{prefix}/tenant={id}/date={YYYY-MM-DD}/`. */
export function auditDayPrefix(store: AuditStoreConfig, tenantId: string, day: string): string {
  return `${store.prefix ? `${store.prefix.replace(/\/+$/, '')}/` : ''}tenant=${tenantId}/date=${day}/`;
}

export function auditKey(store: AuditStoreConfig, event: AuditEvent): string {
  return `${auditDayPrefix(store, event.tenant_id, event.at.slice(0, 10))}${event.event_id}.json`;
}

/** One S3 client per tenant's store settings, kept for its connections. */
export function auditS3Client(store: AuditStoreConfig): S3Client {
  return new S3Client({
    region: store.region ?? process.env.AWS_REGION ?? 'us-east-1',
    // Few attempts here: Temporal retries the activity (with backoff, counted) for as long as it takes.
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000, throwOnRequestTimeout: true },
    ...(store.endpoint && { endpoint: store.endpoint, forcePathStyle: true }),
    ...(store.endpoint && !process.env.AWS_ACCESS_KEY_ID && { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  });
}

export interface AuditWriter {
  /** Writes the event (S3 and the log line) and returns it; throws when the store failed. */
  write(record: AuditRecord): Promise<AuditEvent>;
  /** False when the tenant has no audit store (its events go to the log only). */
  hasStore(tenantId: string): boolean;
  /** Every event of the tenant's day (YYYY-MM-DD): the day's objects listed, then fetched. */
  readDay(tenantId: string, day: string): Promise<AuditEvent[]>;
}

/** Objects fetched at once while reading a day. */
const READ_CONCURRENCY = 16;

export function createAuditWriter(config: AppConfig, logger: Logger = createLogger('audit')): AuditWriter {
  const clients = new Map<string, S3Client>();
  const storeOf = (tenantId: string) => {
    const store = tenantById(config, tenantId)?.audit?.s3;
    if (!store) return undefined;
    let s3 = clients.get(tenantId);
    if (!s3) clients.set(tenantId, (s3 = auditS3Client(store)));
    return { store, s3 };
  };
  return {
    hasStore: (tenantId) => storeOf(tenantId) !== undefined,
    async readDay(tenantId, day) {
      const target = storeOf(tenantId);
      if (!target) return [];
      const { store, s3 } = target;
      const keys: string[] = [];
      for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: store.bucket, Prefix: auditDayPrefix(store, tenantId, day) })) {
        for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json')) keys.push(o.Key);
      }
      const events: AuditEvent[] = [];
      for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
        const batch = await Promise.all(
          keys.slice(i, i + READ_CONCURRENCY).map(async (Key) => {
            const object = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key }));
            return JSON.parse(await object.Body!.transformToString()) as AuditEvent;
          }),
        );
        events.push(...batch);
      }
      return events;
    },
    async write(record) {
      const event = auditEventOf(record);
      const target = storeOf(event.tenant_id);
      if (target) {
        const { store, s3 } = target;
        const lockDays = store.object_lock_days;
        try {
          await s3.send(
            new PutObjectCommand({
              Bucket: store.bucket,
              Key: auditKey(store, event),
              Body: JSON.stringify(event),
              ContentType: 'application/json',
              // Written once: a rewrite of the same event (a retry after a lost answer) changes nothing.
              IfNoneMatch: '*',
              ...(store.kms_key_id && { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: store.kms_key_id }),
              // From the event's own time, so a rewrite asks for the same retention.
              ...(lockDays && { ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date(Date.parse(event.at) + lockDays * 86_400_000) }),
            }),
          );
        } catch (err) {
          // Already there: an earlier attempt wrote it (its answer was lost).
          if (!(err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 412 || err.name === 'PreconditionFailed'))) throw err;
        }
      }
      logger.info({ audit: true, ...event }, `audit: ${event.event}`);
      return event;
    },
  };
}

/**
 * Start-up: a tenant with object_lock_days needs a bucket with Object Lock on, or its events would
 * be written unlocked (or refused). Throws a ConfigError that says which tenant and bucket.
 */
export async function checkAuditStores(config: AppConfig): Promise<void> {
  for (const tenant of config.tenants) {
    const store = tenant.audit?.s3;
    if (!store?.object_lock_days) continue;
    const s3 = auditS3Client(store);
    try {
      const { ObjectLockConfiguration } = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: store.bucket }));
      if (ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') throw new Error('Object Lock is not enabled');
    } catch (err) {
      throw new ConfigError(
        `tenant ${tenant.name} (${tenant.id}): audit.s3.object_lock_days is set, but bucket ${store.bucket} has no Object Lock ` +
          `(${(err as Error).name}: ${(err as Error).message}); create the bucket with Object Lock enabled, or remove object_lock_days`,
      );
    } finally {
      s3.destroy();
    }
  }
}

/**
 * How long a worker's audit write waits at most for its deletions to pause (and never more than
 * half of what its activity attempt has left: 15 s for the auditing activity's 30, about 45 s for
 * an expiry's `endAccess`, whose attempt has two minutes): in a burst of expiries the writes come
 * after the removals, and a grant shows `expired` up to this much later. On PostgreSQL a burst of
 * 1,000 outlasted 15 s, and the writes met its last deletions.
 */
const AUDIT_YIELD_MAX_MS = 45_000;
/** The worker's audit writes in flight at once: those that waited out a burst go in turn, not all together (which timed out). */
const AUDIT_WRITES_AT_ONCE = 16;

/** What is left of the activity attempt's start-to-close time (from when it was scheduled, so less than that). */
function attemptTimeLeftMs(): number {
  const info = activityContext()?.info;
  return info ? info.currentAttemptScheduledTimestampMs + info.startToCloseTimeoutMs - Date.now() : Infinity;
}

/** The worker's activity: retried by Temporal without limit; each failed attempt is counted. Each write yields to the worker's deletions first. */
export function createAuditActivities(config: AppConfig, { metrics, logger }: { metrics?: { auditWriteFailures: { inc(): void } }; logger?: Logger } = {}) {
  const writer = createAuditWriter(config, logger);
  const inTurn = semaphore(AUDIT_WRITES_AT_ONCE);
  const write = async (record: AuditRecord): Promise<void> => {
    await afterDeletions(Math.min(AUDIT_YIELD_MAX_MS, attemptTimeLeftMs() / 2));
    try {
      await inTurn(() => writer.write(record));
    } catch (err) {
      metrics?.auditWriteFailures.inc();
      throw err;
    }
  };
  return {
    writeAuditEvent: write,
    /** Several at once: a grant's batch of the events made while the one before was written. */
    async writeAuditEvents(records: AuditRecord[]): Promise<void> {
      await Promise.all(records.map(write));
    },
  };
}
export type AuditActivities = ReturnType<typeof createAuditActivities>;
