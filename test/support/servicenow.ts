// A local stand-in for ServiceNow's Table API `GET /api/now/table/{incident|change_request}`:
// Basic authentication (or the secret as an OAuth bearer token), an encoded query of
// `number=...` conditions, sysparm_fields with dot-walked reference fields (`assigned_to.email`),
// sysparm_display_value false/true/all, sysparm_exclude_reference_link, sysparm_limit, and
// `{"result":[]}` when nothing matches. A ticket lives in change_request when its key starts
// with CHG, in incident otherwise.
import { createHash } from 'node:crypto';
import { authorized, startTicketServer, type FakeTicket, type FakeTicketServer } from './tickets';

type Table = 'incident' | 'change_request';
/** A field's stored value and its display value; `reference` for a reference's link. */
type Field = { value: string; display: string; reference?: string };

/** The base system's states: [value, label] for each of the fake's statuses. */
const STATES: Record<Table, Record<FakeTicket['status'], [string, string]>> = {
  incident: { open: ['1', 'New'], in_progress: ['2', 'In Progress'], done: ['7', 'Closed'] },
  change_request: { open: ['-2', 'Scheduled'], in_progress: ['-1', 'Implement'], done: ['3', 'Closed'] },
};
const PRIORITIES = ['1 - Critical', '2 - High', '3 - Moderate', '4 - Low', '5 - Planning'];

const failure = (message: string, detail: string | null) => ({ error: { message, detail }, status: 'failure' });

export async function startFakeServiceNow(username: string, password: string): Promise<FakeTicketServer> {
  const tickets = new Map<string, FakeTicket>();
  return startTicketServer(
    (req, url, reply) => {
      if (!authorized(req, username, password)) return reply(401, failure('User Not Authenticated', 'Required to provide Auth information'));
      const table = /^\/api\/now\/table\/([^/]+)$/.exec(url.pathname)?.[1];
      if (req.method !== 'GET' || !table) return reply(400, failure('Requested URI does not represent any resource', null));
      if (table !== 'incident' && table !== 'change_request') return reply(400, failure(`Invalid table ${table}`, null));
      const conditions = (url.searchParams.get('sysparm_query') ?? '').split('^').filter(Boolean);
      const numbers = conditions.map((c) => /^number=([^=!<>]*)$/.exec(c)?.[1]);
      if (numbers.some((n) => n === undefined)) return reply(400, failure(`the fake understands only number=... conditions, not ${url.searchParams.get('sysparm_query')}`, null));
      const limit = Number(url.searchParams.get('sysparm_limit') ?? '10000');
      const rows = [...tickets.values()]
        .filter((t) => tableOf(t.key) === table && numbers.every((n) => n === t.key))
        .slice(0, limit)
        .map((t) => shown(recordOf(table, t), url, url.origin));
      reply(200, { result: rows });
    },
    tickets,
    failure('Rate limit exceeded', 'Too many requests: try again later'),
  );
}

function tableOf(key: string): Table {
  return key.startsWith('CHG') ? 'change_request' : 'incident';
}

function recordOf(table: Table, ticket: FakeTicket): Record<string, Field> {
  const [state, label] = STATES[table][ticket.status];
  const priority = PRIORITIES.find((p) => p === ticket.priority || p.endsWith(` - ${ticket.priority}`)) ?? '4 - Low';
  const record: Record<string, Field> = {
    sys_id: plain(sysId(ticket.key)),
    number: plain(ticket.key),
    sys_class_name: { value: table, display: table === 'incident' ? 'Incident' : 'Change Request' },
    state: { value: state, display: label },
    priority: { value: priority.slice(0, 1), display: priority },
    ...userFields('assigned_to', ticket.assignee),
    ...userFields('opened_by', ticket.reporter),
  };
  if (table === 'change_request') {
    record.start_date = plain(ticket.window ? glideDateTime(ticket.window.start) : '');
    record.end_date = plain(ticket.window ? glideDateTime(ticket.window.end) : '');
  }
  return record;
}

/** A reference to sys_user and what dot-walking through it reaches; empty when nobody is named. */
function userFields(field: string, email: string | undefined): Record<string, Field> {
  const id = email ? sysId(email.toLowerCase()) : '';
  return {
    [field]: { value: id, display: email ? email.split('@')[0] : '', ...(email ? { reference: `api/now/table/sys_user/${id}` } : {}) },
    [`${field}.email`]: plain(email ?? ''),
    [`${field}.sys_id`]: plain(id),
  };
}

/** The record as the request's sysparm_fields and sysparm_display_value shape it. */
function shown(record: Record<string, Field>, url: URL, origin: string): Record<string, unknown> {
  const fields = url.searchParams.get('sysparm_fields')?.split(',') ?? Object.keys(record).filter((name) => !name.includes('.'));
  const display = url.searchParams.get('sysparm_display_value') ?? 'false';
  const withLinks = url.searchParams.get('sysparm_exclude_reference_link') !== 'true';
  const out: Record<string, unknown> = {};
  for (const name of fields) {
    const field = record[name];
    if (!field) continue; // a field the table lacks is left out
    const link = withLinks && field.reference ? { link: `${origin}/${field.reference}` } : {};
    if (display === 'all') out[name] = { display_value: field.display, value: field.value, ...link };
    else if (field.reference && withLinks) out[name] = { value: display === 'true' ? field.display : field.value, ...link };
    else out[name] = display === 'true' ? field.display : field.value;
  }
  return out;
}

function plain(value: string): Field {
  return { value, display: value };
}

function sysId(of: string): string {
  return createHash('md5').update(of).digest('hex');
}

/** ServiceNow's stored date-time: `YYYY-MM-DD HH:MM:SS`, UTC. */
function glideDateTime(at: Date): string {
  return at.toISOString().slice(0, 19).replace('T', ' ');
}
