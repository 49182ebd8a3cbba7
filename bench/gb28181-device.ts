// A GB28181 device simulator (N devices from one process): registers with digest, keeps alive,
// answers Catalog (multi-part), DeviceInfo, DeviceStatus and RecordInfo, answers INVITE and
// sends MPEG-PS over RTP (UDP or TCP) from a clip, obeys BYE, and records the PTZ commands and
// MANSRTSP bodies it received. Importable (tests) and a CLI (bench):
//   bun bench/gb28181-device.ts --platform 127.0.0.1:5060 [--devices 10] [--channels 4]
//     [--password pw] [--transport udp|tcp] [--clip file.h264] [--codec h264|h265] [--keepalive 60]
import type { Socket, udp } from 'bun';
import { buildRequest, buildResponse, newTag, uuidV4 } from '../protocols/sip/build.ts';
import { authorizationFor } from '../protocols/sip/digest.ts';
import { SipStreamFramer } from '../protocols/sip/framer.ts';
import { getHeader, parseNameAddr, parseSipMessage, serializeSipMessage, type SipMessage } from '../protocols/sip/message.ts';
import { catalogParts, gbTime, keepaliveBody, parseGbTime, recordInfoParts } from '../protocols/gb28181/commands.ts';

/** Devices keep local time in MANSCDP (as the platform assumes): this process's zone. */
const local = (ms: number): string => gbTime(ms, -new Date(ms).getTimezoneOffset());
const fromLocal = (s: string): number | null => { const u = parseGbTime(s); return u === null ? null : u + new Date(u).getTimezoneOffset() * 60_000; };
import { decodeManscdp, encodeManscdp, MANSCDP_CONTENT_TYPE, str } from '../protocols/gb28181/manscdp.ts';
import { decodeMansrtsp } from '../protocols/gb28181/mansrtsp.ts';
import { readOffer } from '../protocols/gb28181/invite.ts';
import { decodePtz, type PtzDecoded } from '../protocols/gb28181/ptz.ts';
import { startPsRtpSender, type PsRtpSender } from './gb28181-ps-sender.ts';

export interface SimDeviceOptions {
  platformHost: string;
  platformPort: number;
  /** The platform's 20-digit id and 10-digit domain (as in [video.gb28181]). */
  platformId?: string;
  domain?: string;
  deviceId: string;
  password?: string;
  transport?: 'udp' | 'tcp';
  channels?: number;
  /** Channels per Catalog MESSAGE (multi-part when channels > perPart). */
  perPart?: number;
  keepaliveMs?: number;
  expires?: number;
  /** Clip for the PS sender (Annex-B); without it INVITE is answered but no media is sent. */
  clipPath?: string;
  codec?: 'h264' | 'h265';
  /** Records answered to RecordInfo (one per hour of the asked window, up to this many). */
  records?: number;
  /** The XML charset of our bodies. */
  charset?: 'GB2312' | 'UTF-8';
  /** Send with this SSRC and say so in the answer's y= line (some NVRs do), instead of the offered one. */
  ownSsrc?: string;
  /** Media carries the bench's SEI send time (bench/sim/sei.ts) for latency. */
  seiStamp?: boolean;
}

type Sender = PsRtpSender;

export interface SimCall { callId: string; sessionName: string; downloadSpeed: number | null; address: string; transport: 'udp' | 'tcp'; port: number; ssrc: string | null; start: number; stop: number; channelId: string; acked: boolean; byeReceived: boolean; sender: Sender | null }

