#!/usr/bin/env node
'use strict';
/**
 * Completes package-lock.json with the other platforms' optional binaries (darwin, win32, arm,
 * musl… builds of swc, esbuild, rollup, duckdb, msgpackr). A registry mirror that serves only
 * this platform's builds makes `npm install` leave them out, and npm 11's `npm ci` then refuses
 * the lock ("Missing: … from lock file"). Each entry gets its version and the os/cpu/libc read
 * from its name, so npm skips it on other platforms and fetches it normally where it fits.
 *
 *   node scripts/lock-optionals.js        (after any `npm install`; idempotent)
 */
const fs = require('node:fs');
const path = require('node:path');

const LOCK = path.join(__dirname, '..', 'package-lock.json');
const OS = [
  'darwin',
  'linux',
  'win32',
  'android',
  'freebsd',
  'openbsd',
  'netbsd',
  'sunos',
  'aix',
  'openharmony',
  'haiku',
];
const CPU = ['arm64', 'x64', 'ia32', 'arm', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el', 'wasm32'];

function platformOf(name) {
  const base = name.split('/').pop().toLowerCase();
  const parts = base.split(/[-_]/);
  const os = OS.find((o) => parts.includes(o) || (o === 'win32' && parts.includes('windows')));
  const cpu = CPU.find(
    (c) =>
      parts.includes(c) ||
      (c === 'x64' && parts.includes('amd64')) ||
      (c === 'arm' && parts.includes('gnueabihf')) ||
      (c === 'arm' && parts.includes('arm')),
  );
  const libc = parts.includes('musl') ? 'musl' : parts.includes('gnu') || parts.includes('glibc') ? 'glibc' : undefined;
  return { os, cpu, libc };
}

const lock = JSON.parse(fs.readFileSync(LOCK, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [where, pkg] of Object.entries(packages)) {
  for (const [name, spec] of Object.entries(pkg.optionalDependencies ?? {})) {
    const nested = where ? `${where}/node_modules/${name}` : `node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    const { os, cpu, libc } = platformOf(name);
    if (!os && !cpu) continue; // not a platform binary: leave it to npm
    const version = String(spec)
      .replace(/^[\^~>=<\s]+/, '')
      .split(/\s/)[0];
    const entry = { version, optional: true };
    if (os) entry.os = [os];
    if (cpu) entry.cpu = [cpu];
    if (libc) entry.libc = [libc];
    packages[`node_modules/${name}`] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
fs.writeFileSync(LOCK, JSON.stringify(lock, null, 2) + '\n');
process.stderr.write(`lock-optionals: added ${added} optional platform entries\n`);
