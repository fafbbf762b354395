// Per-principal rate limits: token buckets held in this API process (each API process counts on
// its own, so N processes allow up to N times the configured rate).
import { AccessError } from '../domain/errors';
import type { TenantConfig } from '../config';
import type { Principal } from '../domain/grant';

export const UNKNOWN_TENANT_LOOKUPS_PER_MINUTE = 30;
export const UNKNOWN_TENANT_LOOKUPS_BURST = 10;

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by key; past `maxKeys` the least recently used is forgotten (it refills meanwhile anyway). */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys = 10_000) {}

  /** Takes a token from `key`'s bucket: 0 if there was one, else the seconds until there is. */
  take(key: string, perMinute: number, burst: number, now = performance.now()): number {
    const perMs = perMinute / 60_000;
    const last = this.buckets.get(key);
    let tokens = last ? Math.min(burst, last.tokens + (now - last.at) * perMs) : burst;
    let waitSeconds = 0;
    if (tokens >= 1) tokens -= 1;
    else waitSeconds = Math.max(1, Math.ceil((1 - tokens) / perMs / 1000));
    // Re-inserted, so the map's order is least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, { tokens, at: now });
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return waitSeconds;
  }
}

/**
 * What one principal may call: writes (ensure, review, revoke) and reads (every GET) each from a
 * bucket of their own, so a loop of reads never costs the principal an ensure, nor the reverse.
 * Slack's clicks come signed by the tenant's Slack app, not by a principal: a bucket per Slack user
 * at the writes' rate, so one reviewer's clicks do not hold up another's, under a tenant-wide
 * ceiling (`notifications.slack.clicks_per_minute`). Past any of them, 429 `rate_limited` with when
 * to try again.
 */
export class CallRates {
  private readonly writes = new RateLimiter();
  private readonly reads = new RateLimiter();
  private readonly slackClicks = new RateLimiter();
  private readonly slackTenants = new RateLimiter();
  private readonly signIns = new RateLimiter();

  take({ tenant, principal }: { tenant: TenantConfig; principal: Pick<Principal, 'id'> }, kind: 'read' | 'write'): void {
    const key = `${tenant.id}\n${principal.id}`;
    const g = tenant.grants;
    if (kind === 'write') {
      limit(this.writes.take(key, g.ensure_rate_per_minute, g.ensure_burst), 'calls that change access (ensure, review, revoke)', 'per principal', {
        ensure_rate_per_minute: g.ensure_rate_per_minute,
        ensure_burst: g.ensure_burst,
      });
    } else {
      limit(this.reads.take(key, g.read_rate_per_minute, g.read_burst), 'reads', 'per principal', { read_rate_per_minute: g.read_rate_per_minute, read_burst: g.read_burst });
    }
  }

  /**
   * The sign-in discovery route answers without a token: a bucket per client address and tenant,
   * at the tenant's read rate; for a tenant id the service does not know, a small one, so that
   * trying ids in a loop is slow.
   */
  takeSignIn(clientAddress: string, tenantId: string, tenant: TenantConfig | undefined): void {
    const key = `${clientAddress}\n${tenantId}`;
    if (tenant) {
      const g = tenant.grants;
      limit(this.signIns.take(key, g.read_rate_per_minute, g.read_burst), 'sign-in lookups', 'per client address', {
        read_rate_per_minute: g.read_rate_per_minute,
        read_burst: g.read_burst,
      });
    } else {
      limit(this.signIns.take(key, UNKNOWN_TENANT_LOOKUPS_PER_MINUTE, UNKNOWN_TENANT_LOOKUPS_BURST), 'lookups of unknown tenants', 'per client address', {
        rate_per_minute: UNKNOWN_TENANT_LOOKUPS_PER_MINUTE,
        burst: UNKNOWN_TENANT_LOOKUPS_BURST,
      });
    }
  }

  /** `slackUser`: the clicking user's Slack id, from the signed payload. */
  takeSlackClick(tenant: TenantConfig, slackUser: string): void {
    const g = tenant.grants;
    limit(this.slackClicks.take(`${tenant.id}\n${slackUser}`, g.ensure_rate_per_minute, g.ensure_burst), 'Slack clicks', 'per Slack user', {
      ensure_rate_per_minute: g.ensure_rate_per_minute,
      ensure_burst: g.ensure_burst,
    });
    const { clicks_per_minute, clicks_burst } = tenant.notifications.slack!;
    limit(this.slackTenants.take(tenant.id, clicks_per_minute, clicks_burst), 'Slack clicks', 'per tenant', { clicks_per_minute, clicks_burst });
  }
}

function limit(waitSeconds: number, what: string, per: string, settings: Record<string, number>): void {
  if (waitSeconds === 0) return;
  const [perMinute, burst] = Object.values(settings);
  throw new AccessError(
    'rate_limited',
    `Too many ${what}: at most ${perMinute} a minute (${burst} at once) ${per}. Try again in ${waitSeconds} s.`,
    { details: { ...settings, retry_after_seconds: waitSeconds } },
    waitSeconds,
  );
}
