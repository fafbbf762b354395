// Placeholder until the opsgenie client lands (issue 40): every answer is "unknown".
import type { OncallConfig } from '../config';
import { SourceError } from './http';
import type { OncallProvider, ProviderFactory } from '.';

export const opsgenieSource: ProviderFactory<OncallConfig, OncallProvider> = () => ({
  async oncallNow() {
    throw new SourceError('opsgenie: not built yet');
  },
});
