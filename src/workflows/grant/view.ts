// What operators see of a grant in Temporal: its search attributes and the Web UI's current details.
import type { SearchAttributePair } from '@temporalio/common';
import { currentRequestId, encodePrincipal, type GrantState } from '../../domain/grant';
import { markdownText } from '../../domain/text';
import { searchAttributes } from '../messages';

export function searchAttributePairs(state: GrantState): SearchAttributePair[] {
  return [
    { key: searchAttributes.tenant, value: state.key.tenantId },
    { key: searchAttributes.principal, value: encodePrincipal(state.key.principalId) },
    { key: searchAttributes.target, value: state.key.target },
    { key: searchAttributes.role, value: state.key.role },
    { key: searchAttributes.grantId, value: state.id },
    { key: searchAttributes.status, value: state.status === 'new' ? 'pending' : state.status },
    // A grant with follow-ups is found by the latest one's id; the earlier ids stay in its state.
    ...(currentRequestId(state) ? [{ key: searchAttributes.requestId, value: currentRequestId(state)! }] : []),
    ...(state.expiresAt !== null ? [{ key: searchAttributes.expiresAt, value: new Date(state.expiresAt) }] : []),
  ];
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
      return `${what}: pending review until ${state.pendingExpiresAt ?? 'the first ensure'} (request ${state.accessRequestId ?? '-'})`;
    case 'provisioning':
      return `${what}: provisioning`;
    case 'active':
      return `${what}: active until ${state.expiresAt}`;
    default:
      return `${what}: ${state.status}${state.provisioningStatus === 'failed' ? ' (provisioning failed)' : ''}`;
  }
}
