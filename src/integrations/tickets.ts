// What the Jira and ServiceNow clients share: how they authenticate, and the check that keeps a
// justification's text (which a hostile requester writes) from steering the request they send.
import type { TicketsConfig } from '../config';
import { SourceError } from './http';

/** Basic with the config's username (Jira: the account's email and an API token), else the secret is a bearer token. */
export function authorizationOf(config: Pick<TicketsConfig, 'username'> & { secret: string }): string {
  return config.username ? `Basic ${Buffer.from(`${config.username}:${config.secret}`).toString('base64')}` : `Bearer ${config.secret}`;
}

/**
 * `key` when the pattern names it whole and it holds only letters, digits, `-` and `_` (every
 * Jira key and ServiceNow number does); a SourceError otherwise. A tenant's broad pattern could
 * match `PROJ-1/../x` or `CHG1^ORnumber!=x`: in a path, dot segments survive encoding (URLs read
 * `%2e%2e` as `..`), and in a ServiceNow encoded query `^` starts another condition.
 */
export function safeTicketKey(source: string, pattern: RegExp, key: string): string {
  const found = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')).exec(key);
  if (found?.[0] !== key || !/^[A-Za-z0-9_-]+$/.test(key)) throw new SourceError(`${source}: ${JSON.stringify(key.slice(0, 80))} is not a ticket key; tickets.pattern should match letters, digits, - and _ only`);
  return key;
}
