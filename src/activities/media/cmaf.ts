/**
 * Box-level reading and shifting of CMAF media segments (ISO BMFF fragments), so that a rendition
 * can be packaged one chunk at a time and still play as one stream: ffmpeg packages each chunk's
 * segments with the chunk's first fragment at time 0 and sequence number 1, and
 * {@link shiftFragment} moves them to where the chunk sits in the whole rendition. Only fixed-size
 * fields change (`mfhd` sequence number, `tfdt` base media decode time, `sidx` earliest
 * presentation time), so a shifted segment is byte-identical to the one that packaging the whole
 * rendition in one run writes.
 */

interface Box {
  type: string;
  /** Offset of the box's header. */
  start: number;
  /** Offset just past the box. */
  end: number;
  /** Offset of the box's payload (after size and type, and the large size when there is one). */
  body: number;
}

const CONTAINERS = new Set(['moof', 'traf']);

function* boxes(buf: Buffer, start: number, end: number): Generator<Box> {
  let at = start;
  while (at + 8 <= end) {
    let size = buf.readUInt32BE(at);
    let body = at + 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(at + 8));
      body = at + 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < body - at || at + size > end) throw new Error(`a box at byte ${at} overruns its parent`);
    yield { type: buf.toString('latin1', at + 4, at + 8), start: at, end: at + size, body };
    at += size;
  }
}

/** Every box of a segment with the given type, looking inside `moof` and `traf`. */
function find(buf: Buffer, type: string, start = 0, end = buf.length): Box[] {
  const found: Box[] = [];
  for (const box of boxes(buf, start, end)) {
    if (box.type === type) found.push(box);
    if (CONTAINERS.has(box.type)) found.push(...find(buf, type, box.body, box.end));
  }
  return found;
}

const readVersioned = (buf: Buffer, at: number, version: number) =>
  version === 1 ? buf.readBigUInt64BE(at) : BigInt(buf.readUInt32BE(at));

function writeVersioned(buf: Buffer, at: number, version: number, value: bigint, what: string): void {
  if (version === 1) buf.writeBigUInt64BE(value, at);
  else if (value <= 0xffffffffn) buf.writeUInt32BE(Number(value), at);
  else throw new Error(`${what} ${value} does not fit its 32-bit field`);
}

/** Where a segment's media starts and how long it lasts, in its track's timescale. */
export interface FragmentTiming {
  /** `tfdt` of the first fragment. */
  startTicks: bigint;
  /** Sum of the sample durations of every fragment (from `trun`, else `tfhd`'s default). */
  durationTicks: bigint;
}

/** The timing of a one-track CMAF segment; throws when it has no `moof` with a `tfdt`. */
export function fragmentTiming(buf: Buffer): FragmentTiming {
  let start: bigint | undefined;
  let duration = 0n;
  for (const traf of find(buf, 'traf')) {
    let defaultDuration = 0;
    for (const box of boxes(buf, traf.body, traf.end)) {
      const flags = buf.readUInt32BE(box.body) & 0xffffff;
      const version = buf[box.body]!;
      if (box.type === 'tfhd') {
        // track_ID, then the optional fields in flag order: base data offset (8), sample
        // description index (4), default sample duration (4).
        let at = box.body + 8;
        if (flags & 0x1) at += 8;
        if (flags & 0x2) at += 4;
        if (flags & 0x8) defaultDuration = buf.readUInt32BE(at);
      } else if (box.type === 'tfdt') {
        start ??= readVersioned(buf, box.body + 4, version);
      } else if (box.type === 'trun') {
        const count = buf.readUInt32BE(box.body + 4);
        let at = box.body + 8;
        if (flags & 0x1) at += 4; // data offset
        if (flags & 0x4) at += 4; // first sample flags
        const fields = [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length;
        for (let i = 0; i < count; i++) {
          duration += BigInt(flags & 0x100 ? buf.readUInt32BE(at) : defaultDuration);
          at += fields * 4;
        }
      }
    }
  }
  if (start === undefined) throw new Error('the segment has no tfdt box');
  return { startTicks: start, durationTicks: duration };
}

/**
 * Moves a segment packaged on its own into place: its fragments' sequence numbers start at
 * `sequence` and its times move by `offsetTicks`. Returns a new buffer; the input is unchanged.
 */
export function shiftFragment(segment: Buffer, shift: { sequence: number; offsetTicks: bigint }): Buffer {
  const buf = Buffer.from(segment);
  find(buf, 'mfhd').forEach((box, i) => buf.writeUInt32BE(shift.sequence + i, box.body + 4));
  for (const box of find(buf, 'tfdt')) {
    const version = buf[box.body]!;
    const at = box.body + 4;
    writeVersioned(buf, at, version, readVersioned(buf, at, version) + shift.offsetTicks, 'tfdt');
  }
  for (const box of find(buf, 'sidx')) {
    // version/flags, reference_ID, timescale, then earliest_presentation_time.
    const version = buf[box.body]!;
    const at = box.body + 12;
    writeVersioned(buf, at, version, readVersioned(buf, at, version) + shift.offsetTicks, 'sidx');
  }
  return buf;
}
