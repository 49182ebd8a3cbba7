// GB28181 routes: devices and channels with status, live and playback sessions (INVITE/BYE),
// playback control (INFO + MANSRTSP), PTZ (DeviceControl) and the device's record list (RecordInfo).
import type { Context, Hono } from 'hono';
import type { AppContext } from './app.ts';
import { badRequest, HttpError, notFound } from './errors.ts';
import { jsonBody, rangeParams } from './params.ts';
import type { Engine } from '../engine/engine.ts';
import type { GbPlatform } from '../engine/gb28181-platform.ts';
import type { GbDevice } from '../engine/gb28181-registry.ts';
import { GbError, liveStreamId, localOffsetMin } from '../engine/gb28181-common.ts';
import { parseGbTime } from '../protocols/gb28181/time.ts';
import type { GbSession } from '../engine/gb28181-sessions.ts';
import { PTZ_COMMANDS, type PtzCommand } from '../protocols/gb28181/ptz.ts';
import { MANSRTSP_SCALES, type MansrtspCommand } from '../protocols/gb28181/mansrtsp.ts';
import { MAX_DOWNLOAD_SPEED } from '../protocols/gb28181/invite.ts';

const ID_RE = /^[0-9A-Za-z]{1,32}$/;
const BASE = '/api/video/gb28181/devices';
/** Record queries: a device searches its own disk; a day is what NVR UIs ask for, a month the most. */
const MAX_RECORD_SPAN_MS = 31 * 86_400_000;

const STATUS: Record<GbError['code'], 400 | 404 | 409 | 502 | 503 | 504> = {
  'not-found': 404, offline: 409, timeout: 504, refused: 502, busy: 503, invalid: 502,
};

function platform(engine: Engine): GbPlatform {
  if (engine.gb28181 === null) throw new HttpError(503, 'GB28181 is not enabled ([video.gb28181] enabled = true or [video.protocols] gb28181 = true)');
  return engine.gb28181;
}

function idParam(c: Context, name: string): string {
  const v = c.req.param(name) ?? '';
  if (!ID_RE.test(v)) throw badRequest(name, `${name} must be 1-32 letters or digits (GB28181 ids are 20 digits)`);
  return v;
}

/** GbError to its HTTP status; anything else rethrown to the app's handler. */
async function gb<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof GbError) throw new HttpError(STATUS[e.code], e.message);
    throw e;
  }
}

function deviceJson(d: GbDevice, p: GbPlatform) {
  return {
    device_id: d.device_id, name: d.name, manufacturer: d.manufacturer, model: d.model, firmware: d.firmware,
    status: d.online ? 'online' : 'offline', transport: d.transport, address: `${d.host}:${d.port}`,
    registered_ms: d.registered_ms, last_seen_ms: d.last_seen_ms, catalog_pending: d.catalogPending,
    channels: [...d.channels.values()].map((ch) => ({
      channel_id: ch.channel_id, name: ch.name, manufacturer: ch.manufacturer, model: ch.model, status: ch.status, parent_id: ch.parent_id, address: ch.address,
      live_stream_id: p.sessions.sessions.has(liveStreamId(d.device_id, ch.channel_id)) ? liveStreamId(d.device_id, ch.channel_id) : null,
    })),
  };
}

const sessionJson = (s: GbSession) => ({
  stream_id: s.streamId, device_id: s.deviceId, channel_id: s.channelId, kind: s.kind, transport: s.transport, ssrc: s.ssrc,
  ...(s.startMs !== undefined ? { start_ms: s.startMs, end_ms: s.endMs } : {}),
});

function transportOf(v: unknown, field: string): 'udp' | 'tcp' {
  if (v === undefined || v === null || v === '') return 'udp';
  if (v === 'udp' || v === 'tcp') return v;
  throw badRequest(field, `${field} must be udp or tcp`);
}

function bodyTime(v: unknown, field: string): number {
  let ms = Number.NaN;
  if (typeof v === 'number') ms = v;
  else if (typeof v === 'string' && /^\d{1,16}$/.test(v)) ms = Number(v);
  else if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.test(v)) ms = Date.parse(v);
  if (!Number.isSafeInteger(ms) || ms < 0) throw badRequest(field, `${field} must be Unix milliseconds or an ISO 8601 time with a zone`);
  return ms;
}

async function objectBody(c: Context): Promise<Record<string, unknown>> {
  const b = await jsonBody(c);
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw badRequest('', 'the body must be a JSON object');
  return b as Record<string, unknown>;
}

