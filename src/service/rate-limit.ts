// Per-principal ensure rate limits: token buckets held in this API process (each API process
// counts on its own, so N processes allow up to N times the configured rate).

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
