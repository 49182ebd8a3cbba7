// Real peers: ffmpeg publishing to RtmpServerSession over TCP (a tiny Bun.listen adapter),
// misbehaving raw TCP clients next to it, and the received tags re-muxed to fMP4 for ffprobe.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLV_FRAME, FLV_TRACK, FlvAudioDemuxer, FlvVideoDemuxer } from '../../media/flv.ts';
import { type Clip, decodeErrors, ffprobeJson, muxClips, tempDir } from '../../media/testdata/fmp4-clips.ts';
import type { AccessUnit, TrackInfo } from '../../media/types.ts';
import { CAPTURE_PATH, dissect } from './testdata/rtmp-capture.ts';
import { type ConnRecord, publishArgs, runFfmpeg, startTestServer, type Tag, type TestServer } from './testdata/rtmp-test-server.ts';

const authorize = (app: string, name: string, q: URLSearchParams) =>
  app === 'live' && name === 'pub1' && q.get('key') === 'SECRET'
    ? ({ ok: true, streamId: 'stream-pub1' } as const)
    : ({ ok: false, code: 'NetStream.Publish.Unauthorized', description: `bad key for ${name}` } as const);

let srv: TestServer;
const tmp = tempDir();
beforeAll(() => {
  srv = startTestServer({
    authorize,
    // idle > x264's 40-frame lookahead (1.6 s at 25 fps): ffmpeg publishes before its first packet exists
    sessionOptions: { handshakeTimeoutMs: 300, publishTimeoutMs: 2000, idleTimeoutMs: 3000 },
    tickMs: 50,
  });
});
afterAll(() => {
  srv.stop();
  tmp.cleanup();
});

/** Demuxes recorded tags with media/flv.ts into a clip (copies: the demuxer reuses its AU). */
function clipOf(tags: Tag[], kind: 'video' | 'audio'): Clip & { keyIndexes: number[] } {
  const d = kind === 'video' ? new FlvVideoDemuxer() : new FlvAudioDemuxer();
  let track: TrackInfo | null = null;
  const aus: AccessUnit[] = [];
  for (const t of tags) {
    if (t.kind !== kind) continue;
    const r = d.push(t.body, t.ts);
    if (r & FLV_TRACK) track = d.track;
    if (r & FLV_FRAME) aus.push({ ...d.au, nalus: d.au.nalus.map((n) => n.slice()) });
  }
  if (!track) throw new Error(`no ${kind} track`);
  const durations = aus.map((a, i) => (i + 1 < aus.length ? aus[i + 1]!.dts - a.dts : i > 0 ? a.dts - aus[i - 1]!.dts : 1));
  const keyIndexes = aus.flatMap((a, i) => (a.keyframe ? [i] : []));
  return { track, aus, durations, keyIndexes };
}

/** A raw TCP client; resolves `closed` with the ms it took the server to close it. */
function rawClient(port: number, first: Uint8Array) {
  const t0 = Date.now();
  let resolve!: (ms: number) => void;
  const closed = new Promise<number>((r) => (resolve = r));
  void Bun.connect({
    hostname: '127.0.0.1', port,
    socket: { open(s) { s.write(first); }, data() {}, close() { resolve(Date.now() - t0); }, error() { resolve(Date.now() - t0); } },
  });
  return closed;
}

describe('ffmpeg publishing H.264 + AAC', () => {
  let pub: ConnRecord;

  test('publishes with the right app and key while garbage and stalling clients are cut off', async () => {
    const stall = rawClient(srv.port, new Uint8Array([3, ...new Array(700).fill(7)])); // C0 + half a C1, then silence
    const garbage = rawClient(srv.port, new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const noise = rawClient(srv.port, new Uint8Array([3, ...new Array(4000).fill(0).map((_, i) => (i * 7919) & 0xff)]));
    const before = srv.conns.length;
    const r = await runFfmpeg(publishArgs(`rtmp://127.0.0.1:${srv.port}/live/pub1?key=SECRET`, 3));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await garbage).toBeLessThan(300);
    expect(await stall).toBeLessThan(1000);
    expect(await noise).toBeLessThan(3000); // passes the handshake, then a chunk error or the timeouts
    await Bun.sleep(100);
    const mine = srv.conns.slice(before).filter((c) => c.published);
    expect(mine.length).toBe(1);
    pub = mine[0]!;
    expect(pub.published).toEqual({ app: 'live', key: 'pub1', streamId: 'stream-pub1' });
    expect(pub.errors).toEqual([]);
    expect(pub.unpublished).toBe(true);
    expect(pub.socketClosed).toBe(true);
    const others = srv.conns.filter((c) => c !== pub);
    expect(others.every((c) => c.closedBySession && c.errors.length === 1 && c.errors[0]!.fatal)).toBe(true);
  }, 20_000);

  test('delivers video and audio tags: 75 access units, a keyframe every 50, AAC config and the AVC size', () => {
    const video = clipOf(pub.tags, 'video');
    const audio = clipOf(pub.tags, 'audio');
    expect(video.track).toMatchObject({ codec: 'h264', width: 320, height: 240 });
    expect(video.aus.length).toBe(75);
    expect(video.keyIndexes).toEqual([0, 50]);
    expect(audio.track).toMatchObject({ codec: 'aac', channels: 1 });
    expect([44100, 48000]).toContain((audio.track as { sampleRate: number }).sampleRate);
    expect(audio.aus.length).toBeGreaterThan(130); // 3 s at 48 kHz / 1024
    expect(pub.tags[0]!.kind).toBe('data');
  });

  test('re-muxed to fragmented MP4 the access units decode cleanly with A/V starts within 100 ms', () => {
    const video = clipOf(pub.tags, 'video');
    const audio = clipOf(pub.tags, 'audio');
    const file = join(tmp.dir, 'rtmp.mp4');
    writeFileSync(file, muxClips([video, audio]).bytes);
    expect(decodeErrors(file)).toBe('');
    const streams = ffprobeJson(['-show_entries', 'stream=codec_type,start_time,nb_read_packets', '-count_packets', file]).streams as
      { codec_type: string; start_time: string; nb_read_packets: string }[];
    const v = streams.find((s) => s.codec_type === 'video')!;
    const a = streams.find((s) => s.codec_type === 'audio')!;
    expect(Number(v.nb_read_packets)).toBe(75);
    expect(Math.abs(Number(v.start_time) - Number(a.start_time))).toBeLessThan(0.1);
  });
});

