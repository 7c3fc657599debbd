/**
 * The declarative schedules file (`schedules.yaml`): parsed with `yaml`, validated with zod, and
 * every problem reported with its line (`schedules.yaml:14: schedules.0.calendar.0.hour: …`).
 */
import fs from 'node:fs';
import { LineCounter, isNode, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN, TIERS, type Tier } from '../shared/constants';
import { ReportPipelineInputSchema, type ValidReportPipelineInput } from '../shared/report';

/** Overlap policies of the Temporal schedule API. */
export const OVERLAP_POLICIES = [
  'SKIP',
  'BUFFER_ONE',
  'BUFFER_ALL',
  'CANCEL_OTHER',
  'TERMINATE_OTHER',
  'ALLOW_ALL',
] as const;

const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'] as const;
const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration like 90s, 10m, 1h or 1d');
const range = (min: number, max: number) =>
  z.union([z.number().int().min(min).max(max), z.array(z.number().int().min(min).max(max)).min(1)]);

/** One calendar entry: every listed field must match (unset = every value, except second = 0). */
const CalendarSchema = z
  .object({
    minute: range(0, 59).optional(),
    hour: range(0, 23).optional(),
    dayOfMonth: range(1, 31).optional(),
    dayOfWeek: z.array(z.enum(DAYS)).min(1).optional(),
    comment: z.string().optional(),
  })
  .strict();

const ScheduleEntrySchema = z
  .object({
    /** Schedule ID; also the idempotency key of its runs. */
    id: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -'),
    description: z.string().optional(),
    /** The pipeline it starts. */
    workflow: z.literal('report'),
    tier: z.enum(TIERS as [Tier, ...Tier[]]),
    /** Calendar entries (any one matching fires), in `timezone`. */
    calendar: z.array(CalendarSchema).min(1).optional(),
    /** Or a fixed interval. */
    every: duration.optional(),
    /** IANA time zone of the calendar. @default 'UTC' */
    timezone: z.string().min(1).default('UTC'),
    /** @default 'SKIP' */
    overlap: z.enum(OVERLAP_POLICIES).default('SKIP'),
    /** How far back missed runs are caught up after downtime. @default '1m' (Temporal's default is 1 year) */
    catchupWindow: duration.default('1m'),
    /** Pause the schedule when a run fails. @default false */
    pauseOnFailure: z.boolean().default(false),
    /** Paused when first created (later applies keep the current state). @default false */
    paused: z.boolean().default(false),
    /** The report request; `policy` in the CLI spelling. */
    input: z.record(z.unknown()),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (!v.calendar === !v.every)
      ctx.addIssue({ code: 'custom', path: ['calendar'], message: 'give exactly one of calendar or every' });
  });

const FileSchema = z.object({ schedules: z.array(ScheduleEntrySchema).min(1) }).strict();

/** A validated schedule definition. */
export type ScheduleDefinition = Omit<z.output<typeof ScheduleEntrySchema>, 'input'> & {
  input: ValidReportPipelineInput;
};

/** A schedules file that is not valid; each problem names its line. */
export class ScheduleFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: { line: number | undefined; path: string; message: string }[],
  ) {
    super(
      `invalid schedules file ${file}:\n` +
        problems.map((p) => `  ${file}:${p.line ?? '?'}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'),
    );
    this.name = 'ScheduleFileError';
  }
}

/** Line (1-based) of the node at `path`, or of its nearest ancestor that exists. */
function lineOf(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Parses and validates schedules from YAML text. Throws {@link ScheduleFileError}. */
export function parseSchedules(text: string, file = 'schedules.yaml'): ScheduleDefinition[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ScheduleFileError(
      file,
      doc.errors.map((e) => ({ line: e.linePos?.[0]?.line, path: '', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  const parsed = FileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new ScheduleFileError(
      file,
      parsed.error.issues.map((i) => ({ line: lineOf(doc, lc, i.path), path: i.path.join('.'), message: i.message })),
    );
  }
  const problems: ScheduleFileError['problems'] = [];
  const out: ScheduleDefinition[] = [];
  const seen = new Set<string>();
  parsed.data.schedules.forEach((s, index) => {
    const at = (...rest: (string | number)[]) => ['schedules', index, ...rest];
    if (seen.has(s.id))
      problems.push({ line: lineOf(doc, lc, at('id')), path: at('id').join('.'), message: `duplicate id ${s.id}` });
    seen.add(s.id);
    // The pipeline's input schema owns the defaults and the policy's CLI spelling.
    const candidate = { ...s.input, tier: s.tier, idempotencyKey: s.id };
    const input = ReportPipelineInputSchema.safeParse(candidate);
    if (!input.success) {
      for (const i of input.error.issues) {
        const path = at('input', ...i.path);
        problems.push({ line: lineOf(doc, lc, path), path: path.join('.'), message: i.message });
      }
      return;
    }
    out.push({ ...s, input: input.data });
  });
  if (problems.length > 0) throw new ScheduleFileError(file, problems);
  return out;
}

/** Reads and validates a schedules file. */
export function loadSchedulesFile(file: string): ScheduleDefinition[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ScheduleFileError(file, [{ line: undefined, path: '', message: (err as Error).message }]);
  }
  return parseSchedules(text, file);
}
