// Test-only: generates real H.264/H.265/AAC clips with ffmpeg in a temp dir and splits them
// into AccessUnits + TrackInfo for the fMP4 muxer tests, plus ffprobe and PRNG helpers.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitAnnexB } from '../annexb.ts';
import { FragmentBuilder } from '../fmp4-fragment.ts';
import { ADDED, FragmentStreamer, type FinishedFragment } from '../fmp4-stream.ts';
import { initSegment } from '../fmp4-init.ts';
import type { InitMeta } from '../fmp4-init.ts';
import { AAC_SAMPLES_PER_FRAME, adtsToAudioSpecificConfig, audioTrackInfoAac, newAdtsFrame, nextAdtsFrame } from '../aac.ts';
import { AnnexBAuAssembler } from '../annexb-au.ts';
import type { AccessUnit, AudioTrackInfo, TrackInfo } from '../types.ts';
import { mulberry32 } from './test-helpers.ts';

export interface Clip {
  track: TrackInfo;
  /** In decode order; times in track ticks, shifted so the first dts is 0. */
  aus: AccessUnit[];
  /** Duration of each AU (next dts - dts; the last repeats the previous). */
  durations: number[];
}

export const FPS = 25;
export const GOP_FRAMES = 50; // 2 s
export const CLIP_SECONDS = 4;

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fmp4-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Run a command; throw with its stderr on failure. Returns stdout. */
export function run(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: 'pipe', stderr: 'pipe' });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(' ')} exited ${p.exitCode}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** `ffmpeg -v error -i file -f null -` output: empty for a file that decodes cleanly. */
export function decodeErrors(file: string): string {
  const p = Bun.spawnSync(['ffmpeg', '-v', 'error', '-i', file, '-f', 'null', '-'], { stdout: 'pipe', stderr: 'pipe' });
  return p.stderr.toString() + (p.exitCode === 0 ? '' : `exit ${p.exitCode}`);
}

export function ffprobeJson(args: string[]): any {
  return JSON.parse(run(['ffprobe', '-v', 'error', '-of', 'json', ...args]));
}

interface Packet { pts: number; dts: number; flags: string }

function packets(file: string): Packet[] {
  const j = ffprobeJson(['-show_entries', 'packet=pts,dts,flags', file]);
  return j.packets.map((p: any) => ({ pts: Number(p.pts), dts: Number(p.dts), flags: p.flags }));
}

/**
 * Encode a 4 s 320x240 25 fps clip (2 s GOP, B-frames) to mp4 and copy it out as an
 * Annex-B elementary stream; split that with the codec layer (NAL units, access units,
 * track info from the parameter sets) and take dts/pts from the mp4's packets.
 */
export function videoClip(dir: string, codec: 'h264' | 'h265'): Clip {
  const mp4 = join(dir, `${codec}.mp4`);
  const es = join(dir, `${codec}.${codec}`);
  const enc = codec === 'h264'
    ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-g', `${GOP_FRAMES}`, '-keyint_min', `${GOP_FRAMES}`, '-sc_threshold', '0']
    : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `log-level=error:keyint=${GOP_FRAMES}:min-keyint=${GOP_FRAMES}:scenecut=0:bframes=2:open-gop=0`, '-tag:v', 'hvc1'];
  run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=320x240:rate=${FPS}:duration=${CLIP_SECONDS}`,
    ...enc, '-pix_fmt', 'yuv420p', '-video_track_timescale', '90000', mp4]);
  run(['ffmpeg', '-v', 'error', '-y', '-i', mp4, '-c', 'copy', '-f', codec === 'h264' ? 'h264' : 'hevc', es]);
  const timed = packets(mp4);
  const stream = new Uint8Array(readFileSync(es));
  const asm = new AnnexBAuAssembler(codec);
  const nalus: Uint8Array[] = [];
  splitAnnexB(stream, nalus, 1 << 20); // the whole clip at once, not one AU
  const aus: AccessUnit[] = [];
  const shift = -timed[0]!.dts;
  const take = () => {
    const t = timed[aus.length];
    if (!t) throw new Error(`more access units than the ${timed.length} mp4 packets`);
    if (asm.au.keyframe !== t.flags.startsWith('K')) throw new Error(`keyframe flag differs at AU ${aus.length}`);
    aus.push({ nalus: asm.au.nalus.slice(), bytes: asm.au.bytes, keyframe: asm.au.keyframe, dts: t.dts + shift, pts: t.pts + shift });
  };
  for (const n of nalus) if (asm.push(n)) take();
  if (asm.flush()) take();
  if (aus.length !== timed.length) throw new Error(`${aus.length} access units vs ${timed.length} mp4 packets`);
  const track = asm.videoTrackInfo();
  if (!track) throw new Error('no parameter sets in the clip');
  return { track, aus, durations: durationsOf(aus, 90_000 / FPS) };
}

/** 4 s of a 440 Hz tone as stereo 48 kHz ADTS AAC, split by the codec layer's ADTS reader. */
export function aacClip(dir: string): Clip {
  const file = join(dir, 'a.aac');
  run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SECONDS}`,
    '-ac', '2', '-c:a', 'aac', '-f', 'adts', file]);
  const b = new Uint8Array(readFileSync(file));
  const aus: AccessUnit[] = [];
  const f = newAdtsFrame();
  let track: AudioTrackInfo | null = null;
  for (let p = 0; nextAdtsFrame(b, p, f, true); p = f.end) {
    track ??= audioTrackInfoAac(adtsToAudioSpecificConfig(f));
    const t = aus.length * AAC_SAMPLES_PER_FRAME;
    aus.push({ nalus: [f.payload], bytes: f.payload.length, keyframe: true, dts: t, pts: t });
  }
  if (!track) throw new Error('no ADTS frames');
  return { track, aus, durations: aus.map(() => AAC_SAMPLES_PER_FRAME) };
}

