// What the activities know an account assignment (or a group membership) by, and what provisioning found.
import type { AssignmentIds, Principal } from '../domain/grant';

export type { AssignmentIds } from '../domain/grant';

export interface AssignmentRef {
  tenantId: string;
  /** 12 digits; "" for a group grant */
  accountId: string;
  /** Permission set name; `member` for a group grant */
  role: string;
  /** A group grant: the group's name or id, as its target says. Its access is a membership of the group, not an account assignment. */
  group?: string;
  principal: Pick<Principal, 'id' | 'email' | 'identityStoreUser'>;
  /**
   * The ids findAssignment resolved. Later calls use them as they are, so a user renamed or a
   * permission set renamed since still has its assignment removed.
   */
  ids?: AssignmentIds;
  /** On deletion at expiry: the grant's expires_at, for the expiry-lag metric. */
  expiredAt?: string;
  /** The grant's id, when a grant asks: its sessions' end is put on record under it. */
  grantId?: string;
}

/** What provisionAssignment found before creating anything: the grant's to remove, or not. */
export interface AssignmentLookup {
  preexisted: boolean;
  ids: AssignmentIds;
}

export interface Provisioned extends AssignmentLookup {
  /** When the assignment was found in place: the grant's activation time. */
  assignedAt: string;
  /** The permission set's session duration, when the tenant does not end sessions with grants (`aws.revoke_sessions`). */
  sessionSeconds?: number;
}
