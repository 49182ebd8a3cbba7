// Test helpers shared by the end-to-end tests: clips made with ffmpeg, the engine run as a
// child process (the way users run it), and ffprobe as the judge of recorded files.
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';

export const ROOT = join(import.meta.dir, '..');
export const BUN = process.execPath;

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `flux-${prefix}-`));
}

/** A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both). */
export async function freeUdpTcpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    try {
      const l = Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } });
      const u = await Bun.udpSocket({ hostname: '127.0.0.1', port });
      u.close();
      l.stop(true);
      return port;
    } catch { /* taken: try another */ }
  }
  throw new Error('no free port');
}

export interface ClipOptions {
  codec: 'h264' | 'h265';
  width?: number;
  height?: number;
  fps?: number;
  seconds?: number;
  /** GOP in frames; 2 s by default. */
  gop?: number;
  /** B-frames between references (decode order differs from presentation order); 0 by default. */
  bframes?: number;
}

const clipCache = new Map<string, string>();

/** An Annex-B clip without B-frames, moving content, made once per process and options. */
export async function makeClip(dir: string, o: ClipOptions): Promise<string> {
  const { codec, width = 640, height = 360, fps = 25, seconds = 6 } = o;
  const gop = o.gop ?? fps * 2;
  const bf = o.bframes ?? 0;
  const key = JSON.stringify([codec, width, height, fps, seconds, gop, bf]);
  const hit = clipCache.get(key);
  if (hit !== undefined && existsSync(hit)) return hit;
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `clip-${codec}-${width}x${height}-${fps}-${seconds}s-g${gop}-b${bf}.${codec}`);
  const enc =
    codec === 'h264'
      ? ['-c:v', 'libx264', '-preset', bf > 0 ? 'fast' : 'ultrafast', '-bf', `${bf}`, '-g', `${gop}`, '-keyint_min', `${gop}`, '-sc_threshold', '0', '-f', 'h264']
      : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `keyint=${gop}:min-keyint=${gop}:bframes=${bf}:scenecut=0:log-level=error`, '-f', 'hevc'];
  await run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`, '-t', `${seconds}`, '-pix_fmt', 'yuv420p', ...enc, out]);
  clipCache.set(key, out);
  return out;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export async function run(cmd: string[], opts: { cwd?: string } = {}): Promise<string> {
  const p = Bun.spawn(cmd, { cwd: opts.cwd, stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited ${code}: ${err}`);
  return out + err;
}

export interface ProbeInfo {
  codec: string;
  width: number;
  height: number;
  startTime: number;
  duration: number;
  frames: number;
  keyframeTimes: number[];
}

/** ffprobe's view of a recorded file: codec, size, start/duration, frame and keyframe times. */
export async function probe(file: string): Promise<ProbeInfo> {
  const out = await run([
    'ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'stream=codec_name,width,height:format=start_time,duration:packet=pts_time,flags', '-of', 'json', file,
  ]);
  const j = JSON.parse(out) as {
    streams: { codec_name: string; width: number; height: number }[];
    format: { start_time: string; duration: string };
    packets: { pts_time: string; flags: string }[];
  };
  const s = j.streams[0]!;
  return {
    codec: s.codec_name,
    width: s.width,
    height: s.height,
    startTime: Number(j.format.start_time),
    duration: Number(j.format.duration) - Number(j.format.start_time),
    frames: j.packets.length,
    keyframeTimes: j.packets.filter((p) => p.flags.startsWith('K')).map((p) => Number(p.pts_time)),
  };
}

/** `ffmpeg -v error -i file -f null -` output: empty when the file decodes cleanly. */
export async function decodeErrors(file: string): Promise<string> {
  const p = Bun.spawn(['ffmpeg', '-v', 'error', '-i', file, '-f', 'null', '-'], { stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return code === 0 ? err.trim() : `exit ${code}: ${err.trim()}`;
}

export interface EngineProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  dir: string;
  port: number;
  output(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

let nextPort = 18_100 + (process.pid % 500) * 2;

/**
 * Starts `bun engine/main.ts --config <dir>/config.toml` with its storage in `dir`
 * (`entry`: another entry point of the repo, e.g. engine/launch.ts as `npm start` runs it).
 */
export function startEngine(dir: string, toml: string, env: Record<string, string> = {}, entry = 'engine/main.ts'): EngineProcess {
  const port = nextPort++;
  const cfg = join(dir, 'config.toml');
  // Each engine gets its own RTMP port (the default 1935 would collide between engines).
  const rtmp = /^\[rtmp\]/m.test(toml) ? '' : `[rtmp]\nport = ${port + 10_000}\nhost = "127.0.0.1"\n`;
  writeFileSync(cfg, `[http]\nport = ${port}\nhost = "127.0.0.1"\n${rtmp}${toml}`);
  const proc = Bun.spawn([BUN, join(ROOT, entry), '--config', cfg], {
    cwd: dir,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, ...env },
  });
  let text = '';
  const waiters: { re: RegExp; resolve(s: string): void }[] = [];
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) {
      text += dec.decode(chunk);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const m = waiters[i]!.re.exec(text);
        if (m) {
          waiters[i]!.resolve(m[0]);
          waiters.splice(i, 1);
        }
      }
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return {
    proc,
    dir,
    port,
    output: () => text,
    waitForLog(re, timeoutMs = 15_000) {
      const m = re.exec(text);
      if (m) return Promise.resolve(m[0]);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in engine output:\n${text}`)), timeoutMs);
        waiters.push({ re, resolve: (s) => (clearTimeout(t), resolve(s)) });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return await proc.exited;
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
