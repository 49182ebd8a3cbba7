// Test peers that play an IP camera: the gst-rtsp-server script (rtsp-camera.py) and, where VLC can
// serve, a VLC RTSP server; each started on a free loopback port and killed on stop or process exit.
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Subprocess } from 'bun';

/** Debian's interpreter: it has python3-gi; the pyenv `python3` on PATH does not. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dir, 'rtsp-camera.py');
const READY_TIMEOUT_MS = 10_000;

export interface RtspCameraOptions {
  /** Mount paths (default ['/cam1']); `count` adds /cam1../camN instead. */
  paths?: string[];
  count?: number;
  codec?: 'h264' | 'h265';
  audio?: 'none' | 'aac' | 'pcma' | 'pcmu';
  user?: string;
  password?: string;
  auth?: 'digest' | 'basic';
  width?: number;
  height?: number;
  fps?: number;
  /** kbit/s */
  bitrate?: number;
  pattern?: 'ball' | 'smpte';
  /** Session timeout the server announces, in seconds (default 60). */
  sessionTimeout?: number;
  /** Lower transports the server offers. */
  protocols?: 'tcp' | 'udp' | 'both';
}

export interface RtspCamera {
  port: number;
  /** rtsp://127.0.0.1:port/path (default the first path), with userinfo when `withCredentials`. */
  url(path?: string, withCredentials?: boolean): string;
  /** Everything the process wrote to stdout/stderr so far. */
  output(): string;
  stop(): Promise<void>;
  /** Kills and starts it again on the same port (for reconnect tests). */
  restart(): Promise<void>;
}

/** Whether the camera can run here: the system python with GStreamer's RTSP server bindings. */
export function rtspCameraAvailable(): boolean {
  if (!existsSync(SYSTEM_PYTHON)) return false;
  const r = Bun.spawnSync([SYSTEM_PYTHON, '-c', "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]);
  return r.exitCode === 0;
}

const live = new Set<Subprocess>();
let exitHookInstalled = false;
function track(p: Subprocess): void {
  live.add(p);
  void p.exited.then(() => live.delete(p));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const q of live) q.kill('SIGKILL');
  });
}

interface Spawned {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  text: () => string;
}

/** Spawns `cmd` and resolves once `ready` matches its output; rejects on exit or timeout. */
async function spawnUntil(cmd: string[], ready: RegExp, what: string): Promise<{ s: Spawned; match: RegExpExecArray }> {
  const proc = Bun.spawn(cmd, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  track(proc);
  let text = '';
  let wake: (() => void) | null = null;
  const pump = async (st: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of st) {
      text += dec.decode(chunk);
      wake?.();
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const s: Spawned = { proc, text: () => text };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const m = ready.exec(text);
    if (m) return { s, match: m };
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode} before it was ready:\n${text}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${what} not ready within ${READY_TIMEOUT_MS} ms:\n${text}`);
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 50);
    });
  }
}

async function kill(p: Subprocess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 2000);
  await p.exited;
  clearTimeout(t);
}

/**
 * An ffmpeg that plays `url` over RTSP/TCP and discards what it reads (one more viewer of the
 * mount); resolves once its first frames have arrived.
 */
export async function startRtspReader(url: string): Promise<{ output(): string; stop(): Promise<void> }> {
  const cmd = ['ffmpeg', '-hide_banner', '-rtsp_transport', 'tcp', '-i', url, '-map', '0', '-c', 'copy', '-f', 'null', '-'];
  const { s } = await spawnUntil(cmd, /frame=\s*[1-9]/, `ffmpeg reading ${url}`);
  return { output: () => s.text(), stop: () => kill(s.proc) };
}

/** Starts the gst-rtsp-server camera; port 0 lets the server pick and report a free port. */
export async function startRtspCamera(o: RtspCameraOptions = {}): Promise<RtspCamera> {
  const paths = o.paths ?? (o.count ? Array.from({ length: o.count }, (_, i) => `/cam${i + 1}`) : ['/cam1']);
  const args = (port: number): string[] => {
    const a = [SYSTEM_PYTHON, SCRIPT, '--port', String(port), '--codec', o.codec ?? 'h264', '--audio', o.audio ?? 'none'];
    for (const p of paths) a.push('--path', p);
    if (o.user !== undefined) a.push('--user', o.user, '--password', o.password ?? '', '--auth', o.auth ?? 'digest');
    if (o.width) a.push('--width', String(o.width));
    if (o.height) a.push('--height', String(o.height));
    if (o.fps) a.push('--fps', String(o.fps));
    if (o.bitrate) a.push('--bitrate', String(o.bitrate));
    if (o.pattern) a.push('--pattern', o.pattern);
    if (o.sessionTimeout) a.push('--session-timeout', String(o.sessionTimeout));
    if (o.protocols) a.push('--protocols', o.protocols);
    return a;
  };
  let { s, match } = await spawnUntil(args(0), /READY (\d+)/, 'rtsp-camera.py');
  const port = Number(match[1]);
  return {
    port,
    url(path = paths[0]!, withCredentials = false) {
      const cred = withCredentials && o.user !== undefined ? `${encodeURIComponent(o.user)}:${encodeURIComponent(o.password ?? '')}@` : '';
      return `rtsp://${cred}127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`;
    },
    output: () => s.text(),
    stop: () => kill(s.proc),
    async restart() {
      await kill(s.proc);
      // the port was just released by our own process; GStreamer binds with SO_REUSEADDR
      ({ s } = await spawnUntil(args(port), /READY (\d+)/, 'rtsp-camera.py'));
    },
  };
}

