/**
 * bench:hosts — scale-out efficiency of the video pipeline over several hosts (issue 14 item 9).
 *
 * The same generated 120 s 720p video (renditions 360p + 720p) on N = 1, 2, 4 hosts of the
 * several-hosts lab (test/hosts/netns.ts: one network and mount namespace per host, nothing
 * shared but Temporal and versitygw on a bridge), each host's worker and its ffmpeg children
 * capped at 0.4 CPU by their own cgroup (cpu.cfs_quota_us 40000 per 100000). Prints per N:
 *   - wall(N), from start to result, and wall(1) ÷ (N × wall(N)) (target ≥ 0.85 at N = 4);
 *   - the bytes moved through the store per pipeline as a ratio to source + final artifacts
 *     (target ≤ 1.5), counted by the workers' own storage meter (`sluice_storage_bytes_total` on
 *     each host's /metrics, summed over hosts), and, as an upper bound that needs no cooperation
 *     from Sluice, every byte through the hosts' veths (S3 and Temporal traffic together).
 * Benchmarks print; nothing here asserts a target. Needs root.
 *
 *   npm run bench:hosts [-- --hosts 1,2,4 --seconds 120 --cpus 0.4 --chunk-seconds 30 --cpu-shares 16384 --slots 1]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveFfmpeg } from '../src/activities/media/ffmpeg';
import { generateSampleVideo } from '../src/cli/samples';
import { loadConfig } from '../src/config';
import type { VideoPipelineResult } from '../src/shared/video';
import { openStorage } from '../src/storage';
import { labClient } from '../test/hosts/helpers';
import { createLab, type Host, type HostWorker } from '../test/hosts/netns';
import { REPO, listArg, numberArg, saveFigures } from './harness';

const HOSTS = listArg('hosts', [1, 2, 4]);
const SECONDS = numberArg('seconds', 120);
const CPUS = numberArg('cpus', 0.4);
const CHUNK_SECONDS = numberArg('chunk-seconds', 30);
/**
 * CPU weight (cgroup v1 cpu.shares) of the hosts and of this process with the servers it starts.
 * The 0.4 CPU cap is a ceiling; at the default weight a host on a machine with other load gets
 * less, and the figures would measure that load instead of the scale-out. 0 leaves the default.
 */
const CPU_SHARES = numberArg('cpu-shares', 16_384);
/**
 * Activity slots of each host's default tier. A 0.4 CPU host runs one ffmpeg at a time (the
 * worker sizes its ffmpeg limiter from its cgroup quota); more slots only park activities behind
 * that limiter on one host while another host idles, as a 0.4 CPU pod would be sized.
 */
const SLOTS = numberArg('slots', 1);
const CGROUP_CPU = '/sys/fs/cgroup/cpu';

/**
 * Moves this process (and so the Temporal and S3 servers it starts) into a cgroup of its own with
 * `shares` CPU weight; returns the undo.
 */
