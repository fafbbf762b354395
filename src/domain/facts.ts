// Facts from outside sources that policies decide on (issue 40): who is on call, and what the
// ticket named in a justification says. src/integrations turns each provider's answer into these;
// an answer kept with the grant (in its `validation`) is what every later decision on it sees.
// Pure: the API, the worker and the workflow share them.

/** On call "unknown": the source is down, slow, rate-limited, or the tenant has none. */
export type OncallStatus = 'on_call' | 'not_on_call' | 'unknown';

export interface OncallFacts {
  status: OncallStatus;
  /** The tenant's source: "pagerduty", "opsgenie"; "none" when the tenant has none. */
  source: string;
  /** Schedules the person is on call for now, by name and by id. */
  schedules: string[];
  /** Services whose escalation reaches the person now, by name and by id. */
  services: string[];
  /** Their lowest (closest) escalation level now, 1 first; null when not on call. */
  level: number | null;
  /** When their shift ends: the earliest end of their entries at `level`; null when not on call or it does not end. */
  until: string | null;
  /** Why the status is unknown, or who the source did not know. */
  note?: string;
}

/** A ticket "none": nothing in the justification matches the source's pattern. */
export type TicketStatus = 'found' | 'not_found' | 'none' | 'unknown';
export type TicketStatusCategory = 'open' | 'in_progress' | 'done';

export interface TicketFacts {
  status: TicketStatus;
  /** "jira", "servicenow"; "none" when the tenant has no source. */
  source: string;
  /** The ticket named (the first match of the source's pattern), null when none. */
  key: string | null;
  /** Jira's issue type name; ServiceNow's table: "change_request" or "incident". */
  type: string | null;
  status_category: TicketStatusCategory | null;
  /** The provider's own status name ("Done", "Closed", "Implement"). */
  status_name: string | null;
  priority: string | null;
  requester_is_assignee: boolean;
  requester_is_reporter: boolean;
  /** A change request's window, when it has one. */
  change_window: { start: string; end: string } | null;
  note?: string;
}

/** What the sources said at a call; absent in grants from before issue 40, and for a source the tenant lacks. */
export interface Facts {
  oncall?: OncallFacts;
  ticket?: TicketFacts;
}

/** policies see this level when nobody is on call, so `context.oncall.level <= N` never holds then. */
export const NOT_ON_CALL_LEVEL = 1000;

export const NO_ONCALL_SOURCE: OncallFacts = { status: 'unknown', source: 'none', schedules: [], services: [], level: null, until: null, note: 'the tenant has no on-call source' };
export const NO_TICKET_SOURCE: TicketFacts = {
  status: 'none',
  source: 'none',
  key: null,
  type: null,
  status_category: null,
  status_name: null,
  priority: null,
  requester_is_assignee: false,
  requester_is_reporter: false,
  change_window: null,
  note: 'the tenant has no ticket source',
};
