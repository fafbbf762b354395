// Ids of grants and access requests: UUIDv7 (RFC 9562), whose first 48 bits are when it was made.
// The read side uses that to tell an id made a moment ago (which visibility may not list yet) from
// any other, which it answers at once.
import { v7 } from 'uuid';

export function newId(): string {
  return v7();
}

/** When `id` was made (epoch ms), if it is a UUIDv7; null for any other id. */
export function madeAt(id: string): number | null {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return null;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