/** A free TCP port on 127.0.0.1 (closed again before returning: a small race we accept in tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface VlcCameraOptions {
  codec?: 'h264' | 'h265';
  /** Stream path (default /stream). */
  path?: string;
  width?: number;
  height?: number;
  fps?: number;
  /** Length of the looped clip. */
  seconds?: number;
  /** Directory for the clip (default os.tmpdir()). */
  dir?: string;
}

/** Whether cvlc is installed. */
export function vlcAvailable(): boolean {
  return existsSync('/usr/bin/cvlc');
}

/**
 * VLC serving a looped ffmpeg clip over RTSP (`#rtp{sdp=rtsp://...}`). VLC refuses to run as root
 * ("VLC is not supposed to be run as root"), so as root it runs as nobody via setpriv, with a
 * world-readable clip and a scratch HOME.
 */
export async function startVlcCamera(o: VlcCameraOptions = {}): Promise<Omit<RtspCamera, 'restart'>> {
  const { mkdtempSync, chmodSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(o.dir ?? tmpdir(), 'flux-vlc-'));
  chmodSync(dir, 0o777);
  const codec = o.codec ?? 'h264';
  const clip = join(dir, `clip-${codec}.ts`);
  const enc = codec === 'h264'
    ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '0']
    : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'bframes=0:log-level=error'];
  const fps = o.fps ?? 25;
  const mk = Bun.spawnSync(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${o.width ?? 640}x${o.height ?? 360}:rate=${fps}`,
    '-t', String(o.seconds ?? 10), '-pix_fmt', 'yuv420p', ...enc, '-g', String(fps * 2), clip]);
  if (mk.exitCode !== 0) throw new Error(`ffmpeg failed: ${mk.stderr.toString()}`);
  chmodSync(clip, 0o644);
  const port = await freePort();
  const path = o.path ?? '/stream';
  const vlc = ['/usr/bin/cvlc', '-I', 'dummy', '--loop', clip, '--sout', `#rtp{sdp=rtsp://127.0.0.1:${port}${path}}`, '--sout-keep'];
  const asRoot = process.getuid?.() === 0;
  const cmd = asRoot ? ['/usr/bin/env', `HOME=${dir}`, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...vlc] : vlc;
  const proc = Bun.spawn(cmd, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env: { ...process.env, HOME: dir } });
  track(proc);
  let text = '';
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of proc.stderr) text += dec.decode(c);
  })();
  void (async () => {
    for await (const _ of proc.stdout) { /* drain */ }
  })();
  // VLC prints nothing when ready: poll until the RTSP port accepts a connection
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`cvlc exited with ${proc.exitCode}:\n${text}`);
    const ok = await new Promise<boolean>((resolve) => {
      Bun.connect({ hostname: '127.0.0.1', port, socket: { open: (s) => (s.end(), resolve(true)), data() {}, error: () => resolve(false), connectError: () => resolve(false) } })
        .catch(() => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`cvlc not listening on ${port} within ${READY_TIMEOUT_MS} ms:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    url: (p = path) => `rtsp://127.0.0.1:${port}${p}`,
    output: () => text,
    stop: () => kill(proc),
  };
}