export function gb28181Routes(app: Hono, { engine }: AppContext): void {
  app.get(BASE, (c) => {
    const p = platform(engine);
    return c.json({
      devices: [...p.server.registry.devices.values()].map((d) => deviceJson(d, p)),
      sessions: [...p.sessions.sessions.values()].map(sessionJson),
      counters: p.server.allCounters,
    });
  });

  app.get(`${BASE}/:device_id`, (c) => {
    const p = platform(engine);
    const id = idParam(c, 'device_id');
    const d = p.server.registry.get(id);
    if (d === undefined) throw notFound(`no GB28181 device ${id}`);
    return c.json(deviceJson(d, p));
  });

  app.get(`${BASE}/:device_id/status`, async (c) => {
    const p = platform(engine);
    const id = idParam(c, 'device_id');
    const st = await gb(() => p.server.queryDeviceStatus(id));
    return c.json({ device_id: id, result: st.result, online: st.online, status: st.status, record: st.record, encode: st.encode, device_time: st.deviceTime });
  });

  app.post(`${BASE}/:device_id/catalog`, async (c) => {
    const p = platform(engine);
    const id = idParam(c, 'device_id');
    return c.json(await gb(() => p.server.queryCatalog(id)));
  });

  const channel = (c: Context, p: GbPlatform) => {
    const deviceId = idParam(c, 'device_id');
    const channelId = idParam(c, 'channel_id');
    const d = p.server.registry.get(deviceId);
    if (d === undefined) throw notFound(`no GB28181 device ${deviceId}`);
    if (!d.channels.has(channelId) && channelId !== deviceId) throw notFound(`device ${deviceId} has no channel ${channelId}`);
    return { deviceId, channelId };
  };

  app.post(`${BASE}/:device_id/channels/:channel_id/live`, async (c) => {
    const p = platform(engine);
    const { deviceId, channelId } = channel(c, p);
    const transport = transportOf(c.req.query('transport'), 'transport');
    const s = await gb(() => p.sessions.startLive(deviceId, channelId, transport));
    return c.json(sessionJson(s), 201);
  });

  app.delete(`${BASE}/:device_id/channels/:channel_id/live`, async (c) => {
    const p = platform(engine);
    const { deviceId, channelId } = channel(c, p);
    const ok = await p.sessions.stop(liveStreamId(deviceId, channelId), 'stopped over the API');
    if (!ok) throw notFound(`channel ${channelId} has no live session`);
    return c.body(null, 204);
  });

  app.post(`${BASE}/:device_id/playback`, async (c) => {
    const p = platform(engine);
    const deviceId = idParam(c, 'device_id');
    const b = await objectBody(c);
    if (typeof b.channel_id !== 'string' || !ID_RE.test(b.channel_id)) throw badRequest('channel_id', 'channel_id must be 1-32 letters or digits');
    const start = bodyTime(b.start_time, 'start_time');
    const end = bodyTime(b.end_time, 'end_time');
    if (end <= start) throw badRequest('end_time', 'end_time must be after start_time');
    const transport = transportOf(b.transport, 'transport');
    let downloadSpeed: number | undefined;
    if (b.download_speed !== undefined) {
      if (typeof b.download_speed !== 'number' || !Number.isInteger(b.download_speed) || b.download_speed < 1 || b.download_speed > MAX_DOWNLOAD_SPEED) {
        throw badRequest('download_speed', `download_speed must be an integer from 1 to ${MAX_DOWNLOAD_SPEED}`);
      }
      downloadSpeed = b.download_speed;
    }
    const d = p.server.registry.get(deviceId);
    if (d === undefined) throw notFound(`no GB28181 device ${deviceId}`);
    if (!d.channels.has(b.channel_id) && b.channel_id !== deviceId) throw notFound(`device ${deviceId} has no channel ${b.channel_id}`);
    const s = await gb(() => p.sessions.startPlayback(deviceId, b.channel_id as string, transport, start, end, downloadSpeed));
    return c.json(sessionJson(s), 201);
  });

  app.post(`${BASE}/:device_id/playback/:stream_id/control`, async (c) => {
    const p = platform(engine);
    idParam(c, 'device_id');
    const streamId = c.req.param('stream_id') ?? '';
    const b = await objectBody(c);
    let cmd: MansrtspCommand;
    const scale = b.scale;
    if (scale !== undefined && !MANSRTSP_SCALES.includes(scale as never)) throw badRequest('scale', `scale must be one of ${MANSRTSP_SCALES.join(', ')}`);
    const range = b.range;
    if (range !== undefined && !(typeof range === 'number' && Number.isFinite(range) && range >= 0)) throw badRequest('range', 'range must be seconds from the start of the playback (>= 0)');
    if (b.action === 'pause') cmd = { action: 'pause' };
    else if (b.action === 'play') cmd = { action: 'play', scale: scale as number | undefined, rangeSeconds: range as number | undefined };
    else if (b.action === 'seek') {
      if (range === undefined) throw badRequest('range', 'seek needs range (seconds from the start)');
      cmd = { action: 'seek', rangeSeconds: range as number, scale: scale as number | undefined };
    } else throw badRequest('action', 'action must be play, pause or seek');
    await gb(() => p.sessions.control(streamId, cmd));
    return c.json({ stream_id: streamId, action: cmd.action });
  });

  app.delete(`${BASE}/:device_id/playback/:stream_id`, async (c) => {
    const p = platform(engine);
    idParam(c, 'device_id');
    const streamId = c.req.param('stream_id') ?? '';
    const s = p.sessions.sessions.get(streamId);
    if (s === undefined || s.kind === 'live') throw notFound(`no playback session ${streamId}`);
    await p.sessions.stop(streamId, 'stopped over the API');
    return c.body(null, 204);
  });

  app.post(`${BASE}/:device_id/ptz`, async (c) => {
    const p = platform(engine);
    const deviceId = idParam(c, 'device_id');
    const b = await objectBody(c);
    const channelId = b.channel_id === undefined ? deviceId : b.channel_id;
    if (typeof channelId !== 'string' || !ID_RE.test(channelId)) throw badRequest('channel_id', 'channel_id must be 1-32 letters or digits');
    if (!PTZ_COMMANDS.includes(b.command as PtzCommand)) throw badRequest('command', `command must be one of ${PTZ_COMMANDS.join(', ')}`);
    const command = b.command as PtzCommand;
    const speed = b.speed ?? 128;
    if (typeof speed !== 'number' || !Number.isInteger(speed) || speed < 0 || speed > 255) throw badRequest('speed', 'speed must be an integer from 0 to 255');
    let preset: number | undefined;
    if (command.startsWith('preset_')) {
      if (typeof b.preset !== 'number' || !Number.isInteger(b.preset) || b.preset < 1 || b.preset > 255) throw badRequest('preset', 'preset must be an integer from 1 to 255');
      preset = b.preset;
    }
    const d = p.server.registry.get(deviceId);
    if (d === undefined) throw notFound(`no GB28181 device ${deviceId}`);
    if (!d.channels.has(channelId) && channelId !== deviceId) throw notFound(`device ${deviceId} has no channel ${channelId}`);
    await gb(() => p.server.ptz(deviceId, channelId, { command, speed, preset }));
    return c.json({ device_id: deviceId, channel_id: channelId, command, speed, ...(preset !== undefined ? { preset } : {}) });
  });

  app.get(`${BASE}/:device_id/records`, async (c) => {
    const p = platform(engine);
    const deviceId = idParam(c, 'device_id');
    const channelId = c.req.query('channel_id') ?? deviceId;
    if (!ID_RE.test(channelId)) throw badRequest('channel_id', 'channel_id must be 1-32 letters or digits');
    const { start, end } = rangeParams(c, { defaultSpanMs: 86_400_000, maxSpanMs: MAX_RECORD_SPAN_MS });
    const d = p.server.registry.get(deviceId);
    if (d === undefined) throw notFound(`no GB28181 device ${deviceId}`);
    if (!d.channels.has(channelId) && channelId !== deviceId) throw notFound(`device ${deviceId} has no channel ${channelId}`);
    const r = await gb(() => p.server.queryRecords(deviceId, channelId, start, end));
    return c.json({
      device_id: deviceId, channel_id: channelId, complete: r.complete,
      records: r.records.map((x) => ({
        name: x.name, file_path: x.filePath, address: x.address, start_time: x.startTime, end_time: x.endTime,
        // The device's local times read in the engine's zone (see localOffsetMin); null when unreadable.
        start_ms: parseGbTime(x.startTime, localOffsetMin(start)), end_ms: parseGbTime(x.endTime, localOffsetMin(start)), type: x.type, secrecy: x.secrecy,
      })),
    });
  });
}
