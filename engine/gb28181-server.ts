// The GB28181 platform's SIP side: binds the sans-I/O SIP and MANSCDP code to the sockets,
// answers REGISTER (digest), keepalives, catalog/info/record answers and alarms, sends queries
// and controls to devices, and runs the transaction and liveness timers.
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import type { Config } from './config.ts';
import { log, RateLimitedLog } from './log.ts';
import { GbError, localOffsetMin } from './gb28181-common.ts';
export { GbError, localOffsetMin, type GbErrorCode } from './gb28181-common.ts';
import { GbRegistry, type GbDevice } from './gb28181-registry.ts';
import { GbStore, type GbChannelRecord } from './gb28181-store.ts';
import { SipTransport, type SipPeer } from './gb28181-transport.ts';
import type { IndexDb } from './index-db.ts';
import { buildRequest, buildResponse, newTag, uuidV4 } from '../protocols/sip/build.ts';
import { challengeHeader, createNonce, verifyDigest } from '../protocols/sip/digest.ts';
import { expiresOf, getHeader, parseNameAddr, serializeSipMessage, type SipMessage, type SipParseFailure } from '../protocols/sip/message.ts';
import { ClientTransactions, ServerTransactions } from '../protocols/sip/transaction.ts';
import {
  gbTime, ptzControl, queryBody, readAlarm, readCatalog, readDeviceInfo, readDeviceStatus, readRecordInfo, recordInfoQuery,
  type CatalogItem, type DeviceStatus, type RecordItem,
} from '../protocols/gb28181/commands.ts';
import { decodeManscdp, MANSCDP_CONTENT_TYPE, type ManscdpDoc } from '../protocols/gb28181/manscdp.ts';
import { MultiPartCollector } from '../protocols/gb28181/multipart.ts';
import type { PtzSpec } from '../protocols/gb28181/ptz.ts';

/** Timers (transactions, liveness, list timeouts) run at this period. */
const TICK_MS = 100;
const DEVICE_ID_RE = /^[0-9A-Za-z]{1,32}$/;
/** Waiters for single answers (DeviceInfo, DeviceStatus) in flight. */
const MAX_WAITERS = 4096;


interface TxCtx { peer: SipPeer; resolve(m: SipMessage): void; reject(e: Error): void }
type Answer = { kind: 'doc'; doc: ManscdpDoc } | { kind: 'list'; items: unknown[]; complete: boolean };
interface Waiter { resolve(a: Answer): void; reject(e: Error): void; deadlineMs: number }

export interface GbCounters { badMessages: number; registers: number; authChallenges: number; authRejected: number; unknownRequests: number; retransmissions: number }

export class Gb28181Server {
  readonly registry: GbRegistry;
  readonly counters: GbCounters = { badMessages: 0, registers: 0, authChallenges: 0, authRejected: 0, unknownRequests: 0, retransmissions: 0 };
  /** The address put in SDP offers and Via/Contact. */
  readonly localAddress: string;
  /** Hooks for the session layer (engine/gb28181-sessions.ts): in-dialog requests and stray 2xx to INVITE. */
  onDialogRequest: ((m: SipMessage, peer: SipPeer, reply: (status: number, reason: string) => void) => boolean) | null = null;
  onStrayInviteOk: ((m: SipMessage, peer: SipPeer) => void) | null = null;
  #transport!: SipTransport;
  readonly #client = new ClientTransactions<TxCtx>();
  readonly #server = new ServerTransactions();
  readonly #lists = new MultiPartCollector<unknown>((x) => JSON.stringify(x));
  readonly #waiters = new Map<string, Waiter>();
  readonly #secret = randomBytes(16).toString('hex');
  readonly #badLog = new RateLimitedLog(1000);
  #timer: ReturnType<typeof setInterval> | null = null;
  #sn = 1;
  #cseq = 1;

  private constructor(readonly cfg: Config['video']['gb28181'], index: IndexDb) {
    this.registry = new GbRegistry(new GbStore(index), (ms, e) => void index.appendEvent(ms, e));
    this.localAddress = cfg.media_ip !== '' ? cfg.media_ip : cfg.local_ip !== '0.0.0.0' ? cfg.local_ip : firstIpv4();
  }

