// Persistence of GB28181 devices and channels in the LMDB index (named DBs `devices` and
// `gb28181-channels`): what a device told us survives a restart; it comes back offline.
import type { IndexDb } from './index-db.ts';

export interface GbDeviceRecord {
  device_id: string;
  name: string;
  manufacturer: string;
  model: string;
  firmware: string;
  transport: 'udp' | 'tcp';
  host: string;
  port: number;
  registered_ms: number;
  last_seen_ms: number;
}

export interface GbChannelRecord {
  channel_id: string;
  name: string;
  manufacturer: string;
  model: string;
  /** As the device reported it in its Catalog ('ON'/'OFF'). */
  status: string;
  parent_id: string;
  address: string;
  civil_code: string;
  ptz_type: string;
}

const s = (v: unknown, max = 256): string => (typeof v === 'string' ? v.slice(0, max) : '');
const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export class GbStore {
  constructor(private readonly index: IndexDb) {}

  /** Devices with their channels, as last stored (tolerant of records from older builds). */
  load(): { device: GbDeviceRecord; channels: GbChannelRecord[] }[] {
    return this.index.listDevices().map(({ id, rec }) => ({
      device: {
        device_id: id, name: s(rec.name), manufacturer: s(rec.manufacturer), model: s(rec.model), firmware: s(rec.firmware),
        transport: rec.transport === 'tcp' ? 'tcp' : 'udp', host: s(rec.host), port: n(rec.port),
        registered_ms: n(rec.registered_ms), last_seen_ms: n(rec.last_seen_ms),
      },
      channels: this.index.listGbChannels(id).map(({ id: cid, rec: c }) => ({
        channel_id: cid, name: s(c.name), manufacturer: s(c.manufacturer), model: s(c.model), status: s(c.status),
        parent_id: s(c.parent_id), address: s(c.address), civil_code: s(c.civil_code), ptz_type: s(c.ptz_type),
      })),
    }));
  }

  putDevice(d: GbDeviceRecord): Promise<boolean> {
    return this.index.putDevice(d.device_id, { ...d });
  }

  /** Replaces a device's channel list: puts the new ones, removes those no longer reported. */
  async replaceChannels(deviceId: string, channels: GbChannelRecord[]): Promise<void> {
    const keep = new Set(channels.map((c) => c.channel_id));
    const ops: Promise<boolean>[] = [];
    for (const old of this.index.listGbChannels(deviceId)) if (!keep.has(old.id)) ops.push(this.index.deleteGbChannel(deviceId, old.id));
    for (const c of channels) ops.push(this.index.putGbChannel(deviceId, c.channel_id, { ...c }));
    await Promise.all(ops);
  }
}
