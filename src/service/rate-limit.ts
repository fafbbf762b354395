// Per-principal rate limits: token buckets held in this API process (each API process counts on
// its own, so N processes allow up to N times the configured rate).
import { AccessError } from '../domain/errors';
import type { Caller } from './runs';

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
 * Past either, 429 `rate_limited` with when to try again.
 */
export class CallRates {
  private readonly writes = new RateLimiter();
  private readonly reads = new RateLimiter();

  take({ tenant, principal }: Caller, kind: 'read' | 'write'): void {
    const key = `${tenant.id}\n${principal.id}`;
    const g = tenant.grants;
    const [perMinute, burst] = kind === 'write' ? [g.ensure_rate_per_minute, g.ensure_burst] : [g.read_rate_per_minute, g.read_burst];
    const waitSeconds = (kind === 'write' ? this.writes : this.reads).take(key, perMinute, burst);
    if (waitSeconds === 0) return;
    const [what, settings] =
      kind === 'write'
        ? ['calls that change access (ensure, review, revoke)', { ensure_rate_per_minute: perMinute, ensure_burst: burst }]
        : ['reads', { read_rate_per_minute: perMinute, read_burst: burst }];
    throw new AccessError(
      'rate_limited',
      `Too many ${what}: at most ${perMinute} a minute (${burst} at once) per principal. Try again in ${waitSeconds} s.`,
      { details: { ...settings, retry_after_seconds: waitSeconds } },
      waitSeconds,
    );
  }
}