function weighServers(shares: number): () => void {
  if (!shares) return () => undefined;
  const dir = path.join(CGROUP_CPU, `sluice-bench-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'cpu.shares'), String(shares));
  fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(process.pid));
  return () => {
    try {
      fs.writeFileSync(path.join(CGROUP_CPU, 'cgroup.procs'), String(process.pid));
      fs.rmdirSync(dir);
    } catch {
      // A server outlived the lab: the cgroup stays until it exits.
    }
  };
}

/** Bytes through a host's veth so far (both directions, seen from the bridge side). */
function vethBytes(host: Host): number {
  const stat = (name: string) => Number(fs.readFileSync(`/sys/class/net/${host.veth}/statistics/${name}`, 'utf8'));
  return stat('rx_bytes') + stat('tx_bytes');
}

/** `sluice_storage_bytes_total` summed over directions on a worker's /metrics; undefined when absent. */
async function storageBytes(host: Host, worker: HostWorker): Promise<number | undefined> {
  const text = await (await fetch(`http://${host.ip}:${worker.port}/metrics`)).text();
  const lines = text.split('\n').filter((l) => l.startsWith('sluice_storage_bytes_total'));
  if (lines.length === 0) return undefined;
  return lines.reduce((sum, l) => sum + Number(l.split(/\s+/).pop()), 0);
}

/** Where the wall time of a run went, from its history: the phases before and after the chunks, and each host's busy time. */
interface Timeline {
  /** Workflow start → first transcodeChunk start (probe, planning). */
  headSec: number;
  /** First → last transcodeChunk/encodeAudio/thumbnail end (the fan-out). */
  fanOutSec: number;
  /** Last fan-out activity end → workflow end (concatenation, manifest). */
  tailSec: number;
  /** Seconds each host spent running activities (its worker identity's started → closed). */
  busySec: Record<string, number>;
}

async function timelineOf(client: Awaited<ReturnType<typeof labClient>>, workflowId: string): Promise<Timeline> {
  const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9;
  const typeOf = new Map<string, string>();
  const started = new Map<string, { type: string; host: string; t: number }>();
  const spans: { type: string; host: string; start: number; end: number }[] = [];
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) typeOf.set(String(e.eventId), scheduled.activityType?.name ?? '');
    const s = e.activityTaskStartedEventAttributes;
    if (s) {
      const host = (s.identity ?? '').split('@').pop() ?? '';
      started.set(String(e.eventId), { type: typeOf.get(String(s.scheduledEventId)) ?? '', host, t: at(e) });
    }
    const closed =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes;
    const begin = closed ? started.get(String(closed.startedEventId)) : undefined;
    if (begin) spans.push({ type: begin.type, host: begin.host, start: begin.t, end: at(e) });
  }
  const first = events[0] ? at(events[0]) : 0;
  const last = events.length ? at(events[events.length - 1] as (typeof events)[number]) : 0;
  const fan = spans.filter((s) => ['transcodeChunk', 'encodeAudio', 'extractThumbnail'].includes(s.type));
  const fanStart = Math.min(...fan.map((s) => s.start));
  const fanEnd = Math.max(...fan.map((s) => s.end));
  const busySec: Record<string, number> = {};
  for (const s of spans) busySec[s.host] = +((busySec[s.host] ?? 0) + s.end - s.start).toFixed(1);
  return {
    headSec: +(fanStart - first).toFixed(1),
    fanOutSec: +(fanEnd - fanStart).toFixed(1),
    tailSec: +(last - fanEnd).toFixed(1),
    busySec,
  };
}

interface Row {
  hosts: number;
  wallSec: number;
  efficiency: number;
  sourceBytes: number;
  artifactBytes: number;
  storeBytes: number | undefined;
  storeRatio: number | undefined;
  vethBytes: number;
  vethRatio: number;
  timeline: Timeline;
}

