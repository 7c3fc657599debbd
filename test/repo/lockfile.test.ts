/**
 * `npm ci` on a fresh machine needs a lock that lists every optional platform binary (npm 11
 * refuses a lock without them, and a registry mirror may not serve other platforms' builds, so
 * `npm install` can leave them out). `node scripts/lock-optionals.js` adds them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

interface LockEntry {
  version?: string;
  optionalDependencies?: Record<string, string>;
}

describe('package-lock.json', () => {
  it('lists every optional dependency, so npm ci accepts it', () => {
    const lock = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package-lock.json'), 'utf8')) as {
      packages: Record<string, LockEntry>;
    };
    const missing: string[] = [];
    for (const [where, pkg] of Object.entries(lock.packages)) {
      for (const name of Object.keys(pkg.optionalDependencies ?? {})) {
        const nested = where ? `${where}/node_modules/${name}` : `node_modules/${name}`;
        if (!lock.packages[nested] && !lock.packages[`node_modules/${name}`])
          missing.push(`${where || '(root)'} → ${name}`);
      }
    }
    expect(missing, 'run: node scripts/lock-optionals.js').toEqual([]);
  });
});
