// GB28181 media end to end, without SIP: the engine runs in-process (as in pool-faults.test.ts)
// and the test opens media sessions with engine.gbMedia.open() - the very call the GB28181
// live route makes after the INVITE - so no test-only route exists in the product. Then:
// PS from independent muxers (gstreamer mpegpsmux H.264 with a PSM; ffmpeg VOB H.265 without
// one) packetised into RTP by the test over UDP and TCP (RFC 4571); our simulator's sender
// for H.264 and H.265; a wrong SSRC; and loss. ffprobe judges the recordings.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPsRtpSender, type PsRtpSender } from '../bench/gb28181-ps-sender.ts';
import { parseConfigText } from '../engine/config.ts';
import { Engine } from '../engine/engine.ts';
import { GbMediaServer } from '../engine/gb28181-media.ts';
import type { SegmentRecord } from '../engine/index-db.ts';
import { createApp } from '../http/app.ts';
import { streamView } from '../http/routes-streams.ts';
import { writeRtpHeader } from '../media/rtp.ts';
import { decodeErrors, makeClip, probe, run, sleep, tempDir, waitFor } from './helpers.ts';

const FPS = 25;
const SECONDS = 4;
const SSRC = 100_000_001;
const dir = tempDir('gbps');
let engine: Engine;
const senders: PsRtpSender[] = [];
const segments: Record<string, SegmentRecord[]> = {};
const views: Record<string, ReturnType<typeof streamView>> = {};
/** RTP packets the loss scenario withheld. */
let withheld = 0;
/** The stream API's answer for sim-h265-tcp and the metrics text, taken while it ran. */
let apiView: Record<string, any> = {};
let metricsText = '';
/** What a live-preview viewer of sim-h264-udp received, and the latest keyframe of each stream. */
const viewer = { texts: [] as string[], binaries: 0 };
const keyframes: Record<string, { codec: string; width: number; height: number } | null> = {};

/**
 * Sends a PS file as RTP (payload type 96, <= 1400-byte packets cut anywhere, as a muxer
 * that does not align would) paced evenly over `ms`; `drop(i)` withholds packet i.
 */
async function sendPs(ps: Uint8Array, o: { port: number; transport: 'udp' | 'tcp'; ssrc: number; ms: number; drop?: (i: number) => boolean }): Promise<number> {
  const room = 1400 - 12;
  const count = Math.ceil(ps.length / room);
  const packets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const payload = ps.subarray(i * room, (i + 1) * room);
    const framed = new Uint8Array(2 + 12 + payload.length);
    framed[0] = (12 + payload.length) >> 8;
    framed[1] = (12 + payload.length) & 0xff;
    writeRtpHeader(framed, 2, i === count - 1, 96, (40_000 + i) & 0xffff, Math.round((i * o.ms * 90) / count) >>> 0, o.ssrc);
    framed.set(payload, 14);
    packets.push(framed);
  }
  const udp = o.transport === 'udp' ? await Bun.udpSocket({ hostname: '127.0.0.1' }) : null;
  const pending: Uint8Array[] = [];
  const tcp = o.transport === 'tcp'
    ? await Bun.connect({
        hostname: '127.0.0.1', port: o.port,
        socket: {
          data() {},
          drain(s) {
            while (pending.length > 0) {
              const n = s.write(pending[0]!);
              if (n < pending[0]!.length) return void (pending[0] = pending[0]!.subarray(n));
              pending.shift();
            }
          },
        },
      })
    : null;
  const t0 = performance.now();
  let sent = 0;
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * o.ms) / count;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    if (o.drop?.(i)) continue;
    const p = packets[i]!;
    if (udp) udp.send(p.subarray(2), o.port, '127.0.0.1');
    else if (pending.length > 0) pending.push(p);
    else {
      const n = tcp!.write(p);
      if (n < p.length) pending.push(p.subarray(n));
    }
    sent++;
  }
  await waitFor(() => pending.length === 0, 5_000, 'the TCP backlog to drain');
  udp?.close();
  tcp?.end();
  return sent;
}

