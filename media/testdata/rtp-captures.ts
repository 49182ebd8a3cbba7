// Test-only: real RTP captures. ffmpeg sends RTP to a Bun UDP socket on 127.0.0.1 (with
// its SDP and, on port+1, its RTCP); GStreamer writes RFC 4571 framed packets to a file.
// Captures are cached in the temp dir; small committed ones live beside this file.
//
// Capture file format (*.rtp): RFC 4571 framing, i.e. [u16 big-endian length][RTP packet]
// repeated, exactly what GStreamer's rtpstreampay writes; a *.sdp file sits beside it.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccessUnit } from '../types.ts';

const CACHE = join(tmpdir(), 'flux-rtp-captures');
export const TESTDATA = import.meta.dir;

export interface Capture {
  packets: Uint8Array[];
  sdp: string;
  /** RTCP packets ffmpeg sent to port + 1 (empty for file captures). */
  rtcp: Uint8Array[];
}

export function writeRtpDump(packets: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of packets) n += 2 + p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of packets) {
    out[o] = p.length >> 8;
    out[o + 1] = p.length & 0xff;
    out.set(p, o + 2);
    o += 2 + p.length;
  }
  return out;
}

export function readRtpDump(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o + 2 <= b.length; ) {
    const n = (b[o]! << 8) | b[o + 1]!;
    if (o + 2 + n > b.length) throw new Error(`truncated capture at ${o}`);
    out.push(b.subarray(o + 2, o + 2 + n));
    o += 2 + n;
  }
  return out;
}

async function bindPair(onRtp: (b: Uint8Array) => void, onRtcp: (b: Uint8Array) => void) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const rtp = await Bun.udpSocket({ hostname: '127.0.0.1', port: 0, socket: { data: (_s, buf) => onRtp(new Uint8Array(buf)) } });
    try {
      const rtcp = await Bun.udpSocket({ hostname: '127.0.0.1', port: rtp.port + 1, socket: { data: (_s, buf) => onRtcp(new Uint8Array(buf)) } });
      return { rtp, rtcp };
    } catch {
      rtp.close();
    }
  }
  throw new Error('no free UDP port pair');
}

/**
 * Runs `ffmpeg <input args> -f rtp -sdp_file ... rtp://127.0.0.1:PORT?pkt_size=N` and
 * collects the packets (cached by the argument list). Fails on a sequence gap (a UDP drop
 * on loopback), so tests never judge a lossy capture by accident.
 */