function durationsOf(aus: AccessUnit[], fallback: number): number[] {
  return aus.map((a, i) => (i + 1 < aus.length ? aus[i + 1]!.dts - a.dts : i > 0 ? a.dts - aus[i - 1]!.dts : fallback));
}

export { mulberry32 };

export interface MuxOptions {
  /** Fragment length in seconds (cut on the first track's dts). */
  fragmentSeconds?: number;
  firstSequence?: number;
  /** Added to each track's tfdt (e.g. to go past 2^32). */
  dtsOffset?: number[];
  /** Only AUs whose dts falls in [fromSeconds, toSeconds). */
  fromSeconds?: number;
  toSeconds?: number;
  meta?: InitMeta;
  /** Add with duration 0 and patch it with setLastDuration when the next AU arrives. */
  patchDurations?: boolean;
}

/** Mux clips (one per track) into init + fragments in one buffer, the way a recorder would. */
export function muxClips(clips: Clip[], o: MuxOptions = {}): { bytes: Uint8Array; fragments: number } {
  const tracks = clips.map((c) => c.track);
  const fb = new FragmentBuilder(tracks);
  const out: Uint8Array[] = [initSegment(tracks, o.meta)];
  const fragLen = o.fragmentSeconds ?? 1;
  const from = o.fromSeconds ?? 0, to = o.toSeconds ?? Infinity;
  const sec = (c: Clip, au: AccessUnit) => au.dts / c.track.timescale;
  const idx = clips.map((c) => c.aus.findIndex((au) => sec(c, au) >= from));
  let seq = o.firstSequence ?? 1;
  let fragments = 0;
  for (let start = from; start < to && idx.some((i, t) => i >= 0 && i < clips[t]!.aus.length); start += fragLen) {
    const end = Math.min(start + fragLen, to);
    fb.begin(seq++);
    const bases: number[] = [];
    clips.forEach((c, t) => {
      bases[t] = 0;
      for (let i = idx[t]!; i >= 0 && i < c.aus.length && sec(c, c.aus[i]!) < end; i++, idx[t] = i) {
        const au = c.aus[i]!;
        if (fb.sampleCount(t) === 0) bases[t] = au.dts + (o.dtsOffset?.[t] ?? 0);
        if (o.patchDurations) {
          if (fb.sampleCount(t) > 0) fb.setLastDuration(t, au.dts - c.aus[i - 1]!.dts);
          if (!fb.addSample(t, au, 0)) throw new Error('fragment full');
        } else if (!fb.addSample(t, au, c.durations[i]!)) throw new Error('fragment full');
      }
      if (o.patchDurations && fb.sampleCount(t) > 0) fb.setLastDuration(t, c.durations[idx[t]! - 1]!);
    });
    for (const p of fb.finish(bases)) out.push(p.slice());
    fragments++;
  }
  let n = 0;
  for (const p of out) n += p.length;
  const bytes = new Uint8Array(n);
  let off = 0;
  for (const p of out) { bytes.set(p, off); off += p.length; }
  return { bytes, fragments };
}

