// Test input as a GB28181 device sends it: an ffmpeg clip muxed to PS (with G.711A beside the
// video) and cut into RTP packets, on a 90 kHz clock.
import { splitAccessUnits } from '../annexb-au.ts';
import { PsMuxer } from '../ps-mux.ts';
import { writeRtpHeader } from '../rtp.ts';
import { ffmpegFixture } from './test-helpers.ts';

export const psTestClip = (codec: 'h264' | 'h265'): Uint8Array =>
  ffmpegFixture(
    ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-pix_fmt', 'yuv420p',
      ...(codec === 'h264' ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '0', '-g', '25', '-f', 'h264'] : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'keyint=25:bframes=0:log-level=error', '-f', 'hevc'])],
    codec === 'h264' ? 'h264' : 'hevc',
  ).bytes;

/** RTP packets of the 2 s clip (50 pictures) muxed as a GB device does, continuing `seq0` and the 90 kHz clock from `t0`. */
export function psRtpPackets(codec: 'h264' | 'h265', seq0: number, t0: number): Uint8Array[] {
  const es = psTestClip(codec);
  const mux = new PsMuxer({ codec, audio: true });
  const out: Uint8Array[] = [];
  splitAccessUnits(es, codec).forEach((a, i) => {
    const ps = mux.video(es.subarray(a.offset, a.offset + a.length), t0 + 3600 * i, t0 + 3600 * i, a.keyframe).slice(); // views die at the next call
    const audio = mux.audio(new Uint8Array(320).fill(0xd5), t0 + 3600 * i);
    for (const chunk of [ps, audio]) {
      for (let at = 0; at < chunk.length; at += 1388) {
        const n = Math.min(1388, chunk.length - at);
        const p = new Uint8Array(12 + n);
        writeRtpHeader(p, 0, at + n >= chunk.length, 96, (seq0 + out.length) & 0xffff, t0 + 3600 * i, 7);
        p.set(chunk.subarray(at, at + n), 12);
        out.push(p);
      }
    }
  });
  return out;
}
