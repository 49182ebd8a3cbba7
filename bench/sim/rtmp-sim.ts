// RTMP publishers for the load runner: N connections from one process, each doing the client
// handshake (RTMP spec 1.0 §5.2: C0+C1, then C2 echoing S1), connect / releaseStream /
// FCPublish / createStream / publish (§7.2.1.1, §7.2.2.6, AMF0), then the pre-chunked clip
// (flv-clip.ts) at real-time pace, one write per frame, with the SEI send time patched in.
// Run: bun bench/sim/rtmp-sim.ts --target 127.0.0.1:1935 --stats-port 8555 --cameras 100
//      --codec h264 --height 720 --bitrate 4M [--key KEY]   (publishes live/cam1 ... live/camN;
//      GET /stats, /stop and /close on the stats port, as bench/sim/rtsp-sim.ts)
import { paceSources } from './pace.ts';
import type { Socket } from 'bun';
import { amfObject, decodeAmf0, encodeAmf0, type AmfValue } from '../../protocols/rtmp/amf0.ts';
import { ChunkReader, READ_MESSAGE, writeMessage } from '../../protocols/rtmp/chunk.ts';
import { HANDSHAKE_BYTES, RTMP_VERSION } from '../../protocols/rtmp/handshake.ts';
import { ensureClip, type ClipCodec } from './clips.ts';
import { flvClip, patchFrame, PUB_CHUNK_SIZE, type FlvClip, type FlvFrame } from './flv-clip.ts';
import { parseBitrate } from './rtsp-sim.ts';
import { SendQueue } from './send-queue.ts';
import { wallUs, writeSeiTime } from './sei.ts';

/** Unsent bytes per connection before frames are skipped (2 s at 4 Mbit/s), like an encoder's send buffer. */
const MAX_PENDING_BYTES = 1 << 20;
/** A publisher that falls this far behind (stalled host) skips ahead instead of bursting. */
const MAX_LAG_MS = 1000;
const TICK_MS = 2;
/** Wait before reconnecting after a refusal or a closed connection. */
const RETRY_MS = 500;
/** S0 + S1 + S2. */
const SERVER_HANDSHAKE_BYTES = 1 + 2 * HANDSHAKE_BYTES;
const CSID_CONTROL = 2, CSID_COMMAND = 3, CSID_STREAM_COMMAND = 8;
const MSG_SET_CHUNK_SIZE = 1, MSG_COMMAND_AMF0 = 20;
const TXN_CREATE_STREAM = 4, TXN_PUBLISH = 5;

/** As rtsp-sim: frames/bytes sent from the first keyframe; skipped for back-pressure; lagged when the simulator stalled. */
interface PubStats { frames: number; bytes: number; preroll: number; skipped: number; lagged: number; sessions: number }

interface Pub {
  cam: number;
  sock: Socket<Pub> | null;
  hs: Uint8Array;
  hsHave: number;
  reader: ChunkReader;
  streamId: number;
  playing: boolean;
  startMs: number;
  sent: number;
  waitKey: boolean;
  out: SendQueue;
  /** Connection attempt number: close and error of one attempt reconnect once. */
  gen: number;
}

export interface RtmpSimOptions { host: string; port: number; statsPort: number; cameras: number; clip: FlvClip; key: string }

