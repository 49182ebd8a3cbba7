// RTMP ingest: the engine's side of engine/rtmp-server.ts. A publish to a configured
// `protocol = "rtmp"` stream (or any id with [rtmp] allow_any) becomes a media-worker stream
// fed with FLV tags; unpublishing closes its segment and the stream waits for the next one.
import type { Engine } from './engine.ts';
import { log } from './log.ts';
import type { StreamHandle } from './media-pool.ts';
import { decidePublish, RtmpServer, type RtmpAuthorizeResult, type RtmpPublishTarget } from './rtmp-server.ts';
import { FLAG_KEYFRAME, KIND_FLV_TAG } from '../workers/ring-format.ts';

export function startRtmpIngest(engine: Engine): RtmpServer {
  const cfg = engine.config.rtmp;
  /** Removals still closing a stream's previous segment: a quick re-publish waits for them. */
  const closing = new Map<string, Promise<void>>();

  // Unknown id unless allow_any, non-RTMP stream, wrong key (a stream's own key wins, even
  // ""; constant-time compare). A second publisher is refused by the server itself.
  const authorize = (streamId: string, query: URLSearchParams): RtmpAuthorizeResult =>
    decidePublish(streamId, query, { publishKey: cfg.publish_key, allowAny: cfg.allow_any }, engine.streams.get(streamId)?.config);

  const onPublish = async (streamId: string, info: { remote: string; app: string }): Promise<RtmpPublishTarget> => {
    await closing.get(streamId);
    let e = engine.streams.get(streamId);
    if (e === undefined) e = await engine.addStream({ stream_id: streamId, protocol: 'rtmp', record: true }, 'api');
    const entry = e;
    const wallBaseMs = Date.now();
    const h: StreamHandle = await engine.pool.addStream({
      streamId,
      input: { kind: 'flv' },
      record: e.config.record,
      wallBaseMs,
      firstSegmentNumber: engine.nextSegmentNumber(streamId),
      bitrateHint: 500_000,
      keyframeIntervalMs: engine.keyframeIntervalMs,
    });
    e.handle = h;
    e.state = 'live';
    e.error = null;
    log.info(`stream ${streamId}: publishing over RTMP from ${info.remote} (app ${info.app})`);
    const parts: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)]; // reused per tag
    return {
      writeTag(header, body, keyframe) {
        if (entry.handle !== h) return false; // the stream was removed meanwhile
        parts[0] = header;
        parts[1] = body;
        return h.writeParts(KIND_FLV_TAG, keyframe ? FLAG_KEYFRAME : 0, (Date.now() - wallBaseMs) >>> 0, parts);
      },
    };
  };

  const onUnpublish = (streamId: string, reason: string): void => {
    const e = engine.streams.get(streamId);
    if (e === undefined || e.handle === null) return;
    const h = e.handle;
    e.handle = null;
    e.state = 'connecting'; // waiting for the next publish
    engine.live.closeStream(streamId);
    log.info(`stream ${streamId}: publisher left (${reason}); the segment is closed`);
    const done = engine.pool
      .removeStream(h)
      .catch((err: Error) => log.warn(`stream ${streamId}: ${err.message}`))
      .finally(() => closing.delete(streamId));
    closing.set(streamId, done);
  };

  return RtmpServer.start({ host: cfg.host, port: cfg.port, authorize, onPublish, onUnpublish });
}
