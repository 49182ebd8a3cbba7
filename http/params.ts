// Request parameter parsing shared by the routes: stream ids, times (Unix ms or ISO 8601),
// time ranges with defaults and caps, playback speed, and bounded JSON bodies.
import type { Context } from 'hono';
import { isValidStreamId, STREAM_ID_RULE } from '../engine/config-schema.ts';
import { badRequest, HttpError } from './errors.ts';

/** A stream definition is a few hundred bytes; 16 KiB bounds what a client can make us buffer. */
export const MAX_JSON_BODY_BYTES = 16 << 10;
/** Times after 2200 are typos (a digit too many); 0 is a valid "from the beginning". */
const MIN_TIME_MS = 0;
const MAX_TIME_MS = 7_258_118_400_000;

/** The `:id` path parameter, checked by the same rule as config.toml (no '/', '..' or control characters). */
export function streamIdParam(c: Context, name = 'id'): string {
  const id = c.req.param(name) ?? '';
  if (!isValidStreamId(id)) throw badRequest('stream_id', `stream_id ${STREAM_ID_RULE}`);
  return id;
}

/** Unix ms (digits) or an ISO 8601 date-time with a zone ("2024-05-01T12:00:00Z"); undefined when absent. */
export function timeParam(c: Context, field: string): number | undefined {
  const v = c.req.query(field);
  if (v === undefined || v === '') return undefined;
  let ms: number;
  if (/^\d{1,16}$/.test(v)) ms = Number(v);
  else if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) ms = Date.parse(v);
  else ms = Number.NaN;
  if (!Number.isFinite(ms) || ms < MIN_TIME_MS || ms > MAX_TIME_MS) {
    throw badRequest(field, `${field} must be Unix milliseconds or an ISO 8601 time (2024-05-01T12:00:00Z), before 2200`);
  }
  return Math.floor(ms);
}

export interface RangeRule {
  /** Length of the range when `start` is absent (ending at `end`, which defaults to now). */
  defaultSpanMs: number;
  maxSpanMs: number;
  /** `start` must be given (playback, export). */
  requireStart?: boolean;
  /** `end` must be given. */
  requireEnd?: boolean;
  /** Without `end`, the range runs to now even when `start` is given (else start + defaultSpanMs, at most now). */
  endsNow?: boolean;
}

/** `?start=&end=` with defaults and a cap on the span: [start, end) in Unix ms. */
export function rangeParams(c: Context, rule: RangeRule, nowMs = Date.now()): { start: number; end: number } {
  const s = timeParam(c, 'start');
  const e = timeParam(c, 'end');
  if (s === undefined && rule.requireStart) throw badRequest('start', 'start is required (Unix ms or ISO 8601)');
  if (e === undefined && rule.requireEnd) throw badRequest('end', 'end is required (Unix ms or ISO 8601)');
  const end = e ?? (s !== undefined && !rule.endsNow ? Math.min(nowMs, s + rule.defaultSpanMs) : nowMs);
  const start = s ?? end - rule.defaultSpanMs;
  if (end <= start) throw badRequest('end', 'end must be after start');
  if (end - start > rule.maxSpanMs) {
    throw badRequest('end', `the range is ${fmtSpan(end - start)}; at most ${fmtSpan(rule.maxSpanMs)} per request`);
  }
  return { start, end };
}

function fmtSpan(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${(ms / 1000).toFixed(0)} s`;
}

/** A number query parameter within [lo, hi]; `def` when absent. */
export function numberParam(c: Context, field: string, lo: number, hi: number, def: number): number {
  const v = c.req.query(field);
  if (v === undefined || v === '') return def;
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= lo && n <= hi)) throw badRequest(field, `${field} must be a number from ${lo} to ${hi}`);
  return n;
}

/** The request body as JSON, read with a byte cap (never trusting Content-Length alone). */
export async function jsonBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'send the body as Content-Type: application/json');
  const body = c.req.raw.body;
  if (body === null) throw badRequest('', 'the body is empty; send a JSON object');
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > MAX_JSON_BODY_BYTES) throw new HttpError(413, `the body is larger than ${MAX_JSON_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw badRequest('', `malformed JSON: ${(e as Error).message}`);
  }
}
