/** The Prometheus rules pass `promtool check rules` and their unit tests, with a test for every alert. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEPLOY, findTool } from './helpers';

const RULES = path.join(DEPLOY, 'prometheus', 'sluice-rules.yaml');
const TESTS = path.join(DEPLOY, 'prometheus', 'sluice-rules.test.yaml');

function promtool(args: string[]): string {
  return execFileSync(findTool('promtool'), args, { encoding: 'utf8', cwd: path.dirname(RULES), stdio: 'pipe' });
}

describe('Prometheus rules', () => {
  it('promtool check rules passes', () => {
    expect(promtool(['check', 'rules', RULES])).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('promtool test rules passes', () => {
    expect(promtool(['test', 'rules', TESTS])).toMatch(/SUCCESS/);
  });

  it('every alert has a unit test that expects it to fire and one that expects silence', () => {
    const rules = parse(fs.readFileSync(RULES, 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
    const alerts = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : []))));
    const tests = parse(fs.readFileSync(TESTS, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert} firing`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert} silent`,
      ).toBe(true);
    }
    expect([...alerts].sort()).toEqual([
      'SluiceActivityErrorRateHigh',
      'SluiceActivityP99Slow',
      'SluiceBacklogGrowing',
      'SluiceBacklogOlderThanSLA',
      'SluiceDLQNotEmpty',
      'SluiceDLQWriteFailing',
      'SluiceVersionDrainingTooLong',
      'SluiceWorkersUnderutilized',
    ]);
  });

  it('the PrometheusRule manifest carries the same groups as the rule file', () => {
    const plain = parse(fs.readFileSync(RULES, 'utf8')) as { groups: unknown };
    const crd = parse(fs.readFileSync(path.join(DEPLOY, 'components/monitoring/prometheusrule.yaml'), 'utf8')) as {
      spec: { groups: unknown };
    };
    expect(crd.spec.groups).toEqual(plain.groups);
  });

  it('a broken rule is caught (promtool is really run)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-promtool-'));
    try {
      const bad = path.join(dir, 'bad.yaml');
      fs.writeFileSync(
        bad,
        'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]) >\n',
      );
      expect(() => promtool(['check', 'rules', bad])).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