/**
 * A BlockSink over an in-memory file that checks the streamer's side of the contract: offsets
 * and lengths aligned, a block never handed over twice, a header (commitEnd > 0) only after
 * the fragment's data. Blocks come back filled with 0xEE (as another stream's old bytes would
 * be), and a put block is scribbled over after its bytes are copied, so relying on a block
 * after handing it over shows up as corrupt media.
 */
export class MemorySink {
  file = new Uint8Array(1 << 16);
  size = 0;
  /** Every put: offset, length, commit end. */
  readonly puts: { offset: number; len: number; commitEnd: number }[] = [];
  readonly #idle: Uint8Array[] = [];
  readonly #out = new Set<Uint8Array>();
  /** Blocks that may be out at once (take() returns null beyond), and an error to throw from put. */
  limit = Infinity;
  failPut: Error | null = null;
  takes = 0;

  constructor(
    readonly blockBytes: number,
    readonly align = 4096,
  ) {}

  take(): Uint8Array | null {
    if (this.#out.size >= this.limit) return null;
    const b = this.#idle.pop() ?? new Uint8Array(this.blockBytes);
    b.fill(0xee);
    this.#out.add(b);
    this.takes++;
    return b;
  }

  put(block: Uint8Array, offset: number, len: number, commitEnd: number): void {
    if (!this.#out.delete(block)) throw new Error('put of a block that is not out');
    this.#idle.push(block);
    if (offset % this.align !== 0 || len % this.align !== 0 || len > block.length || len <= 0) {
      throw new Error(`unaligned put: offset ${offset}, len ${len}`);
    }
    if (this.failPut) throw this.failPut;
    if (commitEnd > 0 && !this.puts.some((p) => p.offset + p.len === commitEnd) && commitEnd !== offset + len) {
      throw new Error(`header committing ${commitEnd} before the data that ends there`);
    }
    if (offset + len > this.file.length) {
      const next = new Uint8Array(Math.max(this.file.length * 2, offset + len));
      next.set(this.file);
      this.file = next;
    }
    this.file.set(block.subarray(0, len), offset);
    this.size = Math.max(this.size, offset + len);
    this.puts.push({ offset, len, commitEnd });
    block.fill(0xdd);
  }

  drop(block: Uint8Array): void {
    if (!this.#out.delete(block)) throw new Error('drop of a block that is not out');
    this.#idle.push(block);
  }

  /** Blocks taken and not yet handed back. */
  get outstanding(): number {
    return this.#out.size;
  }

  bytes(): Uint8Array {
    return this.file.slice(0, this.size);
  }
}

/**
 * muxClips through a FragmentStreamer into a MemorySink (init in front of the first moof),
 * the way the recorder writes a segment. Returns the file and where each fragment's moof is.
 */
export function streamClips(clips: Clip[], sink: MemorySink, o: MuxOptions = {}): { bytes: Uint8Array; fragments: FinishedFragment[] } {
  const tracks = clips.map((c) => c.track);
  const fs = new FragmentStreamer(tracks, sink);
  fs.startFile(initSegment(tracks, o.meta));
  const fragLen = o.fragmentSeconds ?? 1;
  const sec = (c: Clip, au: AccessUnit) => au.dts / c.track.timescale;
  const idx = clips.map(() => 0);
  let seq = o.firstSequence ?? 1;
  const out: FinishedFragment[] = [];
  for (let start = 0; idx.some((i, t) => i < clips[t]!.aus.length); start += fragLen) {
    const end = start + fragLen;
    if (!fs.begin(seq++)) throw new Error('no block');
    const bases: number[] = [];
    clips.forEach((c, t) => {
      bases[t] = 0;
      for (let i = idx[t]!; i < c.aus.length && sec(c, c.aus[i]!) < end; i++, idx[t] = i) {
        const au = c.aus[i]!;
        if (fs.sampleCount(t) === 0) bases[t] = au.dts + (o.dtsOffset?.[t] ?? 0);
        if (o.patchDurations) {
          if (fs.sampleCount(t) > 0) fs.setLastDuration(t, au.dts - c.aus[i - 1]!.dts);
          if (fs.addSample(t, au, 0) !== ADDED) throw new Error('fragment full');
        } else if (fs.addSample(t, au, c.durations[i]!) !== ADDED) throw new Error('fragment full');
      }
      if (o.patchDurations && fs.sampleCount(t) > 0) fs.setLastDuration(t, c.durations[idx[t]! - 1]!);
    });
    out.push(fs.finish(bases));
  }
  return { bytes: sink.bytes(), fragments: out };
}