export class SimDevice {
  readonly o: Required<Omit<SimDeviceOptions, 'clipPath' | 'codec' | 'ownSsrc' | 'seiStamp'>> & Pick<SimDeviceOptions, 'clipPath' | 'codec' | 'ownSsrc' | 'seiStamp'>;
  readonly ptz: PtzDecoded[] = [];
  readonly ptzHex: string[] = [];
  readonly infos: ReturnType<typeof decodeMansrtsp>[] = [];
  readonly calls = new Map<string, SimCall>();
  readonly received: string[] = [];
  registered = false;
  keepalivesSent = 0;
  lastRegisterStatus = 0;
  #udp: udp.Socket<'uint8array'> | null = null;
  #tcp: Socket<undefined> | null = null;
  #framer = new SipStreamFramer();
  #pending = new Map<string, (m: SipMessage) => void>();
  #cseq = 1;
  #sn = 1;
  #fromTag = newTag();
  #callId = uuidV4();
  #keepalive: ReturnType<typeof setInterval> | null = null;
  #localPort = 0;

  constructor(o: SimDeviceOptions) {
    this.o = {
      platformId: '34020000002000000001', domain: '3402000000', password: '', transport: 'udp', channels: 2, perPart: 2,
      keepaliveMs: 60_000, expires: 3600, records: 3, charset: 'GB2312', ...o,
    };
  }

  channelId(i: number): string {
    return `${this.o.deviceId.slice(0, 10)}131${this.o.deviceId.slice(-4)}${String(i + 1).padStart(3, '0')}`;
  }

  async start(): Promise<number> {
    if (this.o.transport === 'udp') {
      this.#udp = await Bun.udpSocket({
        hostname: '127.0.0.1', binaryType: 'uint8array',
        socket: { data: (_s, buf) => { const r = parseSipMessage(buf); if (r.ok) this.#on(r.msg); }, error: () => {} },
      });
      this.#localPort = this.#udp.port;
    } else {
      this.#tcp = await Bun.connect({
        hostname: this.o.platformHost, port: this.o.platformPort,
        socket: { data: (_s, d) => { for (const r of this.#framer.push(d)) if (r.ok) this.#on(r.msg); }, close: () => { this.#tcp = null; } },
      });
      this.#localPort = this.#tcp.localPort;
    }
    const status = await this.register(this.o.expires);
    if (status === 200) this.startKeepalive();
    return status;
  }

  /** REGISTER, answering one 401 challenge; resolves with the final status. */
  async register(expires: number): Promise<number> {
    let res = await this.#request(this.#registerReq(expires, undefined));
    if (res.status === 401) {
      const auth = authorizationFor({ challenge: getHeader(res, 'www-authenticate') ?? '', method: 'REGISTER', uri: `sip:${this.o.platformId}@${this.o.domain}`, username: this.o.deviceId, password: this.o.password });
      res = await this.#request(this.#registerReq(expires, auth ?? undefined));
    }
    this.lastRegisterStatus = res.status;
    this.registered = res.status === 200 && expires > 0;
    return res.status;
  }

  #registerReq(expires: number, auth: string | undefined): SipMessage {
    const me = `sip:${this.o.deviceId}@${this.o.domain}`;
    return buildRequest({
      method: 'REGISTER', uri: `sip:${this.o.platformId}@${this.o.domain}`, via: this.#via(), from: { uri: me, tag: this.#fromTag }, to: { uri: me },
      callId: this.#callId, cseq: this.#cseq++, contact: `sip:${this.o.deviceId}@127.0.0.1:${this.#localPort}`,
      extra: [['expires', String(expires)], ...(auth ? ([['authorization', auth]] as [string, string][]) : [])],
    });
  }

  #via() { return { transport: this.o.transport === 'tcp' ? ('TCP' as const) : ('UDP' as const), host: '127.0.0.1', port: this.#localPort }; }

