// Placeholder until the jira client lands (issue 40): every answer is "unknown".
import type { TicketsConfig } from '../config';
import { SourceError } from './http';
import type { TicketProvider, ProviderFactory } from '.';

export const jiraSource: ProviderFactory<TicketsConfig, TicketProvider> = () => ({
  pattern: /[A-Z][A-Z0-9]+-\d+/,
  async ticket() {
    throw new SourceError('jira: not built yet');
  },
});
