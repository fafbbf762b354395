// Ids of grants and access requests: UUIDv7 (RFC 9562), ordered by when they were made. Only an
// id this API process gave out is looked for again while visibility lags (GrantRuns.whenVisible):
// the time in an id is the client's to choose, so it decides nothing.
import { v7 } from 'uuid';

export function newId(): string {
  return v7();
}
