// Jira Cloud (issue 40): the issue a justification names, by one GET of the REST API v3
// (`/rest/api/3/issue/{key}`), asking only for the fields the facts need.
//
// Plain getJson rather than a client library such as jira.js: it is one GET whose answer we map
// field by field, and getJson already gives it the deadline, the 429 Retry-After and the error
// messages every provider shares. A library would add a dependency tree and its own HTTP stack
// (its own timeouts and retries) to the API's runtime for that one call.
import type { TicketsConfig } from '../config';
import type { TicketStatusCategory } from '../domain/facts';
import { getJson, providerUrl, SourceError } from './http';
import { authorizationOf, safeTicketKey } from './tickets';
import type { ProviderFactory, TicketProvider, TicketRecord } from './provider';

export const JIRA_DEFAULT_PATTERN = '[A-Z][A-Z0-9]+-\\d+';

/** What Jira answers for an issue, in the fields asked for; any may be absent or null. */
interface JiraIssue {
  key?: string;
  fields?: {
    issuetype?: { name?: string } | null;
    status?: { name?: string; statusCategory?: { key?: string } | null } | null;
    priority?: { name?: string } | null;
    assignee?: JiraUser | null;
    reporter?: JiraUser | null;
    [changeWindowField: string]: unknown;
  };
}

/** emailAddress is absent when the user's privacy settings hide it from the API's caller. */
interface JiraUser {
  accountId?: string;
  emailAddress?: string;
}

/** Jira's fixed status category keys ("undefined" is the category of a status without one). */
const CATEGORIES: Record<string, TicketStatusCategory> = { new: 'open', indeterminate: 'in_progress', done: 'done' };

export const jiraSource: ProviderFactory<TicketsConfig, TicketProvider> = (config) => {
  const pattern = new RegExp(config.pattern ?? JIRA_DEFAULT_PATTERN);
  const headers = { authorization: authorizationOf(config) };
  const window = config.change_window;
  const fields = ['issuetype', 'status', 'priority', 'assignee', 'reporter', ...(window ? [window.start_field, window.end_field] : [])].join(',');
  return {
    pattern,
    async ticket(key, signal) {
      const url = providerUrl(config.url, `rest/api/3/issue/${encodeURIComponent(safeTicketKey('jira', pattern, key))}`);
      url.searchParams.set('fields', fields);
      const issue = await getJson<JiraIssue | null>(url, { headers, signal }, () => null);
      if (issue === null) return null;
      const f = issue.fields ?? {};
      const category = CATEGORIES[f.status?.statusCategory?.key ?? ''];
      if (!f.status?.name || !category) throw new SourceError(`jira: ${key}'s status is in no known category (${f.status?.statusCategory?.key ?? 'none'})`);
      return {
        key: issue.key ?? key,
        type: f.issuetype?.name ?? 'unknown',
        statusCategory: category,
        statusName: f.status.name,
        priority: f.priority?.name ?? null,
        assignee: personOf(f.assignee),
        reporter: personOf(f.reporter),
        changeWindow: window ? windowOf(f[window.start_field], f[window.end_field]) : null,
      } satisfies TicketRecord;
    },
  };
};

function personOf(user: JiraUser | null | undefined): TicketRecord['assignee'] {
  if (!user || (!user.accountId && !user.emailAddress)) return null;
  return { ...(user.emailAddress ? { email: user.emailAddress } : {}), ...(user.accountId ? { id: user.accountId } : {}) };
}

/** Jira gives date-times as `2024-05-01T10:00:00.000+0000` (and date fields as `2024-05-01`): ISO 8601 UTC, or null when either is unset or unreadable. */
function windowOf(start: unknown, end: unknown): TicketRecord['changeWindow'] {
  const iso = (value: unknown) => {
    if (typeof value !== 'string' || value === '') return undefined;
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : new Date(at).toISOString();
  };
  const [from, to] = [iso(start), iso(end)];
  return from && to ? { start: from, end: to } : null;
}
