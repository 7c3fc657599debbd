/** Shared helpers of the deploy/ checks: reading every manifest, finding tools. */
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../helpers/env';

export const DEPLOY = path.join(REPO_ROOT, 'deploy');

/** Files under deploy/ that are not Kubernetes manifests (kustomize, Helm values, Prometheus files). */
const NOT_MANIFESTS = [/(^|\/)kustomization\.yaml$/, /^helm\//, /prometheus-adapter-values\.yaml$/, /^prometheus\//];

/** Every YAML file under deploy/, relative. */
export function yamlFiles(): string[] {
  return fs
    .readdirSync(DEPLOY, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && /\.ya?ml$/.test(d.name))
    .map((d) => path.relative(DEPLOY, path.join(d.parentPath, d.name)))
    .sort();
}

/** Kubernetes manifest files under deploy/, relative. */
export function manifestFiles(): string[] {
  return yamlFiles().filter((f) => !NOT_MANIFESTS.some((re) => re.test(f)));
}

/** Parses a multi-document YAML text; throws on any syntax error. */
export function parseDocs(text: string, name: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${name} document ${i}: ${doc.errors[0]?.message}`);
    return doc.toJS() as Record<string, unknown>;
  });
}

export function readDocs(rel: string): Record<string, unknown>[] {
  return parseDocs(fs.readFileSync(path.join(DEPLOY, rel), 'utf8'), rel);
}

/** A tool on PATH or in .tools/ (scripts/ci-deps.sh installs both promtool and kustomize). */
export function findTool(name: string): string {
  const local = path.join(REPO_ROOT, '.tools', name);
  if (fs.existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} not found on PATH or in .tools/: run scripts/ci-deps.sh`);
}