export async function startRtmpSimulator(o: RtmpSimOptions) {
  const clip = o.clip;
  const frameMs = 1000 / clip.fps;
  const stats: PubStats[] = Array.from({ length: o.cameras + 1 }, () => ({ frames: 0, bytes: 0, preroll: 0, skipped: 0, lagged: 0, sessions: 0 }));
  const pubs: Pub[] = [];
  const playing: Pub[] = [];
  let sending = true, closing = false;
  const tcUrl = `rtmp://${o.host}:${o.port}/live`;

  const send = (p: Pub, b: Uint8Array): boolean => p.sock !== null && p.out.send(p.sock, b);

  const command = (p: Pub, csid: number, streamId: number, values: AmfValue[]) =>
    send(p, writeMessage(PUB_CHUNK_SIZE, csid, MSG_COMMAND_AMF0, streamId, 0, encodeAmf0(values)));

  function connect(p: Pub): void {
    if (closing) return;
    p.hsHave = 0;
    p.reader = new ChunkReader();
    p.playing = false;
    p.out.clear();
    const gen = ++p.gen;
    const gone = () => { if (p.gen === gen) lost(p); };
    Bun.connect<Pub>({
      hostname: o.host, port: o.port, data: p,
      socket: {
        open(s) {
          p.sock = s;
          const c01 = new Uint8Array(1 + HANDSHAKE_BYTES); // C0 + C1: time 0, zero field (simple handshake), random bytes
          c01[0] = RTMP_VERSION;
          crypto.getRandomValues(c01.subarray(9, 9 + 1024));
          send(p, c01);
        },
        data(_s, chunk) { onData(p, chunk); },
        drain() { if (p.sock !== null) p.out.flush(p.sock); },
        close: gone,
        error: gone,
      },
    }).catch(gone);
  }

  function lost(p: Pub): void {
    p.gen++;
    p.sock = null;
    stopPlaying(p);
    if (!closing) setTimeout(() => connect(p), RETRY_MS);
  }

  function stopPlaying(p: Pub): void {
    if (!p.playing) return;
    p.playing = false;
    const i = playing.indexOf(p);
    if (i >= 0) playing.splice(i, 1);
  }

  function onData(p: Pub, chunk: Uint8Array): void {
    let at = 0;
    if (p.hsHave < SERVER_HANDSHAKE_BYTES) {
      const n = Math.min(SERVER_HANDSHAKE_BYTES - p.hsHave, chunk.length);
      p.hs.set(chunk.subarray(0, n), p.hsHave);
      p.hsHave += n;
      at = n;
      if (p.hsHave < SERVER_HANDSHAKE_BYTES) return;
      if (p.hs[0] !== RTMP_VERSION) { p.sock?.end(); return; }
      send(p, p.hs.subarray(1, 1 + HANDSHAKE_BYTES)); // C2 echoes S1 (§5.2.4)
      const size = new Uint8Array(4);
      new DataView(size.buffer).setUint32(0, PUB_CHUNK_SIZE);
      send(p, writeMessage(128, CSID_CONTROL, MSG_SET_CHUNK_SIZE, 0, 0, size)); // the server reads 128-byte chunks until told
      const key = `cam${p.cam}`;
      command(p, CSID_COMMAND, 0, ['connect', 1, amfObject({ app: 'live', type: 'nonprivate', flashVer: 'FMLE/3.0 (compatible; flux-bench)', tcUrl })]);
      command(p, CSID_COMMAND, 0, ['releaseStream', 2, null, key]);
      command(p, CSID_COMMAND, 0, ['FCPublish', 3, null, key]);
      command(p, CSID_COMMAND, 0, ['createStream', TXN_CREATE_STREAM, null]);
    }
    if (at >= chunk.length) return;
    p.reader.push(at === 0 ? chunk : chunk.subarray(at));
    for (let step = p.reader.next(); step !== 0; step = p.reader.next()) {
      if (step !== READ_MESSAGE) { console.error(`cam${p.cam}: ${p.reader.error}`); p.sock?.end(); return; }
      const m = p.reader.message;
      if (m.typeId === MSG_SET_CHUNK_SIZE && m.payload.length >= 4) p.reader.setChunkSize(new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0) & 0x7fffffff);
      else if (m.typeId === MSG_COMMAND_AMF0) onCommand(p, decodeAmf0(m.payload));
    }
  }

  function onCommand(p: Pub, v: AmfValue[]): void {
    const [name, txn] = v;
    if (name === '_result' && txn === TXN_CREATE_STREAM) {
      p.streamId = typeof v[3] === 'number' ? v[3] : 1;
      command(p, CSID_STREAM_COMMAND, p.streamId, ['publish', TXN_PUBLISH, null, `cam${p.cam}${o.key ? `?key=${encodeURIComponent(o.key)}` : ''}`, 'live']);
      return;
    }
    if (name !== 'onStatus') return;
    const info = v[3] as { code?: unknown; level?: unknown } | null;
    if (info?.code === 'NetStream.Publish.Start') {
      patchFrame(clip.headers, 0, p.streamId);
      send(p, clip.headers.buf);
      p.playing = true;
      p.startMs = performance.now();
      p.sent = 0;
      p.waitKey = false;
      stats[p.cam]!.sessions++;
      playing.push(p);
    } else if (info?.level === 'error') {
      console.error(`cam${p.cam}: ${String(info.code)}`);
      p.sock?.end();
    }
  }

  function sendFrame(p: Pub, f: FlvFrame, loop: number): void {
    const st = stats[p.cam]!;
    if (p.waitKey && !f.keyframe) { if (p.out.bytes > 0) st.skipped++; else st.lagged++; return; }
    patchFrame(f, loop * clip.loopMs, p.streamId);
    writeSeiTime(f.buf, f.seiAt, wallUs());
    if (!send(p, f.buf)) { st.skipped++; p.waitKey = true; return; }
    p.waitKey = false;
    st.frames++;
    st.bytes += f.videoBytes;
  }

  const lagged = (p: Pub, frames: number) => void (stats[p.cam]!.lagged += frames);
  function tick(): void {
    if (!sending) return;
    paceSources(playing, performance.now(), frameMs, MAX_LAG_MS, clip.frames.length, (p, i, loop) => sendFrame(p, clip.frames[i]!, loop), lagged);
  }
  const timer = setInterval(tick, TICK_MS);

  // Publishers start spread over one GOP (2 s), as cameras switched on at different times: keyframes do not all coincide.
  for (let cam = 1; cam <= o.cameras; cam++) {
    const p: Pub = { cam, sock: null, hs: new Uint8Array(SERVER_HANDSHAKE_BYTES), hsHave: 0, reader: new ChunkReader(), streamId: 1, playing: false, startMs: 0, sent: 0, waitKey: false, out: new SendQueue(MAX_PENDING_BYTES), gen: 0 };
    pubs.push(p);
    setTimeout(() => connect(p), ((cam * 7919) % 50) * frameMs);
  }

  const statsServer = Bun.serve({
    hostname: '127.0.0.1',
    port: o.statsPort,
    fetch(req) {
      const u = new URL(req.url);
      if (u.pathname === '/stop') { sending = false; return Response.json({ ok: true }); }
      if (u.pathname === '/start') { sending = true; return Response.json({ ok: true }); }
      if (u.pathname === '/close') {
        sending = false;
        closing = true;
        for (const p of pubs) p.sock?.end();
        return Response.json({ ok: true });
      }
      const cams = stats.slice(1).map((c, i) => ({ cam: i + 1, ...c }));
      const totals = cams.reduce((a, c) => ({ frames: a.frames + c.frames, bytes: a.bytes + c.bytes, skipped: a.skipped + c.skipped, lagged: a.lagged + c.lagged }), { frames: 0, bytes: 0, skipped: 0, lagged: 0 });
      return Response.json({ sending, playing: playing.length, totals, cameras: cams });
    },
  });

  return {
    stop() { closing = true; clearInterval(timer); for (const p of pubs) p.sock?.end(); statsServer.stop(true); },
  };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

if (import.meta.main) {
  const clip = await ensureClip({ codec: arg('codec', 'h264') as ClipCodec, height: Number(arg('height', '720')) as 720 | 1080, bitrate: parseBitrate(arg('bitrate', '4M')) });
  const f = flvClip(clip);
  const [host, port] = arg('target', '127.0.0.1:1935').split(':');
  const cameras = Number(arg('cameras', '1'));
  const sim = await startRtmpSimulator({ host: host!, port: Number(port), statsPort: Number(arg('stats-port', '8555')), cameras, clip: f, key: arg('key', '') });
  console.log(`rtmp-sim ready: ${cameras} publishers to rtmp://${host}:${port}/live/camN, ${f.frames.length} frames of ${clip.codec} ${clip.height}p`);
  const bye = () => { sim.stop(); process.exit(0); };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}
