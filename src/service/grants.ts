// A caller's grants: listing them, reading one, and ending one early.
import { env } from '../config';
import { AccessError } from '../domain/errors';
import { encodePrincipal, type GrantStatus, type GrantView, isOpen, toView } from '../domain/grant';
import type { grantWorkflow } from '../workflows/grant';
import { revokeUpdate, searchAttributes } from '../workflows/messages';
import { askedByGrant, policyContext } from '../policy/context';
import { type Caller, equals, type GrantRuns, pause } from './runs';
import { rejectionsAsErrors } from './temporal-errors';

export interface GrantFilters {
  status?: GrantStatus;
  target?: string;
  role?: string;
  limit?: number;
  cursor?: string;
}

export class GrantService {
  constructor(private readonly runs: GrantRuns) {}

  /** The caller's grants, newest first, a page at a time: every grant once, however many there are. */
  async list(caller: Caller, filters: GrantFilters): Promise<{ grants: GrantView[]; next_cursor: string | null }> {
    const clauses = [equals(searchAttributes.principal, encodePrincipal(caller.principal.id))];
    if (filters.status) clauses.push(equals(searchAttributes.status, filters.status));
    if (filters.target) clauses.push(equals(searchAttributes.target, filters.target));
    if (filters.role) clauses.push(equals(searchAttributes.role, filters.role));
    const { items, nextCursor } = await this.runs.page(caller.tenant, clauses, filters.limit ?? 50, filters.cursor, (rows) =>
      rows.map((row) => toView(row.state, 'none')),
    );
    return { grants: items, next_cursor: nextCursor };
  }

  async get(caller: Caller, grantId: string): Promise<GrantView> {
    return toView((await this.runs.visibleGrant(caller, grantId)).state, 'none');
  }

  /** By its grantee, or by whoever policy lets revoke it; answered once the assignment is gone (or after `env.revokeWaitMs`). */
  async revoke(caller: Caller, grantId: string, reason?: string): Promise<GrantView> {
    const run = await this.runs.visibleGrant(caller, grantId, true);
    const { state } = run;
    if (state.key.principalId !== caller.principal.id) {
      const verdict = this.runs.decide(caller, 'revoke', state.key, policyContext(askedByGrant(state), await this.runs.sessionSeconds(caller.tenant.id)));
      if (!verdict.allowed) {
        throw new AccessError('forbidden', 'Policy does not allow you to revoke this grant.', { notices: verdict.notices });
      }
    }
    if (!isOpen(state)) throw new AccessError('conflict', `The grant is already ${state.status}.`);
    if (state.revocation) throw new AccessError('conflict', 'The grant is already being revoked.');
    const handle = this.runs.client.workflow.getHandle<typeof grantWorkflow>(run.workflowId, run.runId);
    this.runs.changing(run.workflowId, state.id);
    const revoked = await rejectionsAsErrors(() => handle.executeUpdate(revokeUpdate, { args: [{ revokedBy: caller.principal.id, reason }] }));
    // Answer once the assignment is gone, so the caller's "revoked" means no access. Read from the
    // run's memo, not its result: the run may still be finishing its notifications.
    const deadline = Date.now() + env.revokeWaitMs;
    let latest = revoked;
    while (latest.status !== 'revoked' && latest.status !== 'expired') {
      if (Date.now() > deadline) break;
      await pause(250);
      latest = (await this.runs.current(run.workflowId, run.runId)) ?? latest;
    }
    if (latest.status === 'revoked' || latest.status === 'expired') return toView(latest, 'none');
    // Not a failure: the revocation is recorded and the workflow keeps at the removal.
    return toView(latest, 'none', [
      {
        level: 'info',
        code: 'revocation_in_progress',
        message: `The revocation is recorded; removing the account assignment is still under way (the grant shows ${latest.status} until it is gone). Read the grant again to see it end.`,
      },
    ]);
  }
}
