// Test clips for the camera simulator: made with ffmpeg at first use and cached under
// bench/.cache/clips (gitignored). Moving content: testsrc2 blended with Conway's life and
// temporal noise, so the encoder spends the bitrate the way a real scene does.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export type ClipCodec = 'h264' | 'h265';
export interface ClipSpec {
  codec: ClipCodec;
  /** 720 or 1080 lines (16:9). */
  height: 720 | 1080;
  /** Video bits per second (2 or 4 Mbit/s in the tables; anything works). */
  bitrate: number;
}
export interface Clip extends ClipSpec {
  video: string;
  audio: string;
  fps: number;
  seconds: number;
}

export const CLIP_DIR = join(import.meta.dir, '..', '.cache', 'clips');
export const CLIP_FPS = 25;
/** Five 2 s GOPs: the loop is long enough that the content does not look frozen. */
export const CLIP_SECONDS = 10;
const GOP = CLIP_FPS * 2;

export function clipPaths(s: ClipSpec): Clip {
  const base = join(CLIP_DIR, `${s.codec}-${s.height}p-${Math.round(s.bitrate / 1000)}k-${CLIP_SECONDS}s`);
  return { ...s, video: `${base}.${s.codec === 'h264' ? 'h264' : 'hevc'}`, audio: `${base}.aac`, fps: CLIP_FPS, seconds: CLIP_SECONDS };
}

/** Returns the cached clip, making it first if needed (a few seconds to a minute). */
export async function ensureClip(s: ClipSpec): Promise<Clip> {
  const c = clipPaths(s);
  if (existsSync(c.video) && existsSync(c.audio)) return c;
  mkdirSync(CLIP_DIR, { recursive: true });
  const w = s.height === 720 ? 1280 : 1920;
  const cell = s.height === 720 ? '320x180' : '480x270';
  const kbps = Math.round(s.bitrate / 1000);
  const video =
    `testsrc2=size=${w}x${s.height}:rate=${CLIP_FPS}[a];` +
    `life=size=${cell}:rate=${CLIP_FPS}:mold=10:ratio=0.1:death_color=#402060:life_color=#e0c040,scale=${w}:${s.height}:flags=neighbor[b];` +
    `[a][b]blend=all_mode=addition:all_opacity=0.35,noise=alls=12:allf=t[out0]`;
  const audio = 'sine=frequency=440:sample_rate=48000,volume=0.3[s];anoisesrc=color=pink:amplitude=0.05:sample_rate=48000[n];[s][n]amix=inputs=2[out0]';
  const enc =
    s.codec === 'h264'
      ? ['-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-g', `${GOP}`, '-keyint_min', `${GOP}`, '-sc_threshold', '0', '-f', 'h264']
      : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `keyint=${GOP}:min-keyint=${GOP}:bframes=0:scenecut=0:log-level=error`, '-f', 'hevc'];
  const tmpV = `${c.video}.tmp`, tmpA = `${c.audio}.tmp`;
  const t = `${CLIP_SECONDS}`;
  const cmd = [
    'ffmpeg', '-v', 'error', '-y',
    '-f', 'lavfi', '-t', t, '-i', video,
    '-f', 'lavfi', '-t', t, '-i', audio,
    '-map', '0:v', '-t', t, '-pix_fmt', 'yuv420p', '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`, ...enc, tmpV,
    '-map', '1:a', '-t', t, '-c:a', 'aac', '-b:a', '64k', '-ac', '1', '-f', 'adts', tmpA,
  ];
  const p = Bun.spawn(cmd, { stdout: 'ignore', stderr: 'pipe' });
  const timer = setTimeout(() => p.kill('SIGKILL'), 300_000);
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`ffmpeg could not make the clip ${c.video} (exit ${code}): ${err}`);
  renameSync(tmpV, c.video);
  renameSync(tmpA, c.audio);
  return c;
}
