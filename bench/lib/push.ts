// The load runner's push sources: RTMP publishers and GB28181 devices connect to the engine
// (the RTSP simulator is pulled from instead). Engine config for each, and the GB28181 step
// the runner performs itself: asking for every channel's live stream over the HTTP API.
import { join } from 'node:path';

export type Protocol = 'rtsp' | 'rtsp-udp' | 'rtmp' | 'gb28181';
export const isPush = (p: Protocol): boolean => p === 'rtmp' || p === 'gb28181';
/** The key every simulated publisher presents (the engine's per-stream publish_key). */
export const RTMP_KEY = 'bench';
/** Live-route requests in flight at once (each is an INVITE transaction with one device). */
const LIVE_CONCURRENCY = 10;

export interface EnginePorts { http: number; rtmp: number; sip: number; rtpMin: number }

/** RTP ports for N GB28181 sessions plus slack, in a range chosen per process to keep parallel runs apart. */
export function rtpRange(cameras: number): { min: number; max: number } {
  const span = cameras + 20;
  const min = 20_000 + ((process.pid * 7919) % (40_000 - span));
  return { min, max: min + span - 1 };
}

/** Engine config: streams for rtsp (pull URLs) and rtmp (N publish targets), the GB28181 platform for gb28181. */
export function engineToml(o: { protocol: Protocol; cameras: number; keyframes: boolean }, dir: string, p: EnginePorts, urls: string[]): string {
  const lines = [
    '[http]', `port = ${p.http}`, 'host = "127.0.0.1"',
    '[log]', 'level = "warn"',
    '[rtmp]', `port = ${p.rtmp}`, 'host = "127.0.0.1"',
    '[video.storage]', `base_path = "${join(dir, 'data')}"`,
    '[video.keyframe]', `enabled = ${o.keyframes}`,
    '[video.demo]', 'enabled = false',
  ];
  if (o.protocol === 'gb28181') {
    const r = rtpRange(o.cameras);
    lines.push('[video.gb28181]', 'enabled = true', 'local_ip = "127.0.0.1"', `local_port = ${p.sip}`, `rtp_port_min = ${r.min}`, `rtp_port_max = ${r.max}`);
  }
  if (o.protocol === 'rtmp') {
    for (let k = 1; k <= o.cameras; k++) lines.push('[[video.streams]]', `stream_id = "cam${k}"`, 'protocol = "rtmp"', `publish_key = "${RTMP_KEY}"`);
  } else urls.forEach((url, i) => lines.push('[[video.streams]]', `stream_id = "cam${i + 1}"`, 'protocol = "rtsp"', `source_url = "${url}"`));
  return lines.join('\n') + '\n';
}

/** The simulator process for a protocol: script and arguments beyond the shared ones. */
export function simArgs(protocol: Protocol, p: EnginePorts, simPort: number): { script: string; args: string[] } {
  if (protocol === 'rtmp') return { script: 'bench/sim/rtmp-sim.ts', args: ['--target', `127.0.0.1:${p.rtmp}`, '--key', RTMP_KEY] };
  if (protocol === 'gb28181') return { script: 'bench/sim/gb-sim.ts', args: ['--platform', `127.0.0.1:${p.sip}`] };
  return { script: 'bench/sim/rtsp-sim.ts', args: ['--port', `${simPort}`] };
}

export const gbStreamId = (device: string, channel: string): string => `gb_${device}_${channel}`;

/**
 * POSTs the live route for every device's channel (retrying while the engine has not yet
 * heard the device's Catalog); returns the failures, as text.
 */
export async function startGbLive(base: string, cams: { device: string; channel: string }[], transport: 'udp' | 'tcp', timeoutMs: number): Promise<string[]> {
  const errors: string[] = [];
  const end = Date.now() + timeoutMs;
  const one = async (c: { device: string; channel: string }) => {
    let last = '';
    while (Date.now() < end) {
      try {
        const r = await fetch(`${base}/api/video/gb28181/devices/${c.device}/channels/${c.channel}/live?transport=${transport}`, { method: 'POST', signal: AbortSignal.timeout(15_000) });
        if (r.ok) return;
        last = `${r.status} ${(await r.text()).slice(0, 200)}`;
        if (r.status !== 404) break; // 404: the channel is not known yet (Catalog in flight)
      } catch (e) { last = (e as Error).message; }
      await new Promise((res) => setTimeout(res, 200));
    }
    errors.push(`${c.device}/${c.channel}: ${last}`);
  };
  for (let i = 0; i < cams.length; i += LIVE_CONCURRENCY) await Promise.all(cams.slice(i, i + LIVE_CONCURRENCY).map(one));
  return errors;
}
