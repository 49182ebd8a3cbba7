/// <reference lib="dom" />
// The UI's view of the engine API: the token (kept in sessionStorage, or localStorage when
// remembered), JSON calls with `Authorization: Bearer`, and media/WebSocket URLs with `?token=`.

const KEY = 'flux.token';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

export function getToken(): string {
  return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY) ?? '';
}

export function setToken(token: string, remember: boolean): void {
  clearToken();
  (remember ? localStorage : sessionStorage).setItem(KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** Called on any 401: the router shows the login page (set by main.ts). */
let unauthorized: () => void = () => {};
export function onUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

function authHeaders(token = getToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorOf(r: Response): Promise<ApiError> {
  let msg = `${r.status} ${r.statusText}`;
  let field: string | undefined;
  try {
    const j = (await r.json()) as { error?: string; field?: string };
    if (j.error) msg = j.error;
    field = j.field;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(r.status, msg, field);
}

/** A raw fetch of an API path with the token; 401 sends the operator to the login page. */
export async function apiFetch(path: string, init: RequestInit = {}, token?: string): Promise<Response> {
  const r = await fetch(path, { ...init, headers: { ...authHeaders(token), ...(init.headers as Record<string, string> | undefined) } });
  if (r.status === 401 && token === undefined) unauthorized();
  return r;
}

/** JSON call: resolves with the body, rejects with ApiError (the engine's `error` text). */
export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const { json, ...rest } = init;
  if (json !== undefined) {
    rest.body = JSON.stringify(json);
    rest.headers = { 'Content-Type': 'application/json', ...(rest.headers as Record<string, string> | undefined) };
  }
  const r = await apiFetch(path, rest);
  if (!r.ok) throw await errorOf(r);
  if (r.status === 204) return undefined as T;
  return (await r.json()) as T;
}

/** Checks a token against the API without storing it: true when accepted. */
export async function tryToken(token: string): Promise<boolean> {
  const r = await apiFetch('/api/video/streams', {}, token);
  return r.ok;
}

/** A URL for <img>, <video>, hls.js or a download: the token rides in the query (GET only). */
export function mediaUrl(path: string): string {
  const t = getToken();
  if (!t) return path;
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}`;
}

export function wsUrl(path: string): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${mediaUrl(path)}`;
}

// Shapes of the engine's answers (http/routes-*.ts).
export interface StreamCounters {
  bytes_in: number;
  frames: number;
  dropped_frames: number;
  ring_drops: number;
  lost_packets: number;
  preview_drops: number;
  bitrate_bps: number;
}
export type StreamState = 'connecting' | 'live' | 'retrying' | 'stopped';
export interface StreamView {
  stream_id: string;
  protocol: string;
  source_url: string | null;
  record: boolean;
  origin: 'config' | 'api';
  state: StreamState;
  error: string | null;
  reconnects: number;
  counters: StreamCounters | null;
  viewers?: number;
  fps?: number;
}
export interface Segment {
  start_ms: number;
  end_ms: number;
  bytes: number;
  state: string;
  width: number;
  height: number;
  codecs: string;
}
export interface Gap {
  start_ms: number;
  end_ms: number;
}
export interface Recordings {
  stream_id: string;
  start: number;
  end: number;
  segments: Segment[];
  gaps: Gap[];
  truncated: boolean;
  next_start?: number;
}

export const enc = encodeURIComponent;
