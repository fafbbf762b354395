// What operators see of a grant in Temporal: its search attributes and the Web UI's current details.
import type { SearchAttributePair } from '@temporalio/common';
import { currentRequestId, encodePrincipal, type GrantState, pendingFollowUp } from '../../domain/grant';
import { awaitsReview, requestIdsOf } from '../../domain/request';
import { markdownText } from '../../domain/text';
import { searchAttributes } from '../messages';

/** `forReads`: with the attributes the API's reads filter on (1.1 on). */
export function searchAttributePairs(state: GrantState, now: Date, forReads: boolean): SearchAttributePair[] {
  return [
    { key: searchAttributes.tenant, value: state.key.tenantId },
    { key: searchAttributes.principal, value: encodePrincipal(state.key.principalId) },
    { key: searchAttributes.target, value: state.key.target },
    { key: searchAttributes.role, value: state.key.role },
    { key: searchAttributes.grantId, value: state.id },
    { key: searchAttributes.status, value: state.status === 'new' ? 'pending' : state.status },
    // A grant with follow-ups is found by the latest one's id; the earlier ids stay in its state.
    ...(currentRequestId(state) ? [{ key: searchAttributes.requestId, value: currentRequestId(state)! }] : []),
    ...(forReads
      ? [
          { key: searchAttributes.requestIds, value: requestIdsOf(state) },
          { key: searchAttributes.awaitingReview, value: awaitsReview(state) || pendingFollowUp(state, now) !== undefined },
        ]
      : []),
    ...(state.expiresAt !== null ? [{ key: searchAttributes.expiresAt, value: new Date(state.expiresAt) }] : []),
  ];
}

/** What the API reads of the grant (its memo): the state, less the audit events still to write. */
export function memoOf(state: GrantState): GrantState {
  const { auditBacklog: _, auditHandedOff: __, ...shown } = state;
  return shown;
}

/** What the Web UI shows as the grant's current details (Markdown). */
export function currentDetails(state: GrantState): string {
  // Markdown in the Web UI: the names from the requester's token are escaped to read as themselves.
  const who = markdownText(state.principal.email ?? state.key.principalId);
  const what = `**${markdownText(state.key.role)}** on \`${state.key.target}\` for ${who}`;
  if (state.closing) return `${what}: removing access (${state.revocation ? 'revoked' : 'expired'})`;
  switch (state.status) {
    case 'new':
    case 'pending':
      if (state.approved && state.startsAt) return `${what}: approved, starts at ${state.startsAt}`;
      if (state.startsAt) return `${what}: scheduled for ${state.startsAt}, pending review until ${state.pendingExpiresAt} (request ${state.accessRequestId ?? '-'})`;
      return `${what}: pending review until ${state.pendingExpiresAt ?? 'the first ensure'} (request ${state.accessRequestId ?? '-'})`;
    case 'provisioning':
      return `${what}: provisioning`;
    case 'active':
      return `${what}: active until ${state.expiresAt}`;
    default:
      return `${what}: ${state.status}${state.provisioningStatus === 'failed' ? ' (provisioning failed)' : ''}`;
  }
}
