// Per-principal rate limits: token buckets held in this API process (each API process counts on
// its own, so N processes allow up to N times the configured rate).
import { AccessError } from '../domain/errors';
import type { TenantConfig } from '../config';
import type { Principal } from '../domain/grant';

/** Sign-in lookups per client address: a person signs in a few times a day. */
export const SIGN_IN_LOOKUPS_PER_MINUTE = 120;
export const SIGN_IN_LOOKUPS_BURST = 60;
/** Of which lookups that find no sign-in. */
export const SIGN_IN_MISSES_PER_MINUTE = 30;
export const SIGN_IN_MISSES_BURST = 10;

/** An ensure of up to this many entitlements (the most one call held before 500 were allowed) costs one write. */
export const ENTITLEMENTS_PER_WRITE = 20;

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by key; past `maxKeys` the least recently used is forgotten (it refills meanwhile anyway). */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys = 10_000) {}

  /** Takes `cost` tokens (at most `burst`) from `key`'s bucket: 0 if it held them, else the seconds until it will. */
  take(key: string, perMinute: number, burst: number, now = performance.now(), cost = 1): number {
    const perMs = perMinute / 60_000;
    const last = this.buckets.get(key);
    let tokens = last ? Math.min(burst, last.tokens + (now - last.at) * perMs) : burst;
    const taken = Math.min(cost, burst);
    let waitSeconds = 0;
    if (tokens >= taken) tokens -= taken;
    else waitSeconds = Math.max(1, Math.ceil((taken - tokens) / perMs / 1000));
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
  private readonly signInMisses = new RateLimiter();

  /**
   * `entitlements`: what a write asks about. An ensure costs a write per ENTITLEMENTS_PER_WRITE of
   * them (at most the burst): one of 500 makes 500 workflow calls, and must not cost what one of
   * one does.
   */
  take({ tenant, principal }: { tenant: TenantConfig; principal: Pick<Principal, 'id'> }, kind: 'read' | 'write', entitlements = 1): void {
    const key = `${tenant.id}\n${principal.id}`;
    const g = tenant.grants;
    if (kind === 'write') {
      const cost = Math.max(1, Math.ceil(entitlements / ENTITLEMENTS_PER_WRITE));
      limit(this.writes.take(key, g.ensure_rate_per_minute, g.ensure_burst, performance.now(), cost), 'calls that change access (ensure, review, revoke)', 'per principal', {
        ensure_rate_per_minute: g.ensure_rate_per_minute,
        ensure_burst: g.ensure_burst,
      });
    } else {
      limit(this.reads.take(key, g.read_rate_per_minute, g.read_burst), 'reads', 'per principal', { read_rate_per_minute: g.read_rate_per_minute, read_burst: g.read_burst });
    }
  }

  /**
   * The sign-in lookup answers without a token: a bucket per client address for every lookup, and
   * a stricter one for lookups that find no sign-in (an unknown tenant id, or a tenant without
   * one: the same answer), so that trying ids is slow. One message for both.
   */
  takeSignIn(clientAddress: string, found: boolean): void {
    const wait = Math.max(
      this.signIns.take(clientAddress, SIGN_IN_LOOKUPS_PER_MINUTE, SIGN_IN_LOOKUPS_BURST),
      found ? 0 : this.signInMisses.take(clientAddress, SIGN_IN_MISSES_PER_MINUTE, SIGN_IN_MISSES_BURST),
    );
    if (wait === 0) return;
    throw new AccessError('rate_limited', `Too many sign-in lookups from this address. Try again in ${wait} s.`, { details: { retry_after_seconds: wait } }, wait);
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
