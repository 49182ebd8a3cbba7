// RTSP ingest end to end: real cameras (gst-rtsp-server, VLC) recorded by the engine and
// judged by ffprobe; a camera that dies and comes back resumes in a new segment.
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { IndexDb, type SegmentRecord } from '../engine/index-db.ts';
import { startRtspCamera, startRtspReader, startVlcCamera, type RtspCamera } from './peers/rtsp-camera.ts';
import { decodeErrors, run, sleep, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

function engineFor(dir: string, streams: Record<string, string>, segmentSeconds = 2): EngineProcess {
  const e = startEngine(
    dir,
    `[video.storage]\nbase_path = "${dir}/data"\nsegment_duration = ${segmentSeconds}\n[video.demo]\nenabled = false\n` +
      Object.entries(streams).map(([id, url]) => `[[video.streams]]\nstream_id = "${id}"\nprotocol = "rtsp"\nsource_url = "${url}"\n`).join(''),
  );
  cleanup.push(() => e.stop('SIGKILL'));
  return e;
}

async function segmentsOf(dir: string, id: string): Promise<SegmentRecord[]> {
  const index = IndexDb.open(join(dir, 'data/index'));
  const segs = index.querySegments(id, 0, Date.now() + 60_000, Date.now());
  await index.close();
  return segs;
}

interface StreamProbe { codec_type: string; codec_name: string; start_time: string; width?: number; height?: number; sample_rate?: string }
async function streamsOf(file: string): Promise<StreamProbe[]> {
  return (JSON.parse(await run(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_type,codec_name,start_time,width,height,sample_rate', '-of', 'json', file])) as { streams: StreamProbe[] }).streams;
}

/** Every closed segment: codecs as expected, silent decode, A/V start within 100 ms; exactly `gaps` gaps > 1 frame. */
async function judge(dir: string, id: string, video: string, audio: string | null, gaps = 0, frameMs = 40): Promise<SegmentRecord[]> {
  const segs = (await segmentsOf(dir, id)).filter((s) => s.state !== 'open');
  expect(segs.length).toBeGreaterThanOrEqual(2);
  for (const [i, s] of segs.entries()) {
    const first = i === 0 || s.start_ms - segs[i - 1]!.end_ms > frameMs; // a connection's first segment
    const file = join(dir, 'data', s.path);
    expect(await decodeErrors(file)).toBe('');
    const st = await streamsOf(file);
    const v = st.find((x) => x.codec_type === 'video')!;
    expect(v.codec_name).toBe(video);
    const a = st.find((x) => x.codec_type === 'audio');
    if (audio === null) expect(a).toBeUndefined();
    else {
      expect(a?.codec_name).toBe(audio);
      // Aligned by RTP-Info from PLAY on, then by the camera's sender reports; later segments
      // split both tracks at the keyframe. A connection's first segment starts its audio with
      // the camera's first audio packet (G.711 packets here hold up to ~175 ms).
      const lead = Number(a!.start_time) - Number(v.start_time);
      if (first) {
        expect(lead).toBeGreaterThanOrEqual(-0.001);
        expect(lead).toBeLessThan(0.2);
      } else {
        expect(Math.abs(lead)).toBeLessThan(0.1);
      }
    }
  }
  let found = 0;
  for (let i = 1; i < segs.length; i++) {
    const gap = segs[i]!.start_ms - segs[i - 1]!.end_ms;
    expect(gap).toBeGreaterThanOrEqual(-frameMs); // never overlapping
    if (gap > frameMs) found++;
  }
  expect(found).toBe(gaps);
  return segs;
}

describe('gst-rtsp-server camera', () => {
  test('H.264 + AAC over TCP interleaved with Digest auth', async () => {
    const cam = await startRtspCamera({ codec: 'h264', audio: 'aac', user: 'admin', password: 's3cret', width: 640, height: 360 });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-tcp');
    const e = engineFor(dir, { cam: cam.url('/cam1', true) });
    await e.waitForLog(/stream cam: live over TCP \(h264 \+ aac\)/, 20_000);
    await sleep(7_000);
    expect(await e.stop()).toBe(0);
    await judge(dir, 'cam', 'h264', 'aac');
  }, 60_000);
});

describe('polled reads on a real camera', () => {
  test('nobody watching: the camera socket is read on the timer; a live viewer moves it to reads as bytes arrive, and back when it leaves', async () => {
    const cam = await startRtspCamera({ codec: 'h264', audio: 'aac', width: 1280, height: 720, bitrate: 2000, pattern: 'smpte' });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-polled');
    const e = engineFor(dir, { cam: cam.url('/cam1') }); // [rtsp] read_interval_ms: the default, 100
    await e.waitForLog(/stream cam: live over TCP \(h264 \+ aac\)/, 20_000);
    const mode = async () => ((await (await fetch(`http://127.0.0.1:${e.port}/api/video/streams/cam`)).json()) as { read_mode?: string }).read_mode;
    expect(await mode()).toBe('polled');
    let fragments = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${e.port}/api/video/streams/cam/live`);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (m) => void (m.data instanceof ArrayBuffer && fragments++);
    await waitFor(async () => (await mode()) === 'event', 5_000, 'reads as bytes arrive while a viewer watches');
    await waitFor(() => fragments >= 50, 15_000, 'live fragments');
    ws.close();
    await waitFor(async () => (await mode()) === 'polled', 5_000, 'polled again once the viewer left');
    await sleep(3_000);
    expect(await e.stop()).toBe(0);
    await judge(dir, 'cam', 'h264', 'aac'); // the switches lose nothing: no gap, every segment decodes
  }, 90_000);
});

describe('more cameras and faults', () => {
  test('H.265 + G.711 A-law over UDP from gst-rtsp-server', async () => {
    const cam = await startRtspCamera({ codec: 'h265', audio: 'pcma', width: 640, height: 360 });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-udp');
    const e = engineFor(dir, { cam: `${cam.url('/cam1')}?transport=udp` });
    await e.waitForLog(/stream cam: live over UDP \(h265 \+ pcma\)/, 20_000);
    await sleep(7_000);
    expect(await e.stop()).toBe(0);
    await judge(dir, 'cam', 'hevc', 'pcm_alaw');
  }, 60_000);

  test('a camera that refuses UDP (461) is pulled over TCP instead', async () => {
    const cam = await startRtspCamera({ codec: 'h264', width: 320, height: 240, protocols: 'tcp' });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-461');
    const e = engineFor(dir, { cam: `${cam.url('/cam1')}?transport=udp` });
    await e.waitForLog(/refuses RTP over UDP \(461\); switching to TCP/, 20_000);
    await e.waitForLog(/stream cam: live over TCP/, 20_000);
    await sleep(4_500);
    expect(await e.stop()).toBe(0);
    await judge(dir, 'cam', 'h264', null);
  }, 60_000);

  test('VLC as the camera (it serves RTP over UDP only): TCP is refused, UDP records', async () => {
    const cam = await startVlcCamera({ codec: 'h264', seconds: 30 });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-vlc');
    const e = engineFor(dir, { cam: `${cam.url()}?transport=udp` });
    await e.waitForLog(/stream cam: live over UDP \(h264\)/, 20_000);
    await sleep(7_000);
    expect(await e.stop()).toBe(0);
    await judge(dir, 'cam', 'h264', null);
  }, 60_000);

  test('a camera that dies goes retrying, then live again, and both sides of the outage are valid', async () => {
    const cam = await startRtspCamera({ codec: 'h264', audio: 'aac', width: 480, height: 270 });
    cleanup.push(() => cam.stop());
    const dir = tempDir('rtsp-outage');
    const e = engineFor(dir, { cam: cam.url('/cam1') });
    const state = async () => ((await (await fetch(`http://127.0.0.1:${e.port}/api/video/streams/cam`)).json()) as { state: string }).state;
    await e.waitForLog(/stream cam: live over TCP/, 20_000);
    await sleep(4_500);
    await cam.stop();
    await waitFor(async () => (await state()) === 'retrying', 15_000, 'state retrying');
    await cam.restart(); // same port
    await waitFor(async () => (await state()) === 'live', 30_000, 'state live again');
    await sleep(5_000);
    expect(await e.stop()).toBe(0);
    // Recordings on both sides of the outage, the outage itself one gap in the index.
    const segs = await judge(dir, 'cam', 'h264', 'aac', 1);
    const cut = segs.findIndex((s, i) => i > 0 && s.start_ms - segs[i - 1]!.end_ms > 40);
    expect(cut).toBeGreaterThan(0);
    expect(segs.length - cut).toBeGreaterThan(0);
    expect(e.output()).toMatch(/stream cam: .*reconnecting in/);
  }, 90_000);
});

test(`${Number(process.env.RTSP_SOAK_STREAMS ?? 30)} streams from one gst-rtsp-server record with zero lost frames`, async () => {
  const n = Number(process.env.RTSP_SOAK_STREAMS ?? 30);
  const seconds = Number(process.env.RTSP_SOAK_SECONDS ?? 60);
  // One shared mount (one encoder) pulled by every stream: the load is the engine's.
  const cam = await startRtspCamera({ codec: 'h264', width: 320, height: 240, fps: 25, bitrate: 500 });
  cleanup.push(() => cam.stop());
  // gst-rtsp-server aborts (rtsp-media.c, gst_rtsp_media_get_rates: "complete stream without
  // rate", assertion failed) when a PLAY reaches a shared media one of whose streams has not yet
  // carried its first segment. With 30 clients arriving together that killed the camera in the
  // first second in two of four runs of the whole suite on one day (never with this test alone):
  // every stream then sat in "cannot connect". One client already receiving before the engine
  // starts takes the media past that window; it stays until the end (a 31st reader of the mount).
  const primer = await startRtspReader(cam.url('/cam1')).catch((err: Error) => {
    throw new Error(`${err.message}\ncamera: ${cam.output().slice(-800)}`);
  });
  cleanup.push(() => primer.stop());
  const dir = tempDir('rtsp-load');
  const streams = Object.fromEntries(Array.from({ length: n }, (_, i) => [`s${i + 1}`, cam.url('/cam1')]));
  const e = engineFor(dir, streams, 10);
  await waitFor(() => (e.output().match(/live over TCP/g)?.length ?? 0) >= n, 30_000, `${n} streams live`).catch((err: Error) => {
    // What the streams that did not join went through (seen once in CI: not all 30 live in 30 s).
    const notes = e.output().split('\n').filter((l) => /warn|error|reconnecting|retrying/.test(l)).slice(-30).join('\n');
    throw new Error(`${err.message}\n${notes}\ncamera: ${cam.output().slice(-800)}`);
  });
  type Row = { stream_id: string; state: string; counters: { dropped_frames: number; ring_drops: number; lost_packets: number; frames: number } | null };
  const snapshot = async () =>
    new Map((((await (await fetch(`http://127.0.0.1:${e.port}/api/video/streams`)).json()) as { streams: Row[] }).streams).map((r) => [r.stream_id, r]));
  // The baseline is taken once every client has joined: while gst-rtsp-server's shared
  // pipeline adds clients, the ones already playing can miss a packet (its artifact, seen
  // as one RTP sequence gap per early client); the engine is judged on the steady state.
  await sleep(2_000);
  const before = await snapshot();
  await sleep(seconds * 1000);
  const after = await snapshot();
  expect(await e.stop()).toBe(0);
  expect(after.size).toBe(n);
  let joinGaps = 0;
  for (const [id, s] of after) {
    const b0 = before.get(id)!.counters!;
    const c = s.counters!;
    expect(s.state).toBe('live');
    // Zero lost frames over the run: no incomplete picture, nothing dropped in the ring.
    expect(c.dropped_frames - b0.dropped_frames).toBe(0);
    expect(c.ring_drops - b0.ring_drops).toBe(0);
    expect(c.lost_packets - b0.lost_packets).toBe(0);
    expect(c.frames - b0.frames).toBeGreaterThan(seconds * 25 * 0.9);
    joinGaps += b0.lost_packets;
  }
  console.log(`${n} streams x ${seconds} s: 0 pictures dropped; ${joinGaps} RTP sequence gaps in total while the clients joined`);
  for (const id of Object.keys(streams)) {
    const segs = await segmentsOf(dir, id);
    expect(segs.length).toBeGreaterThan(0);
  }
}, 180_000);
