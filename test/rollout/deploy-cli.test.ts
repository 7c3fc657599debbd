/**
 * `sluice version` and `sluice deploy …` on the real server: the status of a tier's deployment,
 * and bad input (unknown build, ramp outside 0–100, a build ID the server would refuse) refused
 * with exit 2, the field named and the routing unchanged. A worker whose SLUICE_BUILD_ID setting
 * differs from the tier's other workers logs the mismatch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentStatus } from '../../src/client/deployments';
import type { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { bundleBuildId } from '../../src/workers/versioning';
import { WorkerHost } from '../../src/workers/host';
import { runSluice } from '../helpers/cli';
import { REPO_ROOT, connectClient, makeTestEnv, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;

beforeAll(async () => {
  t = makeTestEnv('deploy-cli', { SLUICE_BUILD_ID: 'v1' });
  host = await WorkerHost.start({ config: t.config, tiers: ['default'], log: createLogger('warn'), activities: {} });
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

const routing = async () => {
  const d = (
    await deploymentStatus(
      { service: client.temporal.workflowService, namespace: t.config.temporal.namespace, suffix: t.suffix },
      ['default'],
    )
  )[0];
  return { current: d?.current, ramping: d?.ramping, rampPercentage: d?.rampPercentage };
};

describe('sluice version and sluice deploy', () => {
  it('version prints SLUICE_BUILD_ID, else the hash of the compiled workflow bundle', async () => {
    const set = await runSluice(t, ['version', '--json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ buildId: 'v1', source: 'SLUICE_BUILD_ID' });
    const unset = await runSluice(t, ['version'], { env: { SLUICE_BUILD_ID: '' } });
    expect(unset.code).toBe(0);
    const prebuilt = path.join(REPO_ROOT, 'dist', 'workflow-bundle.js');
    expect(fs.existsSync(prebuilt)).toBe(true);
    expect(unset.stdout.trim()).toBe(bundleBuildId({ codePath: prebuilt }));
    expect(unset.stdout.trim()).toMatch(/^bundle-[0-9a-f]{12}$/);
  });

  it('status shows the current version, its pollers and open pinned runs', async () => {
    const r = await runSluice(t, ['deploy', 'status', '--tier', 'default', '--json']);
    expect(r.code).toBe(0);
    type Status = {
      deploymentName: string;
      current: string;
      versions: { buildId: string; status: string; pollers: number; openPinnedRuns: number }[];
    };
    const [d] = (JSON.parse(r.stdout) as { deployments: Status[] }).deployments;
    expect(d?.deploymentName).toBe(`sluice-default-${t.suffix}`);
    expect(d?.current).toBe('v1');
    expect(d?.versions).toHaveLength(1);
    expect(d?.versions[0]).toMatchObject({ buildId: 'v1', status: 'current', openPinnedRuns: 0 });
    expect(d?.versions[0]?.pollers).toBeGreaterThan(0);
  });

  it('capacity reports the backlog of each build', async () => {
    const r = await runSluice(t, ['capacity', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { builds } = JSON.parse(r.stdout) as {
      builds: { tier: string; buildId: string; queueType: string; backlog: number }[];
    };
    const mine = builds.filter((b) => b.tier === 'default');
    expect(mine.map((b) => b.buildId)).toContain('v1');
    expect(mine.map((b) => b.queueType)).toContain('workflow');
    for (const b of mine) expect(b.backlog).toBeGreaterThanOrEqual(0);
  });

  it('bad input exits 2 naming the field and changes nothing', async () => {
    const before = await routing();
    expect(before.current).toBe('v1');
    const cases: { args: string[]; field: string; text: RegExp }[] = [
      { args: ['deploy', 'set-current', 'v9', '--tier', 'default'], field: 'build-id', text: /unknown build "v9"/ },
      { args: ['deploy', 'ramp', 'v9', '20', '--tier', 'default'], field: 'build-id', text: /unknown build "v9"/ },
      { args: ['deploy', 'ramp', 'v1', '150', '--tier', 'default'], field: 'percent', text: /0 to 100/ },
      { args: ['deploy', 'ramp', 'v1', '-5', '--tier', 'default'], field: 'percent', text: /0 to 100/ },
      { args: ['deploy', 'set-current', 'a.b/c!', '--tier', 'default'], field: 'build-id', text: /not a build ID/ },
      { args: ['deploy', 'set-current', '__unversioned__'], field: 'build-id', text: /not a build ID/ },
      { args: ['deploy', 'status', '--tier', 'urgent'], field: 'tier', text: /unknown tier/ },
    ];
    for (const c of cases) {
      const r = await runSluice(t, [...c.args, '--json']);
      expect(r.code, `${c.args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout + r.stderr).toContain(c.field);
      expect(r.stdout + r.stderr).toMatch(c.text);
    }
    expect(await routing()).toEqual(before);
  });

  it('SLUICE_BUILD_ID that is not a build ID is a config error naming it', async () => {
    const r = await runSluice(t, ['version'], { env: { SLUICE_BUILD_ID: 'no spaces allowed' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SLUICE_BUILD_ID');
  });

  it('a worker of the tier without SLUICE_BUILD_ID logs the mismatch and does not take over', async () => {
    const lines: string[] = [];
    const log = createLogger('error');
    const capture = new Proxy(log, {
      get(target, prop, receiver) {
        if (prop === 'error')
          return (obj: unknown, msg?: string) => {
            lines.push(typeof obj === 'string' ? obj : String(msg));
            return target.error(obj as object, msg);
          };
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const env = { ...t.env, SLUICE_BUILD_ID: undefined };
    const second = await WorkerHost.start({
      config: loadConfig(env, t.dir),
      tiers: ['default'],
      log: capture,
      activities: {},
      workflowBundle: { codePath: path.join(REPO_ROOT, 'dist', 'workflow-bundle.js') },
    });
    try {
      expect(second.build?.source).toBe('bundle');
      expect(second.versionMismatches.default).toMatch(/SLUICE_BUILD_ID mismatch in sluice-default-/);
      expect(lines.join('\n')).toMatch(/SLUICE_BUILD_ID mismatch/);
      expect((await routing()).current).toBe('v1');
    } finally {
      await second.shutdown();
    }
  });
});