  static async start(cfg: Config['video']['gb28181'], index: IndexDb): Promise<Gb28181Server> {
    const s = new Gb28181Server(cfg, index);
    s.#transport = await SipTransport.start({
      host: cfg.local_ip,
      port: cfg.local_port,
      onMessage: (m, p) => s.#onMessage(m, p),
      onBad: (f, p) => s.#onBad(f, p),
      onTcpClose: (p) => s.registry.connectionClosed(p),
    });
    s.#timer = setInterval(() => s.#tick(Date.now()), TICK_MS);
    return s;
  }

  get port(): number { return this.#transport.port; }
  /** SIP counters plus the sockets' (refused UDP sends, ICMP errors, TCP connections). */
  get allCounters() {
    const t = this.#transport;
    return { ...this.counters, udpSendFailures: t.udpSendFailures, udpErrors: t.udpErrors, tcpConnections: t.tcpConnections, pendingRequests: this.#client.size };
  }
  get realm(): string { return this.cfg.realm !== '' ? this.cfg.realm : this.cfg.domain; }
  get platformUri(): string { return `sip:${this.cfg.device_id}@${this.cfg.domain}`; }
  localContact(transport: 'udp' | 'tcp') {
    const t = transport === 'tcp' ? ('TCP' as const) : ('UDP' as const);
    return { transport: t, host: this.localAddress, port: this.port, uri: `sip:${this.cfg.device_id}@${this.localAddress}:${this.port}` };
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const tx of this.#client.clear()) tx.ctx.reject(new GbError('offline', 'GB28181 server stopped'));
    for (const w of this.#waiters.values()) w.reject(new GbError('offline', 'GB28181 server stopped'));
    this.#waiters.clear();
    this.#transport.stop();
  }

  // ---- sending ----

  /** Sends a request and resolves with its final response (rejects GbError 'timeout' after Timer B/F, 32 s). */
  sendRequest(peer: SipPeer, req: SipMessage): Promise<SipMessage> {
    const bytes = serializeSipMessage(req);
    return new Promise((resolve, reject) => {
      if (!this.#client.start(req, bytes, peer.transport === 'tcp', { peer, resolve, reject }, Date.now())) {
        reject(new GbError('busy', 'too many SIP requests in flight'));
        return;
      }
      if (!this.send(peer, bytes) && peer.transport === 'tcp') reject(new GbError('offline', 'the device TCP connection is closed'));
    });
  }

  send(peer: SipPeer, bytes: Uint8Array): boolean { return this.#transport.send(peer, bytes); }

  /** The online device and where to reach it, or GbError. */
  reachable(deviceId: string): { device: GbDevice; peer: SipPeer } {
    const d = this.registry.get(deviceId);
    if (d === undefined) throw new GbError('not-found', `no GB28181 device ${deviceId}`);
    if (!d.online || d.peer === null) throw new GbError('offline', `device ${deviceId} is offline`);
    return { device: d, peer: d.peer };
  }

  /** A MESSAGE with a MANSCDP body to a device (or one of its channels); resolves on its 2xx. */
  async message(deviceId: string, targetId: string, body: Uint8Array): Promise<void> {
    const { peer } = this.reachable(deviceId);
    const req = buildRequest({
      method: 'MESSAGE', uri: `sip:${targetId}@${peer.host}:${peer.port}`,
      via: { transport: peer.transport === 'tcp' ? 'TCP' : 'UDP', host: this.localAddress, port: this.port },
      from: { uri: this.platformUri, tag: newTag() }, to: { uri: `sip:${targetId}@${this.cfg.domain}` },
      callId: uuidV4(), cseq: this.#cseq++, contentType: MANSCDP_CONTENT_TYPE, body,
    });
    const res = await this.sendRequest(peer, req);
    if (res.status >= 300) throw new GbError('refused', `device ${deviceId} answered ${res.status} ${res.reason}`);
  }

  nextSn(): number { this.#sn = (this.#sn % 999_999_999) + 1; return this.#sn; }

  #wait(key: string, timeoutMs: number): Promise<Answer> {
    if (this.#waiters.size >= MAX_WAITERS) return Promise.reject(new GbError('busy', 'too many device queries in flight'));
    return new Promise((resolve, reject) => this.#waiters.set(key, { resolve, reject, deadlineMs: Date.now() + timeoutMs }));
  }

  /** Sends a query and waits for its answer (a list: every part, or what came before the timeout). */
  async #query(deviceId: string, targetId: string, cmdType: string, body: (sn: number) => Uint8Array, isList: boolean): Promise<Answer> {
    this.reachable(deviceId);
    const sn = this.nextSn();
    const key = `${cmdType}|${sn}`;
    const timeout = this.cfg.query_timeout_ms;
    if (isList && !this.#lists.expect(key, Date.now(), timeout)) throw new GbError('busy', 'too many list queries in flight');
    // Both observed at once: the answer's deadline can pass while the MESSAGE is still being
    // retransmitted (a device that never says 200), and neither rejection may go unhandled.
    try {
      const [, answer] = await Promise.all([this.message(deviceId, targetId, body(sn)), this.#wait(key, timeout)]);
      return answer;
    } catch (e) {
      this.#waiters.delete(key);
      this.#lists.cancel(key);
      throw e;
    }
  }

  async queryCatalog(deviceId: string): Promise<{ channels: number; complete: boolean }> {
    const d = this.reachable(deviceId).device;
    d.catalogPending = true;
    try {
      const a = await this.#query(deviceId, deviceId, 'Catalog', (sn) => queryBody('Catalog', sn, deviceId), true);
      if (a.kind !== 'list') throw new GbError('invalid', 'unexpected Catalog answer');
      const chans = (a.items as CatalogItem[]).filter((c) => c.deviceId !== deviceId).map(toChannel);
      this.registry.setChannels(d, chans, a.complete, Date.now());
      return { channels: chans.length, complete: a.complete };
    } finally {
      d.catalogPending = false;
    }
  }

  async queryDeviceInfo(deviceId: string): Promise<void> {
    const a = await this.#query(deviceId, deviceId, 'DeviceInfo', (sn) => queryBody('DeviceInfo', sn, deviceId), false);
    if (a.kind !== 'doc') return;
    const info = readDeviceInfo(a.doc);
    const d = this.registry.get(deviceId);
    if (d === undefined) return;
    Object.assign(d, { name: info.deviceName, manufacturer: info.manufacturer, model: info.model, firmware: info.firmware });
    this.registry.persist(d);
  }

  async queryDeviceStatus(deviceId: string): Promise<DeviceStatus> {
    const a = await this.#query(deviceId, deviceId, 'DeviceStatus', (sn) => queryBody('DeviceStatus', sn, deviceId), false);
    if (a.kind !== 'doc') throw new GbError('invalid', 'unexpected DeviceStatus answer');
    return readDeviceStatus(a.doc);
  }

  async queryRecords(deviceId: string, channelId: string, startMs: number, endMs: number): Promise<{ records: RecordItem[]; complete: boolean }> {
    const a = await this.#query(deviceId, channelId, 'RecordInfo', (sn) => recordInfoQuery(sn, channelId, startMs, endMs, localOffsetMin(startMs)), true);
    if (a.kind !== 'list') throw new GbError('invalid', 'unexpected RecordInfo answer');
    return { records: a.items as RecordItem[], complete: a.complete };
  }

  ptz(deviceId: string, channelId: string, spec: PtzSpec): Promise<void> {
    return this.message(deviceId, channelId, ptzControl(this.nextSn(), channelId, spec));
  }

  // ---- receiving ----

  #onBad(f: SipParseFailure, peer: SipPeer): void {
    this.counters.badMessages++;
    this.#badLog.warn(`bad:${peer.host}`, `gb28181: malformed SIP from ${peer.transport} ${peer.host}:${peer.port}: ${f.reason} (${this.counters.badMessages} so far)`);
    if (!f.request) return; // a bad response is dropped, never answered
    this.send(peer, serializeSipMessage(buildResponse({ headers: f.headers }, 400, f.reason.slice(0, 120), { toTag: newTag() })));
  }

  #onMessage(m: SipMessage, peer: SipPeer): void {
    const now = Date.now();
    if (m.kind === 'response') {
      const r = this.#client.onResponse(m);
      if (r === null) {
        if (m.status >= 200 && m.status < 300 && /INVITE/i.test(getHeader(m, 'cseq') ?? '')) this.onStrayInviteOk?.(m, peer);
        return;
      }
      if (r.final) r.tx.ctx.resolve(m);
      return;
    }
    const v = this.#server.onRequest(m, now);
    if (v === null) return this.#onBad({ ok: false, reason: 'Via without branch', request: true, headers: m.headers }, peer);
    if (v.kind === 'ack-absorbed') return;
    if (v.kind === 'retransmission') {
      this.counters.retransmissions++;
      if (v.response !== null) this.send(peer, v.response);
      return;
    }
    const toTag = newTag();
    const reply = (status: number, reason: string, o: { extra?: [string, string][] } = {}) => {
      if (m.method === 'ACK') return;
      const bytes = serializeSipMessage(buildResponse(m, status, reason, { toTag, extra: o.extra }));
      this.#server.responded(v.key, status, bytes, Date.now());
      this.send(peer, bytes);
    };
    switch (m.method) {
      case 'REGISTER': return this.#register(m, peer, now, reply);
      case 'MESSAGE': return this.#message(m, peer, now, reply);
      case 'BYE': case 'INFO': case 'ACK':
        if (this.onDialogRequest?.(m, peer, reply)) return;
        if (m.method !== 'ACK') reply(481, 'Call/Transaction Does Not Exist');
        return;
      case 'OPTIONS': case 'NOTIFY': return reply(200, 'OK');
      default:
        this.counters.unknownRequests++;
        return reply(405, 'Method Not Allowed', { extra: [['allow', 'REGISTER, MESSAGE, INVITE, ACK, BYE, INFO, OPTIONS, NOTIFY']] });
    }
  }

  #register(m: SipMessage, peer: SipPeer, now: number, reply: (s: number, r: string, o?: { extra?: [string, string][] }) => void): void {
    this.counters.registers++;
    const id = parseNameAddr(getHeader(m, 'from')!)!.user;
    if (!DEVICE_ID_RE.test(id)) return reply(400, 'Device id in From must be 1-32 letters or digits');
    const password = this.cfg.passwords[id] ?? this.cfg.password;
    if (password !== '') {
      const v = verifyDigest({
        authorization: getHeader(m, 'authorization'), method: 'REGISTER', realm: this.realm, expectUser: id, password,
        secret: this.#secret, nowMs: now, nonceLifetimeMs: this.cfg.nonce_lifetime * 1000,
      });
      if (v.kind === 'challenge' || v.kind === 'stale') {
        this.counters.authChallenges++;
        const www = challengeHeader({ realm: this.realm, nonce: createNonce(this.#secret, now), stale: v.kind === 'stale' });
        return reply(401, 'Unauthorized', { extra: [['www-authenticate', www]] });
      }
      if (v.kind === 'forbidden') {
        this.counters.authRejected++;
        this.#badLog.warn(`auth:${id}`, `gb28181: REGISTER of ${id} from ${peer.host}:${peer.port} refused: ${v.reason}`);
        return reply(403, 'Forbidden');
      }
    }
    const asked = expiresOf(m) ?? 3600;
    const d = this.registry.get(id);
    if (asked === 0) {
      reply(200, 'OK', { extra: [['expires', '0']] });
      if (d !== undefined) this.registry.offline(d, 'unregistered (Expires: 0)', now);
      return;
    }
    if (asked < this.cfg.register_expires_min) return reply(423, 'Interval Too Brief', { extra: [['min-expires', String(this.cfg.register_expires_min)]] });
    const granted = Math.min(asked, this.cfg.register_expires_max);
    const r = this.registry.registered(id, peer, granted, now);
    if (r === null) return reply(503, 'Service Unavailable (device table full)');
    reply(200, 'OK', { extra: [['expires', String(granted)], ['date', gbTime(now, localOffsetMin(now)) + `.${String(now % 1000).padStart(3, '0')}`], ...contactOf(m)] });
    if (r.cameOnline) this.#afterRegister(id);
  }

  /** GB/T 28181 §9.3: after a registration the platform asks what the device has. */
  #afterRegister(id: string): void {
    this.queryCatalog(id).catch((e: Error) => log.warn(`gb28181: Catalog query to ${id} failed: ${e.message}`));
    this.queryDeviceInfo(id).catch((e: Error) => log.warn(`gb28181: DeviceInfo query to ${id} failed: ${e.message}`));
  }

  #message(m: SipMessage, peer: SipPeer, now: number, reply: (s: number, r: string) => void): void {
    const from = parseNameAddr(getHeader(m, 'from')!)!.user;
    const d = this.registry.get(from);
    if (d === undefined || !d.online) return reply(403, 'Forbidden (not registered)');
    const r = decodeManscdp(m.body, getHeader(m, 'content-type'));
    if (!r.ok) {
      this.counters.badMessages++;
      this.#badLog.warn(`xml:${from}`, `gb28181: bad MANSCDP from ${from}: ${r.reason}`);
      return reply(400, r.reason.slice(0, 120));
    }
    this.registry.seen(d, peer, now);
    reply(200, 'OK');
    const doc = r.doc;
    const key = `${doc.cmdType}|${doc.sn}`;
    if (doc.root === 'Notify' && doc.cmdType === 'Alarm') return this.registry.alarm(readAlarm(doc), now);
    if (doc.root !== 'Response') return; // Keepalive and other notifies: a sign of life is all
    if (doc.cmdType === 'Catalog' || doc.cmdType === 'RecordInfo') {
      const part = doc.cmdType === 'Catalog' ? readCatalog(doc) : readRecordInfo(doc);
      const c = this.#lists.add(key, part.sumNum, part.items);
      if (c.kind === 'complete' || c.kind === 'capped') this.#settle(key, { kind: 'list', items: c.items, complete: c.kind === 'complete' });
      return;
    }
    this.#settle(key, { kind: 'doc', doc });
  }

  #settle(key: string, a: Answer): void {
    const w = this.#waiters.get(key);
    if (w === undefined) return;
    this.#waiters.delete(key);
    w.resolve(a);
  }

  #tick(now: number): void {
    const t = this.#client.tick(now);
    for (const tx of t.retransmit) this.send(tx.ctx.peer, tx.bytes);
    for (const tx of t.timedOut) tx.ctx.reject(new GbError('timeout', `no answer to ${tx.method} within ${(now - tx.startMs) / 1000} s`));
    this.#server.tick(now);
    for (const e of this.#lists.expire(now)) {
      // Parts arrived but not all: a partial list; nothing at all: a timeout.
      if (e.sumNum >= 0) this.#settle(e.key, { kind: 'list', items: e.items, complete: false });
    }
    for (const [k, w] of this.#waiters) {
      if (now < w.deadlineMs) continue;
      this.#waiters.delete(k);
      w.reject(new GbError('timeout', `the device did not answer ${k.split('|')[0]} within ${this.cfg.query_timeout_ms} ms`));
    }
    this.registry.checkLiveness(now, this.cfg.keepalive_interval * 1000, this.cfg.keepalive_timeout_count);
  }
}

function contactOf(m: SipMessage): [string, string][] {
  const c = getHeader(m, 'contact');
  return c === undefined ? [] : [['contact', c]];
}

function toChannel(c: CatalogItem): GbChannelRecord {
  return {
    channel_id: c.deviceId, name: c.name, manufacturer: c.manufacturer, model: c.model, status: c.status,
    parent_id: c.parentId, address: c.address, civil_code: c.civilCode, ptz_type: c.ptzType,
  };
}

/**
 * MANSCDP times and the REGISTER Date carry no zone: devices use local time, and set their clock
 * from our Date. We use the engine host's zone (run the engine with TZ set like the devices').
 */

function firstIpv4(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}
