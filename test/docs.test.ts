// The README and the pages under docs/ link to each other by relative paths: every such link must
// reach a file that exists, and every #anchor a heading of the page it points at.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../scripts/stack';

const pages = ['README.md', ...readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1])));
}

/** Markdown links `[text](target)` outside code blocks and code spans. */
function linksOf(text: string): string[] {
  const prose = text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

describe('documentation links', () => {
  for (const page of pages) {
    it(`every relative link in ${page} reaches a file (and heading) that exists`, () => {
      const from = path.join(repoRoot, page);
      const broken: string[] = [];
      for (const link of linksOf(readFileSync(from, 'utf8'))) {
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
        const [file, anchor] = link.split('#');
        const target = file ? path.resolve(path.dirname(from), file) : from;
        if (!existsSync(target)) broken.push(`${link} (no such file)`);
        else if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor)) broken.push(`${link} (no such heading)`);
      }
      assert.deepEqual(broken, []);
    });
  }

  it('the README links every page under docs/', () => {
    const linked = new Set(linksOf(readFileSync(path.join(repoRoot, 'README.md'), 'utf8')).map((l) => l.split('#')[0]));
    assert.deepEqual(pages.filter((p) => p.startsWith('docs/') && !linked.has(p)), []);
  });
});
