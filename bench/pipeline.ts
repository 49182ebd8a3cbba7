// What one camera costs a media worker: the simulator's RTP packets (H.264 or H.265 + AAC,
// the bench clip) pushed into N stream pipelines as the worker does (depacketise, segment,
// keep the keyframe, write with the configured writer), as fast as they go, in one thread.
// Prints µs per packet and % of a core per camera at the clip's real-time rate.
// Profile it with: bun --cpu-prof-md bench/pipeline.ts
// Usage: bun bench/pipeline.ts [--cameras 50] [--seconds 20] [--codec h264|h265]
//   [--bitrate 4M] [--resolution 1080|720] [--writer native|portable] [--short]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heapStats } from 'bun:jsc';
import { sharedStageBlocks } from '../media/fmp4-fragment.ts';
import { StreamPipeline } from '../workers/pipeline.ts';
import { createRing, RingConsumer, RingProducer } from '../workers/ring.ts';
import { KIND_RTP } from '../workers/ring-format.ts';
import { createSegmentWriter } from '../workers/writer-native.ts';
import { ensureClip } from './sim/clips.ts';
import { packetize } from './sim/packetize.ts';
import { cameraSdp, parseBitrate } from './sim/rtsp-sim.ts';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const short = process.argv.includes('--short');
const cameras = Number(arg('cameras', short ? '4' : '50'));
const seconds = Number(arg('seconds', short ? '2' : '20'));
const codec = arg('codec', 'h264') as 'h264' | 'h265';
const writerKind = arg('writer', 'native') as 'native' | 'portable';
const clip = packetize(await ensureClip({ codec, height: Number(arg('resolution', short ? '720' : '1080')) as 720 | 1080, bitrate: parseBitrate(arg('bitrate', short ? '2M' : '4M')) }));

const dir = mkdtempSync(join(tmpdir(), 'flux-bench-pipeline-'));
const writer = createSegmentWriter(writerKind, undefined, (m) => console.error(m), (e) => console.error(e.message));
const outSab = createRing(4 << 20, 1 << 20);
const out = new RingProducer(outSab);
const outReader = new RingConsumer(outSab);
let segments = 0;
const pipes = Array.from({ length: cameras }, (_, i) =>
  new StreamPipeline(
    {
      type: 'add-stream', id: i, slot: i, streamId: `cam${i + 1}`, record: true, wallBaseMs: Date.now(), firstSegmentNumber: 0, keyframeIntervalMs: 0,
      input: { kind: 'rtp', sdp: cameraSdp(clip, i + 1, '127.0.0.1'), tracks: [0, 1].map((k) => ({ mediaIndex: k, payloadType: 96 + k, transport: 'tcp' as const })) },
    },
    {
      basePath: dir, segmentDurationMs: 60_000, fragmentDurationMs: 1000, writer, out,
      emit: (ev) => void (ev.type === 'segment-close' && segments++),
      problem: (m) => console.error(m),
    },
  ),
);

// Per camera: sequence numbers per track and a GOP phase, as the simulator starts them.
const seq = pipes.map(() => [0, 0]);
const phase = pipes.map((_, i) => Math.floor((i * clip.frames.length) / cameras));
const frameMs = 1000 / clip.fps;
const frames = Math.round(seconds * clip.fps);
let packets = 0, bytes = 0;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
for (let f = 0; f < frames; f++) {
  for (let c = 0; c < cameras; c++) {
    const k = f + phase[c]!;
    const fr = clip.frames[k % clip.frames.length]!;
    const loop = Math.floor(k / clip.frames.length);
    const dv = fr.dv;
    for (let i = 0; i < fr.at.length; i++) {
      const at = fr.at[i]!;
      const t = fr.track[i]!;
      dv.setUint16(at + 6, seq[c]![t]!);
      seq[c]![t] = (seq[c]![t]! + 1) & 0xffff;
      dv.setUint32(at + 8, (fr.ts[i]! + loop * (t === 0 ? clip.videoLoopTicks : clip.audioLoopTicks)) % 4294967296);
      const pkt = fr.buf.subarray(at + 4, at + 4 + fr.len[i]!);
      pipes[c]!.push(KIND_RTP, t, Math.round(f * frameMs), pkt);
      packets++;
      bytes += pkt.length;
    }
  }
  if ((f & 15) === 15) outReader.read(() => {}); // events and fragments the main thread would take
}
for (const p of pipes) p.close();
await writer.drain();
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const mediaS = frames / clip.fps;
const h = heapStats();
console.log(JSON.stringify({
  cameras, seconds: mediaS, codec, writer: writer.kind, packets, mbytes: Math.round(bytes / 1e6), segments,
  us_per_packet: +((cpuMs * 1000) / packets).toFixed(3),
  core_pct_per_camera: +((cpuMs / (mediaS * 1000 * cameras)) * 100).toFixed(3),
  realtime_x: +((mediaS * 1000) / wallMs).toFixed(1),
  heap_mb: +(h.heapSize / 1e6).toFixed(1), stage_blocks: sharedStageBlocks.stats,
}));
await (writer as { shutdown?(): Promise<void> }).shutdown?.();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
