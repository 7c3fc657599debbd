/**
 * Writes docs/schemas/*.json: the JSON Schema of each pipeline's input, generated from the zod
 * schemas the workflows parse with, for clients in other languages (README, "Starting pipelines
 * from other languages"). test/repo/input-schemas.test.ts keeps the files equal to the code.
 *
 *   npx tsx scripts/input-schemas.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ZodTypeAny } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { ReportPipelineInputSchema } from '../src/shared/report';
import { VideoPipelineInputSchema } from '../src/shared/video';

const ROOT = path.resolve(__dirname, '..');
export const SCHEMAS_DIR = path.join(ROOT, 'docs', 'schemas');

// A plain signature: zodToJsonSchema's own generics make TypeScript give up on these schemas (TS2589).
const toJsonSchema = zodToJsonSchema as unknown as (schema: ZodTypeAny, options: Record<string, unknown>) => object;

/** File name → [workflow type, its input schema]. */
const PIPELINES: Record<string, [string, ZodTypeAny]> = {
  'video-pipeline-input.json': ['videoPipelineWorkflow', VideoPipelineInputSchema],
  'report-pipeline-input.json': ['reportPipelineWorkflow', ReportPipelineInputSchema],
};

/** The text of each schema file: input shapes as a client sends them (defaults are optional). */
export function renderInputSchemas(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(PIPELINES).map(([file, [workflowType, schema]]) => {
      const json = toJsonSchema(schema, {
        $refStrategy: 'none',
        effectStrategy: 'input',
        pipeStrategy: 'input',
      });
      const doc = {
        title: `${workflowType} input`,
        description: `The single argument of ${workflowType}. Fields with a default may be left out; unknown fields are rejected. Generated from src/shared by scripts/input-schemas.ts.`,
        ...json,
      };
      return [file, `${JSON.stringify(doc, null, 2)}\n`];
    }),
  );
}

if (require.main === module) {
  fs.mkdirSync(SCHEMAS_DIR, { recursive: true });
  for (const [file, text] of Object.entries(renderInputSchemas())) {
    fs.writeFileSync(path.join(SCHEMAS_DIR, file), text);
    console.log(`wrote ${path.relative(ROOT, path.join(SCHEMAS_DIR, file))}`);
  }
}
