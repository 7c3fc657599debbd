/**
 * The source-aware ladder: which renditions a source gets, at what size. Pure and sandbox-safe:
 * the workflow plans with it, the edge checks with it, and both come to the same answer.
 */
import { RENDITIONS, type RenditionName } from './constants';

/** A rendition kept for a source: its exact output size (both even, the source's aspect). */
export interface LadderRung {
  name: RenditionName;
  width: number;
  height: number;
}

/** A rendition left out, and why. */
export interface DroppedRendition {
  name: RenditionName;
  reason: string;
}

export interface Ladder {
  renditions: LadderRung[];
  dropped: DroppedRendition[];
}

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/**
 * The output size of `name` for a `width`×`height` source: the rendition's height is the short
 * side (so a portrait source's 720p is 720 wide), the long side keeps the aspect ratio, and both
 * are rounded to even numbers (H.264 4:2:0 needs them).
 */
export function renditionSize(name: RenditionName, width: number, height: number): { width: number; height: number } {
  const short = RENDITIONS[name].height;
  if (width >= height) return { width: even((width * short) / height), height: short };
  return { width: short, height: even((height * short) / width) };
}

/**
 * Plans the ladder of a source: every requested rendition whose short side is at most the
 * source's, in ascending size; the others are dropped with a reason (never upscale).
 */
export function planLadder(requested: readonly RenditionName[], width: number, height: number): Ladder {
  const sourceShort = Math.min(width, height);
  const renditions: LadderRung[] = [];
  const dropped: DroppedRendition[] = [];
  const ordered = [...requested].sort((a, b) => RENDITIONS[a].height - RENDITIONS[b].height);
  for (const name of ordered) {
    if (RENDITIONS[name].height > sourceShort) {
      dropped.push({
        name,
        reason: `${name} needs a short side of ${RENDITIONS[name].height} px; the source is ${width}x${height} (never upscaled)`,
      });
    } else {
      renditions.push({ name, ...renditionSize(name, width, height) });
    }
  }
  return { renditions, dropped };
}
