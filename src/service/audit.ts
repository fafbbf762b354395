// Reading the audit trail (GET /v1/access/audit, /v1/access/report): the tenant's day folders in
// S3 between `from` and `to` are listed and their objects fetched, then filtered and sorted here.
// Simple and bounded (at most 92 days a call); Athena over the same objects is for more.
import type { AuditWriter } from '../activities/audit';
import { environmentOf } from '../config';
import { policyResourceOf } from '../domain/accounts';
import { type AccessInterval, accessIntervals, type AuditCursor, type AuditEvent, type AuditFilters, daysNewestFirst, matchesFilters, narrowedTo, newestFirst } from '../domain/audit';
import { AccessError } from '../domain/errors';
import { accountIdOf, groupOf } from '../domain/grant';
import type { PolicySet } from '../policy';
import type { Caller } from './runs';

/** The resource of an audit call not narrowed to one account. */
const ALL_ACCOUNTS = '*';

export interface AuditPage {
  events: AuditEvent[];
  /** Pass as `cursor` for the next (older) page; null on the last. */
  next_cursor: string | null;
}

export class AuditService {
  constructor(
    private readonly store: Pick<AuditWriter, 'hasStore' | 'readDay'>,
    private readonly policies: ReadonlyMap<string, PolicySet>,
  ) {}

  async list(caller: Caller, filters: AuditFilters, limit: number, cursorText?: string): Promise<AuditPage> {
    this.authorize(caller, filters);
    const cursor = cursorText === undefined ? undefined : decodeCursor(cursorText);
    if (cursorText !== undefined && !cursor) throw new AccessError('invalid_request', 'The cursor is not one this API handed out.');
    // Days newest first; a day's events all sort before the older days', so a page ends at the first day that fills it.
    const upTo = cursor && Date.parse(cursor.at) < filters.to.getTime() ? new Date(cursor.at) : filters.to;
    const found: AuditEvent[] = [];
    for (const day of daysNewestFirst(filters.from, upTo)) {
      const events = (await this.store.readDay(caller.tenant.id, day))
        .filter((e) => matchesFilters(e, filters) && (!cursor || newestFirst(e, cursor) > 0))
        .sort(newestFirst);
      found.push(...events);
      if (found.length > limit) break;
    }
    const events = found.slice(0, limit);
    return { events: events.map((e) => narrowedTo(e, filters)), next_cursor: found.length > limit ? encodeCursor(events[events.length - 1]) : null };
  }

  /**
   * Intervals overlapping [from, to]. Events are read from the tenant's longest grant duration
   * before `from`, so a grant already active at `from` is found by its activation.
   */
  async report(caller: Caller, filters: AuditFilters): Promise<AccessInterval[]> {
    this.authorize(caller, filters);
    const lookBack = new Date(filters.from.getTime() - caller.tenant.grants.max_duration_seconds * 1000);
    const events: AuditEvent[] = [];
    for (const day of daysNewestFirst(lookBack, filters.to)) {
      events.push(...(await this.store.readDay(caller.tenant.id, day)).filter((e) => matchesFilters(e, { ...filters, from: lookBack, event: undefined })));
    }
    return accessIntervals(events, filters.from, filters.to);
  }

  /** Action `audit` on the account asked about (Account::"*" for all of them), with the role asked about ("" for all). */
  private authorize(caller: Caller, filters: AuditFilters): void {
    const group = filters.target && groupOf(filters.target) !== undefined ? policyResourceOf(caller.tenant, filters.target, undefined) : undefined;
    const accountId = filters.target && !group ? accountIdOf(filters.target) : ALL_ACCOUNTS;
    const verdict = this.policies.get(caller.tenant.id)?.authorize({
      principal: caller.principal,
      action: 'audit',
      accountId,
      // As ensure sees it: an account the config does not describe is "unknown" ("" for all accounts).
      accountEnvironment: accountId === ALL_ACCOUNTS ? '' : environmentOf(caller.tenant, accountId),
      ...group,
      context: { role: filters.role ?? '', duration_seconds: 0, has_reason: false, has_ticket_attachment: false },
    });
    if (!verdict?.allowed) {
      throw new AccessError('forbidden', 'Policy does not allow you to read the audit trail (action audit).', { notices: verdict?.notices ?? [] });
    }
    if (!this.store.hasStore(caller.tenant.id)) {
      throw new AccessError('not_found', 'This tenant keeps no audit trail to read: audit.s3 is not configured (its events go to the log only).');
    }
  }
}

function encodeCursor(c: AuditCursor): string {
  return Buffer.from(JSON.stringify({ at: c.at, event_id: c.event_id })).toString('base64url');
}

/** The cursor a page handed out, or undefined for anything else. */
function decodeCursor(text: string): AuditCursor | undefined {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<AuditCursor>;
    if (typeof c?.at !== 'string' || Number.isNaN(Date.parse(c.at)) || typeof c.event_id !== 'string' || !/^[0-9a-f-]{36}$/.test(c.event_id)) return undefined;
    return { at: c.at, event_id: c.event_id };
  } catch {
    return undefined;
  }
}
