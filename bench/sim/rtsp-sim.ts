// The camera simulator: an RTSP server (RFC 2326) serving /cam1 ... /camN from one
// pre-packetised clip at real-time pace, over TCP interleaved or UDP. Per camera and frame
// it patches sequence numbers, timestamps, SSRC and the SEI send time, then makes one write.
// Run: bun bench/sim/rtsp-sim.ts --port 8554 --stats-port 8555 --cameras 100 --codec h264
//      --height 720 --bitrate 4M   (GET /stats on the stats port; POST /stop stops sending)
// RTMP publishers (rtmp-sim.ts) and GB28181 devices (gb-sim.ts) are the push sources beside it.
import { paceSources } from './pace.ts';
import type { Socket } from 'bun';
import { ensureClip, type ClipCodec } from './clips.ts';
import { packetize, PT_AUDIO, PT_VIDEO, type Frame, type Packetized } from './packetize.ts';
import { SendQueue } from './send-queue.ts';
import { wallUs, writeSeiTime } from './sei.ts';

/** Unsent bytes per TCP connection before frames are skipped (2 s at 4 Mbit/s), like a camera's send buffer. */
const MAX_PENDING_BYTES = 1 << 20;
/** A session that falls this far behind (stalled host) skips ahead instead of bursting. */
const MAX_LAG_MS = 1000;
const MAX_REQUEST_BYTES = 16 << 10;
const TICK_MS = 2;

/**
 * frames/bytes: video sent from the session's first keyframe on (what a recorder can keep);
 * preroll: frames sent before it; skipped: not sent because the reader was too slow (its
 * loss); lagged: not sent because the simulator itself stalled.
 */
interface CamStats { frames: number; bytes: number; preroll: number; skipped: number; lagged: number; sessions: number }

interface Session {
  id: string;
  cam: number;
  sock: Socket<Conn>;
  tcp: boolean;
  chV: number; chA: number;
  udpV: number; udpA: number;
  ssrcV: number; ssrcA: number;
  seqV: number; seqA: number;
  tsV: number; tsA: number;
  playing: boolean;
  startMs: number;
  sent: number;
  /** Clip frame this session started at: cameras do not share a GOP phase (no start-up burst of keyframes). */
  phase: number;
  keySeen: boolean;
  waitKey: boolean;
}

interface Conn { buf: string; out: SendQueue; session: Session | null }

export interface SimOptions { port: number; statsPort: number; cameras: number; clip: Packetized; host?: string }

/** A simulated camera's SDP: H.264/H.265 on trackID=0, AAC (RFC 3640 AAC-hbr) on trackID=1. */
export function cameraSdp(clip: Packetized, cam: number, host: string): string {
  return [
    'v=0', `o=- ${cam} 1 IN IP4 ${host}`, `s=FLUX bench camera ${cam}`, `c=IN IP4 ${host}`, 't=0 0', 'a=range:npt=0-',
    `m=video 0 RTP/AVP ${PT_VIDEO}`, `a=rtpmap:${PT_VIDEO} ${clip.codec === 'h264' ? 'H264' : 'H265'}/90000`,
    `a=fmtp:${PT_VIDEO} ${clip.videoFmtp}`, `a=framerate:${clip.fps}`, 'a=control:trackID=0',
    `m=audio 0 RTP/AVP ${PT_AUDIO}`, `a=rtpmap:${PT_AUDIO} MPEG4-GENERIC/48000/1`,
    `a=fmtp:${PT_AUDIO} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=${clip.audioConfigHex}`,
    'a=control:trackID=1', '',
  ].join('\r\n');
}

