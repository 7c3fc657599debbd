/**
 * Several hosts on one machine, for the several-hosts suite and `npm run bench:hosts` (root only).
 *
 * A lab is a Linux bridge in the root namespace with a private /24 (10.213.<random>.0/24, checked
 * unused) and N hosts. A host is a network namespace joined to the bridge by a veth, plus a
 * long-lived anchor process that holds the host's own mount and UTS namespaces: a private tmpfs
 * over /tmp (its data, scratch and media folders live there, so no host sees another's files,
 * nor the root's) and over the repository's `.data`, and its own hostname, which Temporal shows
 * as the worker identity (`<pid>@<hostname>`). Every process of a host enters those namespaces
 * with nsenter and runs in the host's cgroup (cgroup v1 cpu controller: an optional CPU cap that
 * its children inherit, and the list of its processes, so "kill the host" misses none).
 *
 * The Temporal dev server (in memory, headless, Sluice's search attributes and dynamic config)
 * and versitygw listen on the bridge address only; the hosts have no default route, so they
 * reach nothing but each other and the bridge. Teardown removes every namespace, veth, bridge,
 * cgroup and process the lab made, from afterAll or from a process 'exit' hook; a lab left by a
 * crashed run (its owner process gone) is removed when the next one starts. Every wait is bounded.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTemporalCli } from '../../src/devserver/cli-binary';
import { devServerArgs, freePort, waitForFrontend } from '../../src/devserver/dev-server';
import { workerProcessEnv } from '../../src/shared/node-options';
import { createBucket, s3Env, startS3Server, type S3Server } from '../helpers/s3-server';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Where a host keeps its files: inside its private tmpfs over /tmp. */
export const HOST_HOME = '/tmp/sluice-host';
/** Each lab records what it started here, so that a later run can clean up after a crash. */
const STATE_DIR = path.join(os.tmpdir(), 'sluice-hosts-state');
const CGROUP_CPU = '/sys/fs/cgroup/cpu';
const CFS_PERIOD_US = 100_000;

export interface LabOptions {
  /** Number of hosts (1 to 50). */
  hosts: number;
  /** CPU cap of each host's processes, in CPUs (0.4 = 40 ms per 100 ms). @default no cap */
  cpus?: number;
  /**
   * CPU weight (cgroup v1 `cpu.shares`) of each host's cgroup. A cap is a ceiling, not a
   * reservation: on a machine with other load, a host at the default weight (1024, one nice-0
   * process) may get far less than its cap. A benchmark raises it so the cap is what binds.
   * @default 1024
   */
  cpuShares?: number;
  /** Start versitygw on the bridge (needs `.tools/versitygw`). @default true */
  s3?: boolean;
  /** Size of each host's tmpfs. @default '2g' */
  tmpfsSize?: string;
  log?: (line: string) => void;
}

export interface HostProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** The last 20 kB of its stderr. */
  stderr: () => string;
}

export interface HostWorker extends HostProcess {
  /** Port of its /metrics, /healthz, /readyz on the host's address. */
  port: number;
}

export interface Host {
  /** `h1`, `h2`, …; also the host's hostname suffix (`sluice-h1`). */
  name: string;
  hostname: string;
  /** Network namespace name. */
  ns: string;
  ip: string;
  /** The root-side end of the host's veth. */
  veth: string;
  /** Runs `argv` inside the host (its namespaces and cgroup), cwd {@link HOST_HOME}. */
  spawn(argv: string[], env?: NodeJS.ProcessEnv): HostProcess;
  /** Runs a short command inside the host and returns its stdout (throws on a non-zero exit). */
  exec(argv: string[], timeoutMs?: number): string;
  /** `node bin/sluice worker --tiers …` inside the host, resolved once its /readyz answers 200. */
  startWorker(tiers: string[], env?: NodeJS.ProcessEnv, readyTimeoutMs?: number): Promise<HostWorker>;
  /** SIGKILLs every process in the host's cgroup (the worker and its ffmpeg children) and waits until none is left. */
  kill(): Promise<void>;
  /** PIDs in the host's cgroup. */
  pids(): number[];
  /** Takes the host's link down (`ip link set <veth> down`): its connections stall, nothing is closed. */
  linkDown(): void;
  linkUp(): void;
}

