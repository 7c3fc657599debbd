/** docs/schemas/*.json are generated from the pipelines' zod schemas; this keeps them current. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMAS_DIR, renderInputSchemas } from '../../scripts/input-schemas';

describe('docs/schemas', () => {
  const rendered = renderInputSchemas();

  it('holds exactly the generated files, each equal to a fresh render (run: npx tsx scripts/input-schemas.ts)', () => {
    expect(fs.readdirSync(SCHEMAS_DIR).sort()).toEqual(Object.keys(rendered).sort());
    for (const [file, text] of Object.entries(rendered)) {
      expect(fs.readFileSync(path.join(SCHEMAS_DIR, file), 'utf8'), file).toBe(text);
    }
  });

  it('marks only the fields without a default as required, and rejects unknown fields', () => {
    const video = JSON.parse(rendered['video-pipeline-input.json'] ?? '{}') as Record<string, unknown>;
    const report = JSON.parse(rendered['report-pipeline-input.json'] ?? '{}') as Record<string, unknown>;
    expect(video.required).toEqual(['source', 'idempotencyKey']);
    expect(report.required).toEqual(['idempotencyKey']);
    expect(video.additionalProperties).toBe(false);
    expect(report.additionalProperties).toBe(false);
  });
});