  startKeepalive(): void {
    this.stopKeepalive();
    this.#keepalive = setInterval(() => void this.keepalive().catch(() => {}), this.o.keepaliveMs);
  }
  stopKeepalive(): void {
    if (this.#keepalive !== null) clearInterval(this.#keepalive);
    this.#keepalive = null;
  }

  async keepalive(): Promise<number> {
    this.keepalivesSent++;
    const res = await this.#message(keepaliveBody(this.#sn++, this.o.deviceId));
    if (res.status === 403 && this.o.expires > 0) await this.register(this.o.expires); // the platform forgot us
    return res.status;
  }

  /** Sends an alarm notification (GB/T 28181 A.2.5). */
  alarm(description: string): Promise<SipMessage> {
    return this.#message(encodeManscdp('Notify', { cmdType: 'Alarm', sn: this.#sn++, deviceId: this.o.deviceId }, {
      AlarmPriority: 1, AlarmMethod: 2, AlarmTime: local(Date.now()), AlarmDescription: description, Info: { AlarmType: 1 },
    }, this.o.charset));
  }

  /** Sends BYE for an active call (device-side hangup). */
  async hangup(callId: string): Promise<number> {
    const c = this.calls.get(callId);
    if (c === undefined) return 0;
    await c.sender?.stop();
    c.sender = null;
    const d = this.#dialogs.get(callId);
    if (d === undefined) return 0;
    const res = await this.#request(buildRequest({
      method: 'BYE', uri: `sip:${this.o.platformId}@${this.o.platformHost}:${this.o.platformPort}`, via: this.#via(),
      from: { uri: d.localUri, tag: d.localTag }, to: { uri: d.remoteUri, tag: d.remoteTag }, callId, cseq: 100,
    }));
    return res.status;
  }
  readonly #dialogs = new Map<string, { localUri: string; localTag: string; remoteUri: string; remoteTag: string }>();

  #message(body: Uint8Array): Promise<SipMessage> {
    const me = `sip:${this.o.deviceId}@${this.o.domain}`;
    return this.#request(buildRequest({
      method: 'MESSAGE', uri: `sip:${this.o.platformId}@${this.o.domain}`, via: this.#via(), from: { uri: me, tag: newTag() },
      to: { uri: `sip:${this.o.platformId}@${this.o.domain}` }, callId: uuidV4(), cseq: this.#cseq++,
      contentType: `${MANSCDP_CONTENT_TYPE}${this.o.charset === 'UTF-8' ? ';charset=UTF-8' : ''}`, body,
    }));
  }

  #request(req: SipMessage, timeoutMs = 5000): Promise<SipMessage> {
    const key = `${getHeader(req, 'call-id')}|${getHeader(req, 'cseq')}`;
    const bytes = serializeSipMessage(req);
    return new Promise((resolve, reject) => {
      // RFC 3261 Timer E over UDP: resend at 0.5, 1, 2, 4 s... as devices do (a burst of many
      // devices can overflow the platform's socket buffer).
      let every = 500;
      let resend: ReturnType<typeof setTimeout> | undefined;
      const again = () => { this.#send(bytes); every = Math.min(every * 2, 4000); resend = setTimeout(again, every); };
      const t = setTimeout(() => { clearTimeout(resend); this.#pending.delete(key); reject(new Error(`${req.method}: no answer in ${timeoutMs} ms`)); }, timeoutMs);
      this.#pending.set(key, (m) => { clearTimeout(t); clearTimeout(resend); resolve(m); });
      if (this.#udp !== null) again();
      else this.#send(bytes);
    });
  }

  #send(b: Uint8Array): void {
    if (this.#udp !== null) {
      try { this.#udp.send(b, this.o.platformPort, this.o.platformHost); } catch { /* platform gone (ICMP): the request times out */ }
    }
    else this.#tcp?.write(b);
  }

  #reply(req: SipMessage, status: number, reason: string, o: { body?: Uint8Array; contentType?: string; toTag?: string } = {}): void {
    const extra: [string, string][] = [['contact', `<sip:${this.o.deviceId}@127.0.0.1:${this.#localPort}>`]];
    this.#send(serializeSipMessage(buildResponse(req, status, reason, { toTag: o.toTag ?? newTag(), extra, body: o.body, contentType: o.contentType })));
  }

  #on(m: SipMessage): void {
    if (m.kind === 'response') {
      if (m.status < 200) return;
      const key = `${getHeader(m, 'call-id')}|${getHeader(m, 'cseq')}`;
      const p = this.#pending.get(key);
      this.#pending.delete(key);
      p?.(m);
      return;
    }
    this.received.push(m.method);
    switch (m.method) {
      case 'MESSAGE': return this.#onMessage(m);
      case 'INVITE': return void this.#onInvite(m);
      case 'ACK': return void this.#onAck(m);
      case 'BYE': return void this.#onBye(m);
      case 'INFO':
        this.infos.push(decodeMansrtsp(m.body));
        return this.#reply(m, 200, 'OK');
      default: return this.#reply(m, 200, 'OK');
    }
  }

  #onMessage(m: SipMessage): void {
    const r = decodeManscdp(m.body, getHeader(m, 'content-type'));
    if (!r.ok) return this.#reply(m, 400, r.reason);
    this.#reply(m, 200, 'OK');
    const d = r.doc;
    const sn = d.sn;
    if (d.root === 'Control') {
      const hex = str(d.body.PTZCmd);
      if (hex !== '') {
        this.ptzHex.push(hex);
        const p = decodePtz(hex);
        if (p.ok) this.ptz.push(p.cmd);
      }
      return;
    }
    if (d.root !== 'Query') return;
    const cs = this.o.charset;
    const id = this.o.deviceId;
    switch (d.cmdType) {
      case 'Catalog': {
        const chans = Array.from({ length: this.o.channels }, (_, i) => ({ deviceId: this.channelId(i), name: `通道 ${i + 1}`, status: 'ON' }));
        for (const part of catalogParts(sn, id, chans, this.o.perPart, cs)) void this.#message(part).catch(() => {});
        return;
      }
      case 'DeviceInfo':
        void this.#message(encodeManscdp('Response', { cmdType: 'DeviceInfo', sn, deviceId: id }, {
          DeviceName: `sim ${id}`, Result: 'OK', Manufacturer: 'FLUX', Model: 'SIM-1', Firmware: 'V1.0', Channel: this.o.channels,
        }, cs)).catch(() => {});
        return;
      case 'DeviceStatus':
        void this.#message(encodeManscdp('Response', { cmdType: 'DeviceStatus', sn, deviceId: id }, {
          Result: 'OK', Online: 'ONLINE', Status: 'OK', Encode: 'ON', Record: 'OFF', DeviceTime: local(Date.now()),
        }, cs)).catch(() => {});
        return;
      case 'RecordInfo': {
        const start = fromLocal(str(d.body.StartTime)) ?? 0;
        const end = fromLocal(str(d.body.EndTime)) ?? start;
        const recs = [];
        for (let t = start, i = 0; t < end && i < this.o.records; t += 3_600_000, i++) {
          recs.push({ name: `rec${i}`, startTime: local(t), endTime: local(Math.min(end, t + 3_600_000)), filePath: `/rec/${i}` });
        }
        for (const part of recordInfoParts(sn, d.deviceId, recs, 2, cs)) void this.#message(part).catch(() => {});
        return;
      }
    }
  }

  async #onInvite(m: SipMessage): Promise<void> {
    const offer = readOffer(m.body);
    const callId = getHeader(m, 'call-id') ?? '';
    if (offer === null) return this.#reply(m, 488, 'Not Acceptable Here');
    const channelId = parseNameAddr(getHeader(m, 'to') ?? '')?.user ?? '';
    const toTag = newTag();
    const from = parseNameAddr(getHeader(m, 'from') ?? '');
    this.#dialogs.set(callId, { localUri: `sip:${channelId}@${this.o.domain}`, localTag: toTag, remoteUri: from?.uri ?? '', remoteTag: from?.params.get('tag') ?? '' });
    const ssrc = this.o.ownSsrc ?? offer.ssrc;
    this.calls.set(callId, { callId, sessionName: offer.sessionName, downloadSpeed: offer.downloadSpeed, address: offer.address, transport: offer.transport, port: offer.port, ssrc, start: offer.start, stop: offer.stop, channelId, acked: false, byeReceived: false, sender: null });
    const proto = offer.transport === 'tcp' ? 'TCP/RTP/AVP' : 'RTP/AVP';
    const sdp = `v=0\r\no=${channelId} 0 0 IN IP4 127.0.0.1\r\ns=${offer.sessionName}\r\nc=IN IP4 127.0.0.1\r\nt=${offer.start} ${offer.stop}\r\n` +
      `m=video 15060 ${proto} 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\n${offer.transport === 'tcp' ? 'a=setup:active\r\na=connection:new\r\n' : ''}y=${ssrc ?? '0'}\r\nf=\r\n`;
    this.#reply(m, 200, 'OK', { body: new TextEncoder().encode(sdp), contentType: 'APPLICATION/SDP', toTag });
  }

  async #onAck(m: SipMessage): Promise<void> {
    const c = this.calls.get(getHeader(m, 'call-id') ?? '');
    if (c === undefined || c.acked) return;
    c.acked = true;
    if (this.o.clipPath === undefined) return;
    try {
      c.sender = await startPsRtpSender({ clipPath: this.o.clipPath, codec: this.o.codec ?? 'h264', host: c.address || this.o.platformHost, port: c.port, transport: c.transport, ssrc: Number(c.ssrc ?? 0), seiStamp: this.o.seiStamp });
      if (c.byeReceived) await c.sender.stop();
    } catch (e) {
      console.error(`sim ${this.o.deviceId}: PS sender failed: ${(e as Error).message}`);
    }
  }

  async #onBye(m: SipMessage): Promise<void> {
    const c = this.calls.get(getHeader(m, 'call-id') ?? '');
    this.#reply(m, c === undefined ? 481 : 200, c === undefined ? 'Call/Transaction Does Not Exist' : 'OK');
    if (c === undefined) return;
    c.byeReceived = true;
    await c.sender?.stop();
    c.sender = null;
  }

  /** Stops keepalives, media and sockets; `unregister` sends REGISTER Expires: 0 first. */
  async stop(unregister = false): Promise<void> {
    this.stopKeepalive();
    if (unregister && this.registered) await this.register(0).catch(() => 0);
    for (const c of this.calls.values()) await c.sender?.stop().catch(() => {});
    this.#udp?.close();
    this.#udp = null;
    this.#tcp?.end();
    this.#tcp = null;
  }
}

