// Placeholder until the servicenow client lands (issue 40): every answer is "unknown".
import type { TicketsConfig } from '../config';
import { SourceError } from './http';
import type { TicketProvider, ProviderFactory } from '.';

export const servicenowSource: ProviderFactory<TicketsConfig, TicketProvider> = () => ({
  pattern: /[A-Z][A-Z0-9]+-\d+/,
  async ticket() {
    throw new SourceError('servicenow: not built yet');
  },
});