describe('refusals ffmpeg can see', () => {
  test('a wrong key makes ffmpeg fail with the server error', async () => {
    const before = srv.conns.length;
    const r = await runFfmpeg(publishArgs(`rtmp://127.0.0.1:${srv.port}/live/pub1?key=WRONG`, 3));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Server error: bad key for pub1');
    const c = srv.conns[before]!;
    expect(c.published).toBe(null);
    expect(c.closedBySession).toBe(true);
  }, 20_000);

  test('H.265 over RTMP: this ffmpeg refuses HEVC in FLV (5.1 has no Enhanced RTMP); a newer one must parse', async () => {
    const before = srv.conns.length;
    const r = await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '1', '-c:v', 'libx265', '-x265-params', 'log-level=error',
      '-f', 'flv', `rtmp://127.0.0.1:${srv.port}/live/pub1?key=SECRET`,
    ]);
    if (r.code !== 0) {
      expect(r.stderr).toContain('not compatible with flv'); // ffmpeg < 6.1
      return;
    }
    const c = srv.conns.slice(before).find((x) => x.published)!;
    expect(clipOf(c.tags, 'video').track).toMatchObject({ codec: 'h265', width: 320, height: 240 });
  }, 20_000);
});

// REGENERATE_RTMP_FIXTURE=1 re-records testdata/ffmpeg-publish-h264-aac.bin and its dissection.
test.if(process.env.REGENERATE_RTMP_FIXTURE === '1')('regenerates the ffmpeg capture fixture', async () => {
  const cap = startTestServer({ authorize: () => ({ ok: true, streamId: 'x' }), capture: true });
  const r = await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=192x144:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=44100',
    '-t', '0.6', '-c:v', 'libx264', '-g', '5', '-bf', '2', '-crf', '15', '-x264-params', 'slices=2', '-c:a', 'aac', '-b:a', '32k',
    '-f', 'flv', `rtmp://127.0.0.1:${cap.port}/live/pub1?key=SECRET`]);
  expect(r.code).toBe(0);
  await Bun.sleep(100);
  const raw = cap.conns[0]!.raw;
  const all = new Uint8Array(raw.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of raw) {
    all.set(b, o);
    o += b.length;
  }
  cap.stop();
  writeFileSync(CAPTURE_PATH, all);
  const head = [
    '# ffmpeg-publish-h264-aac.bin: client->server bytes of ffmpeg 5.1 publishing to RtmpServerSession',
    '# ffmpeg -f lavfi -i testsrc2=size=192x144:rate=25 -f lavfi -i sine=sample_rate=44100 -t 0.6 -c:v libx264 -g 5 -bf 2 -crf 15 -x264-params slices=2 -c:a aac -b:a 32k -f flv rtmp://127.0.0.1:PORT/live/pub1?key=SECRET',
    '# Oddities: C1 carries a Flash version (9.0.124.2) and digest, yet ffmpeg accepts a simple-handshake S1 when publishing;',
    '# video messages above 4096 bytes span chunks (chunk size 4096 after Set Chunk Size); B-frames give non-zero composition times.',
    '# Regenerate with REGENERATE_RTMP_FIXTURE=1 bun test protocols/rtmp/session-ffmpeg.test.ts',
  ];
  writeFileSync(CAPTURE_PATH.replace(/\.bin$/, '.txt'), head.join('\n') + '\n' + dissect(all));
}, 20_000);