export interface Lab {
  id: string;
  bridge: string;
  bridgeIp: string;
  /** `10.213.x` */
  subnet: string;
  temporalAddress: string;
  s3: S3Server | undefined;
  /** A bucket made on `s3` for this lab. */
  bucket: string | undefined;
  hosts: Host[];
  /** Private folder of the lab in the root namespace (invisible to the hosts). */
  dir: string;
  /**
   * Environment every host's worker gets: the Temporal address, the S3 endpoint and keys, the
   * store (`s3://<bucket>/lab`), per-host folders.
   */
  workerEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Removes everything the lab made. Idempotent; also runs on process exit. */
  close(): Promise<void>;
}

interface LabState {
  owner: number;
  namespaces: string[];
  links: string[];
  cgroups: string[];
  /** The lab's folder in the root namespace. */
  dir?: string;
  /** Root-namespace processes (servers, host anchors) with a word their command line must contain. */
  pids: { pid: number; cmd: string }[];
}

/** Marks the forwarder's command line, so that a later run's cleanup recognises it. */
const FORWARDER_MARK = 'sluice-lab-forwarder';
/**
 * A TCP forwarder (`node -e FORWARDER mark host port targetPort`): accepts on host:port and pipes
 * each connection to 127.0.0.1:targetPort; either side closing or failing closes both.
 */
const FORWARDER = `
const net = require('node:net');
const [, host, port, target] = process.argv.slice(1);
const server = net.createServer((a) => {
  const b = net.connect(Number(target), '127.0.0.1');
  const close = () => { a.destroy(); b.destroy(); };
  a.on('error', close); b.on('error', close); a.on('close', close); b.on('close', close);
  a.pipe(b); b.pipe(a);
});
server.listen(Number(port), host);
`;