beforeAll(async () => {
  const clips = join(dir, 'clips');
  const h264 = await makeClip(clips, { codec: 'h264', width: 320, height: 240, fps: FPS, seconds: SECONDS, gop: FPS });
  const h265 = await makeClip(clips, { codec: 'h265', width: 320, height: 240, fps: FPS, seconds: SECONDS, gop: FPS });
  // Independent muxers, each encoding its own picture: gstreamer writes a PSM, ffmpeg's VOB none.
  const gstPs = join(dir, 'gst-h264.ps');
  await run(['gst-launch-1.0', '-q', 'videotestsrc', `num-buffers=${FPS * SECONDS}`, 'pattern=ball', '!', `video/x-raw,width=320,height=240,framerate=${FPS}/1`,
    '!', 'x264enc', `key-int-max=${FPS}`, 'tune=zerolatency', 'speed-preset=ultrafast', '!', 'h264parse', '!', 'mpegpsmux', '!', 'filesink', `location=${gstPs}`]);
  const ffPs = join(dir, 'ffmpeg-h265.vob');
  await run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`, '-t', `${SECONDS}`, '-pix_fmt', 'yuv420p',
    '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `keyint=${FPS}:min-keyint=${FPS}:scenecut=0:bframes=3:open-gop=0:log-level=error`, '-f', 'vob', ffPs]);
  const base = 31_000 + (process.pid % 400) * 20;
  const { config } = parseConfigText(
    `[video.storage]\nbase_path = "${dir}/data"\nsegment_duration = 2\n[video.protocols]\nrtmp = false\n[video.demo]\nenabled = false\n` +
      `[video.gb28181]\nlocal_ip = "127.0.0.1"\nrtp_port_min = ${base}\nrtp_port_max = ${base + 19}\n`,
    { file: null, env: {} },
  );
  engine = await Engine.start(config);
  const open = (streamId: string, transport: 'udp' | 'tcp') => engine.gbMedia.open({ streamId, ssrc: SSRC, transport });
  const [gstUdp, ffTcp, sim264, sim265, ssrc, loss] = await Promise.all([
    open('gst-h264-udp', 'udp'), open('ffmpeg-h265-tcp', 'tcp'), open('sim-h264-udp', 'udp'), open('sim-h265-tcp', 'tcp'),
    open('wrong-ssrc', 'udp'), open('loss-h264-udp', 'udp'),
  ]);
  const ms = SECONDS * 1000;
  const gstBytes = new Uint8Array(readFileSync(gstPs));
  senders.push(await startPsRtpSender({ clipPath: h264, codec: 'h264', host: '127.0.0.1', port: sim264.port, transport: 'udp', ssrc: SSRC, audio: true }));
  senders.push(await startPsRtpSender({ clipPath: h265, codec: 'h265', host: '127.0.0.1', port: sim265.port, transport: 'tcp', ssrc: SSRC }));
  senders.push(await startPsRtpSender({ clipPath: h264, codec: 'h264', host: '127.0.0.1', port: ssrc.port, transport: 'udp', ssrc: SSRC + 1 }));
  const total = Math.ceil(gstBytes.length / 1388);
  const simHandle = engine.streams.get('sim-h264-udp')!.handle!;
  const ws = { send: (d: Uint8Array | string) => (typeof d === 'string' ? viewer.texts.push(d) : viewer.binaries++, 0), getBufferedAmount: () => 0, close() {} };
  engine.live.attach(simHandle, ws);
  await Promise.all([
    sendPs(gstBytes, { port: gstUdp.port, transport: 'udp', ssrc: SSRC, ms }),
    sendPs(new Uint8Array(readFileSync(ffPs)), { port: ffTcp.port, transport: 'tcp', ssrc: SSRC, ms }),
    // Three packets lost at 30 %, 55 % and 56 % of the stream.
    sendPs(gstBytes, { port: loss.port, transport: 'udp', ssrc: SSRC, ms, drop: (i) => {
      const lost = i === Math.floor(total * 0.3) || i === Math.floor(total * 0.55) || i === Math.floor(total * 0.55) + 1;
      if (lost) withheld++;
      return lost;
    } }),
  ]);
  await sleep(1_500); // worker stats (1 s) catch up; the simulators keep sending meanwhile
  for (const s of senders) await s.stop();
  const app = createApp(engine);
  apiView = await (await app.fetch(new Request('http://engine/api/video/streams/sim-h265-tcp'))).json();
  metricsText = await (await app.fetch(new Request('http://engine/metrics'))).text();
  for (const [id, e] of engine.streams) {
    views[id] = streamView(e);
    const k = await engine.pool.latestKeyframe(e.handle!);
    keyframes[id] = k && { codec: k.codec, width: k.width, height: k.height };
  }
  for (const id of [...engine.streams.keys()]) await engine.gbMedia.close(id, 'test done');
  for (const id of Object.keys(views)) segments[id] = engine.index.querySegments(id, 0, Date.now() + 60_000);
}, 45_000);

afterAll(async () => {
  for (const s of senders) await s.stop();
  await engine?.stop();
});

describe.each([
  ['gst-h264-udp', 'h264', 'gstreamer mpegpsmux (PSM), UDP'],
  ['ffmpeg-h265-tcp', 'hevc', 'ffmpeg VOB (no PSM, probed; B-frames, PTS only on some pictures), TCP RFC 4571'],
  ['sim-h264-udp', 'h264', 'our simulator (with G.711A audio), UDP'],
  ['sim-h265-tcp', 'hevc', 'our simulator, TCP RFC 4571'],
])('%s: %s from %s', (id, codec) => {
  test('records closed segments that ffprobe reads as the codec at 320x240 and decodes without an error', async () => {
    const segs = segments[id]!;
    expect(segs.length).toBeGreaterThanOrEqual(2);
    for (const s of segs) {
      expect(s.state).toBe('closed');
      const file = join(dir, 'data', s.path);
      const p = await probe(file);
      expect(p.codec).toBe(codec);
      expect([p.width, p.height]).toEqual([320, 240]);
      expect(p.keyframeTimes[0]).toBeCloseTo(p.startTime, 3);
      expect(await decodeErrors(file)).toBe('');
    }
  });

  test('covers the stream without gaps: contiguous segments, nearly every frame sent', async () => {
    const segs = segments[id]!;
    for (let i = 1; i < segs.length; i++) expect(Math.abs(segs[i]!.start_ms - segs[i - 1]!.end_ms)).toBeLessThanOrEqual(1000 / FPS);
    let frames = 0;
    for (const s of segs) frames += (await probe(join(dir, 'data', s.path))).frames;
    expect(frames).toBeGreaterThanOrEqual(FPS * SECONDS - 2); // the last picture waits for a successor
    const v = views[id]!;
    expect(v.protocol).toBe('gb28181');
    expect(v.state).toBe('live');
    expect(v.gb28181_media!.ssrc_mismatches).toBe(0);
    expect(v.counters!.lost_packets).toBe(0);
    expect(v.counters!.resyncs).toBe(0);
  });
});

test('G.711A audio in the PS (listed in the PSM) is recorded beside the video', async () => {
  for (const s of segments['sim-h264-udp']!) {
    const out = await run(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_name,sample_rate', '-of', 'csv=p=0', join(dir, 'data', s.path)]);
    expect(out.trim().split('\n').sort()).toEqual(['h264', 'pcm_alaw,8000']);
  }
});

test('live preview and snapshots work on a GB28181 stream: codec message, init, fragments; the latest keyframe', () => {
  expect(JSON.parse(viewer.texts[0]!)).toMatchObject({ type: 'init', stream_id: 'sim-h264-udp' });
  expect(viewer.binaries).toBeGreaterThan(FPS * SECONDS); // init + one fragment per frame
  expect(keyframes['sim-h264-udp']).toEqual({ codec: 'h264', width: 320, height: 240 });
  expect(keyframes['ffmpeg-h265-tcp']).toEqual({ codec: 'h265', width: 320, height: 240 });
  expect(keyframes['wrong-ssrc']).toBeNull();
});

test('packets with another SSRC are counted and dropped: the stream never goes live', () => {
  const v = views['wrong-ssrc']!;
  expect(v.gb28181_media!.packets).toBeGreaterThan(100);
  expect(v.gb28181_media!.ssrc_mismatches).toBe(v.gb28181_media!.packets);
  expect(v.state).toBe('connecting');
  expect(v.counters!.bytes_in).toBe(0);
  expect(segments['wrong-ssrc']!.length).toBe(0);
});

test('lost packets are counted, the demuxer resyncs, and recording goes on with decodable segments', async () => {
  const v = views['loss-h264-udp']!;
  expect(withheld).toBe(3);
  expect(v.counters!.lost_packets).toBe(3);
  expect(v.counters!.resyncs).toBe(2);
  expect(v.counters!.dropped_frames).toBeGreaterThan(0);
  const segs = segments['loss-h264-udp']!;
  expect(segs.length).toBeGreaterThanOrEqual(2);
  let frames = 0;
  for (const s of segs) {
    const file = join(dir, 'data', s.path);
    frames += (await probe(file)).frames;
    expect(await decodeErrors(file)).toBe('');
  }
  // Pictures until the next keyframe (1 s GOP) after each loss are dropped, the rest kept.
  expect(frames).toBeGreaterThan(FPS * SECONDS - 2 * FPS - 4);
  expect(frames).toBeLessThan(FPS * SECONDS);
  expect(segs.at(-1)!.end_ms - segs[0]!.start_ms).toBeGreaterThan((SECONDS - 0.5) * 1000);
});

test('the streams API and /metrics show the session and its counters', () => {
  expect(apiView).toMatchObject({ protocol: 'gb28181', state: 'live', gb28181_media: { transport: 'tcp', ssrc: SSRC, ssrc_mismatches: 0 } });
  expect(apiView.gb28181_media.packets).toBeGreaterThan(100);
  expect(apiView.counters.frames).toBeGreaterThan(FPS * 3);
  expect(metricsText).toMatch(/flux_stream_ssrc_mismatches_total\{stream="wrong-ssrc"\} [1-9]\d+/);
  expect(metricsText).toMatch(/flux_stream_resyncs_total\{stream="loss-h264-udp"\} 2/);
  expect(metricsText).toMatch(/flux_stream_lost_packets_total\{stream="loss-h264-udp"\} 3/);
});

test('a gb28181 stream from config or the API gets a clear pointer to the live route', async () => {
  const app = createApp(engine);
  const res = await app.fetch(new Request('http://engine/api/video/streams', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream_id: 'api-gb', protocol: 'gb28181' }),
  }));
  expect(res.status).toBe(400);
  expect(await res.json()).toMatchObject({ field: 'protocol', error: expect.stringContaining('/api/video/gb28181/devices/') });
  expect(engine.streams.has('api-gb')).toBe(false);
  const e = await engine.addStream({ stream_id: 'cfg-gb', protocol: 'gb28181', record: true }, 'config');
  expect(e.state).toBe('stopped');
  expect(e.error).toContain('/api/video/gb28181/devices/');
  await engine.removeStream('cfg-gb');
});

test('a device answering with its own SSRC is accepted once told; when it stops sending the session reports idle once', async () => {
  const media = new GbMediaServer(engine, { idleMs: 800 });
  let idle = 0;
  const s = await media.open({ streamId: 'idle-h264', ssrc: SSRC, transport: 'udp', record: false, onIdle: () => idle++ });
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 320, height: 240, fps: FPS, seconds: SECONDS, gop: FPS });
  const sender = await startPsRtpSender({ clipPath: clip, codec: 'h264', host: '127.0.0.1', port: s.port, transport: 'udp', ssrc: SSRC + 5 });
  const entry = engine.streams.get('idle-h264')!;
  await waitFor(() => (entry.gbMedia?.ssrcMismatches ?? 0) > 3, 5_000, 'packets with the other SSRC');
  expect(entry.state).toBe('connecting');
  expect(media.expectSsrc('idle-h264', SSRC + 5)).toBe(true);
  await waitFor(() => entry.state === 'live', 5_000, 'the session to go live');
  await sender.stop();
  await waitFor(() => idle === 1, 5_000, 'onIdle');
  expect(entry.state).toBe('connecting');
  expect(entry.error).toMatch(/^no media for \d+ s$/);
  await sleep(1_000);
  expect(idle).toBe(1);
  await media.close('idle-h264', 'test done');
  expect(engine.streams.has('idle-h264')).toBe(false);
  expect(idle).toBe(1); // closing it ourselves is no reason to call onIdle
});

test('removing a GB28181 stream through the engine (API DELETE) closes its port and tells the owner', async () => {
  let told = 0;
  const s = await engine.gbMedia.open({ streamId: 'removed-h264', ssrc: SSRC, transport: 'tcp', record: false, onIdle: () => told++ });
  expect(await engine.removeStream('removed-h264')).toBe(true);
  expect(told).toBe(1);
  expect(engine.gbMedia.session('removed-h264')).toBeNull();
  await expect(Bun.connect({ hostname: '127.0.0.1', port: s.port, socket: { data() {} } })).rejects.toThrow();
});