export async function ffmpegRtpCapture(args: string[], pktSize = 1200): Promise<Capture> {
  mkdirSync(CACHE, { recursive: true });
  const key = createHash('sha1').update([...args, pktSize].join('\u0000')).digest('hex').slice(0, 16);
  const base = join(CACHE, key);
  if (existsSync(`${base}.rtp`) && existsSync(`${base}.rtcp`)) {
    return {
      packets: readRtpDump(new Uint8Array(readFileSync(`${base}.rtp`))),
      sdp: readFileSync(`${base}.sdp`, 'utf8'),
      rtcp: readRtpDump(new Uint8Array(readFileSync(`${base}.rtcp`))),
    };
  }
  const packets: Uint8Array[] = [];
  const rtcp: Uint8Array[] = [];
  const { rtp, rtcp: rtcpSock } = await bindPair((b) => packets.push(b), (b) => rtcp.push(b));
  const sdpPath = `${base}.${process.pid}.sdp`;
  try {
    const p = Bun.spawn(['ffmpeg', '-hide_banner', '-loglevel', 'error', '-y', ...args, '-f', 'rtp', '-sdp_file', sdpPath,
      `rtp://127.0.0.1:${rtp.port}?pkt_size=${pktSize}`], { stderr: 'pipe' });
    const code = await p.exited;
    if (code !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${await new Response(p.stderr).text()}`);
    await Bun.sleep(100);
  } finally {
    rtp.close();
    rtcpSock.close();
  }
  for (let i = 1; i < packets.length; i++) {
    const a = (packets[i - 1]![2]! << 8) | packets[i - 1]![3]!;
    const b = (packets[i]![2]! << 8) | packets[i]![3]!;
    if (b !== ((a + 1) & 0xffff)) throw new Error(`capture lost packets between seq ${a} and ${b}`);
  }
  const sdp = readFileSync(sdpPath, 'utf8');
  rmSync(sdpPath, { force: true });
  writeFileSync(`${base}.sdp`, sdp);
  writeFileSync(`${base}.rtcp`, writeRtpDump(rtcp));
  writeFileSync(`${base}.rtp`, writeRtpDump(packets));
  return { packets, sdp, rtcp };
}

/** A committed capture: `name`.rtp and `name`.sdp in this folder. */
export function loadCapture(name: string): Capture {
  return {
    packets: readRtpDump(new Uint8Array(readFileSync(join(TESTDATA, `${name}.rtp`)))),
    sdp: readFileSync(join(TESTDATA, `${name}.sdp`), 'utf8'),
    rtcp: [],
  };
}

export const gstAvailable = (): boolean => Bun.spawnSync(['which', 'gst-launch-1.0']).exitCode === 0;

/**
 * Runs a GStreamer pipeline ending in a payloader; appends `! rtpstreampay ! filesink`.
 * Returns the packets and the payloader's caps (they carry sprop-* and config).
 */
export function gstRtpCapture(pipeline: string, out: string): { packets: Uint8Array[]; caps: string } {
  const r = Bun.spawnSync(['sh', '-c', `gst-launch-1.0 -v ${pipeline} ! rtpstreampay ! filesink location=${out}`]);
  if (r.exitCode !== 0) throw new Error(`gst-launch failed: ${r.stderr.toString()}${r.stdout.toString()}`);
  const lines = r.stdout.toString().split('\n').filter((l) => l.includes('rtpstreampay0.GstPad:sink: caps'));
  return { packets: readRtpDump(new Uint8Array(readFileSync(out))), caps: lines.at(-1) ?? '' };
}

/** One field of a GStreamer caps string, e.g. capsField(caps, 'sprop-parameter-sets'). */
export function capsField(caps: string, name: string): string | null {
  const m = new RegExp(`[ ,]${name}=\\(\\w+\\)(?:"([^"]*)"|([^,]*))`).exec(caps);
  return m ? (m[1] ?? m[2] ?? '').replace(/\\/g, '') : null;
}

/** Copies a popped access unit (its views die at the next push). */
export function copyAu(au: AccessUnit): AccessUnit {
  return { nalus: au.nalus.map((n) => n.slice()), bytes: au.bytes, keyframe: au.keyframe, dts: au.dts, pts: au.pts };
}

export const concatBytes = (parts: readonly Uint8Array[]): Uint8Array => {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/** One line per packet: sequence, timestamp, marker, size and the payload structure. */
export function dissect(packets: readonly Uint8Array[], codec: 'h264' | 'h265' | 'aac'): string {
  const lines: string[] = [];
  for (const p of packets) {
    const seq = (p[2]! << 8) | p[3]!;
    const ts = ((p[4]! << 24) | (p[5]! << 16) | (p[6]! << 8) | p[7]!) >>> 0;
    const m = p[1]! & 0x80 ? 'M' : '-';
    const pay = p.subarray(12 + 4 * (p[0]! & 15));
    let what = '';
    if (codec === 'h264') {
      const t = pay[0]! & 0x1f;
      if (t === 24) {
        const parts: string[] = [];
        for (let o = 1; o + 2 <= pay.length; ) {
          const n = (pay[o]! << 8) | pay[o + 1]!;
          parts.push(`nal${pay[o + 2]! & 0x1f}(${n})`);
          o += 2 + n;
        }
        what = `STAP-A ${parts.join(' ')}`;
      } else if (t === 28) {
        what = `FU-A nal${pay[1]! & 0x1f} nri=${(pay[0]! >> 5) & 3}${pay[1]! & 0x80 ? ' S' : ''}${pay[1]! & 0x40 ? ' E' : ''}`;
      } else what = `single nal${t} nri=${(pay[0]! >> 5) & 3}`;
    } else if (codec === 'h265') {
      const t = (pay[0]! >> 1) & 0x3f;
      if (t === 48) {
        const parts: string[] = [];
        for (let o = 2; o + 2 <= pay.length; ) {
          const n = (pay[o]! << 8) | pay[o + 1]!;
          parts.push(`nal${(pay[o + 2]! >> 1) & 0x3f}(${n})`);
          o += 2 + n;
        }
        what = `AP ${parts.join(' ')}`;
      } else if (t === 49) {
        what = `FU nal${pay[2]! & 0x3f}${pay[2]! & 0x80 ? ' S' : ''}${pay[2]! & 0x40 ? ' E' : ''}`;
      } else what = `single nal${t} tid=${(pay[1]! & 7) - 1}`;
    } else {
      const bits = (pay[0]! << 8) | pay[1]!;
      const sizes: number[] = [];
      for (let k = 0; k * 16 < bits; k++) sizes.push(((pay[2 + 2 * k]! << 8) | pay[3 + 2 * k]!) >> 3);
      what = `AU-headers ${bits} bits, AU sizes ${sizes.join(',')}`;
    }
    lines.push(`seq=${seq} ts=${ts} ${m} len=${p.length} ${what}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The committed GStreamer captures: name, pipeline, SDP from the payloader's caps. */
export const GST_FIXTURES = [
  {
    name: 'h264-stap-a-fu-a-gst',
    codec: 'h264' as const,
    pipeline: 'videotestsrc num-buffers=25 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! x264enc bitrate=150 key-int-max=10 bframes=0 tune=zerolatency ! video/x-h264,profile=baseline ! rtph264pay aggregate-mode=zero-latency config-interval=-1 mtu=500 pt=96',
    sdp: (caps: string) => `v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=gst\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=${capsField(caps, 'sprop-parameter-sets')}\r\n`,
  },
  {
    name: 'h265-ap-fu-gst',
    codec: 'h265' as const,
    pipeline: 'videotestsrc num-buffers=25 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! x265enc bitrate=150 key-int-max=10 tune=zerolatency ! rtph265pay aggregate-mode=zero-latency config-interval=-1 mtu=500 pt=96',
    sdp: (caps: string) => `v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=gst\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps=${capsField(caps, 'sprop-vps')};sprop-sps=${capsField(caps, 'sprop-sps')};sprop-pps=${capsField(caps, 'sprop-pps')}\r\n`,
  },
  {
    name: 'aac-hbr-16k-mono-gst',
    codec: 'aac' as const,
    pipeline: 'audiotestsrc num-buffers=20 ! audio/x-raw,rate=16000,channels=1 ! avenc_aac ! aacparse ! rtpmp4gpay pt=97',
    sdp: (caps: string) => `v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=gst\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=${capsField(caps, 'config')};sizelength=13;indexlength=3;indexdeltalength=3\r\n`,
  },
];

/** Rewrites the committed GStreamer fixtures (FLUX_REGEN_FIXTURES=1 with gst-launch-1.0 installed). */
export function regenerateGstFixtures(): void {
  for (const f of GST_FIXTURES) {
    const rtp = join(TESTDATA, `${f.name}.rtp`);
    const { packets, caps } = gstRtpCapture(f.pipeline, rtp);
    writeFileSync(join(TESTDATA, `${f.name}.sdp`), f.sdp(caps));
    writeFileSync(join(TESTDATA, `${f.name}.txt`), `# gst-launch-1.0 ${f.pipeline} ! rtpstreampay ! filesink\n# ${packets.length} packets, RFC 4571 framing ([u16 length][packet])\n${dissect(packets, f.codec)}`);
  }
}
