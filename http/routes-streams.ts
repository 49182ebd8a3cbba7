// Stream routes: create (persisted in the index, restored at start-up), list, get, delete.
// Streams from config.toml are listed with origin "config" and cannot be deleted over the API.
import type { Hono } from 'hono';
import type { StreamEntry } from '../engine/engine.ts';
import type { StreamRecord } from '../engine/index-db.ts';
import { validateStream } from '../engine/stream-validate.ts';
import type { AppContext } from './app.ts';
import { badRequest, conflict, notFound } from './errors.ts';
import { jsonBody, streamIdParam } from './params.ts';

/** Streams a node runs: config.toml allows 4096; the API stops at the same number. */
const MAX_STREAMS = 4096;

export function streamView(e: StreamEntry) {
  const c = e.handle?.counters;
  return {
    stream_id: e.config.stream_id,
    protocol: e.config.protocol,
    source_url: e.config.source_url ?? null,
    record: e.config.record,
    origin: e.origin,
    state: e.state,
    error: e.error,
    reconnects: e.reconnects,
    // RTSP over TCP: "polled" while nobody watches live ([rtsp] read_interval_ms), "event" otherwise
    ...(e.rtsp ? { read_mode: e.rtsp.readMode } : {}),
    counters: c
      ? {
          bytes_in: c.bytesIn,
          frames: c.frames,
          dropped_frames: c.droppedFrames,
          ring_drops: c.ringDrops,
          lost_packets: c.lostPackets,
          resyncs: c.resyncs,
          preview_drops: c.previewDrops,
          bitrate_bps: c.bytesPerSec * 8,
        }
      : null,
    ...(e.gbMedia
      ? {
          gb28181_media: {
            port: e.gbMedia.port,
            transport: e.gbMedia.transport,
            ssrc: e.gbMedia.ssrc,
            packets: e.gbMedia.packets,
            bytes: e.gbMedia.bytes,
            ssrc_mismatches: e.gbMedia.ssrcMismatches,
            bad_packets: e.gbMedia.badPackets,
          },
        }
      : {}),
  };
}

export function streamRoutes(app: Hono, { engine, metrics }: AppContext): void {
  /** The view plus what the UI's table shows beside the counters: live viewers and measured fps. */
  const listView = (e: StreamEntry) => ({ ...streamView(e), viewers: engine.live.viewerCount(e.config.stream_id), fps: metrics.fps(e.config.stream_id) });

  app.post('/api/video/streams', async (c) => {
    const body = await jsonBody(c);
    if ((body as { protocol?: unknown } | null)?.protocol === 'gb28181') {
      throw badRequest('protocol', 'GB28181 channels are streamed with POST /api/video/gb28181/devices/{device_id}/channels/{channel_id}/live, not created here');
    }
    const check = validateStream(body, engine.config.video.protocols);
    if (!check.ok) throw badRequest(check.field, check.error);
    const cfg = check.stream;
    const existing = engine.streams.get(cfg.stream_id);
    if (existing !== undefined) {
      throw conflict(`stream ${cfg.stream_id} already exists${existing.origin === 'config' ? ' (defined in config.toml)' : ''}`);
    }
    if (engine.streams.size >= MAX_STREAMS) throw conflict(`this node runs ${MAX_STREAMS} streams already`);
    const rec: StreamRecord = {
      stream_id: cfg.stream_id, protocol: cfg.protocol, source_url: cfg.source_url ?? '', record: cfg.record,
      origin: 'api', created_ms: Date.now(),
    };
    if (cfg.publish_key !== undefined) rec.publish_key = cfg.publish_key;
    // addStream claims the id synchronously, so a concurrent POST of the same id gets 409 (EngineError).
    const started = engine.addStream(cfg, 'api');
    started.catch(() => undefined); // handled below; keeps an early rejection from counting as unhandled
    let entry: StreamEntry;
    try {
      await engine.index.putStream(rec);
      await engine.index.flushed();
      entry = await started;
    } catch (err) {
      await started.catch(() => undefined);
      await engine.removeStream(cfg.stream_id).catch(() => undefined);
      await engine.index.deleteStream(cfg.stream_id).catch(() => undefined);
      throw err;
    }
    c.header('Location', `/api/video/streams/${cfg.stream_id}`);
    return c.json(streamView(entry), 201);
  });

  app.get('/api/video/streams', (c) => c.json({ streams: [...engine.streams.values()].map(listView) }));

  app.get('/api/video/streams/:id', (c) => {
    const id = streamIdParam(c);
    const e = engine.streams.get(id);
    if (e === undefined) throw notFound(`no stream ${id}`);
    const s = engine.index.streamStats(id);
    return c.json({
      ...listView(e),
      recording: { segments: s.count, bytes: s.bytes, first_ms: s.firstStartMs, last_ms: s.lastEndMs },
    });
  });

  app.delete('/api/video/streams/:id', async (c) => {
    const id = streamIdParam(c);
    const e = engine.streams.get(id);
    if (e === undefined) throw notFound(`no stream ${id}`);
    if (e.origin === 'config') throw conflict(`stream ${id} is defined in config.toml; remove it there and restart`);
    await engine.removeStream(id);
    await engine.index.deleteStream(id);
    await engine.index.flushed();
    return c.body(null, 204);
  });
}
