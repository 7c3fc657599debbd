/**
 * The README's examples line up: `data generate` without --start makes the months that the
 * schedules in schedules.yaml read, and the video example says where its path is resolved.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSchedulesFile } from '../../src/schedules/file';
import { addMonths } from '../../src/shared/report';
import { oneJson, runSluice } from '../helpers/cli';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';

const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

describe('README examples', () => {
  it('`data generate --months 3` (no --start) writes every month the schedules in schedules.yaml read', async () => {
    const t = makeTestEnv('readme');
    expect(readme).toContain('node bin/sluice data generate --months 3 ');
    const run = await runSluice(t, ['data', 'generate', '--months', '3', '--rows-per-month', '20', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const generated = (oneJson(run) as { partitions: { month: string }[] }).partitions.map((p) => p.month);

    const now = new Date();
    const thisMonth = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
    const schedules = loadSchedulesFile(path.join(REPO_ROOT, 'schedules.yaml'));
    expect(schedules.length).toBeGreaterThan(0);
    for (const s of schedules) {
      // What the workflow reads for lastMonths: the N complete months before the one it starts in.
      const n = s.input.lastMonths ?? 0;
      expect(n, s.id).toBeGreaterThan(0);
      const needed = Array.from({ length: n }, (_, i) => addMonths(thisMonth, -(i + 1)));
      for (const month of needed) expect(generated, `${s.id} reads ${month}`).toContain(month);
    }
  }, 120_000);

  it('says the video example path is relative to SLUICE_MEDIA_ROOT', () => {
    const example = readme.split('\n').findIndex((l) => l.startsWith('node bin/sluice video uploads/talk.mp4'));
    expect(example).toBeGreaterThan(0);
    expect(readme.split('\n')[example - 1]).toContain('relative to SLUICE_MEDIA_ROOT');
  });
});
