// The configuration schema of FLUX video: every key, its default and what it allows (zod v4).
//
// Keys keep their TOML snake_case names; the loaded object is `Config` (z.infer of ConfigSchema).
// Every leaf carries one human rule ("must be an integer from 1 to 65535") used for every way
// it can fail, so an error line always says what is allowed. config.example.toml mirrors this
// file; a test checks that it loads to exactly these defaults.
import { z } from 'zod';

// Schemas check without generating code (zod's JIT compiles a parser with new Function on the
// first parse: ~7 ms of start-up for a config that is parsed once).
z.config({ jitless: true });

// ---- leaf builders: one message per leaf, whatever the failure ----

function intIn(lo: number, hi: number, def: number) {
  const error = `must be an integer from ${lo} to ${hi}`;
  return z.int({ error }).min(lo, { error }).max(hi, { error }).default(def);
}

/** A finite number > 0 (fractions allowed: tests use retention_days = 0.0001). */
function positive(def: number, max: number) {
  const error = `must be a number greater than 0 and at most ${max}`;
  return z.number({ error }).gt(0, { error }).max(max, { error }).default(def);
}

function bool(def: boolean) {
  return z.boolean({ error: 'must be true or false' }).default(def);
}

function str(def: string) {
  return z.string({ error: 'must be a string' }).default(def);
}

function nonEmpty(def: string) {
  const error = 'must be a non-empty string';
  return z.string({ error }).min(1, { error }).default(def);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, def: T[number]) {
  return z.enum(values, { error: `must be one of ${values.join(', ')}` }).default(def);
}

/** A filesystem path: any string without NUL; "" allowed only where `allowEmpty`. */
function fsPath(def: string, allowEmpty: boolean) {
  const error = allowEmpty ? 'must be a path string without NUL characters' : 'must be a non-empty path without NUL characters';
  return z
    .string({ error })
    .refine((s) => !s.includes('\0') && (allowEmpty || s.length > 0), { error })
    .default(def);
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** "host:port" with a port from 1 to 65535 (IPv6 hosts in brackets: "[::]:7100"). */
export function isHostPort(s: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

function hostPort(def: string) {
  const error = 'must be "host:port" with a port from 1 to 65535';
  return z.string({ error }).refine(isHostPort, { error }).default(def);
}

function digits(n: number, def: string) {
  const error = `must be a string of exactly ${n} digits`;
  return z.string({ error }).regex(new RegExp(`^\\d{${n}}$`), { error }).default(def);
}

/** Every table is strict: unknown keys are errors (translated with a "did you mean"). */
function table<S extends z.core.$ZodLooseShape>(shape: S) {
  // Every key inside has a default, so {} is a valid input; a generic S cannot show tsc that.
  return z.strictObject(shape, { error: 'must be a table' }).prefault({} as never);
}

// ---- streams ----

export const STREAM_PROTOCOLS = ['file', 'rtsp', 'rtmp', 'gb28181', 'webrtc'] as const;
export type StreamProtocol = (typeof STREAM_PROTOCOLS)[number];

/** Stream ids become path components (base/<stream_id>/...), so they are kept boring. */
export const STREAM_ID_RULE = 'must be 1 to 64 characters of A-Z a-z 0-9 _ . -, start with a letter or digit, and not contain ".."';
const STREAM_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const isValidStreamId = (s: string): boolean => STREAM_ID_RE.test(s) && !s.includes('..');

/** Bounds for ?fps=N of a file: source (a clip looped at real-time pace; engine/file-source.ts reads it). */
export const FILE_FPS_MIN = 1;
export const FILE_FPS_MAX = 240;
export const FILE_URL_RULE =
  `must be an absolute file URL (file:///abs/clip.h264), optionally with ?fps=N (N from ${FILE_FPS_MIN} to ${FILE_FPS_MAX}, e.g. 25 or 29.97) and &codec=h264|h265`;
export const RTSP_URL_RULE = 'must be an rtsp:// or rtsps:// URL with a host';

export interface FileSource {
  /** Absolute filesystem path, percent-decoded. */
  path: string;
  /** Pace override from ?fps=N; undefined = the file's own timing. */
  fps: number | undefined;
  /** From &codec=; undefined = guessed from the extension or the bytes (engine/file-source.ts). */
  codec: 'h264' | 'h265' | undefined;
}

/** Parses a `file:` stream source; null when it breaks FILE_URL_RULE. */
export function parseFileSourceUrl(s: string): FileSource | null {
  // Only file:///abs: the WHATWG parser would also accept file:rel and file://host/x.
  if (!s.startsWith('file:///') || s.includes('#')) return null;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return null;
  }
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return null;
  }
  if (path.includes('\0') || path === '/' || path.endsWith('/')) return null;
  let fps: number | undefined;
  let codec: FileSource['codec'];
  for (const [k, v] of url.searchParams) {
    if (k === 'fps' && fps === undefined && /^\d{1,3}(\.\d{1,3})?$/.test(v)) {
      fps = Number(v);
      if (fps < FILE_FPS_MIN || fps > FILE_FPS_MAX) return null;
    } else if (k === 'codec' && codec === undefined && (v === 'h264' || v === 'h265')) {
      codec = v;
    } else {
      return null; // unknown, repeated or malformed parameter
    }
  }
  return { path, fps, codec };
}

