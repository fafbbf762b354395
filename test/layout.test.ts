// The code's rooms import downwards only: a circle (type imports included) means two modules
// that cannot be read, tested or moved apart.
import assert from 'node:assert/strict';
import path from 'node:path';
import madge from 'madge';

const repoRoot = path.resolve(__dirname, '../..');

describe('source layout', () => {
  it('has no import circle in src/', async () => {
    const graph = await madge(path.join(repoRoot, 'src'), { fileExtensions: ['ts', 'tsx'], tsConfig: path.join(repoRoot, 'tsconfig.json') });
    assert.ok(Object.keys(graph.obj()).length > 40, 'the graph covers the sources');
    assert.deepEqual(graph.circular(), []);
  });
});
