// What every provider's client is (one small client per provider behind one interface): the
// facts it turns its answer into are FactSources' (index.ts), which gives it a deadline and a cache.
import type { OncallConfig, TicketsConfig } from '../config';
import type { Named, TicketStatusCategory } from '../domain/facts';

/** Whom a source is asked about: the requester as their token names them. */
export interface Person {
  id: string;
  email?: string;
}

/** One way a person is on call now. */
export interface OncallEntry {
  /** The schedule that puts them on call; absent when an escalation rule names them directly. */
  schedule?: Named;
  /** The services this escalation reaches (PagerDuty: its escalation policy's services; Opsgenie: its team's services). */
  services: Named[];
  /** Escalation level, 1 first. */
  level: number;
  /** When this entry ends (ISO 8601, UTC); null when it does not end. */
  end: string | null;
}

export interface OncallProvider {
  /**
   * The person's on-call entries now ([] when not on call), or `unknownPerson` with what was
   * looked for when the provider has no such user. Throws a SourceError when the provider does
   * not answer usefully; gives up when `signal` aborts.
   */
  oncallNow(person: Person, signal: AbortSignal): Promise<OncallEntry[] | { unknownPerson: string }>;
}

/** A ticket as its provider describes it. */
export interface TicketRecord {
  key: string;
  /** Jira's issue type name; ServiceNow's table ("change_request", "incident"). */
  type: string;
  statusCategory: TicketStatusCategory;
  /** The provider's own status name. */
  statusName: string;
  priority: string | null;
  /** Emails (any case) and provider ids of the assignee and the reporter (ServiceNow: opened_by). */
  assignee: { email?: string; id?: string } | null;
  reporter: { email?: string; id?: string } | null;
  changeWindow: { start: string; end: string } | null;
}

export interface TicketProvider {
  /** The ticket's key pattern (the config's, else the provider's default). */
  pattern: RegExp;
  /** The ticket, null when the provider has none by that key. Throws a SourceError otherwise. */
  ticket(key: string, signal: AbortSignal): Promise<TicketRecord | null>;
}

/** What a provider's client is made from: the tenant's config, its secret read, and how it authenticates. */
export type ProviderFactory<C extends OncallConfig | TicketsConfig, P> = (config: C & { secret: string }) => P;

