// Opsgenie: the schedules the person is on call for now, from who is on call across all
// schedules (one call), each schedule's timeline for when their period ends, and the
// escalations for each schedule's level. Someone on call nowhere costs one more call, to tell a
// user who is not on call from a username Opsgenie does not know. Users are known by username,
// which is their email.
//
// Services: [] always. Opsgenie's services belong to teams, but the Service API (Standard and
// Enterprise plans only) lists the whole account's services, so finding a schedule's owner
// team's services costs the schedule, then every page of services: policies on an Opsgenie
// tenant decide on schedules.
import type { OncallConfig } from '../config';
import { getJson, providerUrl } from './http';
import { emailOf } from './person';
import type { OncallEntry, OncallProvider, ProviderFactory } from './provider';

/** How far ahead a timeline is read: a period reaching past it is said to end there (earlier, never later, than it does). */
const TIMELINE = [['interval', '1'], ['intervalUnit', 'months']] as const;

interface ScheduleRef {
  id: string;
  name: string;
  enabled?: boolean;
}
interface OnCalls {
  data: { _parent: ScheduleRef; onCallRecipients?: string[] }[];
}
interface Timeline {
  data: {
    endDate: string;
    finalTimeline?: { rotations?: { periods?: { startDate: string; endDate: string; recipient?: { type?: string; name?: string } }[] }[] };
  };
}
interface Escalations {
  data: { rules?: { recipient?: { type?: string; id?: string } }[] }[];
}

export const opsgenieSource: ProviderFactory<OncallConfig, OncallProvider> = (config) => {
  const base = config.url ?? 'https://api.opsgenie.com';
  const headers = { authorization: `GenieKey ${config.secret}` };
  const get = <T>(path: string, query: readonly (readonly [string, string])[], signal: AbortSignal, notFound?: () => T) =>
    getJson<T>(providerUrl(base, path, query), { headers, signal }, notFound);

  /** When the person's period that holds `now` ends, through the periods of theirs that follow on without a gap. */
  const endOf = ({ data }: Timeline, username: string, now: number): string => {
    const theirs = (data.finalTimeline?.rotations ?? [])
      .flatMap((r) => r.periods ?? [])
      .filter((p) => p.recipient?.type === 'user' && p.recipient.name?.toLowerCase() === username)
      .map((p) => ({ start: Date.parse(p.startDate), end: Date.parse(p.endDate) }));
    let end = now;
    for (let next; (next = theirs.find((p) => p.start <= end && p.end > end)); ) end = next.end;
    // Nothing of theirs on the timeline though on call (a team's rotation): no end is known, so the
    // shift is taken to end now (access tied to it goes to a reviewer), never a month out.
    const windowEnd = Date.parse(data.endDate);
    return new Date(end > windowEnd ? windowEnd : end).toISOString();
  };

  /**
   * The level of a schedule: the position (1 first) of the first rule that notifies it, in the
   * escalation that reaches it soonest; 1 when no escalation names it, as an alert routed to the
   * schedule reaches its on-call participant first. Rules naming users or teams directly are not
   * read: the person is on call here by a schedule.
   */
  const levelOf = ({ data }: Escalations, scheduleId: string): number => {
    const positions = data.map((e) => (e.rules ?? []).findIndex((r) => r.recipient?.type === 'schedule' && r.recipient.id === scheduleId)).filter((i) => i >= 0);
    return positions.length > 0 ? Math.min(...positions) + 1 : 1;
  };

  return {
    async oncallNow(person, signal) {
      const email = emailOf(person);
      if (email === undefined) return { unknownPerson: person.id };
      const username = email.toLowerCase();
      const now = Date.now();
      const date = new Date(now).toISOString();
      const onCalls = await get<OnCalls>('/v2/schedules/on-calls', [['flat', 'true'], ['date', date]], signal);
      const schedules = onCalls.data
        .filter((s) => s._parent.enabled !== false && (s.onCallRecipients ?? []).some((r) => r.toLowerCase() === username))
        .map((s) => s._parent);
      if (schedules.length === 0) {
        const user = await get<{ data: unknown } | null>(`/v2/users/${encodeURIComponent(email)}`, [], signal, () => null);
        return user === null ? { unknownPerson: email } : [];
      }
      const [escalations, ...timelines] = await Promise.all([
        get<Escalations>('/v2/escalations', [], signal),
        ...schedules.map((s) => get<Timeline>(`/v2/schedules/${encodeURIComponent(s.id)}/timeline`, [['identifierType', 'id'], ...TIMELINE, ['date', date]], signal)),
      ]);
      return schedules.map(
        (s, i): OncallEntry => ({
          schedule: { id: s.id, name: s.name },
          services: [],
          level: levelOf(escalations as Escalations, s.id),
          end: endOf(timelines[i] as Timeline, username, now),
        }),
      );
    },
  };
};