function isRtspUrl(s: string): boolean {
  if (!/^rtsps?:\/\//i.test(s)) return false;
  try {
    return new URL(s).hostname.length > 0;
  } catch {
    return false;
  }
}

const StreamSchema = z
  .strictObject(
    {
      stream_id: z.string({ error: STREAM_ID_RULE }).refine(isValidStreamId, { error: STREAM_ID_RULE }),
      protocol: z.enum(STREAM_PROTOCOLS, { error: `must be one of ${STREAM_PROTOCOLS.join(', ')}` }),
      source_url: z.string({ error: 'must be a string' }).optional(),
      record: bool(true),
      publish_key: z.string({ error: 'must be a string' }).optional(),
    },
    { error: 'must be a table' },
  )
  .superRefine((s, ctx) => {
    // Runs only when the fields above are valid (zod skips refinements of a failed object).
    if (s.protocol !== 'file' && s.protocol !== 'rtsp') return;
    const rule = s.protocol === 'file' ? FILE_URL_RULE : RTSP_URL_RULE;
    if (s.source_url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['source_url'], message: `required for protocol "${s.protocol}": ${rule}` });
    } else if (s.protocol === 'file' ? parseFileSourceUrl(s.source_url) === null : !isRtspUrl(s.source_url)) {
      ctx.addIssue({ code: 'custom', path: ['source_url'], message: rule });
    }
  });

