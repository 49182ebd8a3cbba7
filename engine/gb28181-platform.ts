// The GB28181 platform as the engine holds it: the SIP server and the media sessions,
// started when `[video.gb28181] enabled` or `[video.protocols] gb28181` is true.
import type { Engine } from './engine.ts';
import { log } from './log.ts';
import { Gb28181Server } from './gb28181-server.ts';
import { GbSessions, type GbMediaLike } from './gb28181-sessions.ts';

/** How often sessions are checked against the engine's streams. */
const REAP_INTERVAL_MS = 1000;

export interface GbPlatform {
  server: Gb28181Server;
  sessions: GbSessions;
  stop(): Promise<void>;
}

/** Started by Engine.start when [video.gb28181] enabled or [video.protocols] gb28181 is true. */
export async function startGb28181(engine: Engine): Promise<GbPlatform> {
  const server = await Gb28181Server.start(engine.config.video.gb28181, engine.index);
  const media: GbMediaLike = engine.gbMedia;
  const sessions = new GbSessions(server, () => media);
  const known = server.registry.devices.size;
  log.info(`GB28181 platform ${engine.config.video.gb28181.device_id} on ${engine.config.video.gb28181.local_ip}:${server.port} (UDP+TCP), media address ${server.localAddress}, ${known} known devices (offline until they register)`);
  // A GB stream removed outside this module (the streams API) still has a dialog: end it.
  const reaper = setInterval(() => sessions.reap((id) => engine.streams.has(id)), REAP_INTERVAL_MS);
  let stopping: Promise<void> | null = null;
  return {
    server,
    sessions,
    stop() {
      stopping ??= (async () => {
        clearInterval(reaper);
        await sessions.stopAll('engine stopping').catch(() => {});
        server.stop();
      })();
      return stopping;
    },
  };
}
