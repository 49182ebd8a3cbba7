// Throughput of GB28181 media ingest in a worker: RTP packets carrying MPEG-PS through
// workers/input-ps.ts (RTP header, reorder window, PS demux, unit assembly, parameter-set
// capture) into a sink that only counts; and the PS demuxer alone. One thread, in memory.
// Usage: bun bench/ps-demux.ts [--short] [--size 1280x720] [--seconds 10] [--rounds 5]
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitAccessUnits } from '../media/annexb-au.ts';
import { PsDemuxer } from '../media/ps.ts';
import { PsMuxer } from '../media/ps-mux.ts';
import { writeRtpHeader } from '../media/rtp.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import { PsRtpInput } from '../workers/input-ps.ts';
import { KIND_RTP } from '../workers/ring-format.ts';

const short = process.argv.includes('--short');
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const size = arg('--size', short ? '320x240' : '1280x720');
const seconds = Number(arg('--seconds', short ? '2' : '10'));
const rounds = Number(arg('--rounds', short ? '1' : '5'));

const dir = join(tmpdir(), 'flux-bench');
mkdirSync(dir, { recursive: true });
const clipPath = join(dir, `ps-demux-${size}-${seconds}s.h264`);
if (!existsSync(clipPath)) {
  const r = Bun.spawnSync(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`, '-t', `${seconds}`,
    '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '4M', '-g', '50', '-f', 'h264', clipPath]);
  if (r.exitCode !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
}
const es = new Uint8Array(readFileSync(clipPath));
const aus = splitAccessUnits(es, 'h264');

// The stream as a GB device sends it: PS per picture, RTP packets of <= 1400 bytes.
const mux = new PsMuxer({ codec: 'h264' });
const packets: Uint8Array[] = [];
let psBytes = 0;
aus.forEach((a, i) => {
  const ps = mux.video(es.subarray(a.offset, a.offset + a.length), 3600 * i, 3600 * i, a.keyframe);
  psBytes += ps.length;
  for (let at = 0; at < ps.length; at += 1388) {
    const n = Math.min(1388, ps.length - at);
    const p = new Uint8Array(12 + n);
    writeRtpHeader(p, 0, at + n >= ps.length, 96, packets.length & 0xffff, 3600 * i, 1);
    p.set(ps.subarray(at, at + n), 12);
    packets.push(p);
  }
});
const totalBytes = packets.reduce((n, p) => n + p.length, 0);

let units = 0;
const sink = {
  setTracks(_t: TrackInfo[]) {},
  unit(_t: number, _au: AccessUnit) {
    units++;
  },
  dropped() {},
};

function runInput(): number {
  const input = new PsRtpInput({ kind: 'ps-rtp', transport: 'udp' }, sink);
  const t0 = performance.now();
  for (let i = 0; i < packets.length; i++) input.push(KIND_RTP, 0, i, packets[i]!);
  return performance.now() - t0;
}

function runDemux(): number {
  const d = new PsDemuxer({ codec() {}, video() { units++; }, audio() {} });
  const t0 = performance.now();
  for (const p of packets) d.push(p.subarray(12));
  return performance.now() - t0;
}

const mbps = (ms: number) => totalBytes / 1e6 / (ms / 1000);
const secondsOfMedia = aus.length / 25;
console.log(`clip ${size} ${aus.length} pictures (${secondsOfMedia} s), ${(psBytes / 1e6).toFixed(1)} MB PS, ${packets.length} RTP packets, ${((totalBytes * 8) / secondsOfMedia / 1e6).toFixed(1)} Mbit/s`);
for (const [name, fn] of [['PS demux alone', runDemux], ['worker input (RTP+reorder+PS+units)', runInput]] as const) {
  fn(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    units = 0;
    times.push(fn());
    // Every picture but the last (it waits for a successor) must have come out.
    if (units !== aus.length - 1) throw new Error(`${name}: ${units} units out of ${aus.length} pictures`);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  const cpuPerCamera = (ms / 1000 / secondsOfMedia) * 100; // % of one core for one camera of this bitrate
  console.log(
    `${name}: median ${ms.toFixed(1)} ms, ${mbps(ms).toFixed(0)} MB/s, ${((ms * 1000) / packets.length).toFixed(2)} us/packet, ` +
      `${cpuPerCamera.toFixed(3)} % of a core per camera of this bitrate`,
  );
}
