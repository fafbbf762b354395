// Who an on-call source is asked about: providers know people by email. (The Person shape is
// spelled out, not imported from '.', so this file adds no import cycle.)
/** The person's email: their token's email, else their id when it is one. */
export function emailOf(person: { id: string; email?: string }): string | undefined {
  if (person.email) return person.email;
  return /^[^@\s]+@[^@\s]+$/.test(person.id) ? person.id : undefined;
}
