// Finds external tools: ffmpeg/ffprobe via FLUX_FFMPEG, then ffmpeg-static if installed,
// then PATH (Debian's ffmpeg package).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function fromStatic(): string | null {
  try {
    const p = require('ffmpeg-static') as string | null;
    return p && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

/** Path of the ffmpeg binary, or null when none is found. */
export function findFfmpeg(env: Record<string, string | undefined> = process.env): string | null {
  const fromEnv = env.FLUX_FFMPEG;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  return fromStatic() ?? Bun.which('ffmpeg');
}

/** ffprobe beside the chosen ffmpeg when there is one, else PATH. */
export function findFfprobe(env: Record<string, string | undefined> = process.env): string | null {
  const ff = findFfmpeg(env);
  if (ff !== null) {
    const sibling = join(dirname(ff), 'ffprobe');
    if (existsSync(sibling)) return sibling;
  }
  return Bun.which('ffprobe');
}
