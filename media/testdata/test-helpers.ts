// Test-only helpers for the codec tests: ffmpeg fixtures cached in the temp dir, an
// ffprobe reader, a tiny MP4 box walker, and a seeded PRNG with input mutators for fuzzing.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNal, type NalRange } from '../annexb.ts';

const CACHE = join(tmpdir(), 'flux-media-fixtures');

/**
 * Runs `ffmpeg <args> <out>` once per distinct argument list and returns the output
 * bytes; the file is cached in the temp dir (named by a hash of the arguments), so the
 * test files share fixtures within and across runs.
 */
export function ffmpegFixture(args: string[], ext: string): { path: string; bytes: Uint8Array } {
  mkdirSync(CACHE, { recursive: true });
  const key = createHash('sha1').update(args.join('\u0000')).digest('hex').slice(0, 16);
  const path = join(CACHE, `${key}.${ext}`);
  if (!existsSync(path)) {
    const tmp = join(CACHE, `${key}.${process.pid}.tmp.${ext}`);
    const r = Bun.spawnSync(['ffmpeg', '-hide_banner', '-loglevel', 'error', '-y', ...args, tmp]);
    if (r.exitCode !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr.toString()}`);
    renameSync(tmp, path);
  }
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

/** Remuxes a fixture with `-c copy` into another container (cached the same way). */
export function remux(input: string, ext: string, extra: string[] = []): { path: string; bytes: Uint8Array } {
  return ffmpegFixture(['-i', input, '-c', 'copy', ...extra], ext);
}

/** ffprobe with JSON output; `args` select what to show. */
export function ffprobe(path: string, args: string[]): any {
  const r = Bun.spawnSync(['ffprobe', '-v', 'error', '-of', 'json', ...args, path]);
  if (r.exitCode !== 0) throw new Error(`ffprobe failed: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString());
}

/** Packets of the first video/audio stream in decode order: size and keyframe flag. */
export function probePackets(path: string, stream = 'v:0'): { size: number; key: boolean }[] {
  const j = ffprobe(path, ['-select_streams', stream, '-show_entries', 'packet=size,flags', '-show_packets']);
  return (j.packets as { size: string; flags: string }[]).map((p) => ({ size: Number(p.size), key: p.flags.startsWith('K') }));
}

export function probeStream(path: string, stream = 'v:0'): Record<string, any> {
  const j = ffprobe(path, ['-select_streams', stream, '-show_streams']);
  return j.streams[0];
}

/** Sample-entry bytes before child boxes (ISO/IEC 14496-12 §8.5.2, §12.1.3, §12.2.3). */
const ENTRY_SKIP: Record<string, number> = { avc1: 78, hvc1: 78, hev1: 78, mp4a: 28, stsd: 8 };
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'stsd', 'avc1', 'hvc1', 'hev1', 'mp4a']);

/** Finds the first box of type `type` anywhere under the container boxes; returns its body. */
export function findBox(buf: Uint8Array, type: string, from = 0, to = buf.length): Uint8Array | null {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = from;
  while (p + 8 <= to) {
    let size = dv.getUint32(p);
    const t = String.fromCharCode(buf[p + 4]!, buf[p + 5]!, buf[p + 6]!, buf[p + 7]!);
    let header = 8;
    if (size === 1) {
      size = Number(dv.getBigUint64(p + 8));
      header = 16;
    } else if (size === 0) size = to - p;
    if (size < header || p + size > to) return null;
    if (t === type) return buf.subarray(p + header, p + size);
    if (CONTAINERS.has(t)) {
      const found = findBox(buf, type, p + header + (ENTRY_SKIP[t] ?? 0), p + size);
      if (found) return found;
    }
    p += size;
  }
  return null;
}

