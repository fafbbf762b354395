// The workflow code bundled once per test process, for the worker processes the tests start and
// restart (WORKFLOW_BUNDLE): a start then skips the few seconds that bundling takes.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

let made: Promise<string> | undefined;

export function workflowBundle(): Promise<string> {
  made ??= (async () => {
    const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows') });
    const file = path.join(os.tmpdir(), `access-workflows-${process.pid}.js`);
    writeFileSync(file, code);
    return file;
  })();
  return made;
}
