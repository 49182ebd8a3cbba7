// The demo camera of `npm start`: a looping H.264 clip made with ffmpeg on first start.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StreamConfig } from './config.ts';
import { findFfmpeg } from './tools.ts';

export const DEMO_STREAM_ID = 'demo';

/**
 * Returns the demo stream's config, making its clip under `<basePath>/demo/` when absent:
 * 720p25 moving test pattern with a clock, 2 s GOP, no B-frames (the file source sends
 * frames in decode order), 20 s long so the loop point is rare. Kept in `<basePath>/_sources/`.
 */
export async function ensureDemoStream(basePath: string): Promise<StreamConfig> {
  // `_sources` cannot collide with a stream's folder: stream ids start with a letter or digit.
  const dir = join(basePath, '_sources');
  const clip = join(dir, 'demo-720p25.h264');
  if (!existsSync(clip)) {
    const ffmpeg = findFfmpeg();
    if (ffmpeg === null) throw new Error('the demo camera needs ffmpeg to make its clip: install ffmpeg or set FLUX_FFMPEG');
    mkdirSync(dir, { recursive: true });
    const tmp = `${clip}.part`;
    const p = Bun.spawn(
      [ffmpeg, '-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=25', '-t', '20',
        '-vf', "drawtext=text='FLUX demo %{pts\\:hms}':x=40:y=40:fontsize=48:fontcolor=white:box=1:boxcolor=black@0.5",
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-pix_fmt', 'yuv420p', '-bf', '0', '-g', '50',
        '-keyint_min', '50', '-sc_threshold', '0', '-b:v', '2M', '-maxrate', '2M', '-bufsize', '4M', '-f', 'h264', tmp],
      { stderr: 'pipe' },
    );
    if ((await p.exited) !== 0) {
      // drawtext needs fontconfig and a font; fall back to the plain pattern without it.
      const q = Bun.spawn(
        [ffmpeg, '-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=25', '-t', '20',
          '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-pix_fmt', 'yuv420p', '-bf', '0', '-g', '50',
          '-keyint_min', '50', '-sc_threshold', '0', '-b:v', '2M', '-maxrate', '2M', '-bufsize', '4M', '-f', 'h264', tmp],
        { stderr: 'pipe' },
      );
      if ((await q.exited) !== 0) throw new Error(`ffmpeg could not make the demo clip: ${await new Response(q.stderr).text()}`);
    }
    renameSync(tmp, clip);
  }
  return { stream_id: DEMO_STREAM_ID, protocol: 'file', source_url: pathToFileURL(clip).href, record: true };
}
