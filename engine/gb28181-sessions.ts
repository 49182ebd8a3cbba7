// GB28181 media sessions: live (`s=Play`) and playback (`s=Playback`) INVITE dialogs with a
// device channel, each bound to a receiving port of the media server (engine/gb28181-media.ts)
// and an engine stream; ACK, BYE from either side, and INFO with MANSRTSP for playback control.
import { log } from './log.ts';
import { liveStreamId } from './gb28181-common.ts';
export { liveStreamId } from './gb28181-common.ts';
import { GbError, type Gb28181Server } from './gb28181-server.ts';
import type { SipPeer } from './gb28181-transport.ts';
import { ackFor, confirmDialog, dialogRequest, matchesDialog, newInvite, type Dialog } from '../protocols/sip/dialog.ts';
import { getHeader, serializeSipMessage, type SipMessage } from '../protocols/sip/message.ts';
import { inviteOffer, readAnswer, SDP_CONTENT_TYPE } from '../protocols/gb28181/invite.ts';
import { encodeMansrtsp, MANSRTSP_CONTENT_TYPE, type MansrtspCommand } from '../protocols/gb28181/mansrtsp.ts';
import { SsrcAllocator } from '../protocols/gb28181/ssrc.ts';

/** The media server's surface we use (engine/gb28181-media.ts, `engine.gbMedia`). */
export interface GbMediaSessionLike { streamId: string; port: number; transport: 'udp' | 'tcp'; ssrc: number }
export interface GbMediaLike {
  open(o: { streamId: string; ssrc: number; transport: 'udp' | 'tcp'; record?: boolean; onIdle?: () => void }): Promise<GbMediaSessionLike>;
  close(streamId: string, reason: string): Promise<void>;
  /** Accept this SSRC instead of the offered one (false for an unknown stream). */
  expectSsrc(streamId: string, ssrc: number): boolean;
}

/** Open media sessions: each holds a port and a stream; 1000 bounds what the API can open. */
export const MAX_GB_SESSIONS = 1000;

export interface GbSession {
  streamId: string;
  deviceId: string;
  channelId: string;
  /** Download is a playback the device sends faster than real time (s=Download, a=downloadspeed). */
  kind: 'live' | 'playback' | 'download';
  transport: 'udp' | 'tcp';
  ssrc: string;
  dialog: Dialog;
  peer: SipPeer;
  startedMs: number;
  /** Playback window (ms) for playback sessions. */
  startMs?: number;
  endMs?: number;
  /** CSeq of the MANSRTSP bodies. */
  rtspSeq: number;
  closing: boolean;
}

/** The engine stream id of a channel's live session (ids are 20 digits: 3 + 20 + 1 + 20 = 44 of 64 chars). */

export class GbSessions {
  readonly sessions = new Map<string, GbSession>();
  readonly #ssrc: SsrcAllocator;
  #playbackSeq = 0;

  constructor(private readonly server: Gb28181Server, private readonly media: () => GbMediaLike | null) {
    this.#ssrc = new SsrcAllocator(server.cfg.domain);
    server.onDialogRequest = (m, peer, reply) => this.#inDialog(m, peer, reply);
    server.onStrayInviteOk = (m, peer) => this.#reAck(m, peer);
  }

  /** The live stream of a channel, made if needed (a second call returns the same stream). */
  async startLive(deviceId: string, channelId: string, transport: 'udp' | 'tcp'): Promise<GbSession> {
    const streamId = liveStreamId(deviceId, channelId);
    const existing = this.sessions.get(streamId);
    if (existing !== undefined && !existing.closing) return existing;
    return this.#start({ streamId, deviceId, channelId, transport, kind: 'live' });
  }

  /** Playback of the device's recording [startMs, endMs); `downloadSpeed` makes it a download (s=Download). */
  async startPlayback(deviceId: string, channelId: string, transport: 'udp' | 'tcp', startMs: number, endMs: number, downloadSpeed?: number): Promise<GbSession> {
    this.#playbackSeq = (this.#playbackSeq % 999_999) + 1;
    const kind = downloadSpeed === undefined ? 'playback' : 'download';
    const streamId = `gb${kind === 'playback' ? 'pb' : 'dl'}_${deviceId}_${channelId}_${this.#playbackSeq}`;
    return this.#start({ streamId, deviceId, channelId, transport, kind, startMs, endMs, downloadSpeed });
  }

