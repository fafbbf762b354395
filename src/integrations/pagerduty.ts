// Placeholder until the pagerduty client lands (issue 40): every answer is "unknown".
import type { OncallConfig } from '../config';
import { SourceError } from './http';
import type { OncallProvider, ProviderFactory } from '.';

export const pagerdutySource: ProviderFactory<OncallConfig, OncallProvider> = () => ({
  async oncallNow() {
    throw new SourceError('pagerduty: not built yet');
  },
});
