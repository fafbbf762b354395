// A local stand-in for Jira Cloud's REST API v3 `GET /rest/api/3/issue/{issueIdOrKey}`: Basic
// authentication with an account's email and API token (or the token as a bearer token), the
// `fields` parameter honoured, Jira's 404 body for an issue that does not exist, and a change
// window in two date-time custom fields (as Jira Service Management's planned start and end).
import { createHash } from 'node:crypto';
import { authorized, startTicketServer, type FakeTicket, type FakeTicketServer } from './tickets';

const CHANGE_WINDOW = { start_field: 'customfield_10047', end_field: 'customfield_10048' };

/** Jira's default workflow statuses, one per status category. */
const STATUSES = {
  open: { id: '10000', name: 'To Do', statusCategory: { id: 2, key: 'new', colorName: 'blue-gray', name: 'To Do' } },
  in_progress: { id: '3', name: 'In Progress', statusCategory: { id: 4, key: 'indeterminate', colorName: 'yellow', name: 'In Progress' } },
  done: { id: '10001', name: 'Done', statusCategory: { id: 3, key: 'done', colorName: 'green', name: 'Done' } },
};

export async function startFakeJira(username: string, token: string): Promise<FakeTicketServer> {
  const tickets = new Map<string, FakeTicket>();
  const ids = new Map<string, string>();
  return startTicketServer(
    (req, url, reply) => {
      if (!authorized(req, username, token)) return reply(401, 'Client must be authenticated to access this resource.');
      const issue = /^\/rest\/api\/3\/issue\/([^/]+)$/.exec(url.pathname);
      if (req.method !== 'GET' || !issue) return reply(404, { errorMessages: ['null for uri: ' + url.href], errors: {} });
      const asked = decodeURIComponent(issue[1]).toUpperCase();
      const ticket = tickets.get(asked) ?? [...tickets.values()].find((t) => idOf(ids, t.key) === asked);
      if (!ticket) return reply(404, { errorMessages: ['Issue does not exist or you do not have permission to see it.'], errors: {} });
      const fields: Record<string, unknown> = {
        issuetype: { id: '10002', name: ticket.type ?? 'Task', subtask: false },
        status: STATUSES[ticket.status],
        priority: { id: '3', name: ticket.priority ?? 'Medium' },
        assignee: userOf(ticket.assignee),
        reporter: userOf(ticket.reporter),
        [CHANGE_WINDOW.start_field]: ticket.window ? jiraDateTime(ticket.window.start) : null,
        [CHANGE_WINDOW.end_field]: ticket.window ? jiraDateTime(ticket.window.end) : null,
      };
      // Jira answers the fields asked for (all of them for `*all` or no `fields`).
      const wanted = (url.searchParams.get('fields') ?? '*all').split(',');
      const shown = wanted.includes('*all') ? fields : Object.fromEntries(Object.entries(fields).filter(([name]) => wanted.includes(name)));
      const id = idOf(ids, ticket.key);
      reply(200, { expand: 'renderedFields,names,schema', id, self: `${url.origin}/rest/api/3/issue/${id}`, key: ticket.key, fields: shown });
    },
    tickets,
    { errorMessages: ['Rate limit exceeded.'], errors: {} },
    { changeWindowFields: CHANGE_WINDOW },
  );
}

function idOf(ids: Map<string, string>, key: string): string {
  if (!ids.has(key)) ids.set(key, String(10000 + ids.size));
  return ids.get(key)!;
}

/** Jira's user: an accountId, and the email address (which a user's privacy settings may hide). */
function userOf(email: string | undefined) {
  if (!email) return null;
  const accountId = `712020:${createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 32)}`;
  return { accountId, emailAddress: email, displayName: email.split('@')[0], active: true, accountType: 'atlassian', timeZone: 'Etc/UTC' };
}

/** Jira's date-time format: `2024-05-01T10:00:00.000+0000`. */
function jiraDateTime(at: Date): string {
  return at.toISOString().replace('Z', '+0000');
}