  async #start(o: { streamId: string; deviceId: string; channelId: string; transport: 'udp' | 'tcp'; kind: GbSession['kind']; startMs?: number; endMs?: number; downloadSpeed?: number }): Promise<GbSession> {
    const { device, peer } = this.server.reachable(o.deviceId);
    if (!device.channels.has(o.channelId) && o.channelId !== o.deviceId) throw new GbError('not-found', `device ${o.deviceId} has no channel ${o.channelId}`);
    const media = this.media();
    if (media === null) throw new GbError('busy', 'the GB28181 media server is not running');
    if (this.sessions.size >= MAX_GB_SESSIONS) throw new GbError('busy', `${MAX_GB_SESSIONS} GB28181 sessions are open`);
    const ssrc = this.#ssrc.allocate(o.kind !== 'live'); // Annex F: 1 = history (playback, download)
    if (ssrc === null) throw new GbError('busy', 'no free SSRC');
    let opened = false;
    let inviting: { res: Promise<SipMessage>; dialog: Dialog; peer: SipPeer } | null = null;
    try {
      const ms = await media.open({ streamId: o.streamId, ssrc: Number(ssrc), transport: o.transport, onIdle: () => void this.stop(o.streamId, 'no media').catch(() => {}) });
      opened = true;
      const cfg = this.server.cfg;
      const body = inviteOffer({
        platformId: cfg.device_id, address: this.server.localAddress, port: ms.port, ssrc,
        sessionName: o.kind === 'live' ? 'Play' : o.kind === 'playback' ? 'Playback' : 'Download', channelId: o.channelId, downloadSpeed: o.downloadSpeed,
        start: o.startMs === undefined ? 0 : Math.floor(o.startMs / 1000), stop: o.endMs === undefined ? 0 : Math.floor(o.endMs / 1000),
        tcpSetup: o.transport === 'tcp' ? 'passive' : undefined,
      });
      const local = this.server.localContact(peer.transport);
      const { req, dialog } = newInvite({
        local, requestUri: `sip:${o.channelId}@${peer.host}:${peer.port}`, to: `sip:${o.channelId}@${cfg.domain}`,
        extra: [['subject', `${o.channelId}:${ssrc},${cfg.device_id}:0`]], contentType: SDP_CONTENT_TYPE, body,
      });
      const s: GbSession = {
        streamId: o.streamId, deviceId: o.deviceId, channelId: o.channelId, kind: o.kind, transport: o.transport, ssrc, dialog, peer,
        startedMs: Date.now(), startMs: o.startMs, endMs: o.endMs, rtspSeq: 0, closing: false,
      };
      this.sessions.set(o.streamId, s);
      inviting = { res: this.server.sendRequest(peer, req), dialog, peer };
      const res = await withTimeout(inviting.res, cfg.query_timeout_ms, `the device did not answer INVITE within ${cfg.query_timeout_ms} ms`);
      if (res.status >= 300) throw new GbError('refused', `device ${o.deviceId} answered INVITE with ${res.status} ${res.reason}`);
      confirmDialog(dialog, res);
      this.server.send(peer, serializeSipMessage(ackFor(dialog, local)));
      const a = readAnswer(res.body);
      if (a.ok && a.answer.ssrc !== null && a.answer.ssrc !== ssrc) {
        // Some devices (seen with NVRs that proxy channels) send with their own SSRC and say so
        // in the answer's y= line; the media is theirs to label, so the answer wins.
        const answered = Number(a.answer.ssrc);
        if (/^\d{1,10}$/.test(a.answer.ssrc) && answered <= 0xffffffff && media.expectSsrc(o.streamId, answered)) {
          log.info(`gb28181: ${o.streamId}: device answered SSRC ${a.answer.ssrc} (offered ${ssrc}); accepting its packets`);
        } else log.warn(`gb28181: ${o.streamId}: device answered SSRC ${a.answer.ssrc}, offered ${ssrc}`);
      }
      log.info(`gb28181: ${o.kind} ${o.streamId} from ${o.deviceId}/${o.channelId} over ${o.transport}, SSRC ${ssrc}, port ${ms.port}`);
      return s;
    } catch (e) {
      this.sessions.delete(o.streamId);
      this.#ssrc.release(ssrc);
      if (opened) await media.close(o.streamId, `INVITE failed: ${(e as Error).message}`).catch(() => {});
      if (inviting !== null && e instanceof GbError && e.code === 'timeout') this.#hangUpLate(inviting);
      throw e;
    }
  }

  /** Ends a session: BYE to the device (unless it sent one), then the media port and stream close. */
  async stop(streamId: string, reason: string, sendBye = true): Promise<boolean> {
    const s = this.sessions.get(streamId);
    if (s === undefined || s.closing) return false;
    s.closing = true;
    if (sendBye && s.dialog.state === 'confirmed') {
      const bye = dialogRequest(s.dialog, this.server.localContact(s.peer.transport), 'BYE');
      this.server.sendRequest(s.peer, bye).catch((e: Error) => log.warn(`gb28181: BYE for ${streamId}: ${e.message}`));
    }
    s.dialog.state = 'terminated';
    this.sessions.delete(streamId);
    this.#ssrc.release(s.ssrc);
    log.info(`gb28181: session ${streamId} closed: ${reason}`);
    await this.media()?.close(streamId, reason);
    return true;
  }

  /** Playback speed, pause, resume, seek: INFO with a MANSRTSP body in the dialog. */
  async control(streamId: string, cmd: MansrtspCommand): Promise<void> {
    const s = this.sessions.get(streamId);
    if (s === undefined || s.kind === 'live') throw new GbError('not-found', `no playback session ${streamId}`);
    s.rtspSeq++;
    const info = dialogRequest(s.dialog, this.server.localContact(s.peer.transport), 'INFO', MANSRTSP_CONTENT_TYPE, encodeMansrtsp(cmd, s.rtspSeq));
    const res = await withTimeout(this.server.sendRequest(s.peer, info), this.server.cfg.query_timeout_ms, 'the device did not answer INFO');
    if (res.status >= 300) throw new GbError('refused', `device answered INFO with ${res.status} ${res.reason}`);
  }

  async stopAll(reason: string): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.stop(id, reason)));
  }

  #find(m: SipMessage): GbSession | undefined {
    const callId = getHeader(m, 'call-id');
    for (const s of this.sessions.values()) if (s.dialog.callId === callId && matchesDialog(s.dialog, m)) return s;
    return undefined;
  }

  #inDialog(m: SipMessage, _peer: SipPeer, reply: (status: number, reason: string) => void): boolean {
    if (m.method === 'ACK') return true;
    const s = this.#find(m);
    if (s === undefined) return false;
    if (m.method === 'BYE') {
      reply(200, 'OK');
      void this.stop(s.streamId, 'BYE from the device', false).catch(() => {});
      return true;
    }
    reply(200, 'OK'); // INFO from the device (e.g. MANSRTSP echo): acknowledged
    return true;
  }

  /** A 2xx arriving after we gave up on the INVITE: ACK it and BYE at once, so the device stops sending. */
  #hangUpLate(i: { res: Promise<SipMessage>; dialog: Dialog; peer: SipPeer }): void {
    i.res.then((res) => {
      if (res.status < 200 || res.status >= 300) return;
      confirmDialog(i.dialog, res);
      const local = this.server.localContact(i.peer.transport);
      this.server.send(i.peer, serializeSipMessage(ackFor(i.dialog, local)));
      this.server.sendRequest(i.peer, dialogRequest(i.dialog, local, 'BYE')).catch(() => {});
    }, () => {});
  }

  /** Sessions whose stream went away another way (DELETE /api/video/streams/{id}): BYE and release. */
  reap(streamExists: (id: string) => boolean): void {
    for (const s of this.sessions.values()) {
      if (!s.closing && s.dialog.state === 'confirmed' && !streamExists(s.streamId)) void this.stop(s.streamId, 'stream removed').catch(() => {});
    }
  }

  /** A 2xx to our INVITE retransmitted (our ACK was lost): ACK again (RFC 3261 §13.2.2.4). */
  #reAck(m: SipMessage, peer: SipPeer): void {
    const callId = getHeader(m, 'call-id');
    for (const s of this.sessions.values()) {
      if (s.dialog.callId === callId && s.dialog.state === 'confirmed') this.server.send(peer, serializeSipMessage(ackFor(s.dialog, this.server.localContact(peer.transport))));
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, msg: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new GbError('timeout', msg)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
