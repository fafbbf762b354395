// ServiceNow (issue 40): the change request or incident a justification names, by one GET of the
// Table API (`/api/now/table/{table}?sysparm_query=number=KEY`). Dot-walked fields
// (`assigned_to.email`) bring the people's emails in the same call, and
// sysparm_display_value=all gives each field as {value, display_value}: the state's number
// decides the category (labels are the instance's to rename), its label is the status name,
// and dates come as values in UTC.
import type { TicketsConfig } from '../config';
import type { TicketStatusCategory } from '../domain/facts';
import { getJson, providerUrl, SourceError } from './http';
import { authorizationOf, safeTicketKey } from './tickets';
import type { ProviderFactory, TicketProvider, TicketRecord } from './provider';

export const SERVICENOW_DEFAULT_PATTERN = '(?:CHG|INC)\\d{7}';

type Table = 'change_request' | 'incident';

/** The base system's state values (the incident and change request state models). */
const CATEGORIES: Record<Table, Record<string, TicketStatusCategory>> = {
  incident: { '1': 'open', '2': 'in_progress', '3': 'in_progress', '6': 'done', '7': 'done', '8': 'done' },
  change_request: { '-5': 'open', '-4': 'open', '-3': 'open', '-2': 'open', '-1': 'in_progress', '0': 'in_progress', '3': 'done', '4': 'done' },
};

/** A field as sysparm_display_value=all gives it; a field the table lacks is absent. */
type Field = { value?: string; display_value?: string } | undefined;
type Row = Record<string, Field>;

const PEOPLE_FIELDS = ['assigned_to', 'assigned_to.email', 'opened_by', 'opened_by.email'];
const FIELDS: Record<Table, string> = {
  incident: ['number', 'state', 'priority', ...PEOPLE_FIELDS].join(','),
  change_request: ['number', 'state', 'priority', 'start_date', 'end_date', ...PEOPLE_FIELDS].join(','),
};

/**
 * The table a number lives in, by its prefix: CHG for change requests; any other prefix (INC,
 * or one a tenant's pattern adds) is looked for among incidents, the other table whose states
 * this client knows.
 */
function tableOf(key: string): Table {
  return key.toUpperCase().startsWith('CHG') ? 'change_request' : 'incident';
}

export const servicenowSource: ProviderFactory<TicketsConfig, TicketProvider> = (config) => {
  const pattern = new RegExp(config.pattern ?? SERVICENOW_DEFAULT_PATTERN);
  const headers = { authorization: authorizationOf(config) };
  return {
    pattern,
    async ticket(key, signal) {
      const number = safeTicketKey('servicenow', pattern, key);
      const table = tableOf(number);
      const url = providerUrl(config.url, `api/now/table/${table}`);
      url.search = new URLSearchParams({
        sysparm_query: `number=${number}`,
        sysparm_limit: '1',
        sysparm_display_value: 'all',
        sysparm_exclude_reference_link: 'true',
        sysparm_fields: FIELDS[table],
      }).toString();
      const { result } = await getJson<{ result?: Row[] }>(url, { headers, signal });
      const row = result?.[0];
      if (!row) return null;
      const state = row.state?.value ?? '';
      const category = CATEGORIES[table][state];
      if (!category) throw new SourceError(`servicenow: ${number} is in ${table} state ${JSON.stringify(state)}, which is not a base system state`);
      return {
        key: row.number?.value || number,
        type: table,
        statusCategory: category,
        statusName: row.state?.display_value || state,
        priority: row.priority?.display_value || null,
        assignee: personOf(row, 'assigned_to'),
        reporter: personOf(row, 'opened_by'),
        changeWindow: table === 'change_request' ? windowOf(row.start_date?.value, row.end_date?.value) : null,
      } satisfies TicketRecord;
    },
  };
};

/** A reference to a user: its sys_id as `value`, the user's email dot-walked; null when empty. */
function personOf(row: Row, field: string): TicketRecord['assignee'] {
  const id = row[field]?.value;
  const email = row[`${field}.email`]?.value;
  if (!id && !email) return null;
  return { ...(email ? { email } : {}), ...(id ? { id } : {}) };
}

/** Date-time values are `YYYY-MM-DD HH:MM:SS` in UTC: ISO 8601, or null when either is unset. */
function windowOf(start: string | undefined, end: string | undefined): TicketRecord['changeWindow'] {
  const iso = (value: string | undefined) => {
    const at = value ? Date.parse(`${value.replace(' ', 'T')}Z`) : NaN;
    return Number.isNaN(at) ? undefined : new Date(at).toISOString();
  };
  const [from, to] = [iso(start), iso(end)];
  return from && to ? { start: from, end: to } : null;
}