/** N devices with consecutive ids (3402000000132000000N...). */
export async function startDevices(n: number, o: Omit<SimDeviceOptions, 'deviceId'> & { firstId?: string }): Promise<SimDevice[]> {
  const base = BigInt(o.firstId ?? '34020000001320000001');
  const devs = Array.from({ length: n }, (_, i) => new SimDevice({ ...o, deviceId: String(base + BigInt(i)) }));
  await Promise.all(devs.map((d) => d.start()));
  return devs;
}

if (import.meta.main) {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
  const [host, port] = (args.get('platform') ?? '127.0.0.1:5060').split(':');
  const n = Number(args.get('devices') ?? 1);
  const devs = await startDevices(n, {
    platformHost: host!, platformPort: Number(port), password: args.get('password') ?? '', transport: (args.get('transport') ?? 'udp') as 'udp' | 'tcp',
    channels: Number(args.get('channels') ?? 2), keepaliveMs: Number(args.get('keepalive') ?? 60) * 1000, clipPath: args.get('clip'),
    codec: (args.get('codec') ?? 'h264') as 'h264' | 'h265',
  });
  console.log(`${devs.filter((d) => d.registered).length}/${n} devices registered to ${host}:${port}; Ctrl-C to stop`);
  process.on('SIGINT', async () => { await Promise.all(devs.map((d) => d.stop(true))); process.exit(0); });
}
