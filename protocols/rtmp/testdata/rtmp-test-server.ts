// Test-only: a tiny Bun.listen adapter binding sockets to RtmpServerSession, recording every
// session's events (and optionally the client's raw bytes), plus an ffmpeg publisher runner.
import type { Socket, TCPSocketListener } from 'bun';
import { type AuthorizeResult, type RtmpMediaKind, RtmpServerSession, type RtmpSessionOptions } from '../session.ts';

export interface Tag {
  kind: RtmpMediaKind;
  ts: number;
  body: Uint8Array;
}

/** What one connection did, as seen through the session's callbacks. */
export interface ConnRecord {
  session: RtmpServerSession;
  published: { app: string; key: string; streamId: string } | null;
  tags: Tag[];
  errors: { fatal: boolean; message: string }[];
  unpublished: boolean;
  closedBySession: boolean;
  socketClosed: boolean;
  /** Raw client->server bytes, when `capture` is set. */
  raw: Uint8Array[];
}

export interface TestServer {
  port: number;
  conns: ConnRecord[];
  stop(): void;
}

interface Data {
  rec: ConnRecord;
  pending: Uint8Array[];
}

/**
 * Listens on 127.0.0.1 (random port); `authorize` as in RtmpSessionOptions; `sessionOptions`
 * overrides timeouts; a timer calls tick() every `tickMs`.
 */
export function startTestServer(o: {
  authorize: (app: string, name: string, q: URLSearchParams) => AuthorizeResult;
  capture?: boolean;
  sessionOptions?: Partial<RtmpSessionOptions>;
  tickMs?: number;
}): TestServer {
  const conns: ConnRecord[] = [];
  const write = (s: Socket<Data>, b: Uint8Array) => {
    const d = s.data;
    if (d.pending.length > 0) {
      d.pending.push(b.slice());
      return;
    }
    const n = s.write(b);
    if (n < b.length) d.pending.push(b.slice(Math.max(0, n)));
  };
  const listener: TCPSocketListener<Data> = Bun.listen<Data>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        const rec: ConnRecord = {
          session: null as unknown as RtmpServerSession, published: null, tags: [], errors: [],
          unpublished: false, closedBySession: false, socketClosed: false, raw: [],
        };
        s.data = { rec, pending: [] };
        rec.session = new RtmpServerSession({
          nowMs: Date.now(),
          authorize: o.authorize,
          send: (b) => write(s, b),
          publish: (app, key, streamId) => { rec.published = { app, key, streamId }; },
          media: (kind, ts, body) => { rec.tags.push({ kind, ts, body: body.slice() }); },
          unpublish: () => { rec.unpublished = true; },
          error: (fatal, message) => { rec.errors.push({ fatal, message }); },
          close: () => {
            rec.closedBySession = true;
            s.end();
          },
          ...o.sessionOptions,
        });
        conns.push(rec);
      },
      data(s, bytes) {
        const rec = s.data.rec;
        if (o.capture) rec.raw.push(new Uint8Array(bytes).slice());
        rec.session.receive(bytes, Date.now());
      },
      drain(s) {
        const d = s.data;
        while (d.pending.length > 0) {
          const b = d.pending[0]!;
          const n = s.write(b);
          if (n < b.length) {
            d.pending[0] = b.subarray(Math.max(0, n));
            return;
          }
          d.pending.shift();
        }
      },
      close(s) {
        s.data.rec.socketClosed = true;
        s.data.rec.session.close();
      },
      error(s) {
        s.data.rec.session.close();
      },
    },
  });
  const timer = setInterval(() => {
    const now = Date.now();
    for (const c of conns) c.session.tick(now);
  }, o.tickMs ?? 100);
  return {
    port: listener.port,
    conns,
    stop() {
      clearInterval(timer);
      listener.stop(true);
    },
  };
}

/** Runs ffmpeg with `args` (output URL included); resolves with its exit code and stderr. */
export async function runFfmpeg(args: string[], timeoutMs = 20_000): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(['ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', ...args], { stdout: 'ignore', stderr: 'pipe' });
  const kill = setTimeout(() => p.kill(), timeoutMs);
  const stderr = await new Response(p.stderr).text();
  const code = await p.exited;
  clearTimeout(kill);
  return { code, stderr };
}

/** ffmpeg arguments publishing `seconds` of testsrc2 + sine as H.264/AAC over RTMP to `url`. */
export const publishArgs = (url: string, seconds: number, size = '320x240', extra: string[] = []): string[] => [
  '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`, '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
  '-t', String(seconds), '-c:v', 'libx264', '-g', '50', '-bf', '0', '-c:a', 'aac', ...extra, '-f', 'flv', url,
];