/** ISO/IEC 14496-1 descriptors inside esds: returns the DecoderSpecificInfo (tag 5) body. */
export function decoderSpecificInfo(esds: Uint8Array): Uint8Array | null {
  for (let p = 4; p < esds.length; ) {
    const tag = esds[p++]!;
    let len = 0;
    for (let k = 0; k < 4; k++) {
      const b = esds[p++]!;
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    if (tag === 5) return esds.subarray(p, p + len);
    if (tag === 3) p += 3; // ES_Descriptor: ES_ID + flags (no optional fields from ffmpeg)
    else if (tag === 4) p += 13; // DecoderConfigDescriptor fixed part
    else p += len;
  }
  return null;
}

/** mulberry32: a tiny seeded PRNG returning [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const randInt = (rnd: () => number, n: number): number => Math.floor(rnd() * n);

export function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = randInt(rnd, 256);
  return b;
}

/** A mutated copy of `src`: bit flips, truncation, a random-length cut, a splice, or zero/start-code injection. */
export function mutate(src: Uint8Array, rnd: () => number): Uint8Array {
  const b = src.slice();
  switch (randInt(rnd, 6)) {
    case 0: {
      const flips = 1 + randInt(rnd, 8);
      for (let i = 0; i < flips && b.length > 0; i++) b[randInt(rnd, b.length)]! ^= 1 << randInt(rnd, 8);
      return b;
    }
    case 1:
      return b.subarray(0, randInt(rnd, b.length + 1));
    case 2: {
      const s = randInt(rnd, b.length + 1);
      return b.subarray(s, s + randInt(rnd, b.length - s + 1));
    }
    case 3: {
      // splice: repeat a random chunk at a random place
      const s = randInt(rnd, b.length + 1);
      const chunk = b.subarray(s, s + randInt(rnd, 64));
      const at = randInt(rnd, b.length + 1);
      const out = new Uint8Array(b.length + chunk.length);
      out.set(b.subarray(0, at));
      out.set(chunk, at);
      out.set(b.subarray(at), at + chunk.length);
      return out;
    }
    case 4: {
      const inject = [[0, 0, 1], [0, 0, 0, 1], [0, 0, 3], [0xff, 0xf1], [0, 0, 0, 0]][randInt(rnd, 5)]!;
      const at = randInt(rnd, b.length + 1);
      const out = new Uint8Array(b.length + inject.length);
      out.set(b.subarray(0, at));
      out.set(inject, at);
      out.set(b.subarray(at), at + inject.length);
      return out;
    }
    default: {
      const at = randInt(rnd, b.length + 1);
      const n = Math.min(b.length - at, randInt(rnd, 16));
      for (let i = 0; i < n; i++) b[at + i] = randInt(rnd, 256);
      return b;
    }
  }
}

/** Runs `fn` and fails when it changed any byte of `input` (zero-copy functions must not write). */
export function assertUnchanged<T>(input: Uint8Array, fn: () => T): T {
  const before = input.slice();
  const r = fn();
  if (Buffer.compare(Buffer.from(before), Buffer.from(input)) !== 0) throw new Error('input was modified');
  return r;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** MSB-first bit writer for hand-made parameter sets (u, ue, se as in ITU-T H.264 §9.1). */
export class BitWriter {
  private bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(v / 2 ** i) % 2);
    return this;
  }
  ue(v: number): this {
    const len = Math.floor(Math.log2(v + 1));
    return this.u(len, 0).u(len + 1, v + 1);
  }
  se(v: number): this {
    return this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }
  /** rbsp_trailing_bits() and the bytes, without emulation prevention. */
  rbsp(): Uint8Array {
    this.bits.push(1);
    while (this.bits.length % 8) this.bits.push(0);
    return this.bytes();
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.bits.length / 8));
    this.bits.forEach((b, i) => {
      if (b) out[i >> 3]! |= 0x80 >> (i & 7);
    });
    return out;
  }
}

/** Inserts emulation_prevention_three_byte where an RBSP would contain 00 00 0x (x <= 3). */
export function escapeRbsp(rbsp: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return new Uint8Array(out);
}

/** Every NAL unit of an Annex-B buffer, by a naive independent scan (test reference). */
export function naiveNalus(b: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) starts.push(i + 3);
  const out: Uint8Array[] = [];
  starts.forEach((s, k) => {
    let e = k + 1 < starts.length ? starts[k + 1]! - 3 : b.length;
    while (e > s && b[e - 1] === 0) e--;
    if (e > s) out.push(b.subarray(s, e));
  });
  return out;
}

/** A video fixture made by ffmpeg from testsrc2: 2 s, named after what it exercises. */
export interface VideoCase {
  name: string;
  codec: 'h264' | 'h265';
  args: string[];
}

