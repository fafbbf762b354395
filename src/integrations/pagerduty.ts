// PagerDuty (REST API v2): the person's on-call entries now, each with its schedule, its
// escalation level and its escalation policy's services. Two calls when nothing is cached: the
// user by email, then their on-calls with the escalation policies included (which carry the
// policy's services); a policy included without its services is read on its own.
import type { OncallConfig } from '../config';
import { getJson, providerUrl } from './http';
import { emailOf } from './person';
import type { OncallEntry, OncallProvider, ProviderFactory } from './provider';

/** PagerDuty's largest page: the fewest calls. */
const PAGE_LIMIT = 100;

interface Reference {
  id: string;
  summary?: string;
}
interface Policy extends Reference {
  services?: Reference[];
}
interface Oncall {
  escalation_policy: Policy;
  schedule: Reference | null;
  escalation_level: number;
  end?: string | null;
}
type Page<K extends string, T> = { [key in K]?: T[] } & { more?: boolean };

export const pagerdutySource: ProviderFactory<OncallConfig, OncallProvider> = (config) => {
  const base = config.url ?? 'https://api.pagerduty.com';
  const headers = { authorization: `Token token=${config.secret}`, accept: 'application/vnd.pagerduty+json;version=2' };
  const get = <T>(path: string, query: [string, string][], signal: AbortSignal) => getJson<T>(providerUrl(base, path, query), { headers, signal });
  /** Each page's items, following `more` (offset by what came, whatever limit the answer says). */
  async function* paged<K extends string, T>(path: string, key: K, query: [string, string][], signal: AbortSignal) {
    for (let offset = 0; ; ) {
      const page = await get<Page<K, T>>(path, [...query, ['limit', String(PAGE_LIMIT)], ['offset', String(offset)]], signal);
      const items = page[key] ?? [];
      yield items;
      if (!page.more || items.length === 0) return;
      offset += items.length;
    }
  }
  const name = (ref: Reference) => ref.summary ?? ref.id;

  return {
    async oncallNow(person, signal) {
      const email = emailOf(person);
      if (email === undefined) return { unknownPerson: person.id };
      // The query matches names and emails in part: only the exact email is the person.
      let userId: string | undefined;
      for await (const users of paged<'users', { id: string; email?: string }>('/users', 'users', [['query', email]], signal)) {
        userId = users.find((u) => u.email?.toLowerCase() === email.toLowerCase())?.id;
        if (userId) break;
      }
      if (userId === undefined) return { unknownPerson: email };

      // since = until = now: only the entries that hold now, not the next shifts.
      const now = new Date().toISOString();
      const oncalls: Oncall[] = [];
      const query: [string, string][] = [['user_ids[]', userId], ['time_zone', 'UTC'], ['include[]', 'escalation_policies'], ['since', now], ['until', now]];
      for await (const page of paged<'oncalls', Oncall>('/oncalls', 'oncalls', query, signal)) oncalls.push(...page);

      const missing = [...new Set(oncalls.filter((o) => !o.escalation_policy.services).map((o) => o.escalation_policy.id))];
      const read = await Promise.all(missing.map((id) => get<{ escalation_policy: Policy }>(`/escalation_policies/${encodeURIComponent(id)}`, [], signal)));
      const services = new Map(read.map(({ escalation_policy: p }) => [p.id, p.services ?? []]));

      return oncalls.map(
        (o): OncallEntry => ({
          // No schedule: an escalation rule names the person directly.
          ...(o.schedule ? { schedule: { id: o.schedule.id, name: name(o.schedule) } } : {}),
          services: (o.escalation_policy.services ?? services.get(o.escalation_policy.id) ?? []).map((s) => ({ id: s.id, name: name(s) })),
          level: o.escalation_level,
          end: o.end ? new Date(o.end).toISOString() : null,
        }),
      );
    },
  };
};
