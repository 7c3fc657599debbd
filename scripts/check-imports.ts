/**
 * Imports flow downward (STYLE.md): reads every import in src/ and fails, naming each one, when a
 * module imports from a higher floor than its own. Run by `npm run lint`:
 * `tsx scripts/check-imports.ts [srcDir]`.
 *
 * Each folder of src/ (and each file at its top) sits on one floor of {@link FLOORS}. A module may
 * import from its own floor and from any floor below; a folder or file that is in no floor is an
 * error too, so a new one is placed on purpose. Type-only imports count: they couple as much.
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * The floors, lowest first. Decided from the code (2026-12): `shared` is sandbox-safe contracts;
 * logger/security/ratelimit/tracing need no config (tracing is handed its settings); config
 * parses the environment with security's parsers; storage/data/devserver/dlq are infrastructure
 * over config; workflows and activities run on it;
 * scaling reads backlogs and spawns worker processes (never imports them); workers host
 * activities, workflows and the backlog exporter; the client starts workflows; schedules start
 * through the client; cli, api and demo are entry points.
 */
export const FLOORS: readonly (readonly string[])[] = [
  ['shared'],
  ['logger', 'security', 'ratelimit', 'crash-point', 'tracing'],
  ['config', 'connection'],
  ['storage', 'data', 'devserver', 'dlq'],
  ['workflows', 'activities'],
  ['scaling'],
  ['workers', 'client'],
  ['schedules'],
  ['cli', 'api', 'demo'],
];

/** One import that breaks the rule. */
export interface ImportProblem {
  /** Importing file, relative to the source root. */
  file: string;
  line: number;
  /** The import specifier as written. */
  specifier: string;
  message: string;
}

const floorOf = new Map<string, number>(FLOORS.flatMap((units, i) => units.map((u) => [u, i] as const)));

/** The unit of a path relative to the source root: its top folder, or a top-level file's name. */
function unitOf(rel: string): string {
  const [first, ...rest] = rel.split(/[\\/]/);
  return rest.length > 0 ? (first as string) : (first as string).replace(/\.[cm]?[jt]sx?$/, '');
}

function listSources(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && /\.[cm]?tsx?$/.test(d.name) && !d.name.endsWith('.d.ts'))
    .map((d) => path.join(d.parentPath, d.name))
    .sort();
}

/** `import … from '…'`, `export … from '…'`, `import '…'`, `import('…')`, `require('…')`. */
const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+\s+from\s+)?['"]([^'"]+)['"]|\b(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Every import of `root`'s modules that runs up a floor, or involves a unit in no floor. */
export function checkImports(root: string): ImportProblem[] {
  const problems: ImportProblem[] = [];
  for (const abs of listSources(root)) {
    const file = path.relative(root, abs);
    const from = unitOf(file);
    const fromFloor = floorOf.get(from);
    if (fromFloor === undefined) {
      problems.push({ file, line: 1, specifier: '', message: `${from} is on no floor of scripts/check-imports.ts` });
      continue;
    }
    const text = fs.readFileSync(abs, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const specifier = (m[1] ?? m[2]) as string;
      if (!specifier.startsWith('.')) continue;
      const target = path.relative(root, path.resolve(path.dirname(abs), specifier));
      if (target.startsWith('..')) continue;
      const to = unitOf(target);
      if (to === from) continue;
      const line = text.slice(0, m.index).split('\n').length + (m[0].startsWith('\n') ? 1 : 0);
      const toFloor = floorOf.get(to);
      if (toFloor === undefined) {
        problems.push({ file, line, specifier, message: `${to} is on no floor of scripts/check-imports.ts` });
      } else if (toFloor > fromFloor) {
        problems.push({
          file,
          line,
          specifier,
          message: `${from} (floor ${fromFloor}) imports ${to} (floor ${toFloor}), a higher floor`,
        });
      }
    }
  }
  return problems;
}

if (require.main === module) {
  const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'src'));
  const problems = checkImports(root);
  for (const p of problems)
    console.error(
      `${path.join(path.relative(process.cwd(), root), p.file)}:${p.line}: ${p.message} ('${p.specifier}')`,
    );
  if (problems.length > 0) {
    console.error(`${problems.length} import(s) run up a floor; see the table in scripts/check-imports.ts`);
    process.exit(1);
  }
  console.error(`imports flow downward (${FLOORS.flat().length} units on ${FLOORS.length} floors)`);
}