function run(cmd: string, args: string[], timeoutMs = 10_000): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): void {
  try {
    run(cmd, args);
  } catch {
    // Already gone: teardown is idempotent.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function cgroupPids(cgroup: string): number[] {
  try {
    return fs
      .readFileSync(path.join(CGROUP_CPU, cgroup, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs every process of the cgroup until it is empty (bounded), then removes it. */
function removeCgroup(cgroup: string): void {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = cgroupPids(cgroup);
    if (pids.length === 0 || Date.now() > deadline) break;
    for (const pid of pids) tryKill(pid, 'SIGKILL');
    sleepSync(50);
  }
  try {
    fs.rmdirSync(path.join(CGROUP_CPU, cgroup));
  } catch {
    // Absent, or a process outlived the deadline (reported by the next run's cleanup).
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already exited.
  }
}

/** Removes what a lab recorded: processes, namespaces, links, cgroups, then the record. Synchronous (exit hook). */
function destroy(state: LabState, stateFile: string): void {
  for (const cg of state.cgroups) removeCgroup(cg);
  for (const { pid, cmd } of state.pids) if (cmdline(pid).includes(cmd)) tryKill(pid, 'SIGKILL');
  // versitygw (started by the shared S3 helper) is known by its data folder inside the lab's.
  if (state.dir) {
    for (const entry of fs.readdirSync('/proc')) {
      if (/^\d+$/.test(entry) && cmdline(Number(entry)).includes(state.dir)) tryKill(Number(entry), 'SIGKILL');
    }
  }
  for (const ns of state.namespaces) tryRun('ip', ['netns', 'delete', ns]);
  for (const link of state.links) tryRun('ip', ['link', 'delete', link]);
  if (state.dir) fs.rmSync(state.dir, { recursive: true, force: true });
  fs.rmSync(stateFile, { force: true });
}

/** Removes labs whose owner process is gone (a crashed or killed earlier run). */
export function cleanStaleLabs(log: (line: string) => void = () => {}): void {
  if (!fs.existsSync(STATE_DIR)) return;
  for (const file of fs.readdirSync(STATE_DIR)) {
    const stateFile = path.join(STATE_DIR, file);
    let state: LabState;
    try {
      state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as LabState;
    } catch {
      fs.rmSync(stateFile, { force: true });
      continue;
    }
    if (alive(state.owner)) continue;
    log(`removing the lab of an earlier run (pid ${state.owner}): ${state.namespaces.join(', ')}`);
    destroy(state, stateFile);
  }
}

/** A 10.213.x.0/24 that no interface address or route of this machine touches. */
function pickSubnet(): string {
  const used = run('ip', ['-4', '-o', 'addr']) + run('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (let i = 0; i < 50; i++) {
    const subnet = `10.213.${2 + crypto.randomInt(250)}`;
    if (!used.includes(`${subnet}.`)) return subnet;
  }
  throw new Error('no unused 10.213.x.0/24 subnet found in 50 tries');
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function captureStderr(child: ChildProcess): () => string {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  return () => stderr;
}

function exitedOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** Where a host's mount namespace keeps a repository that lives under /tmp while /tmp is replaced. */
const REPO_ASIDE = '/run/sluice-lab-repo';

/** Creates the bridge, the hosts, the Temporal dev server and (unless `s3: false`) versitygw. */
export async function createLab(opts: LabOptions): Promise<Lab> {
  if (process.getuid?.() !== 0) throw new Error('the several-hosts lab needs root (network namespaces, cgroups)');
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 50) throw new Error('hosts: 1 to 50');
  const log = opts.log ?? ((line: string) => process.stderr.write(`[lab] ${line}\n`));
  cleanStaleLabs(log);
  fs.mkdirSync(STATE_DIR, { recursive: true });

  const id = `${process.pid}${crypto.randomBytes(1).toString('hex')}`;
  const stateFile = path.join(STATE_DIR, `${id}.json`);
  const state: LabState = { owner: process.pid, namespaces: [], links: [], cgroups: [], pids: [] };
  const save = () => fs.writeFileSync(stateFile, JSON.stringify(state));
  let closed = false;
  const onExit = () => {
    if (!closed) destroy(state, stateFile);
  };
  process.on('exit', onExit);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-lab-'));
  state.dir = dir;
  const subnet = pickSubnet();
  const bridge = `slb${id}`.slice(0, 15);
  const bridgeIp = `${subnet}.1`;
  const hosts: Host[] = [];
  let s3: S3Server | undefined;
  let bucket: string | undefined;
  let temporal: ChildProcess | undefined;
  let temporalPort = 0;
  let forwarder: ChildProcess | undefined;

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    process.off('exit', onExit);
    await s3?.stop();
    forwarder?.kill('SIGKILL');
    if (temporal && temporal.exitCode === null && temporal.signalCode === null) {
      temporal.kill('SIGTERM');
      await Promise.race([exitedOf(temporal), sleep(10_000)]);
    }
    destroy(state, stateFile);
  };

  try {
    state.links.push(bridge);
    save();
    run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${bridgeIp}/24`, 'dev', bridge]);
    run('ip', ['link', 'set', bridge, 'up']);
    fs.mkdirSync(path.join(REPO_ROOT, '.data'), { recursive: true });

    for (let i = 1; i <= opts.hosts; i++) {
      hosts.push(await createHost(i));
    }

    const cli = await ensureTemporalCli(process.env.TEMPORAL_CLI_PATH, log);
    if (!cli) throw new Error('no temporal CLI (npm run temporal:ensure builds one into .tools/)');
    // The dev server's services call one another on 127.0.0.1 (its static membership), so it
    // listens there, and a forwarder on the bridge address is what the hosts and the tests reach.
    temporalPort = await freePort();
    const args = devServerArgs({
      port: temporalPort,
      uiPort: await freePort(),
      dbFile: undefined,
      namespace: 'default',
      extraArgs: ['--headless'],
    });
    const serverLog = fs.openSync(path.join(dir, 'temporal.log'), 'a');
    temporal = spawn(cli.path, args, { stdio: ['ignore', serverLog, serverLog] });
    fs.closeSync(serverLog);
    if (temporal.pid) state.pids.push({ pid: temporal.pid, cmd: 'start-dev' });
    save();
    const server = temporal;
    const serverAlive = () => server.exitCode === null && server.signalCode === null;
    await waitForFrontend(`127.0.0.1:${temporalPort}`, 60_000, serverAlive);
    forwarder = spawn(
      process.execPath,
      ['-e', FORWARDER, FORWARDER_MARK, bridgeIp, String(temporalPort), String(temporalPort)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    if (forwarder.pid) state.pids.push({ pid: forwarder.pid, cmd: FORWARDER_MARK });
    save();
    await waitForFrontend(`${bridgeIp}:${temporalPort}`, 20_000, serverAlive);

    if (opts.s3 !== false) {
      s3 = await startS3Server({ host: bridgeIp, port: await freePort(), dir: path.join(dir, 's3') });
      bucket = await createBucket(s3, 'sluice-hosts');
    }
  } catch (err) {
    await close();
    throw err;
  }

  const temporalAddress = `${bridgeIp}:${temporalPort}`;
  return {
    id,
    bridge,
    bridgeIp,
    subnet,
    temporalAddress,
    s3,
    bucket,
    hosts,
    dir,
    workerEnv: (extra = {}) => ({
      TEMPORAL_ADDRESS: temporalAddress,
      SLUICE_DATA_DIR: path.join(HOST_HOME, 'data'),
      SLUICE_SCRATCH_DIR: path.join(HOST_HOME, 'scratch'),
      SLUICE_MEDIA_ROOT: path.join(HOST_HOME, 'media'),
      SLUICE_OUTPUT_DIR: path.join(HOST_HOME, 'out'),
      SLUICE_LOG_LEVEL: 'warn',
      SLUICE_SHUTDOWN_GRACE_MS: '2000',
      ...(s3 ? { ...s3Env(s3), SLUICE_STORAGE_URL: `s3://${bucket}/lab` } : {}),
      ...extra,
    }),
    close,
  };

  async function createHost(i: number): Promise<Host> {
    const name = `h${i}`;
    const hostname = `sluice-${name}`;
    const ns = `sluice-${id}-${name}`;
    const veth = `slv${id}${name}`.slice(0, 15);
    const peer = `slp${id}${name}`.slice(0, 15);
    const ip = `${subnet}.${10 + i}`;
    const cgroup = `sluice-${id}-${name}`;
    state.namespaces.push(ns);
    state.links.push(veth);
    state.cgroups.push(cgroup);
    save();

    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer]);
    run('ip', ['link', 'set', peer, 'netns', ns]);
    run('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
    run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    run('ip', ['link', 'set', veth, 'master', bridge, 'up']);

    const cgDir = path.join(CGROUP_CPU, cgroup);
    fs.mkdirSync(cgDir, { recursive: true });
    fs.writeFileSync(path.join(cgDir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
    fs.writeFileSync(
      path.join(cgDir, 'cpu.cfs_quota_us'),
      opts.cpus ? String(Math.round(opts.cpus * CFS_PERIOD_US)) : '-1',
    );
    fs.writeFileSync(path.join(cgDir, 'cpu.shares'), String(opts.cpuShares ?? 1024));

    // The anchor holds the host's mount and UTS namespaces; it runs outside the cgroup (it uses no
    // CPU, and "kill the host's processes" must leave the host itself standing).
    const size = opts.tmpfsSize ?? '2g';
    const underTmp = REPO_ROOT === '/tmp' || REPO_ROOT.startsWith('/tmp/');
    const setup = [
      `hostname ${hostname}`,
      // A repository under /tmp (a CI clone) would vanish under the host's private /tmp: keep a
      // bind of it aside in this mount namespace, and put it back over the new tmpfs.
      ...(underTmp ? [`mkdir -p ${REPO_ASIDE}`, `mount --bind ${JSON.stringify(REPO_ROOT)} ${REPO_ASIDE}`] : []),
      `mount -t tmpfs -o size=${size},mode=1777 tmpfs /tmp`,
      ...(underTmp
        ? [`mkdir -p ${JSON.stringify(REPO_ROOT)}`, `mount --bind ${REPO_ASIDE} ${JSON.stringify(REPO_ROOT)}`]
        : []),
      `mkdir -p ${JSON.stringify(path.join(REPO_ROOT, '.data'))}`,
      `mount -t tmpfs -o size=16m tmpfs ${JSON.stringify(path.join(REPO_ROOT, '.data'))}`,
      `mkdir -p ${['data', 'scratch', 'media', 'out'].map((d) => path.join(HOST_HOME, d)).join(' ')}`,
      'echo ready',
      'exec sleep 86400',
    ].join(' && ');
    const anchor = spawn(
      'ip',
      ['netns', 'exec', ns, 'unshare', '-m', '-u', '--propagation', 'private', 'sh', '-c', setup],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    if (!anchor.pid) throw new Error(`${name}: the host's anchor process did not start`);
    state.pids.push({ pid: anchor.pid, cmd: 'sleep' });
    save();
    const anchorStderr = captureStderr(anchor);
    let ready = false;
    anchor.stdout?.on('data', (d: Buffer) => (ready ||= d.toString().includes('ready')));
    await until(`${name}'s namespaces`, () => ready || anchor.exitCode !== null, 10_000).catch(() => undefined);
    if (!ready) throw new Error(`${name}: setting up its namespaces failed: ${anchorStderr()}`);
    // `ip netns exec`, `unshare` and `sh` each exec the next: the anchor's PID is that of `sleep`.
    const anchorPid = anchor.pid;

    const enter = (argv: string[]) => [
      '-t',
      String(anchorPid),
      '-m',
      '-u',
      '-n',
      '--',
      'sh',
      '-c',
      `cd ${HOST_HOME} && exec "$@"`,
      'sh',
      ...argv,
    ];

    const host: Host = {
      name,
      hostname,
      ns,
      ip,
      veth,
      spawn(argv, env = {}) {
        // Joins the cgroup before entering the host, so that it and all its children are counted and capped.
        const child = spawn(
          'sh',
          ['-c', `echo $$ > ${path.join(cgDir, 'cgroup.procs')} && exec "$@"`, 'sh', 'nsenter', ...enter(argv)],
          {
            env: { PATH: process.env.PATH, HOME: HOST_HOME, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        return { child, exited: exitedOf(child), stderr: captureStderr(child) };
      },
      exec(argv, timeoutMs = 10_000) {
        return run('nsenter', enter(argv), timeoutMs);
      },
      async startWorker(tiers, env = {}, readyTimeoutMs = 60_000) {
        const port = await freePort();
        const proc = host.spawn(
          [process.execPath, path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', tiers.join(',')],
          workerProcessEnv({ ...env, SLUICE_METRICS_PORT: String(port) }),
        );
        const url = `http://${ip}:${port}/readyz`;
        await until(
          `the worker on ${name} to be ready`,
          async () => {
            if (proc.child.exitCode !== null) throw new Error(`the worker on ${name} exited: ${proc.stderr()}`);
            return (await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.status === 200;
          },
          readyTimeoutMs,
        );
        return { ...proc, port };
      },
      pids: () => cgroupPids(cgroup),
      async kill() {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const pids = cgroupPids(cgroup);
          if (pids.length === 0) return;
          if (Date.now() > deadline) throw new Error(`${name}: processes ${pids.join(', ')} survived SIGKILL for 10 s`);
          for (const pid of pids) tryKill(pid, 'SIGKILL');
          await sleep(50);
        }
      },
      linkDown: () => void run('ip', ['link', 'set', veth, 'down']),
      linkUp: () => void run('ip', ['link', 'set', veth, 'up']),
    };
    return host;
  }
}