// ---- the whole file ----

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** Caps with a reason: each bounds memory or threads a typo could blow up. */
export const ConfigSchema = z.strictObject(
  {
    http: table({
      port: intIn(1, 65535, 8080),
      host: nonEmpty('0.0.0.0'),
      token: str(''), // "" = no auth
    }),
    log: table({
      level: oneOf(LOG_LEVELS, 'info'),
    }),
    // RTMP publish server (engine/rtmp-server.ts); on/off is [video.protocols] rtmp.
    rtmp: table({
      port: intIn(1, 65535, 1935),
      host: nonEmpty('0.0.0.0'),
      publish_key: str(''), // "" = none; a stream's own publish_key wins
      allow_any: bool(false), // accept publishes to stream ids not configured
    }),
    // RTSP client (engine/rtsp-source.ts): local ports for RTP over UDP (RTP even, RTCP odd).
    rtsp: table({
      udp_port_min: intIn(1024, 65534, 20000),
      udp_port_max: intIn(1025, 65535, 39999),
      // RTP over TCP nobody watches live is read on a timer this often (engine/socket-poller.ts); 0 = as it arrives
      read_interval_ms: intIn(0, 1000, 100),
    }),
    video: table({
      storage: table({
        mode: oneOf(['standalone', 'distributed'], 'standalone'),
        base_path: fsPath('./data', false),
        index_path: fsPath('', true), // "" = <base_path>/index
        retention_days: positive(30, 36500),
        segment_duration: intIn(1, 3600, 60), // seconds
        fragment_duration_ms: intIn(100, 10000, 1000),
        performance: table({
          worker_count: intIn(0, 64, 0), // 0 = one per CPU core less one (the main thread's), at least 1
          queue_size: intIn(1, 65536, 256),
          buffer_pool_size: intIn(1, 4096, 64),
          buffer_size_mb: intIn(1, 256, 4),
          batch_size: intIn(1, 4096, 32),
          batch_interval_ms: intIn(1, 10000, 100),
          use_direct_io: bool(true),
          use_io_uring: bool(true),
          write_alignment: z
            .int({ error: 'must be a power of two from 512 to 1048576' })
            .refine((n) => isPowerOfTwo(n) && n >= 512 && n <= 1 << 20, { error: 'must be a power of two from 512 to 1048576' })
            .default(4096),
          max_memory_mb: intIn(16, 1 << 20, 256),
          index_cache_size: intIn(0, 10_000_000, 10000),
          ring_size_mb: intIn(1, 256, 8), // each worker's input ring
          preallocate_mb: intIn(0, 1024, 4), // segment file space reserved ahead of the writes (native writer)
          gc_budget_mb: intIn(0, 1024, 4), // ingest MiB between two collection requests (engine/gc-pacer.ts); 0 = off
        }),
        distributed: table({
          node_id: str(''),
          bind_address: hostPort('0.0.0.0:7100'),
          api_address: str(''),
          zone: str(''),
          capacity_gb: z
            .number({ error: 'must be a number from 0 to 1000000' })
            .min(0, { error: 'must be a number from 0 to 1000000' })
            .max(1_000_000, { error: 'must be a number from 0 to 1000000' })
            .default(0),
          seeds: z
            .array(z.string({ error: 'must be a string' }).min(1, { error: 'must be a non-empty string' }), {
              error: 'must be an array of strings',
            })
            .max(256, { error: 'must have at most 256 entries' })
            .default([]),
          replication_factor: intIn(1, 16, 1),
        }),
      }),
      keyframe: table({
        enabled: bool(true),
        interval_seconds: positive(10, 86400),
        retention_days: positive(90, 36500),
      }),
      gb28181: table({
        enabled: bool(false),
        local_ip: nonEmpty('0.0.0.0'),
        local_port: intIn(1, 65535, 5060),
        domain: digits(10, '3402000000'), // GB/T 28181 §J: the 10-digit SIP domain
        device_id: digits(20, '34020000002000000001'), // 20-digit platform id
        password: str(''),
        // Per-device REGISTER passwords (device id -> password); a device not listed uses `password`.
        passwords: z
          .record(z.string().regex(/^[0-9A-Za-z]{1,32}$/), z.string({ error: 'must be a string' }), {
            error: 'must be a table of device id = "password" (ids of letters and digits, up to 32)',
          })
          .default({}),
        realm: str(''), // digest realm; "" = domain
        media_ip: str(''), // address put in INVITE SDP for devices to send media to; "" = local_ip, or the first non-loopback IPv4 when local_ip is 0.0.0.0
        keepalive_interval: intIn(1, 3600, 60), // seconds between a device's Keepalive MESSAGEs (GB/T 28181 default 60)
        keepalive_timeout_count: intIn(1, 100, 3), // missed keepalives before a device goes offline
        register_expires_min: intIn(1, 86400, 60), // a REGISTER asking less gets 423 Interval Too Brief
        register_expires_max: intIn(60, 604800, 7200), // a REGISTER asking more is granted this
        nonce_lifetime: intIn(5, 86400, 300), // seconds a digest nonce is valid; older ones get stale=true
        query_timeout_ms: intIn(200, 120000, 10000), // how long to wait for a device's answer (Catalog parts, RecordInfo, INVITE)
        // Local ports for GB28181 media (engine/gb28181-media.ts): one per live session, UDP or
        // a TCP passive listener; 1000 ports = 1000 concurrent channels.
        rtp_port_min: intIn(1024, 65535, 30000),
        rtp_port_max: intIn(1024, 65535, 30999),
      }).refine((g) => g.rtp_port_min <= g.rtp_port_max, { error: 'must be at least rtp_port_min', path: ['rtp_port_max'] })
        .refine((g) => g.register_expires_min <= g.register_expires_max, { error: 'must be at least register_expires_min', path: ['register_expires_max'] }),
      protocols: table({
        rtsp: bool(true),
        rtmp: bool(true),
        gb28181: bool(false),
        webrtc: bool(false),
      }),
      demo: table({
        enabled: bool(true), // a demo camera when no streams are configured
      }),
      streams: z.array(StreamSchema, { error: 'must be an array of tables ([[video.streams]])' }).max(4096, {
        error: 'must have at most 4096 entries', // far above a node's 100+ cameras
      }).default([]),
    }),
  },
  { error: 'must be a table' },
);

export type Config = z.infer<typeof ConfigSchema>;
export type StreamConfig = Config['video']['streams'][number];
