// A local stand-in for Opsgenie's REST API, as much of it as the on-call source reads:
// `GET /v2/schedules/on-calls`, `GET /v2/schedules/{id}/timeline`, `GET /v2/escalations` and
// `GET /v2/users/{username}`, behind `Authorization: GenieKey <apiKey>`. Opsgenie has no level on
// a schedule: an entry at level N is a schedule that an escalation reaches with its Nth rule (the
// rules before it notify the service's team). An entry's service is not served: the source does
// not read Opsgenie's services. An entry without a schedule is not representable and not served.
import { randomUUID } from 'node:crypto';
import { Ids, startFakeOncallServer, type FakeOncall, type FakeOncallServer, type Reply } from './oncall';

const DAY_MS = 86_400_000;

export function startFakeOpsgenie(apiKey: string): Promise<FakeOncallServer> {
  const userIds = new Ids((n) => `u-${n}`);
  const scheduleIds = new Ids((n) => `s-${n}`);
  const teamIds = new Ids((n) => `t-${n}`);
  const escalationIds = new Ids((n) => `e-${n}`);
  const started = Date.now() - 3600_000;

  const ok = (data: unknown): Reply => ({ status: 200, body: { data, took: 0.01, requestId: randomUUID() } });
  const notFound = (message: string): Reply => ({ status: 404, body: { message, took: 0.01, requestId: randomUUID() } });
  /** Who is on call for each schedule now, by schedule name. */
  const bySchedule = (people: ReadonlyMap<string, FakeOncall[]>) => {
    const schedules = new Map<string, { email: string; entry: FakeOncall }[]>();
    for (const [email, entries] of people)
      for (const entry of entries) if (entry.schedule !== '') schedules.set(entry.schedule, [...(schedules.get(entry.schedule) ?? []), { email, entry }]);
    return schedules;
  };
  const parent = (name: string) => ({ id: scheduleIds.of(name), name, enabled: true });
  const recipient = (email: string) => ({ id: userIds.of(email), type: 'user', name: email });

  return startFakeOncallServer({
    authorized: (req) => req.headers.authorization === `GenieKey ${apiKey}`,
    error: (_status, message) => ({ message, took: 0.001, requestId: randomUUID() }),
    answer(url, people) {
      const path = url.pathname;
      if (path === '/v2/schedules/on-calls') {
        const flat = url.searchParams.get('flat') === 'true';
        return ok(
          [...bySchedule(people)].map(([name, on]) =>
            flat ? { _parent: parent(name), onCallRecipients: on.map((o) => o.email) } : { _parent: parent(name), onCallParticipants: on.map((o) => recipient(o.email)) },
          ),
        );
      }
      const timeline = /^\/v2\/schedules\/([^/]+)\/timeline$/.exec(path);
      if (timeline) {
        const name = [...bySchedule(people).keys()].find((n) => scheduleIds.of(n) === decodeURIComponent(timeline[1]));
        if (name === undefined) return notFound(`No schedule exists with id [${timeline[1]}]`);
        const start = url.searchParams.has('date') ? Date.parse(url.searchParams.get('date')!) : Date.now();
        const interval = Number(url.searchParams.get('interval') ?? 1);
        const unitDays = { days: 1, weeks: 7, months: 30 }[url.searchParams.get('intervalUnit') ?? 'weeks'] ?? 7;
        const end = start + interval * unitDays * DAY_MS;
        const periods = bySchedule(people)
          .get(name)!
          .map(({ email, entry }) => ({ from: Math.max(started, start), to: Math.min(entry.end?.getTime() ?? Infinity, end), email }))
          .filter((p) => p.from < p.to)
          .map((p) => ({ startDate: new Date(p.from).toISOString(), endDate: new Date(p.to).toISOString(), type: 'default', recipient: recipient(p.email) }));
        return ok({
          _parent: parent(name),
          startDate: new Date(start).toISOString(),
          endDate: new Date(end).toISOString(),
          finalTimeline: { rotations: [{ id: `${scheduleIds.of(name)}-r1`, name: 'Rotation', order: 1, periods }] },
        });
      }
      if (path === '/v2/escalations') {
        const levels = new Set([...people.values()].flat().filter((e) => e.schedule !== '').map((e) => JSON.stringify([e.schedule, e.service, e.level])));
        return ok(
          [...levels].map((key) => {
            const [schedule, service, level] = JSON.parse(key) as [string, string, number];
            const team = { type: 'team', id: teamIds.of(service), name: service };
            const rule = (recipient: object) => ({ condition: 'if-not-acked', notifyType: 'default', delay: { timeAmount: 5, timeUnit: 'minutes' }, recipient });
            return {
              id: escalationIds.of(key),
              name: `${schedule} at level ${level}`,
              ownerTeam: { id: team.id, name: team.name },
              rules: [...Array.from({ length: level - 1 }, () => rule(team)), rule({ type: 'schedule', id: scheduleIds.of(schedule), name: schedule })],
            };
          }),
        );
      }
      const user = /^\/v2\/users\/([^/]+)$/.exec(path);
      if (user) {
        const identifier = decodeURIComponent(user[1]).toLowerCase();
        const email = [...people.keys()].find((e) => e === identifier || userIds.of(e) === identifier);
        return email === undefined ? notFound(`No user exists with username [${identifier}]`) : ok({ id: userIds.of(email), username: email, fullName: email, role: { id: 'User', name: 'User' } });
      }
      return notFound('Not Found');
    },
  });
}
