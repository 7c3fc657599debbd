/**
 * The real Temporal UI of the run's dev server, in headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core): a report pipeline is listed by its search attributes, and its page
 * shows the summary, the Partial flag and the other search attributes. Screenshots go to
 * `test-output/ui/` (gitignored).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { DuckDbSource } from '../../src/data/duckdb';
import type { WorkerHost } from '../../src/workers/host';
import {
  REPO_ROOT,
  connectClient,
  makeTestEnv,
  startHost,
  type TestEnv,
  duckDbSource,
  storageOf,
} from '../helpers/env';
import { reportActivities, smallPartitions } from '../report/helpers';

const CHROMIUM = '/usr/bin/chromium';
const OUT = path.join(REPO_ROOT, 'test-output', 'ui');
let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
let browser: BrowserContext | undefined;
let page: Page;
let workflowId: string;
let summary: string;

beforeAll(async () => {
  t = makeTestEnv('ui');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2, 200);
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t)));
  client = await connectClient(t);
  const started = await client.startReportPipeline({
    from: '2024-01',
    to: '2024-03',
    policy: 'partial',
    groupBy: ['month', 'region'],
    tenant: 'uitest',
    idempotencyKey: `ui-${t.suffix}`,
  });
  workflowId = started.workflowId;
  const result = await client.getReportResult(workflowId);
  expect(result.missing.map((m) => m.month)).toEqual(['2024-03']);
  summary = (await (await client.temporal.workflow.getHandle(workflowId).describe()).staticSummary()) ?? '';
  expect(summary).toMatch(/^report 2024-01 … 2024-03: /);

  fs.mkdirSync(OUT, { recursive: true });
  browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

/** Text of the page and its iframes, polled until `done` accepts it (bounded: 30 s). */
async function textOfAllFrames(p: Page, done: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 30_000;
  let text = '';
  while (Date.now() < deadline) {
    const parts = await Promise.all(
      p.frames().map((f) =>
        f
          .locator('body')
          .innerText({ timeout: 2_000 })
          .catch(() => ''),
      ),
    );
    text = parts.join('\n');
    if (done(text)) return text;
    await p.waitForTimeout(500);
  }
  return text;
}

afterAll(async () => {
  await browser?.close();
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('Temporal UI', () => {
  it('lists the report pipeline when filtered by its search attributes', async () => {
    const ui = inject('temporalUiUrl');
    expect(ui).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const query = `PipelineKind="report" AND Tenant="uitest" AND Partial=true`;
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent(query)}`, {
      waitUntil: 'networkidle',
    });
    await page.getByText(workflowId).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(OUT, 'report-list.png'), fullPage: true });
    expect(await page.getByText('reportPipelineWorkflow').count()).toBeGreaterThan(0);
  });

  it('shows the summary and the search attributes on the workflow page', async () => {
    // From the filtered list, as an operator would: open the workflow by its ID.
    await page.locator(`a:has-text("${workflowId}")`).first().click({ timeout: 15_000 });
    await page.waitForURL(/\/history$/, { timeout: 30_000 });
    await page.getByText('reportPipelineWorkflow').first().waitFor({ timeout: 30_000 });
    // The timeline names each sub-job by its activity summary.
    await page.getByText('aggregate 2024-02').first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(OUT, 'report-history.png'), fullPage: true });

    await page.getByText('User Metadata', { exact: true }).click();
    // The UI renders summary and details as markdown in sandboxed iframes.
    const details = /done — \d+ rows → .*report\.html \(partial\)/;
    const shown = await textOfAllFrames(page, (text) => text.includes(summary) && details.test(text));
    expect(shown).toContain(summary);
    expect(shown).toMatch(details);
    await page.screenshot({ path: path.join(OUT, 'report-summary.png'), fullPage: true });

    await page.getByText('Search Attributes', { exact: true }).click();
    await page.getByText('PipelineKind').first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(OUT, 'report-search-attributes.png'), fullPage: true });
    const text = await page.locator('main').innerText();
    fs.writeFileSync(path.join(OUT, 'report-search-attributes.txt'), text);
    for (const [key, value] of [
      ['PipelineKind', 'report'],
      ['Tenant', 'uitest'],
      ['Tier', 'default'],
      ['Stage', 'done'],
      ['Partial', 'true'],
    ])
      expect(text).toMatch(new RegExp(`${key}[\\s\\S]{0,40}${value}`));
  });
});
