// Text that others wrote (a reason, a comment, a ticket, a name from a token), put into text the
// service writes. Pure: the workflow uses it too.

/**
 * As Markdown that renders as the text itself (Temporal's Web UI): on one line, so it cannot start
 * a heading, a list or a paragraph of its own, and with the characters that mean something inline
 * (emphasis, code, links, images, HTML, tables) backslash-escaped. `#` is escaped too, in case the
 * text ends up at the start of a line.
 */
export function markdownText(text: string): string {
  return oneLine(text).replace(/[\\`*_[\]()<>!|~&#]/g, '\\$&');
}

/** Runs of whitespace (newlines included) as one space, and no other control characters. */
export function oneLine(text: string): string {
  return text.replace(/[\x00-\x08\x0e-\x1f\x7f-\x9f]/g, '').replace(/\s+/g, ' ').trim();
}
