/**
 * The video pipeline on the `s3` backend, end to end on the real dev server and a real S3 server
 * (a private versitygw, so this file may stop it): a local source is uploaded at the edge, the
 * encoders read it by ranges, artifacts land under `outputs/<workflowId>/<runId>/` with URIs and
 * presigned URLs, byte-identical to the `file` backend's; bad object sources are refused at the
 * edge; a store outage mid-pipeline is retried and the pipeline completes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../../src/activities/media/ffmpeg';
import { InvalidInputError, type SluiceClient } from '../../src/client';
import { freePort } from '../../src/devserver/dev-server';
import type { VideoPipelineResult } from '../../src/shared/video';
import { openStorage, type Storage } from '../../src/storage';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { createBucket, s3Env, startS3Server, type S3Server } from '../helpers/s3-server';

let server: S3Server;
let bucket: string;
let fileEnv: TestEnv;
let s3: TestEnv;
let storage: Storage;
let hosts: WorkerHost[] = [];
let fileClient: SluiceClient;
let client: SluiceClient;
let sample: string;

const request = (key: string) => ({
  source: sample,
  renditions: ['240p', '360p'] as ('240p' | '360p')[],
  chunkSeconds: 4,
  thumbnails: 2,
  tenant: 'acme',
  package: 'mp4',
  idempotencyKey: key,
});

beforeAll(async () => {
  server = await startS3Server({ port: await freePort() });
  bucket = await createBucket(server, 'video');
  fileEnv = makeTestEnv('video-file');
  s3 = makeTestEnv('video-s3', {
    ...s3Env(server),
    SLUICE_STORAGE_URL: `s3://${bucket}/sluice`,
    SLUICE_PRESIGN_TTL_SECONDS: '600',
    // A short request timeout and quick retries, so the outage test moves along.
    SLUICE_S3_REQUEST_TIMEOUT_SECONDS: '5',
    SLUICE_RETRY_BASE_MS: '500',
    SLUICE_RETRY_CAP_MS: '3000',
  });
  storage = openStorage(s3.config.storage, {
    outputDir: s3.config.outputDir,
    partitionsDir: s3.config.reports.partitionsDir,
  });
  sample = await sampleVideo(s3, { seconds: 10 });
  await sampleVideo(fileEnv, { seconds: 10 });
  hosts = [await startHost(fileEnv, ['default']), await startHost(s3, ['default'])];
  fileClient = await connectClient(fileEnv);
  client = await connectClient(s3);
});

afterAll(async () => {
  await client?.close();
  await fileClient?.close();
  for (const h of hosts) await h.shutdown();
  await server?.stop();
});

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('the video pipeline on s3', () => {
  it('runs from a local source uploaded at the edge, with artifacts identical to the file backend', async () => {
    const reference = await fileClient.getResult<VideoPipelineResult>(
      (await fileClient.startVideoPipeline(request('same-file'))).workflowId,
    );
    const { workflowId } = await client.startVideoPipeline(request('same-s3'));
    const result = await client.getResult<VideoPipelineResult>(workflowId);

    // The source was uploaded, content-addressed, and the workers read it by ranges from there.
    const digest = sha256(path.join(s3.mediaRoot, sample));
    expect(result.source).toBe(`s3://${bucket}/sluice/uploads/${digest}/${sample}`);
    expect(result.sourceBytesRead).toBeGreaterThan(0);
    const prefix = `s3://${bucket}/sluice/outputs/${workflowId}/${result.runId}/`;
    expect(result.manifest.uri).toBe(`${prefix}manifest.json`);
    expect(result.renditions.map((r) => r.uri)).toEqual([`${prefix}240p.mp4`, `${prefix}360p.mp4`]);
    // Byte-identical to the same input on one host with the file backend.
    expect(result.renditions.map((r) => r.sha256)).toEqual(reference.renditions.map((r) => r.sha256));
    expect(result.thumbnails.map((r) => r.sha256)).toEqual(reference.thumbnails.map((r) => r.sha256));
    for (const a of [...result.renditions, ...result.thumbnails]) {
      expect(a.path).toBeUndefined();
      // Each artifact has a presigned URL that really serves it.
      const body = Buffer.from(await (await fetch(a.url!)).arrayBuffer());
      expect(crypto.createHash('sha256').update(body).digest('hex')).toBe(a.sha256);
      expect(new URL(a.url!).searchParams.get('X-Amz-Expires')).toBe('600');
    }
    // Only the artifacts remain: .work/ is gone, and nothing was left in scratch.
    const keys = (await storage.artifacts.list(`${workflowId}/${result.runId}`)).map((o) => o.key.split('/').at(-1));
    expect(keys).toEqual(['240p.mp4', '360p.mp4', 'manifest.json', 'thumb-01.jpg', 'thumb-02.jpg']);
    // No file left in scratch (the running host keeps its own, empty, folder there).
    expect(listFiles(s3.config.storage.scratchDir)).toEqual([]);
    // The manifest names the artifacts by URI, without URLs that would expire.
    const manifest = JSON.parse(
      (await storage.artifacts.getBuffer(`${workflowId}/${result.runId}/manifest.json`)).toString(),
    ) as VideoPipelineResult;
    expect(manifest.renditions.map((r) => [r.uri, r.url])).toEqual(result.renditions.map((r) => [r.uri, undefined]));
  });

  it('an hls run plays from a private bucket through its playbackUrl: signed playlists, every URI presigned', async () => {
    const wide = await sampleVideo(s3, { seconds: 10, width: 640, height: 360, name: 'wide.mp4' });
    const { workflowId } = await client.startVideoPipeline({
      ...request('hls-s3'),
      source: wide,
      package: 'hls',
      segmentSeconds: 2,
      thumbnails: 0,
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    const playback = new URL(result.playbackUrl!);
    expect(decodeURIComponent(playback.pathname)).toBe(
      `/${bucket}/sluice/outputs/${workflowId}/${result.runId}/signed/master.m3u8`,
    );
    expect(playback.searchParams.get('X-Amz-Expires')).toBe('600');
    // The bucket is private: the same object without the signature is refused.
    expect((await fetch(`${playback.origin}${playback.pathname}`)).status).toBe(403);
    const text = async (url: string) => {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      return res.text();
    };
    const uris = (playlist: string) => [
      ...playlist.split('\n').filter((l) => l.trim() && !l.startsWith('#')),
      ...[...playlist.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!),
    ];
    const master = await text(result.playbackUrl!);
    const media = uris(master);
    // Two renditions and the audio group, each a presigned URL of its signed playlist.
    expect(media).toHaveLength(3);
    const manifest = JSON.parse(
      (await storage.artifacts.getBuffer(`${workflowId}/${result.runId}/manifest.json`)).toString(),
    ) as { renditions: { name: string; segmentList: { file: string; sha256: string }[] }[] };
    let fetched = 0;
    let verified = 0;
    for (const url of media) {
      expect(new URL(url).searchParams.has('X-Amz-Signature')).toBe(true);
      const playlist = await text(url);
      expect(playlist).toContain('#EXT-X-ENDLIST');
      const name = /\/signed\/hls\/([^/]+)\/playlist\.m3u8$/.exec(new URL(url).pathname)![1]!;
      const listed = manifest.renditions.find((r) => r.name === name)?.segmentList;
      for (const segment of uris(playlist)) {
        const body = Buffer.from(await (await fetch(segment)).arrayBuffer());
        const file = new URL(segment).pathname.split('/').at(-1)!;
        const expected = listed?.find((s) => s.file === file)?.sha256;
        if (expected) {
          expect(crypto.createHash('sha256').update(body).digest('hex')).toBe(expected);
          verified++;
        }
        expect(body.length).toBeGreaterThan(0);
        fetched++;
      }
    }
    expect(fetched).toBeGreaterThan(10);
    // Every video segment checked against the manifest's checksum (the audio group's are not listed there).
    expect(verified).toBe(manifest.renditions.reduce((a, r) => a + r.segmentList.length, 0));
    // A second reader: ffprobe's HLS demuxer plays the whole stream from the presigned URL.
    const { stdout } = await runProcess(s3.binaries.ffprobe, [
      ...['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', result.playbackUrl!],
    ]);
    expect(Math.abs(Number(stdout.trim()) - result.sourceDurationSec)).toBeLessThan(0.2);
  });

  it('an s3:// source is accepted as is, and a bad one is refused at the edge naming the field, starting nothing', async () => {
    await storage.uploads.putFile('direct/clip.mp4', path.join(s3.mediaRoot, sample));
    const uri = storage.uploads.uri('direct/clip.mp4');
    const ok = await client.getResult<VideoPipelineResult>(
      (await client.startVideoPipeline({ ...request('direct'), source: uri, renditions: ['240p'], thumbnails: 0 }))
        .workflowId,
    );
    expect(ok.source).toBe(uri);

    const cases: [string, RegExp][] = [
      [`s3://${bucket}/sluice/uploads/nope.mp4`, /does not exist/],
      [`s3://no-such-bucket-${crypto.randomBytes(3).toString('hex')}/x.mp4`, /bucket does not exist/],
      ['ftp://example.com/x.mp4', /unsupported scheme ftp/],
    ];
    for (const [source, message] of cases) {
      const err = await client
        .startVideoPipeline({ ...request(`bad-${crypto.randomBytes(3).toString('hex')}`), source })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).issues).toEqual([
        { path: 'source', message: expect.stringMatching(message) as string },
      ]);
    }
    // Refused credentials: a client with a wrong secret.
    const denied = await connectClient(
      makeTestEnv('video-s3-denied', {
        ...s3Env({ ...server, secretKey: 'wrong' }),
        SLUICE_STORAGE_URL: `s3://${bucket}/sluice`,
      }),
    );
    try {
      const err = await denied.startVideoPipeline({ ...request('denied'), source: uri }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).issues[0]).toMatchObject({
        path: 'source',
        message: expect.stringMatching(/refused these credentials/) as string,
      });
    } finally {
      await denied.close();
    }
  });

  it('a store outage mid-pipeline is retried; the pipeline completes with the same artifacts', async () => {
    const reference = await client.getResult<VideoPipelineResult>(
      (await client.startVideoPipeline(request('same'))).workflowId,
    );
    const { workflowId } = await client.startVideoPipeline(request('outage'));
    // Wait until transcoding has started writing to the store, then stop it for 6 s.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await client.getStatus(workflowId)).stage !== 'transcoding')
      await new Promise((r) => setTimeout(r, 100));
    await server.stop();
    await new Promise((r) => setTimeout(r, 6_000));
    await server.start();
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    expect(result.renditions.map((r) => r.sha256)).toEqual(reference.renditions.map((r) => r.sha256));
    const keys = (await storage.artifacts.list(`${workflowId}/${result.runId}`)).map((o) => o.key.split('/').at(-1));
    expect(keys).toEqual(['240p.mp4', '360p.mp4', 'manifest.json', 'thumb-01.jpg', 'thumb-02.jpg']);
  });
});
