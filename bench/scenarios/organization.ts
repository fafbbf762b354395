// The organisation refresh at an organisation's size (bench/organization.ts has the scenario's own parts).
import { loadConfig } from '../../src/config';
import { organizationScenario, refreshFloor } from '../organization';
import { ORGANIZATION_TENANT, log } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'organization',
  key: 'organization',
  title: 'organization',
  run,
  rows: (organization: any, s) => {
    const o = organization;
    const row = (label: string, r: any, target: string, met: boolean | undefined) => [
      `organisation ${label}: ${r.accounts} accounts in ${s.organizationOus} OUs`,
      `${r.seconds} s, ${r.calls} calls (result ${round(r.resultBytes / 1024)} KB for a ${round(r.mapBytes / 1024)} KB map)`,
      `${r.floorSeconds} s (its calls at ${o.callsPerSecond} a second)`,
      x(r.seconds, r.floorSeconds),
      target,
      met === undefined ? '' : yes(met),
    ];
    const floorRow = o.refreshFloor
      ? [[`organisation refresh, its calls alone: ${o.refresh.accounts} accounts`, `${o.refreshFloor.seconds} s, ${o.refreshFloor.calls} calls`, `sent straight to moto through the pacer`, o.refreshFloor.seconds ? x(o.refresh.seconds, o.refreshFloor.seconds) : '', 'the refresh within 1.5x of it', yes(o.refresh.seconds <= 1.5 * o.refreshFloor.seconds)]]
      : [];
    return [row('first read (every account\'s tags)', o.first, '', undefined), row('refresh', o.refresh, '< 60 s', o.refresh.seconds < 60), ...floorRow];
  },
};

async function run(b: Bench) {
  const { temporal, stack, configPath, callsPerSecond, organizationWorld } = b;
  log('organization: waiting for the first read, then a refresh');
  const reads = await organizationScenario(temporal, ORGANIZATION_TENANT.id, callsPerSecond);
  const tagReads = loadConfig(configPath).tenants.find((t) => t.id === ORGANIZATION_TENANT.id)!.organization!.tag_reads_per_refresh;
  const floor = await refreshFloor(stack.awsEndpoint, organizationWorld!.topOus, tagReads, callsPerSecond);
  return { ...reads, refreshFloor: floor, callsPerSecond };
}
