// The sessions workflow as it was before 1.2 (versions.sessionsPerAccount): runs recorded then go
// on with it, one activity writing and provisioning a whole batch. Removed once none is left.
import { condition, continueAsNew, getExternalWorkflowHandle, log, proxyActivities, setHandler, type SignalDefinition, sleep, workflowInfo } from '@temporalio/workflow';
import type { SessionActivities } from '../activities/sessions';
import type { AuditRecord } from '../domain/audit';
import { auditing } from './grant/calls';
import { type SessionCutoffRequest, sessionCutoffSignal, sessionRevocationFailedSignal, sessionsRevokedSignal } from './messages';

interface SessionsInput {
  permissionSetArn: string;
  /** Whose credentials reach the instance: any tenant on it may write (the latest to hand one in). */
  tenantId: string;
  /** Carried over by continue-as-new. */
  pending?: SessionCutoffRequest[];
  nextPruneAt?: string | null;
}

// Each round is short, so a failure reaches the grants within seconds; the rounds back off.
const { applySessionCutoffs } = proxyActivities<SessionActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 2 },
});

export async function sessionsWorkflow11(input: SessionsInput): Promise<void> {
  const pending: SessionCutoffRequest[] = [...(input.pending ?? [])];
  let nextPruneAt = input.nextPruneAt ?? null;
  // Whose credentials write: the latest hand-in's tenant (one still configured, should the first leave the instance).
  let tenantId = input.tenantId;
  setHandler(sessionCutoffSignal, (c) => void pending.push(c));
  for (;;) {
    // Between rounds, nothing in flight: a long history (a flood of ends) goes on in a new run.
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000) {
      await continueAsNew<typeof sessionsWorkflow11>({ ...input, tenantId, pending, nextPruneAt });
    }
    if (pending.length === 0) {
      if (nextPruneAt === null) return;
      await condition(() => pending.length > 0, Math.max(Date.parse(nextPruneAt) - Date.now(), 1));
    }
    const batch = pending.splice(0);
    tenantId = batch.at(-1)?.tenantId ?? tenantId;
    const applied = await applyUntilDone(input.permissionSetArn, tenantId, batch);
    nextPruneAt = applied.nextPruneAt;
    await settle(batch, applied.at);
  }
}

async function applyUntilDone(permissionSetArn: string, tenantId: string, batch: SessionCutoffRequest[]) {
  for (let round = 1; ; round++) {
    try {
      const applied = await applySessionCutoffs({ tenantId, permissionSetArn, add: batch.map(({ userId, accountId, at }) => ({ userId, accountId, at })) });
      return { ...applied, at: new Date(Date.now()).toISOString() };
    } catch (err) {
      const message = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      log.warn('session cut-off failed; retrying', { permissionSetArn, round, message });
      await Promise.all(batch.map((c) => tell(c, sessionRevocationFailedSignal, { message })));
      await sleep(Math.min(60_000, 5_000 * round));
    }
  }
}

/** Tells each grant, and puts each on record. */
async function settle(batch: SessionCutoffRequest[], at: string): Promise<void> {
  const records: AuditRecord[] = batch.flatMap((c) =>
    c.grant
      ? [
          {
            tenant_id: c.tenantId,
            event: 'sessions_revoked' as const,
            at,
            actor: { type: 'system' as const, id: 'sessions' },
            principal: c.grant.principal,
            target: c.grant.target,
            role: c.grant.role,
            grant_id: c.grant.id,
            access_request_id: null,
            details: { user_id: c.userId, account_id: c.accountId, sessions_issued_before: c.at },
            occurrence: 'sessions_revoked',
          },
        ]
      : [],
  );
  await Promise.all([...batch.map((c) => tell(c, sessionsRevokedSignal, { at })), ...(records.length > 0 ? [auditing.writeAuditEvents(records)] : [])]);
}

async function tell<T>(c: SessionCutoffRequest, signal: SignalDefinition<[T]>, arg: T): Promise<void> {
  if (!c.grant) return;
  // The grant may have closed meanwhile (it waits only so long): nothing to tell then.
  await getExternalWorkflowHandle(c.grant.workflowId).signal(signal, arg).catch(() => undefined);
}
