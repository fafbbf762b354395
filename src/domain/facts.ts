// Facts from outside sources that policies decide on (issue 40): who is on call, and what the
// ticket named in a justification says. src/integrations turns each provider's answer into these;
// an answer kept with the grant (in its `validation`) is what every later decision on it sees.
// Pure: the API, the worker and the workflow share them.

/** On call "unknown": the source is down, slow, rate-limited, or the tenant has none. */
export type OncallStatus = 'on_call' | 'not_on_call' | 'unknown';

/** A provider's schedule or service: policies may name it either way. */
export interface Named {
  id: string;
  name: string;
}

export interface OncallFacts {
  status: OncallStatus;
  /** The tenant's source: "pagerduty", "opsgenie"; "none" when the tenant has none. */
  source: string;
  /** Schedules the person is on call for now, at `level`. */
  schedules: Named[];
  /** Services whose escalation reaches the person now, at `level`. */
  services: Named[];
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

/** Shorter than this left of a shift, access tied to it is not worth starting: a reviewer decides. */
export const SHORTEST_SHIFT_GRANT_SECONDS = 60;

/**
 * Seconds from `begins` until the requester's on-call shift ends: null when it does not end, 0
 * when they are not on call (or nobody can say).
 */
export function shiftSecondsLeft(oncall: OncallFacts | undefined, begins: Date): number | null {
  if (oncall?.status !== 'on_call') return 0;
  if (oncall.until === null) return null;
  return Math.max(0, Math.floor((Date.parse(oncall.until) - begins.getTime()) / 1000));
}

/**
 * The facts as a requester reads them beside a refusal or a review (issue 40 §3: no refusal is
 * silent): one line per source the tenant has.
 */
export function factNotices(facts: Facts): string[] {
  const notices: string[] = [];
  const { oncall, ticket } = facts;
  if (oncall && oncall.source !== 'none') {
    const by = `(${oncall.source})`;
    if (oncall.status === 'on_call') {
      const what = [...oncall.schedules, ...oncall.services].map((n) => n.name);
      notices.push(`On call ${by} at escalation level ${oncall.level}${what.length ? ` for ${what.join(', ')}` : ''}${oncall.until ? `, until ${oncall.until}` : ''}.`);
    } else if (oncall.status === 'not_on_call') {
      notices.push(`Not on call ${by} now${oncall.note ? `: ${oncall.note}` : ''}.`);
    } else {
      notices.push(`Whether you are on call is unknown ${by}: ${oncall.note ?? 'no answer'}.`);
    }
  }
  if (ticket && ticket.source !== 'none') {
    const by = `(${ticket.source})`;
    if (ticket.status === 'found') {
      const who = ticket.requester_is_assignee ? 'assigned to you' : ticket.requester_is_reporter ? 'reported by you, assigned to someone else' : 'not assigned to you';
      const window = ticket.change_window ? `; change window ${ticket.change_window.start} to ${ticket.change_window.end}` : '';
      notices.push(`Ticket ${ticket.key} ${by}: ${ticket.type}, ${ticket.status_name} (${ticket.status_category?.replace('_', ' ')})${ticket.priority ? `, priority ${ticket.priority}` : ''}, ${who}${window}.`);
    } else if (ticket.status === 'not_found') {
      notices.push(`Ticket ${ticket.key} ${by} does not exist.`);
    } else if (ticket.status === 'unknown') {
      notices.push(`Ticket ${ticket.key} ${by} is unknown: ${ticket.note ?? 'no answer'}.`);
    } else {
      notices.push(`No ticket named ${by}: ${ticket.note ?? 'none in the reason or the attachments'}.`);
    }
  }
  return notices;
}
