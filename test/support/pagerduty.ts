// A local stand-in for PagerDuty's REST API v2, as much of it as the on-call source reads:
// `GET /users?query=`, `GET /oncalls?user_ids[]=` (with `include[]=escalation_policies`) and
// `GET /escalation_policies/{id}`, behind `Authorization: Token token=<token>`. Each service has
// an escalation policy of its own. Pages hold at most 2 items whatever `limit` asks (PagerDuty's
// own cap is 100), so a client that does not follow `more` misses entries.
import { Ids, startFakeOncallServer, type FakeOncall, type FakeOncallServer, type Reply } from './oncall';

const PAGE_CAP = 2;

export function startFakePagerDuty(token: string): Promise<FakeOncallServer> {
  const userIds = new Ids((n) => `PU${n}`);
  const scheduleIds = new Ids((n) => `PS${n}`);
  const serviceIds = new Ids((n) => `PV${n}`);
  const policyIds = new Ids((n) => `PE${n}`);
  /** Services by their escalation policy's id. */
  const policies = new Map<string, string>();
  const started = new Date(Date.now() - 3600_000).toISOString();

  const reference = (type: string, id: string, summary: string) => ({ id, type: `${type}_reference`, summary, self: `https://api.pagerduty.com/${type}s/${id}` });
  const policyOf = (service: string) => {
    const id = policyIds.of(service);
    policies.set(id, service);
    return id;
  };
  const fullPolicy = (id: string) => {
    const service = policies.get(id)!;
    return { id, type: 'escalation_policy', name: `${service} policy`, summary: `${service} policy`, num_loops: 0, services: [reference('service', serviceIds.of(service), service)] };
  };
  const page = <T>(url: URL, key: string, items: T[]): Reply => {
    const limit = Math.min(PAGE_CAP, Number(url.searchParams.get('limit') ?? 25) || 25);
    const offset = Number(url.searchParams.get('offset') ?? 0) || 0;
    return { status: 200, body: { [key]: items.slice(offset, offset + limit), limit, offset, more: offset + limit < items.length, total: null } };
  };
  const oncallOf = (email: string, entry: FakeOncall, include: boolean) => {
    const policy = policyOf(entry.service);
    return {
      escalation_policy: include ? fullPolicy(policy) : reference('escalation_policy', policy, `${entry.service} policy`),
      user: reference('user', userIds.of(email), email),
      schedule: entry.schedule === '' ? null : reference('schedule', scheduleIds.of(entry.schedule), entry.schedule),
      escalation_level: entry.level,
      start: started,
      end: entry.end?.toISOString() ?? null,
    };
  };

  return startFakeOncallServer({
    authorized: (req) => req.headers.authorization === `Token token=${token}`,
    error: (status, message) => ({ error: { message, code: { 401: 2006, 404: 2100, 429: 2020, 503: 2500 }[status] } }),
    rateLimitHeaders: (seconds) => ({ 'ratelimit-limit': '960', 'ratelimit-remaining': '0', 'ratelimit-reset': String(seconds) }),
    answer(url, people) {
      if (url.pathname === '/users') {
        const query = (url.searchParams.get('query') ?? '').toLowerCase();
        const users = [...people.keys()].filter((email) => email.includes(query)).map((email) => ({ ...reference('user', userIds.of(email), email), type: 'user', name: email, email }));
        return page(url, 'users', users);
      }
      if (url.pathname === '/oncalls') {
        const wanted = new Set(url.searchParams.getAll('user_ids[]'));
        const include = url.searchParams.getAll('include[]').includes('escalation_policies');
        const oncalls = [...people].filter(([email]) => wanted.has(userIds.of(email))).flatMap(([email, entries]) => entries.map((entry) => oncallOf(email, entry, include)));
        return page(url, 'oncalls', oncalls);
      }
      const policy = /^\/escalation_policies\/([^/]+)$/.exec(url.pathname);
      if (policy && policies.has(policy[1])) return { status: 200, body: { escalation_policy: fullPolicy(policy[1]) } };
      return { status: 404, body: { error: { message: 'Not Found', code: 2100 } } };
    },
  });
}