export async function startSimulator(o: SimOptions) {
  const clip = o.clip;
  const frameMs = 1000 / clip.fps;
  const stats: CamStats[] = Array.from({ length: o.cameras + 1 }, () => ({ frames: 0, bytes: 0, preroll: 0, skipped: 0, lagged: 0, sessions: 0 }));
  const sessions = new Map<string, Session>();
  const playing: Session[] = [];
  let sending = true;
  let nextId = 1;
  const host = o.host ?? '127.0.0.1';
  const udp = await Bun.udpSocket({ hostname: host, port: 0 });

  const sdp = (cam: number) => cameraSdp(clip, cam, host);

  function reply(sock: Socket<Conn>, cseq: string, status: string, headers: string[] = [], body = ''): void {
    const h = [`RTSP/1.0 ${status}`, `CSeq: ${cseq}`, 'Server: flux-bench-sim', ...headers];
    if (body) h.push('Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(body)}`);
    send(sock, new TextEncoder().encode(h.join('\r\n') + '\r\n\r\n' + body));
  }

  /** Writes or queues; returns false when the connection's queue is full. */
  const send = (sock: Socket<Conn>, b: Uint8Array): boolean => sock.data.out.send(sock, b);

  function camOf(url: string): number {
    const m = /\/cam(\d+)(?:\/|$)/.exec(new URL(url).pathname);
    const n = m ? Number(m[1]) : 0;
    return n >= 1 && n <= o.cameras ? n : 0;
  }

  function onRequest(sock: Socket<Conn>, text: string): void {
    const lines = text.split('\r\n');
    const [method = '', url = ''] = lines[0]!.split(' ');
    const hdr = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) hdr.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    const cseq = hdr.get('cseq') ?? '0';
    let cam = 0;
    try { cam = camOf(url); } catch { /* bad url: 404 below */ }
    if (method === 'OPTIONS') return reply(sock, cseq, '200 OK', ['Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER']);
    if (cam === 0 && method !== 'GET_PARAMETER' && method !== 'TEARDOWN') return reply(sock, cseq, '404 Not Found');
    const base = url.replace(/\/trackID=\d+$/, '').replace(/\/$/, '');
    switch (method) {
      case 'DESCRIBE':
        return reply(sock, cseq, '200 OK', [`Content-Base: ${base}/`], sdp(cam));
      case 'SETUP': {
        const track = /trackID=(\d+)/.exec(url)?.[1] === '1' ? 1 : 0;
        const t = hdr.get('transport') ?? '';
        let s = sock.data.session;
        if (s === null) {
          s = {
            id: `${(nextId++).toString(16).padStart(8, '0')}`, cam, sock, tcp: true, chV: 0, chA: 2, udpV: 0, udpA: 0,
            ssrcV: (Math.random() * 2 ** 32) >>> 0, ssrcA: (Math.random() * 2 ** 32) >>> 0,
            seqV: (Math.random() * 65536) | 0, seqA: (Math.random() * 65536) | 0,
            tsV: (Math.random() * 2 ** 32) >>> 0, tsA: (Math.random() * 2 ** 32) >>> 0,
            playing: false, startMs: 0, sent: 0, phase: (cam * 7919) % clip.frames.length, keySeen: false, waitKey: false,
          };
          sock.data.session = s;
          sessions.set(s.id, s);
        }
        const il = /interleaved=(\d+)/.exec(t);
        const cp = /client_port=(\d+)/.exec(t);
        if (il) {
          s.tcp = true;
          if (track === 0) s.chV = Number(il[1]); else s.chA = Number(il[1]);
          return reply(sock, cseq, '200 OK', [`Transport: RTP/AVP/TCP;unicast;interleaved=${il[1]}-${Number(il[1]) + 1}`, `Session: ${s.id};timeout=60`]);
        }
        if (cp) {
          s.tcp = false;
          if (track === 0) s.udpV = Number(cp[1]); else s.udpA = Number(cp[1]);
          return reply(sock, cseq, '200 OK', [
            `Transport: RTP/AVP;unicast;client_port=${cp[1]}-${Number(cp[1]) + 1};server_port=${udp.port}-${udp.port + 1};ssrc=${(track === 0 ? s.ssrcV : s.ssrcA).toString(16).padStart(8, '0')}`,
            `Session: ${s.id};timeout=60`,
          ]);
        }
        return reply(sock, cseq, '461 Unsupported Transport');
      }
      case 'PLAY': {
        const s = sock.data.session;
        if (s === null) return reply(sock, cseq, '455 Method Not Valid in This State');
        reply(sock, cseq, '200 OK', [
          `Session: ${s.id}`, 'Range: npt=0.000-',
          `RTP-Info: url=${base}/trackID=0;seq=${s.seqV};rtptime=${s.tsV},url=${base}/trackID=1;seq=${s.seqA};rtptime=${s.tsA}`,
        ]);
        if (!s.playing) {
          s.playing = true;
          s.startMs = performance.now();
          stats[s.cam]!.sessions++;
          playing.push(s);
        }
        return;
      }
      case 'TEARDOWN':
        reply(sock, cseq, '200 OK');
        return endSession(sock);
      case 'GET_PARAMETER':
      case 'SET_PARAMETER':
        return reply(sock, cseq, '200 OK', sock.data.session ? [`Session: ${sock.data.session.id}`] : []);
      default:
        return reply(sock, cseq, '501 Not Implemented');
    }
  }

  function endSession(sock: Socket<Conn>): void {
    const s = sock.data.session;
    if (s === null) return;
    sock.data.session = null;
    sessions.delete(s.id);
    s.playing = false;
    const i = playing.indexOf(s);
    if (i >= 0) playing.splice(i, 1);
  }

  function sendFrame(s: Session, f: Frame, loop: number): void {
    const st = stats[s.cam]!;
    if (s.waitKey && !f.keyframe) { if (!s.keySeen) st.preroll++; else if (s.tcp && s.sock.data.out.bytes > 0) st.skipped++; else st.lagged++; return; }
    const dv = f.dv;
    const vBase = s.tsV + loop * clip.videoLoopTicks, aBase = s.tsA + loop * clip.audioLoopTicks;
    for (let i = 0; i < f.at.length; i++) {
      const at = f.at[i]!;
      if (f.track[i] === 0) {
        f.buf[at + 1] = s.chV;
        dv.setUint16(at + 6, s.seqV); s.seqV = (s.seqV + 1) & 0xffff;
        dv.setUint32(at + 8, (vBase + f.ts[i]!) % 4294967296);
        dv.setUint32(at + 12, s.ssrcV);
      } else {
        f.buf[at + 1] = s.chA;
        dv.setUint16(at + 6, s.seqA); s.seqA = (s.seqA + 1) & 0xffff;
        dv.setUint32(at + 8, (aBase + f.ts[i]!) % 4294967296);
        dv.setUint32(at + 12, s.ssrcA);
      }
    }
    writeSeiTime(f.buf, f.seiAt, wallUs());
    if (s.tcp) {
      if (!send(s.sock, f.buf)) { st.skipped++; s.waitKey = true; return; }
    } else {
      const batch: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < f.at.length; i++) {
        const at = f.at[i]!;
        batch.push(f.buf.subarray(at + 4, at + 4 + f.len[i]!), f.track[i] === 0 ? s.udpV : s.udpA, host);
      }
      udp.sendMany(batch as never);
    }
    s.waitKey = false;
    if (f.keyframe) s.keySeen = true;
    if (!s.keySeen) { st.preroll++; return; }
    st.frames++;
    st.bytes += f.videoBytes;
  }

  const lagged = (s: Session, frames: number) => void (stats[s.cam]!.lagged += frames);
  function tick(): void {
    if (!sending) return;
    paceSources(playing, performance.now(), frameMs, MAX_LAG_MS, clip.frames.length, (s, i, loop) => sendFrame(s, clip.frames[i]!, loop), lagged);
  }
  const timer = setInterval(tick, TICK_MS);

  const server = Bun.listen<Conn>({
    hostname: host,
    port: o.port,
    socket: {
      open(sock) { sock.data = { buf: '', out: new SendQueue(MAX_PENDING_BYTES), session: null }; },
      data(sock, chunk) {
        const c = sock.data;
        c.buf += chunk.toString('latin1');
        for (;;) {
          if (c.buf.length > 0 && c.buf.charCodeAt(0) === 0x24) { // interleaved RTCP from the client
            if (c.buf.length < 4) return;
            const len = (c.buf.charCodeAt(2) << 8) | c.buf.charCodeAt(3);
            if (c.buf.length < 4 + len) return;
            c.buf = c.buf.slice(4 + len);
            continue;
          }
          const end = c.buf.indexOf('\r\n\r\n');
          if (end < 0) { if (c.buf.length > MAX_REQUEST_BYTES) sock.end(); return; }
          const head = c.buf.slice(0, end);
          const cl = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          if (c.buf.length < end + 4 + cl) return;
          c.buf = c.buf.slice(end + 4 + cl);
          onRequest(sock, head);
        }
      },
      drain(sock) { sock.data.out.flush(sock); },
      close(sock) { endSession(sock); },
      error(sock) { endSession(sock); },
    },
  });

  const statsServer = Bun.serve({
    hostname: host,
    port: o.statsPort,
    fetch(req) {
      const u = new URL(req.url);
      if (u.pathname === '/stop') { sending = false; return Response.json({ ok: true }); }
      if (u.pathname === '/start') { sending = true; return Response.json({ ok: true }); }
      if (u.pathname === '/close') { // end every connection: recorders see EOF and finish their files
        sending = false;
        for (const s of [...sessions.values()]) s.sock.end();
        return Response.json({ ok: true });
      }
      const cams = stats.slice(1).map((c, i) => ({ cam: i + 1, ...c }));
      const totals = cams.reduce((a, c) => ({ frames: a.frames + c.frames, bytes: a.bytes + c.bytes, skipped: a.skipped + c.skipped, lagged: a.lagged + c.lagged }), { frames: 0, bytes: 0, skipped: 0, lagged: 0 });
      return Response.json({ sending, playing: playing.length, totals, cameras: cams });
    },
  });

  return {
    port: server.port,
    stop() { clearInterval(timer); server.stop(true); statsServer.stop(true); udp.close(); },
  };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

export function parseBitrate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`bad bitrate ${s}: use e.g. 4M or 2000k`);
  return Math.round(Number(m[1]) * (m[2]!.toLowerCase() === 'm' ? 1e6 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1));
}

if (import.meta.main) {
  const clip = await ensureClip({
    codec: arg('codec', 'h264') as ClipCodec,
    height: Number(arg('height', '720')) as 720 | 1080,
    bitrate: parseBitrate(arg('bitrate', '4M')),
  });
  const p = packetize(clip);
  const sim = await startSimulator({ port: Number(arg('port', '8554')), statsPort: Number(arg('stats-port', '8555')), cameras: Number(arg('cameras', '1')), clip: p });
  console.log(`rtsp-sim ready on ${sim.port}: ${arg('cameras', '1')} cameras, ${p.frames.length} frames of ${clip.codec} ${clip.height}p`);
  const bye = () => { sim.stop(); process.exit(0); };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}
