/** docs/configuration.md is generated from src/config.ts; this keeps it current and complete. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOC, renderConfigDoc } from '../../scripts/config-doc';

const source = fs.readFileSync(path.resolve(__dirname, '..', '..', 'src', 'config.ts'), 'utf8');

describe('docs/configuration.md', () => {
  it('matches a fresh render of src/config.ts (run: npx tsx scripts/config-doc.ts)', () => {
    expect(fs.readFileSync(CONFIG_DOC, 'utf8')).toBe(renderConfigDoc(source));
  });

  it('lists every variable the schema reads', () => {
    const doc = renderConfigDoc(source);
    const names = [...source.matchAll(/^\s{2}([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(40);
    for (const name of names) expect(doc).toContain(`\`${name}\``);
    // …each with a meaning: a variable without TSDoc renders an empty cell.
    const undocumented = doc.split('\n').filter((l) => /^\| `[A-Z0-9_]+` \| .* \|\s*\|$/.test(l));
    expect(undocumented).toEqual([]);
  });
});
