/**
 * YAML config files validated with zod, every problem named by its line and field path
 * (`file:14: schedules.0.hour: …`). Node-side only: the workflow sandbox never imports it.
 */
import { LineCounter, isNode, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

/** One problem in a file: its line (when known), the field path and the message. */
export interface FileProblem {
  line: number | undefined;
  path: string;
  message: string;
}

/** Formats problems as `file:line: path: message` lines. */
export function formatProblems(file: string, problems: readonly FileProblem[]): string {
  return problems.map((p) => `  ${file}:${p.line ?? '?'}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n');
}

/** A parsed document and the line of any field path in it (or of its nearest ancestor). */
export interface YamlDoc {
  doc: Document;
  lineOf(path: (string | number)[]): number | undefined;
}

/**
 * Parses `text` and validates it against `schema`. Returns the value, or the problems: YAML syntax
 * errors with their line, then schema issues with their path and line.
 */
export function parseYamlFile<S extends z.ZodTypeAny>(
  text: string,
  schema: S,
): { ok: true; value: z.output<S>; yaml: YamlDoc } | { ok: false; problems: FileProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        line: e.linePos?.[0]?.line,
        path: '',
        message: e.message.split('\n')[0] ?? e.message,
      })),
    };
  }
  const lineOf = (path: (string | number)[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const parsed = schema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => ({ line: lineOf(i.path), path: i.path.join('.'), message: i.message })),
    };
  }
  return { ok: true, value: parsed.data as z.output<S>, yaml: { doc, lineOf } };
}
