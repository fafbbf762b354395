// The outside sources an ensure asks before policies decide (issue 40): who is on call
// (PagerDuty, Opsgenie) and what the named ticket says (Jira, ServiceNow). One small client per
// provider behind one interface; FactSources gives each its deadline, its cache and its metric,
// and turns a provider that does not answer into an "unknown" fact, never an error: the API
// never waits on a provider longer than the tenant's timeout_ms, and policies decide what
// unknown means.
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { OncallConfig, TenantConfig, TicketsConfig } from '../config';
import { type Named, NO_ONCALL_SOURCE, NO_TICKET_SOURCE, type Facts, type OncallFacts, type TicketFacts } from '../domain/facts';
import type { Justification } from '../domain/grant';
import { SourceError } from './http';
import type { OncallEntry, OncallProvider, Person, ProviderFactory, TicketProvider, TicketRecord } from './provider';
import { jiraSource } from './jira';
import { opsgenieSource } from './opsgenie';
import { pagerdutySource } from './pagerduty';
import { servicenowSource } from './servicenow';

export type { OncallEntry, OncallProvider, Person, ProviderFactory, TicketProvider, TicketRecord } from './provider';

export const ONCALL_PROVIDERS: Record<OncallConfig['source'], ProviderFactory<OncallConfig, OncallProvider>> = {
  pagerduty: pagerdutySource,
  opsgenie: opsgenieSource,
};
export const TICKET_PROVIDERS: Record<TicketsConfig['source'], ProviderFactory<TicketsConfig, TicketProvider>> = {
  jira: jiraSource,
  servicenow: servicenowSource,
};

/** Reads a source's secret: its file (trailing newline dropped) or its environment variable. */
export function secretOf(source: { token_file?: string; token_env?: string }): string {
  return source.token_file ? readFileSync(source.token_file, 'utf8').trim() : (process.env[source.token_env!] ?? '');
}

/** Counts each lookup's outcome (cached, answered, unknown), with how long an asked source took. */
export type FactLookups = (labels: { source: string; outcome: string }, seconds?: number) => void;

/** How long an unknown answer is kept: a source that is down is asked again soon, not by every call. */
const UNKNOWN_KEPT_MS = 5_000;

/** One tenant's sources, with their caches. */
class TenantSources {
  private readonly oncall?: { config: OncallConfig; provider: OncallProvider; cache: LRUCache<string, OncallFacts> };
  private readonly tickets?: { config: TicketsConfig; provider: TicketProvider; cache: LRUCache<string, TicketRecord | 'missing' | SourceUnknown> };
  /** Until when a source asked to be left alone (429 Retry-After). */
  private readonly quietUntil = new Map<string, number>();
  /** The question in flight for each source and key: calls that wait for the same answer share it. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    tenant: TenantConfig,
    private readonly lookups: FactLookups,
  ) {
    if (tenant.oncall) {
      const config = tenant.oncall;
      const provider = ONCALL_PROVIDERS[config.source]({ ...config, secret: secretOf(config) });
      this.oncall = { config, provider, cache: this.cacheOf(config) };
    }
    if (tenant.tickets) {
      const config = tenant.tickets;
      const provider = TICKET_PROVIDERS[config.source]({ ...config, secret: secretOf(config) });
      this.tickets = { config, provider, cache: this.cacheOf(config) };
    }
  }

  /** An answer is kept cache_seconds (an unknown one less: see `ask`). */
  private cacheOf<V extends {}>(config: { cache_seconds: number }) {
    return new LRUCache<string, V>({ max: 10_000, ttl: Math.max(1, config.cache_seconds * 1000) });
  }

