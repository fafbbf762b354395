// `npm run screenshot`: the pictures of the Temporal Web UI in docs/operations.md. Starts the local stack with
// the UI, a worker and the API, makes a few grants, and has headless Chromium (Debian's
// `chromium`, or CHROMIUM=/path) save the workflow list filtered to grants and one grant's page
// under docs/. Not needed by the tests or CI.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { chromium, type Page } from 'playwright-core';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { freePort } from '../src/net';
import { repoRoot, startLocalServices, startStack } from './stack';

const TENANT = { id: '2489e9ad-2ee2-8e00-8ec9-32d5f69181c0', name: 'example' };
const PEOPLE = {
  alice: { sub: 'alice', email: 'alice@example.com', groups: ['engineering'] },
  bob: { sub: 'bob', email: 'bob@example.com', groups: ['engineering'] },
};
const COLUMNS_OUT = ['Run ID', 'Type', 'End'];
const COLUMNS_IN = ['AccessPrincipal', 'AccessRole', 'AccessTarget', 'AccessStatus', 'AccessExpiresAt'];

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const uiPort = await freePort();
  const stack = await startStack({
    dir: mkdtempSync(path.join(os.tmpdir(), 'access-screenshot-')),
    tenants: [TENANT],
    users: Object.values(PEOPLE).map((p) => p.email),
    permissionSets: ['ReadOnlyAccess', 'AdministratorAccess', 'PowerUserAccess'],
    temporalUiPort: uiPort,
  });
  const config = loadConfig(stack.configPath);
  const services = await startLocalServices(stack, config, createLogger('api'));
  const api = services.baseUrl;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const ensure = async (who: keyof typeof PEOPLE, role: string, account: string, seconds: number, reason: string) => {
      const token = await stack.issueToken(TENANT.id, PEOPLE[who]);
      const res = await fetch(`${api}/v1/access/ensure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'x-tenant-id': TENANT.id, 'content-type': 'application/json' },
        body: JSON.stringify({ entitlements: [{ target: `AWS::Account::${account}`, role, duration_seconds: seconds }], justification: { reason } }),
      });
      if (!res.ok) throw new Error(`ensure ${role} for ${who}: HTTP ${res.status} ${await res.text()}`);
      return ((await res.json()) as { grants: { id: string }[] }).grants[0];
    };
    await ensure('alice', 'ReadOnlyAccess', '123456789012', 3600, 'reading CloudWatch logs for INC-42');
    await ensure('bob', 'ReadOnlyAccess', '210987654321', 7200, 'cost report');
    await ensure('alice', 'AdministratorAccess', '123456789012', 1800, 'rotate the KMS key');
    await new Promise((r) => setTimeout(r, 4000)); // provisioning and visibility

    const page = await browser.newPage({ viewport: { width: 2300, height: 480 } });
    const ui = `http://127.0.0.1:${uiPort}/namespaces/default/workflows`;
    await page.goto(`${ui}?query=${encodeURIComponent("WorkflowType = 'grantWorkflow'")}`);
    await page.getByText('grant/').first().waitFor();
    await configureColumns(page);
    await page.goto(`${ui}?query=${encodeURIComponent("WorkflowType = 'grantWorkflow'")}`);
    await page.getByText('grant/').first().waitFor();
    await page.getByRole('button', { name: 'Collapse saved views' }).click().catch(() => undefined);
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(repoRoot, 'docs/ui-grants.png') });

    const detail = await browser.newPage({ viewport: { width: 1400, height: 760 } });
    const workflowId = `grant/${TENANT.id}/alice/123456789012/ReadOnlyAccess`;
    await detail.goto(`${ui}/${encodeURIComponent(workflowId)}`);
    await detail.getByText('alice (alice@example.com)').first().waitFor({ timeout: 30_000 });
    await detail.getByText('User Metadata').first().click();
    await detail.waitForTimeout(2000);
    await detail.screenshot({ path: path.join(repoRoot, 'docs/ui-grant.png') });
    console.log('wrote docs/ui-grants.png and docs/ui-grant.png');
  } finally {
    await browser.close();
    await services.stop();
    await stack.stop();
  }
}

/** The list's columns: who, what and until when instead of run ids (the UI keeps them per browser). */
async function configureColumns(page: Page): Promise<void> {
  await page.getByTestId('workflows-summary-table-configuration-button').click();
  const labels = await page.locator('button[data-testid^="orderable-list-item-"]').evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')));
  const toggle = async (name: string) => {
    const label = labels.find((l) => l && /^(add|remove)\b/i.test(l) && new RegExp(`\\b${name}\\b`).test(l));
    if (!label) throw new Error(`no add/remove button for column ${name} among: ${labels.join(', ')}`);
    await page.locator(`button[aria-label="${label}"]`).click();
  };
  for (const name of [...COLUMNS_OUT, ...COLUMNS_IN]) await toggle(name);
  await page.keyboard.press('Escape');
  await page.mouse.click(200, 400);
  await page.waitForTimeout(1000);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
