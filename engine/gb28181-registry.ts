// The GB28181 device registry: devices and their channels in memory (loaded from LMDB at
// start, offline until they register), online/offline transitions with their events, and the
// liveness check (missed keepalives, registration expiry).
import { EventEmitter } from 'node:events';
import type { AlarmNotify } from '../protocols/gb28181/commands.ts';
import { log } from './log.ts';
import type { GbChannelRecord, GbDeviceRecord, GbStore } from './gb28181-store.ts';
import type { SipPeer } from './gb28181-transport.ts';

/** Devices we keep: a node serves 100+ cameras, an NVR-heavy site a few thousand ids. */
export const MAX_DEVICES = 10_000;

export interface GbDevice extends GbDeviceRecord {
  online: boolean;
  /** When the registration lapses (ms); 0 when offline. */
  expiresAtMs: number;
  /** Where requests to the device go (its last REGISTER/MESSAGE source, or its TCP connection). */
  peer: SipPeer | null;
  channels: Map<string, GbChannelRecord>;
  /** Set while a Catalog query is in flight (the API shows it). */
  catalogPending: boolean;
}

export type GbEvent =
  | { type: 'device-online'; deviceId: string; ms: number }
  | { type: 'device-offline'; deviceId: string; reason: string; ms: number }
  | { type: 'alarm'; deviceId: string; alarm: AlarmNotify; ms: number }
  | { type: 'catalog'; deviceId: string; channels: number; complete: boolean; ms: number };

export class GbRegistry {
  readonly devices = new Map<string, GbDevice>();
  /** 'event' listeners get every GbEvent (rules, UI, tests); each is also logged and stored in the index's events. */
  readonly events = new EventEmitter();

  constructor(private readonly store: GbStore, private readonly appendEvent: (ms: number, e: Record<string, unknown>) => void) {
    for (const { device, channels } of store.load()) {
      this.devices.set(device.device_id, { ...device, online: false, expiresAtMs: 0, peer: null, channels: new Map(channels.map((c) => [c.channel_id, c])), catalogPending: false });
    }
  }

  get(id: string): GbDevice | undefined { return this.devices.get(id); }

  /** A device registered (new or refreshed); true when it just came online. */
  registered(id: string, peer: SipPeer, expiresS: number, nowMs: number): { device: GbDevice; cameOnline: boolean } | null {
    let d = this.devices.get(id);
    if (d === undefined) {
      if (this.devices.size >= MAX_DEVICES) return null;
      d = {
        device_id: id, name: '', manufacturer: '', model: '', firmware: '', transport: peer.transport, host: peer.host, port: peer.port,
        registered_ms: nowMs, last_seen_ms: nowMs, online: false, expiresAtMs: 0, peer, channels: new Map(), catalogPending: false,
      };
      this.devices.set(id, d);
    }
    const cameOnline = !d.online;
    d.peer = peer;
    d.transport = peer.transport;
    d.host = peer.host;
    d.port = peer.port;
    d.last_seen_ms = nowMs;
    d.expiresAtMs = nowMs + expiresS * 1000;
    if (cameOnline) {
      d.online = true;
      d.registered_ms = nowMs;
      this.#emit({ type: 'device-online', deviceId: id, ms: nowMs });
    }
    this.persist(d);
    return { device: d, cameOnline };
  }

  /** Any message from an online device counts as a sign of life; UDP devices may change port (NAT). */
  seen(d: GbDevice, peer: SipPeer, nowMs: number): void {
    d.last_seen_ms = nowMs;
    if (peer.transport === 'udp' || d.peer === null) {
      d.peer = peer;
      d.host = peer.host;
      d.port = peer.port;
    }
  }

  offline(d: GbDevice, reason: string, nowMs: number): void {
    if (!d.online) return;
    d.online = false;
    d.expiresAtMs = 0;
    d.peer = null;
    this.#emit({ type: 'device-offline', deviceId: d.device_id, reason, ms: nowMs });
    this.persist(d);
  }

  /** A device's TCP connection closed: requests cannot reach it until it reconnects. */
  connectionClosed(peer: SipPeer): void {
    for (const d of this.devices.values()) if (d.peer === peer) d.peer = null;
  }

  /** Devices past their keepalive deadline or registration expiry go offline. */
  checkLiveness(nowMs: number, keepaliveMs: number, missed: number): void {
    for (const d of this.devices.values()) {
      if (!d.online) continue;
      if (nowMs - d.last_seen_ms > keepaliveMs * missed) this.offline(d, `no keepalive for ${Math.round((nowMs - d.last_seen_ms) / 1000)} s (${missed} intervals of ${keepaliveMs / 1000} s)`, nowMs);
      else if (nowMs > d.expiresAtMs) this.offline(d, 'registration expired', nowMs);
    }
  }

  setChannels(d: GbDevice, channels: GbChannelRecord[], complete: boolean, nowMs: number): void {
    d.channels = new Map(channels.map((c) => [c.channel_id, c]));
    this.#emit({ type: 'catalog', deviceId: d.device_id, channels: channels.length, complete, ms: nowMs });
    this.store.replaceChannels(d.device_id, channels).catch((e: Error) => log.error(`gb28181: storing channels of ${d.device_id} failed: ${e.message}`));
  }

  alarm(a: AlarmNotify, nowMs: number): void {
    this.#emit({ type: 'alarm', deviceId: a.deviceId, alarm: a, ms: nowMs });
  }

  persist(d: GbDevice): void {
    const rec: GbDeviceRecord = {
      device_id: d.device_id, name: d.name, manufacturer: d.manufacturer, model: d.model, firmware: d.firmware,
      transport: d.transport, host: d.host, port: d.port, registered_ms: d.registered_ms, last_seen_ms: d.last_seen_ms,
    };
    this.store.putDevice(rec).catch((e: Error) => log.error(`gb28181: storing device ${d.device_id} failed: ${e.message}`));
  }

  #emit(e: GbEvent): void {
    switch (e.type) {
      case 'device-online': log.info(`gb28181: device ${e.deviceId} online`); break;
      case 'device-offline': log.info(`gb28181: device ${e.deviceId} offline: ${e.reason}`); break;
      case 'alarm': log.info(`gb28181: alarm from ${e.deviceId}: priority ${e.alarm.priority}, method ${e.alarm.method}, ${e.alarm.description}`); break;
      case 'catalog': log.info(`gb28181: device ${e.deviceId} catalog: ${e.channels} channels${e.complete ? '' : ' (incomplete)'}`); break;
    }
    const { ms, ...rest } = e;
    try {
      this.appendEvent(ms, { source: 'gb28181', ...rest });
    } catch (err) {
      log.error(`gb28181: storing event failed: ${(err as Error).message}`);
    }
    this.events.emit('event', e);
  }
}
