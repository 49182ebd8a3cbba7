// GB28181 devices for the load runner: N simulated devices (bench/gb28181-device.ts), one
// channel each, register with the engine's SIP port; each INVITE the platform sends (the
// runner asks for them over the live route) starts a PS-over-RTP sender (gb28181-ps-sender.ts)
// with the bench's SEI send time. Same stats interface as bench/sim/rtsp-sim.ts.
// Run: bun bench/sim/gb-sim.ts --platform 127.0.0.1:5060 --stats-port 8555 --cameras 100
//      --codec h264 --height 720 --bitrate 4M   (GET /stats, /stop, /close on the stats port)
import type { PsRtpSender } from '../gb28181-ps-sender.ts';
import { SimDevice } from '../gb28181-device.ts';
import { ensureClip, type ClipCodec } from './clips.ts';
import { parseBitrate } from './rtsp-sim.ts';

/** Devices registering at once: a burst of UDP REGISTERs beyond this only meets retransmissions. */
const REGISTER_BATCH = 20;
const FIRST_ID = 34020000001320000001n;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

const codec = arg('codec', 'h264') as ClipCodec;
const clip = await ensureClip({ codec, height: Number(arg('height', '720')) as 720 | 1080, bitrate: parseBitrate(arg('bitrate', '4M')) });
const [host, port] = arg('platform', '127.0.0.1:5060').split(':');
const cameras = Number(arg('cameras', '1'));
const devs = Array.from({ length: cameras }, (_, i) => new SimDevice({
  platformHost: host!, platformPort: Number(port), deviceId: String(FIRST_ID + BigInt(i)), channels: 1, perPart: 1,
  transport: 'udp', clipPath: clip.video, codec, seiStamp: true, keepaliveMs: 30_000,
}));
for (let i = 0; i < devs.length; i += REGISTER_BATCH) {
  const status = await Promise.all(devs.slice(i, i + REGISTER_BATCH).map((d) => d.start().catch(() => 0)));
  const bad = status.findIndex((s) => s !== 200);
  if (bad >= 0) { console.error(`device ${devs[i + bad]!.o.deviceId}: REGISTER answered ${status[bad]}`); process.exit(1); }
}

/** Every sender a device ever had (a re-INVITE makes a new one); frames add up over them. */
const senders = devs.map(() => new Set<PsRtpSender>());
const collect = () => devs.forEach((d, i) => { for (const c of d.calls.values()) if (c.sender !== null) senders[i]!.add(c.sender); });
let sending = true;

const stopAll = async () => { collect(); for (const set of senders) for (const s of set) await s.stop(); };
const statsServer = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(arg('stats-port', '8555')),
  async fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === '/stop') { sending = false; await stopAll(); return Response.json({ ok: true }); }
    if (u.pathname === '/close') { sending = false; await stopAll(); await Promise.all(devs.map((d) => d.stop(false))); return Response.json({ ok: true }); }
    collect();
    let live = 0;
    const cams = devs.map((d, i) => {
      let frames = 0, bytes = 0, skipped = 0;
      for (const s of senders[i]!) { frames += s.framesSent; bytes += s.bytesSent; skipped += s.framesSkipped; }
      if ([...d.calls.values()].some((c) => c.sender !== null && c.sender.framesSent > 0)) live++;
      // The PS sender counts skipped frames without telling back-pressure from its own stalls: all are "skipped".
      return { cam: i + 1, device: d.o.deviceId, channel: d.channelId(0), frames, bytes, preroll: 0, skipped, lagged: 0, sessions: senders[i]!.size };
    });
    const totals = cams.reduce((a, c) => ({ frames: a.frames + c.frames, bytes: a.bytes + c.bytes, skipped: a.skipped + c.skipped, lagged: 0 }), { frames: 0, bytes: 0, skipped: 0, lagged: 0 });
    return Response.json({ sending, playing: live, totals, cameras: cams });
  },
});

console.log(`gb-sim ready: ${cameras} devices registered to ${host}:${port}, 1 channel each; ${clip.codec} ${clip.height}p`);
const bye = async () => { statsServer.stop(true); await stopAll().catch(() => {}); process.exit(0); };
process.on('SIGTERM', () => void bye());
process.on('SIGINT', () => void bye());