async function main(): Promise<void> {
  const maxHosts = Math.max(...HOSTS);
  const binaries = resolveFfmpeg();
  const cached = path.join(REPO, '.data', 'bench', `sample-1280x720-${SECONDS}s.mp4`);
  process.stderr.write(`generating ${SECONDS} s 720p input (cached at ${cached})…\n`);
  await generateSampleVideo({ ffmpeg: binaries.ffmpeg, out: cached, seconds: SECONDS });
  const sourceBytes = fs.statSync(cached).size;

  const unweigh = weighServers(CPU_SHARES);
  const lab = await createLab({ hosts: maxHosts, cpus: CPUS, cpuShares: CPU_SHARES || undefined });
  const rows: Row[] = [];
  try {
    const suffix = `bench-hosts-${process.pid}`;
    const env = lab.workerEnv({ SLUICE_TASK_QUEUE_SUFFIX: suffix, SLUICE_DATA_DIR: path.join(lab.dir, 'root') });
    const storage = openStorage(loadConfig(env, lab.dir).storage, {
      outputDir: path.join(lab.dir, 'root', 'outputs'),
      partitionsDir: path.join(lab.dir, 'root', 'orders'),
    });
    const sourceUri = `s3://${lab.bucket}/media/input.mp4`;
    const source = storage.objectAt(sourceUri);
    if (!source) throw new Error('the source URI does not resolve');
    await source.store.putFile(source.key, cached);
    const client = await labClient(lab, suffix);
    try {
      for (const n of HOSTS) {
        const hosts = lab.hosts.slice(0, n);
        const workers: HostWorker[] = [];
        for (const host of hosts) {
          workers.push(await host.startWorker(['default'], { ...env, SLUICE_SLOTS_DEFAULT: String(SLOTS) }));
        }
        const vethBefore = hosts.map(vethBytes);
        const started = performance.now();
        const { workflowId } = await client.startVideoPipeline({
          source: sourceUri,
          renditions: ['360p', '720p'],
          package: 'mp4',
          chunkSeconds: CHUNK_SECONDS,
          thumbnails: 1,
          tenant: 'bench',
          idempotencyKey: `hosts-${n}`,
        });
        const result = await client.getResult<VideoPipelineResult>(workflowId);
        const wallSec = (performance.now() - started) / 1000;
        const moved = hosts.reduce((sum, h, i) => sum + vethBytes(h) - (vethBefore[i] ?? 0), 0);
        const meters = await Promise.all(hosts.map((h, i) => storageBytes(h, workers[i] as HostWorker)));
        const storeBytes = meters.every((m) => m !== undefined)
          ? meters.reduce<number>((a, b) => a + (b ?? 0), 0)
          : undefined;
        const artifactBytes = [...result.renditions, ...result.thumbnails].reduce((sum, a) => sum + a.bytes, 0);
        const base = sourceBytes + artifactBytes;
        const wall1 = rows.find((r) => r.hosts === 1)?.wallSec ?? (n === 1 ? wallSec : NaN);
        rows.push({
          hosts: n,
          wallSec: +wallSec.toFixed(2),
          efficiency: +(wall1 / (n * wallSec)).toFixed(3),
          sourceBytes,
          artifactBytes,
          storeBytes,
          storeRatio: storeBytes === undefined ? undefined : +(storeBytes / base).toFixed(3),
          vethBytes: moved,
          vethRatio: +(moved / base).toFixed(3),
          timeline: await timelineOf(client, workflowId),
        });
        process.stderr.write(`N=${n}: ${wallSec.toFixed(1)} s\n`);
        for (const host of hosts) await host.kill();
      }
    } finally {
      await client.close();
    }
  } finally {
    await lab.close();
    unweigh();
  }

  saveFigures('hosts', {
    input: `${SECONDS} s 1280x720`,
    cpusPerHost: CPUS,
    cpuShares: CPU_SHARES,
    slotsPerHost: SLOTS,
    chunkSeconds: CHUNK_SECONDS,
    loadAverage: os.loadavg(),
    rows,
  });
  const mb = (b: number | undefined) => (b === undefined ? 'n/a' : `${(b / 1e6).toFixed(1)} MB`);
  console.log(
    `bench:hosts  input ${SECONDS} s 720p → 360p + 720p, ${CPUS} CPU and ${SLOTS} slot(s) per host (cpu.shares ${CPU_SHARES || 'default'}), chunks of ${CHUNK_SECONDS} s; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  for (const r of rows) {
    console.log(
      `  N=${r.hosts}: wall ${r.wallSec.toFixed(1)} s, wall(1) ÷ (N × wall(N)) = ${r.efficiency.toFixed(3)}` +
        `${r.hosts === 4 ? ' (target ≥ 0.85)' : ''}; store bytes ${mb(r.storeBytes)}` +
        ` = ${r.storeRatio?.toFixed(3) ?? 'n/a'} × (source + artifacts ${mb(r.sourceBytes + r.artifactBytes)}) (target ≤ 1.5);` +
        ` all veth traffic ${mb(r.vethBytes)} = ${r.vethRatio.toFixed(3)} ×`,
    );
    const t = r.timeline;
    console.log(
      `       head ${t.headSec} s, fan-out ${t.fanOutSec} s, tail ${t.tailSec} s; busy per host: ` +
        Object.entries(t.busySec)
          .map(([h, sec]) => `${h} ${sec} s`)
          .join(', '),
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
