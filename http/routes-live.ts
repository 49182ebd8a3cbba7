// WebSocket live preview: GET /api/video/streams/{id}/live upgrades to a socket that
// receives a JSON `init` message (MSE codec strings), the init segment, then one fMP4
// fragment per frame from a keyframe on (engine/live.ts decides what each viewer gets).
import { upgradeWebSocket } from 'hono/bun';
import type { RouteModule } from './app.ts';
import { streamIdParam } from './params.ts';
import type { Viewer, ViewerSocket } from '../engine/live.ts';
import type { StreamHandle } from '../engine/media-pool.ts';

export const liveRoutes: RouteModule = (app, { engine }) => {
  app.get(
    '/api/video/streams/:id/live',
    (c, next) => {
      const id = streamIdParam(c);
      const e = engine.streams.get(id);
      if (e === undefined) return c.json({ error: `no stream ${id}`, field: 'stream_id' }, 404);
      if (e.handle === null) return c.json({ error: `stream ${id} is ${e.state}${e.error ? `: ${e.error}` : ''}` }, 409);
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return c.json({ error: 'this is a WebSocket endpoint' }, 426);
      return next();
    },
    upgradeWebSocket((c) => {
      const id = c.req.param('id')!;
      let handle: StreamHandle | null = null;
      let viewer: Viewer | null = null;
      return {
        onOpen(_evt, ws) {
          handle = engine.streams.get(id)?.handle ?? null;
          if (handle === null) return ws.close(1011, 'stream stopped');
          viewer = engine.live.attach(handle, ws.raw as ViewerSocket);
          if (viewer === null) ws.close(1013, 'too many viewers for this stream');
        },
        onClose() {
          if (handle !== null && viewer !== null) engine.live.detach(handle, viewer);
          viewer = null;
        },
      };
    }),
  );
};
