// The long-running keyframe decoder against ffmpeg started once per picture (the judge):
// every picture it hands out must be the one asked for, byte for byte, whatever the codec,
// reordering, order of requests or process deaths in between.
import { afterAll, expect, test } from 'bun:test';
import { join } from 'node:path';
import { findNal, toAnnexB, type NalRange } from '../media/annexb.ts';
import { findFfmpeg } from '../engine/tools.ts';
import { makeClip, tempDir } from '../test/helpers.ts';
import { FrameDecodeError, FrameDecoder, FrameDecoders, type DecoderCodec } from './frame-decoder.ts';

const ffmpeg = findFfmpeg()!;
const dir = tempDir('framedec');
const decoders = new FrameDecoders();
afterAll(() => decoders.close());

/** Keyframes of an Annex-B clip, each with the parameter sets in force before it. */
async function keyframes(codec: DecoderCodec, o: { width?: number; height?: number; bframes?: number; gop?: number; seconds?: number }): Promise<Uint8Array[]> {
  const file = await makeClip(join(dir, 'clips'), { codec, fps: 25, seconds: o.seconds ?? 3, gop: o.gop ?? 10, bframes: o.bframes ?? 0, width: o.width ?? 320, height: o.height ?? 240 });
  const data = new Uint8Array(await Bun.file(file).arrayBuffer());
  const params = new Map<number, Uint8Array>();
  const out: Uint8Array[] = [];
  let slices: Uint8Array[] = [];
  const flush = (): void => {
    if (slices.length === 0) return;
    out.push(toAnnexB([...params.values(), ...slices]));
    slices = [];
  };
  const r: NalRange = { start: 0, end: 0 };
  let pos = 0;
  while ((pos = findNal(data, pos, r)) >= 0) {
    const nal = data.subarray(r.start, r.end);
    const type = codec === 'h264' ? nal[0]! & 31 : (nal[0]! >> 1) & 63;
    const param = codec === 'h264' ? type === 7 || type === 8 : type >= 32 && type <= 34;
    const key = codec === 'h264' ? type === 5 : type >= 16 && type <= 21;
    const slice = codec === 'h264' ? type >= 1 && type <= 5 : type <= 31;
    if (slice && !key) flush();
    if (param) {
      flush();
      params.set(type, nal);
    } else if (key) slices.push(nal);
  }
  flush();
  return out;
}

/** ffmpeg once per picture, the way snapshots were made before. */
async function judge(codec: DecoderCodec, w: number, h: number, kf: Uint8Array): Promise<Uint8Array> {
  const p = Bun.spawn([ffmpeg, '-v', 'error', '-threads', '1', '-f', codec === 'h264' ? 'h264' : 'hevc', '-i', 'pipe:0', '-frames:v', '1', '-threads', '1', '-s', `${w}x${h}`, '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
  p.stdin.write(kf);
  await p.stdin.end();
  const out = new Uint8Array(await new Response(p.stdout).arrayBuffer());
  await p.exited;
  expect(out.length).toBe(w * h * 3);
  return out;
}

async function check(codec: DecoderCodec, w: number, h: number, order: Uint8Array[]): Promise<void> {
  for (const kf of order) {
    const want = await judge(codec, w, h, kf);
    const got = await decoders.decode(ffmpeg, codec, w, h, kf, (rgb) => rgb.slice());
    expect(Bun.hash(got)).toBe(Bun.hash(want));
  }
}

test.each([
  ['h264', 0],
  ['h264', 2],
  ['h265', 0],
  ['h265', 3],
] as const)('%s with %i B-frames: each picture is the keyframe asked for, in any order', async (codec, bframes) => {
  const kfs = await keyframes(codec, { bframes });
  expect(kfs.length).toBeGreaterThanOrEqual(6);
  // In order, then jumping back and forth, then the same one twice.
  await check(codec, 320, 240, [kfs[0]!, kfs[1]!, kfs[2]!, kfs[5]!, kfs[1]!, kfs[4]!, kfs[4]!]);
  const d = decoders.get(ffmpeg, codec, 320, 240);
  console.log(`${codec} b${bframes}: lag ${d.lag}, ${d.framesIn} in, ${d.framesOut} out`); // a figure, not asserted
  d.close();
}, 60_000);

test('keyframes of two cameras of one size share a decoder; another size gets its own', async () => {
  const a = await keyframes('h264', { gop: 10 });
  const b = await keyframes('h264', { gop: 15, bframes: 2 });
  const c = await keyframes('h264', { width: 352, height: 288 });
  const before = decoders.size;
  await check('h264', 320, 240, [a[1]!, b[1]!, a[2]!, b[3]!]);
  await check('h264', 352, 288, [c[1]!]);
  await check('h264', 320, 240, [b[2]!]);
  expect(decoders.size).toBe(before + 2);
}, 60_000);

test('a picture of another size than announced comes out at the announced size', async () => {
  const c = await keyframes('h264', { width: 352, height: 288 });
  await check('h264', 320, 240, [c[0]!, c[2]!]); // the judge scales the same way
}, 30_000);

test('a keyframe that does not decode fails alone: the next one gets a fresh process', async () => {
  const kfs = await keyframes('h264', {});
  const bad = kfs[1]!.slice();
  const rnd = new Uint8Array(4000);
  crypto.getRandomValues(rnd);
  bad.set(rnd, Math.min(bad.length - rnd.length, 60)); // into the slice data
  await check('h264', 320, 240, [kfs[0]!]);
  const failed = await decoders.decode(ffmpeg, 'h264', 320, 240, bad, (rgb) => rgb.slice()).then(() => null, (e: Error) => e);
  // ffmpeg conceals some damage; when it does not, the error says why.
  if (failed !== null) expect(failed).toBeInstanceOf(FrameDecodeError);
  await check('h264', 320, 240, [kfs[2]!, kfs[3]!]);
}, 60_000);

test('a decoder killed between requests is replaced and the request still answered', async () => {
  const kfs = await keyframes('h264', {});
  await check('h264', 320, 240, [kfs[0]!]);
  const d = decoders.get(ffmpeg, 'h264', 320, 240);
  d.close();
  await d.exited;
  expect(d.alive).toBe(false);
  await check('h264', 320, 240, [kfs[1]!]);
}, 30_000);

test('close ends the process; a closed decoder refuses work', async () => {
  const kfs = await keyframes('h264', {});
  const d = new FrameDecoder(ffmpeg, 'h264', 320, 240);
  expect((await d.decode(kfs[0]!, (rgb) => rgb.length))).toBe(320 * 240 * 3);
  d.close();
  await d.exited;
  await expect(d.decode(kfs[0]!, () => 0)).rejects.toBeInstanceOf(FrameDecodeError);
  expect(() => new FrameDecoder(ffmpeg, 'h264', 8, 8)).toThrow(FrameDecodeError);
}, 30_000);
