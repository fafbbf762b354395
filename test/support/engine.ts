// The Temporal engine a run is on, as the server describes itself (GetClusterInfo), against the one
// the run claims: with TEMPORAL_PERSISTENCE=postgres the server on PostgreSQL (persistence and
// visibility), otherwise the dev server on SQLite.
import assert from 'node:assert/strict';
import type { ConnectionLike } from '@temporalio/client';

export interface Engine {
  persistence: string;
  visibility: string;
  version: string;
}

export async function engineOf(connection: ConnectionLike): Promise<Engine> {
  const info = await connection.workflowService.getClusterInfo({});
  return { persistence: info.persistenceStore ?? '', visibility: info.visibilityStore ?? '', version: info.serverVersion ?? '' };
}

/**
 * The store the run claims (the server's plugin name: postgres12 or postgres12_pgx, sqlite), or
 * none for a server the run did not start and was not told the engine of.
 */
export function claimedStore(startedHere: boolean): RegExp | undefined {
  if (process.env.TEMPORAL_PERSISTENCE === 'postgres') return /^postgres/;
  return startedHere ? /^sqlite$/ : undefined;
}

/** Throws unless both persistence and visibility are the claimed store. */
export function assertEngine(engine: Engine, claimed: RegExp | undefined, where: string): void {
  if (!claimed) return;
  const described = `${where}: Temporal ${engine.version}, persistence ${engine.persistence}, visibility ${engine.visibility}`;
  assert.match(engine.persistence, claimed, `${described}; TEMPORAL_PERSISTENCE=${process.env.TEMPORAL_PERSISTENCE ?? ''} claims ${claimed}`);
  assert.match(engine.visibility, claimed, `${described}; TEMPORAL_PERSISTENCE=${process.env.TEMPORAL_PERSISTENCE ?? ''} claims ${claimed}`);
}