const testsrc = (size: string, rate = '25'): string[] => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`, '-t', '2'];
const x265 = (extra: string): string[] => ['-c:v', 'libx265', '-x265-params', `keyint=20:log-level=error${extra}`, '-f', 'hevc'];

export const H264_CASES: VideoCase[] = [
  { name: 'baseline 320x240', codec: 'h264', args: [...testsrc('320x240'), '-c:v', 'libx264', '-profile:v', 'baseline', '-g', '25', '-f', 'h264'] },
  { name: 'main with B-frames 640x360', codec: 'h264', args: [...testsrc('640x360'), '-c:v', 'libx264', '-profile:v', 'main', '-bf', '2', '-g', '20', '-f', 'h264'] },
  { name: 'high odd size 642x362 (cropping)', codec: 'h264', args: [...testsrc('642x362'), '-c:v', 'libx264', '-profile:v', 'high', '-bf', '2', '-g', '20', '-f', 'h264'] },
  { name: 'high 4:4:4 with scaling lists 322x242', codec: 'h264', args: [...testsrc('322x242'), '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-x264-params', 'cqm=jvt', '-g', '20', '-f', 'h264'] },
  { name: 'NTSC rate 30000/1001', codec: 'h264', args: [...testsrc('320x240', '30000/1001'), '-c:v', 'libx264', '-g', '20', '-f', 'h264'] },
  { name: 'interlaced MBAFF 640x360', codec: 'h264', args: [...testsrc('640x360'), '-c:v', 'libx264', '-flags', '+ildct+ilme', '-x264-params', 'interlaced=1', '-g', '20', '-f', 'h264'] },
  { name: 'four slices with AUD', codec: 'h264', args: [...testsrc('320x240'), '-c:v', 'libx264', '-x264-params', 'slices=4:aud=1', '-bf', '2', '-g', '20', '-f', 'h264'] },
];

export const H265_CASES: VideoCase[] = [
  { name: 'main odd size 642x362 (conformance window)', codec: 'h265', args: [...testsrc('642x362'), ...x265('')] },
  { name: 'main 4:4:4 322x242', codec: 'h265', args: [...testsrc('322x242'), '-pix_fmt', 'yuv444p', ...x265('')] },
  { name: 'main 10 320x240', codec: 'h265', args: [...testsrc('320x240'), '-pix_fmt', 'yuv420p10le', ...x265('')] },
  { name: 'two temporal sub-layers', codec: 'h265', args: [...testsrc('320x240'), ...x265(':temporal-layers=1')] },
  { name: 'four slices with AUD, NTSC rate', codec: 'h265', args: [...testsrc('320x240', '30000/1001'), ...x265(':slices=4:aud=1')] },
];

export const videoFixture = (c: VideoCase) => ffmpegFixture(c.args, c.codec === 'h264' ? 'h264' : 'hevc');

/** The same fixture remuxed into MP4 (ffmpeg writes its own avcC/hvcC). */
export const videoMp4 = (c: VideoCase) => remux(videoFixture(c).path, 'mp4', c.codec === 'h265' ? ['-tag:v', 'hvc1'] : []);

/** ffprobe's r_frame_rate "30000/1001" as a number. */
export function rate(s: string): number {
  const [n, d] = s.split('/').map(Number);
  return n! / (d ?? 1);
}

/** Values of one syntax element as ffmpeg's trace_headers bitstream filter reads them, in stream order. */
export function traceHeaders(path: string, element: string): number[] {
  const r = Bun.spawnSync(['ffmpeg', '-hide_banner', '-i', path, '-c', 'copy', '-bsf:v', 'trace_headers', '-f', 'null', '-']);
  const re = new RegExp(`\\s${element}\\s+\\S+ = (-?\\d+)`);
  const out: number[] = [];
  for (const line of r.stderr.toString().split('\n')) {
    const m = re.exec(line);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** Every NAL unit of an Annex-B buffer, as views (tests only; the codec code reuses arrays). */
export function allNalus(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const r: NalRange = { start: 0, end: 0 };
  let pos = 0;
  while ((pos = findNal(buf, pos, r)) >= 0) out.push(buf.subarray(r.start, r.end));
  return out;
}
