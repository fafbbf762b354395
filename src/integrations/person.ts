// Who an on-call source is asked about: providers know people by email.
import type { Person } from './provider';
/** The person's email: their token's email, else their id when it is one. */
export function emailOf(person: Person): string | undefined {
  if (person.email) return person.email;
  return /^[^@\s]+@[^@\s]+$/.test(person.id) ? person.id : undefined;
}