  /**
   * The answer for `key`, kept or asked of the provider within the deadline; one question in
   * flight per key however many calls wait for it.
   */
  private async ask<V extends {}>(
    source: string,
    config: { timeout_ms: number; cache_seconds: number },
    cache: LRUCache<string, V>,
    key: string,
    fetch: (signal: AbortSignal) => Promise<V>,
    unknown: (note: string) => V,
  ): Promise<V> {
    const kept = cache.get(key);
    if (kept !== undefined) {
      this.lookups({ source, outcome: 'cached' });
      return kept;
    }
    const quiet = this.quietUntil.get(source) ?? 0;
    if (Date.now() < quiet) {
      this.lookups({ source, outcome: 'unknown' });
      return unknown(`${source} asked to be left alone (rate limited) until ${new Date(quiet).toISOString()}`);
    }
    const flightKey = `${source}\u0000${key}`;
    const going = this.inFlight.get(flightKey) as Promise<V> | undefined;
    if (going) return going;
    const started = performance.now();
    const asking = (async () => {
      const signal = AbortSignal.timeout(config.timeout_ms);
      try {
        const value = await Promise.race([
          fetch(signal),
          // A provider that ignores the signal still does not hold the call past its deadline.
          new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new SourceError(`no answer within ${config.timeout_ms} ms`)), { once: true })),
        ]);
        cache.set(key, value);
        this.lookups({ source, outcome: 'answered' }, (performance.now() - started) / 1000);
        return value;
      } catch (err) {
        const message = err instanceof SourceError ? err.message : `failed: ${(err as Error).message}`;
        // At most a minute: a provider's long Retry-After (or a flood of lookups that earned it) does not blind the tenant for long.
        if (err instanceof SourceError && err.retryAfterSeconds !== undefined) this.quietUntil.set(source, Date.now() + Math.min(60, err.retryAfterSeconds) * 1000);
        const value = unknown(`${source} did not answer: ${message}`);
        cache.set(key, value, { ttl: Math.min(UNKNOWN_KEPT_MS, Math.max(1, config.cache_seconds * 1000)) });
        this.lookups({ source, outcome: 'unknown' }, (performance.now() - started) / 1000);
        return value;
      } finally {
        this.inFlight.delete(flightKey);
      }
    })();
    this.inFlight.set(flightKey, asking);
    return asking;
  }

  async facts(person: Person, justification: Justification): Promise<Facts> {
    const [oncall, ticket] = await Promise.all([this.oncallFacts(person), this.ticketFacts(person, justification)]);
    return { oncall, ticket };
  }

  private async oncallFacts(person: Person): Promise<OncallFacts> {
    if (!this.oncall) return NO_ONCALL_SOURCE;
    const { config, provider, cache } = this.oncall;
    const source = config.source;
    return this.ask(
      source,
      config,
      cache,
      (person.email ?? person.id).toLowerCase(),
      async (signal) => oncallFactsOf(source, await provider.oncallNow(person, signal)),
      (note) => ({ ...NO_ONCALL_SOURCE, source, note }),
    );
  }

  private async ticketFacts(person: Person, justification: Justification): Promise<TicketFacts> {
    if (!this.tickets) return NO_TICKET_SOURCE;
    const { config, provider, cache } = this.tickets;
    const source = config.source;
    const key = ticketKeyIn(provider.pattern, justification);
    const none: TicketFacts = { ...NO_TICKET_SOURCE, source, note: `no ticket matching ${provider.pattern.source} in the reason or the attachments` };
    if (key === undefined) return none;
    const record = await this.ask<TicketRecord | 'missing' | SourceUnknown>(
      source,
      config,
      cache,
      key,
      async (signal) => (await provider.ticket(key, signal)) ?? 'missing',
      (note) => ({ unknown: note }),
    );
    if (record === 'missing') return { ...none, status: 'not_found', key, note: `${source} has no ticket ${key}` };
    if ('unknown' in record) return { ...none, status: 'unknown', key, note: record.unknown };
    return ticketFactsOf(source, record, person);
  }
}

type SourceUnknown = { unknown: string };

/** The first ticket key in the attachments, then the reason. */
export function ticketKeyIn(pattern: RegExp, { reason, attachments = [] }: Justification): string | undefined {
  const global = new RegExp(pattern.source, pattern.flags.replace('g', ''));
  for (const text of [...attachments, reason ?? '']) {
    const found = global.exec(text);
    if (found) return found[0];
  }
  return undefined;
}

export function oncallFactsOf(source: string, answer: OncallEntry[] | { unknownPerson: string }): OncallFacts {
  if (!Array.isArray(answer)) return { status: 'not_on_call', source, schedules: [], services: [], level: null, until: null, note: `${source} has no user ${answer.unknownPerson}` };
  if (answer.length === 0) return { status: 'not_on_call', source, schedules: [], services: [], level: null, until: null };
  const level = Math.min(...answer.map((e) => e.level));
  // Only what reaches them at that level: `level <= 1 && services.contains(...)` must hold of one
  // shift, not of a level-1 shift for one service and a level-3 one for another.
  const closest = answer.filter((e) => e.level === level);
  const ends = closest.filter((e) => e.end !== null).map((e) => e.end!);
  const distinct = (items: Named[]) => [...new Map(items.map((i) => [i.id, i])).values()].sort((a, b) => a.name.localeCompare(b.name));
  return {
    status: 'on_call',
    source,
    schedules: distinct(closest.flatMap((e) => (e.schedule ? [e.schedule] : []))),
    services: distinct(closest.flatMap((e) => e.services)),
    level,
    // The earliest end at that level: access tied to the shift ends with the first shift that ends.
    until: ends.length > 0 ? ends.sort()[0] : null,
  };
}

export function ticketFactsOf(source: string, record: TicketRecord, person: Person): TicketFacts {
  const isPerson = (who: TicketRecord['assignee']) =>
    who !== null && ((who.email !== undefined && person.email !== undefined && who.email.toLowerCase() === person.email.toLowerCase()) || (who.id !== undefined && who.id === person.id));
  return {
    status: 'found',
    source,
    key: record.key,
    type: record.type,
    status_category: record.statusCategory,
    status_name: record.statusName,
    priority: record.priority,
    requester_is_assignee: isPerson(record.assignee),
    requester_is_reporter: isPerson(record.reporter),
    change_window: record.changeWindow,
  };
}

/** Every tenant's sources, made at start-up: a secret that cannot be read stops the API there. */
export class FactSources {
  private readonly byTenant = new Map<string, TenantSources>();

  constructor(tenants: TenantConfig[], lookups: FactLookups = () => {}) {
    for (const tenant of tenants) if (tenant.oncall || tenant.tickets) this.byTenant.set(tenant.id, new TenantSources(tenant, lookups));
  }

  /** What the tenant's sources say now about the person and the ticket the justification names (each within its deadline). */
  async facts(tenantId: string, person: Person, justification: Justification): Promise<Facts> {
    return (await this.byTenant.get(tenantId)?.facts(person, justification)) ?? {};
  }
}
