/**
 * The import-direction check run by `npm run lint` (scripts/check-imports.ts): it names each
 * import that runs up a floor, and the repository's own src/ has none.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkImports } from '../../scripts/check-imports';
import { REPO_ROOT } from '../helpers/env';

/** A throwaway source tree: `files` maps relative paths to their text. */
function fixture(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-imports-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('scripts/check-imports.ts', () => {
  it('names an upward import, a type-only one and a re-export, with file and line', () => {
    const root = fixture({
      'shared/a.ts': 'export const a = 1;\n',
      'workers/host.ts': 'export class WorkerHost {}\n',
      'client/index.ts': 'export class SluiceClient {}\n',
      'activities/pack/index.ts': [
        "import { a } from '../../shared/a';",
        "import { WorkerHost } from '../../workers/host';",
        'export const b = [a, WorkerHost];',
        '',
      ].join('\n'),
      'dlq/replay.ts': "import type { SluiceClient } from '../client';\nexport type C = SluiceClient;\n",
      'config.ts': "export { WorkerHost } from './workers/host';\n",
    });
    const problems = checkImports(root);
    expect(problems.map((p) => [p.file, p.line, p.specifier])).toEqual([
      ['activities/pack/index.ts', 2, '../../workers/host'],
      ['config.ts', 1, './workers/host'],
      ['dlq/replay.ts', 1, '../client'],
    ]);
    expect(problems[0]?.message).toBe('activities (floor 4) imports workers (floor 6), a higher floor');
  });

  it('accepts imports down a floor and within a floor', () => {
    const root = fixture({
      'shared/a.ts': 'export const a = 1;\n',
      'workflows/w.ts':
        "import { a } from '../shared/a';\nimport type { X } from '../activities/x';\nexport const w = a;\n",
      'activities/x.ts': 'export type X = number;\n',
      'cli/main.ts': "import { w } from '../workflows/w';\nvoid import('../client/index');\n",
      'client/index.ts': 'export {};\n',
    });
    expect(checkImports(root)).toEqual([]);
  });

  it('names a folder that is on no floor', () => {
    const root = fixture({ 'plugins/x.ts': 'export {};\n', 'shared/a.ts': "import '../plugins/x';\n" });
    expect(checkImports(root).map((p) => p.message)).toEqual([
      'plugins is on no floor of scripts/check-imports.ts',
      'plugins is on no floor of scripts/check-imports.ts',
    ]);
  });

  it("finds no upward import in the repository's src/", () => {
    expect(checkImports(path.join(REPO_ROOT, 'src'))).toEqual([]);
  });
});
