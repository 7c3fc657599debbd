/**
 * Writes docs/configuration.md from the TSDoc of every variable in src/config.ts's schema, so the
 * reference never drifts from the code (test/repo/config-doc.test.ts checks it is current).
 *
 *   npx tsx scripts/config-doc.ts
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
export const CONFIG_DOC = path.join(ROOT, 'docs', 'configuration.md');

/** The markdown reference for the variables declared in `source` (the text of src/config.ts). */
export function renderConfigDoc(source: string): string {
  const start = source.indexOf('const EnvSchema');
  const body = source.slice(start, source.indexOf('\n});', start));
  const rows: string[] = [];
  // A variable is `NAME:` at the start of a line; its doc is the /** … */ right above it, if any.
  const re = /(?:\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n)?\s*([A-Z][A-Z0-9_]+):/g;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const doc = (m[1] ?? '')
      .split('\n')
      .map((l) => l.replace(/^\s*\*?\s?/, '').trim())
      .join(' ')
      .trim();
    // `@default X — why` splits into the default and the rest of the meaning.
    const defaultAt = doc.indexOf('@default');
    const before = (defaultAt >= 0 ? doc.slice(0, defaultAt) : doc).trim();
    const [dflt = '', ...after] =
      defaultAt >= 0
        ? doc
            .slice(defaultAt + '@default'.length)
            .trim()
            .split(' — ')
        : [];
    const meaning = [before, after.join(' — ')].filter(Boolean).join(' ');
    const cell = (t: string) => t.replace(/\|/g, '\\|');
    rows.push(`| \`${m[2]}\` | ${cell(dflt) || '—'} | ${cell(meaning)} |`);
  }
  return `# Configuration reference

Every environment variable Sluice reads, generated from \`src/config.ts\` (\`npx tsx scripts/config-doc.ts\`).
The environment is parsed once and validated; an invalid value stops start-up with every
problem listed, naming its variable (the CLI exits 2). Empty values count as unset.

| variable | default | meaning |
|---|---|---|
${rows.join('\n')}
`;
}

if (require.main === module) {
  fs.mkdirSync(path.dirname(CONFIG_DOC), { recursive: true });
  fs.writeFileSync(CONFIG_DOC, renderConfigDoc(fs.readFileSync(path.join(ROOT, 'src', 'config.ts'), 'utf8')));
  process.stderr.write(`wrote ${CONFIG_DOC}\n`);
}
