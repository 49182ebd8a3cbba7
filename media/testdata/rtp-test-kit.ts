// Test-only: feeding captures through depacketizers, deterministic network impairments
// (drop, duplicate, swap, delay), timestamp rewriting, and the fMP4 re-mux judge.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Depacketizer } from '../rtp-depacketizer.ts';
import type { AccessUnit, TrackInfo } from '../types.ts';
import { decodeErrors, muxClips, type Clip } from './fmp4-clips.ts';
import { copyAu } from './rtp-captures.ts';
import { mulberry32 } from './test-helpers.ts';

export const seqOf = (p: Uint8Array): number => (p[2]! << 8) | p[3]!;
export const tsOf = (p: Uint8Array): number => ((p[4]! << 24) | (p[5]! << 16) | (p[6]! << 8) | p[7]!) >>> 0;

/** Pushes every packet (copied into a scratch buffer that is overwritten after each push) and collects copies of the popped units. */
export function depacketizeAll(d: Depacketizer, packets: readonly Uint8Array[], flush = true): AccessUnit[] {
  const out: AccessUnit[] = [];
  const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  const scratch = new Uint8Array(70_000);
  packets.forEach((p, i) => {
    scratch.set(p);
    d.push(scratch.subarray(0, p.length), i);
    scratch.fill(0xa5, 0, p.length); // the packet view must not be kept across calls
    while (d.pop(au)) out.push(copyAu(au));
  });
  if (flush) {
    d.flush();
    while (d.pop(au)) out.push(copyAu(au));
  }
  return out;
}

/** A copy of `p` with its timestamp replaced. */
export function withTs(p: Uint8Array, ts: number): Uint8Array {
  const c = p.slice();
  new DataView(c.buffer).setUint32(4, ts >>> 0);
  return c;
}

/** A copy of `p` with its sequence number replaced. */
export function withSeq(p: Uint8Array, seq: number): Uint8Array {
  const c = p.slice();
  new DataView(c.buffer).setUint16(2, seq & 0xffff);
  return c;
}

export interface Impairment {
  drop?: number;
  duplicate?: number;
  swap?: number;
  /** Probability that a packet is held back 2..`delayBy` positions. */
  delay?: number;
  delayBy?: number;
}

/** The packet order a lossy, reordering network would deliver (fixed seed). */
export function impair(packets: readonly Uint8Array[], seed: number, o: Impairment): { out: Uint8Array[]; dropped: Set<number> } {
  const rnd = mulberry32(seed);
  const dropped = new Set<number>();
  let out: Uint8Array[] = [];
  packets.forEach((p) => {
    if (rnd() < (o.drop ?? 0)) {
      dropped.add(seqOf(p));
      return;
    }
    out.push(p);
    if (rnd() < (o.duplicate ?? 0)) out.push(p);
  });
  // The first packet stays first: one that arrives after a later packet started the
  // stream is indistinguishable from a stray old one and is dropped as a duplicate.
  for (let i = 1; i + 1 < out.length; i++) {
    if (rnd() < (o.swap ?? 0)) {
      [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
      i++;
    }
  }
  if (o.delay) {
    const res: Uint8Array[] = [];
    const held: { p: Uint8Array; at: number }[] = [];
    out.forEach((p, i) => {
      if (i > 0 && rnd() < o.delay!) held.push({ p, at: i + 2 + Math.floor(rnd() * ((o.delayBy ?? 4) - 1)) });
      else res.push(p);
      for (let k = held.length - 1; k >= 0; k--) if (held[k]!.at <= i) res.push(held.splice(k, 1)[0]!.p);
    });
    for (const h of held) res.push(h.p);
    out = res;
  }
  return { out, dropped };
}

/** Durations from successive dts (the last repeats the previous one). */
export function durations(aus: readonly AccessUnit[], fallback: number): number[] {
  return aus.map((a, i) => (i + 1 < aus.length ? aus[i + 1]!.dts - a.dts : i > 0 ? a.dts - aus[i - 1]!.dts : fallback));
}

/**
 * The end-to-end judge: re-mux the units with our fMP4 muxer (dts shifted to start at 0)
 * and have ffmpeg decode the file. Returns ffmpeg's complaints ('' when clean) and the path.
 */
export function remuxAndDecode(dir: string, name: string, tracks: { track: TrackInfo; aus: AccessUnit[]; fallback: number }[]): { errors: string; path: string } {
  const clips: Clip[] = tracks.map(({ track, aus, fallback }) => {
    const t0 = aus[0]!.dts;
    const shifted = aus.map((a) => ({ ...a, dts: a.dts - t0, pts: a.pts - t0 }));
    return { track, aus: shifted, durations: durations(shifted, fallback) };
  });
  const { bytes } = muxClips(clips);
  const path = join(dir, `${name}.mp4`);
  writeFileSync(path, bytes);
  return { errors: decodeErrors(path), path };
}
