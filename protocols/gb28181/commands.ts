// Typed MANSCDP commands (GB/T 28181-2016 §9, Annex A.2): the queries and controls a platform
// sends, and readers of what devices answer or notify (Keepalive, Catalog, DeviceInfo,
// DeviceStatus, RecordInfo, Alarm).
import { encodeManscdp, int, items, list, str, type Charset, type ManscdpDoc } from './manscdp.ts';
import { encodePtz, type PtzSpec } from './ptz.ts';
import { gbTime } from './time.ts';
export { gbTime, parseGbTime } from './time.ts';

export interface CatalogItem {
  deviceId: string;
  name: string;
  manufacturer: string;
  model: string;
  owner: string;
  civilCode: string;
  address: string;
  parentId: string;
  /** 'ON' / 'OFF' as the device reports it ('' when absent). */
  status: string;
  longitude: string;
  latitude: string;
  ptzType: string;
}

export interface RecordItem {
  deviceId: string;
  name: string;
  filePath: string;
  address: string;
  startTime: string;
  endTime: string;
  secrecy: string;
  type: string;
}

export interface DeviceInfo { deviceName: string; manufacturer: string; model: string; firmware: string; channel: number | null; result: string }
export interface DeviceStatus { result: string; online: string; status: string; record: string; encode: string; deviceTime: string }
export interface AlarmNotify { deviceId: string; priority: string; method: string; time: string; description: string; alarmType: string; longitude: string; latitude: string }

/** A multi-part list answer (Catalog, RecordInfo): this part's items and the announced total. */
export interface ListPart<T> { sumNum: number; items: T[] }

export function readCatalog(d: ManscdpDoc): ListPart<CatalogItem> {
  const b = d.body;
  return {
    sumNum: int(b.SumNum) ?? 0,
    items: items(b.DeviceList).map((i) => ({
      deviceId: str(i.DeviceID), name: str(i.Name), manufacturer: str(i.Manufacturer), model: str(i.Model), owner: str(i.Owner),
      civilCode: str(i.CivilCode), address: str(i.Address), parentId: str(i.ParentID), status: str(i.Status).toUpperCase(),
      longitude: str(i.Longitude), latitude: str(i.Latitude), ptzType: str(typeof i.Info === 'object' && i.Info !== null ? (i.Info as Record<string, unknown>).PTZType : ''),
    })).filter((i) => /^[0-9A-Za-z]{1,32}$/.test(i.deviceId)),
  };
}

export function readRecordInfo(d: ManscdpDoc): ListPart<RecordItem> {
  const b = d.body;
  return {
    sumNum: int(b.SumNum) ?? 0,
    items: items(b.RecordList).map((i) => ({
      deviceId: str(i.DeviceID), name: str(i.Name), filePath: str(i.FilePath), address: str(i.Address),
      startTime: str(i.StartTime), endTime: str(i.EndTime), secrecy: str(i.Secrecy), type: str(i.Type),
    })),
  };
}

export function readDeviceInfo(d: ManscdpDoc): DeviceInfo {
  const b = d.body;
  return { deviceName: str(b.DeviceName), manufacturer: str(b.Manufacturer), model: str(b.Model), firmware: str(b.Firmware), channel: int(b.Channel), result: str(b.Result) };
}

export function readDeviceStatus(d: ManscdpDoc): DeviceStatus {
  const b = d.body;
  return { result: str(b.Result), online: str(b.Online), status: str(b.Status), record: str(b.Record), encode: str(b.Encode), deviceTime: str(b.DeviceTime) };
}

export function readAlarm(d: ManscdpDoc): AlarmNotify {
  const b = d.body;
  const info = typeof b.Info === 'object' && b.Info !== null ? (b.Info as Record<string, unknown>) : {};
  return {
    deviceId: d.deviceId, priority: str(b.AlarmPriority), method: str(b.AlarmMethod), time: str(b.AlarmTime),
    description: str(b.AlarmDescription), alarmType: str(info.AlarmType), longitude: str(b.Longitude), latitude: str(b.Latitude),
  };
}

// ---- what the platform sends ----

export const queryBody = (cmdType: 'Catalog' | 'DeviceInfo' | 'DeviceStatus', sn: number, deviceId: string, cs: Charset = 'GB2312') =>
  encodeManscdp('Query', { cmdType, sn, deviceId }, {}, cs);

export function recordInfoQuery(sn: number, channelId: string, startMs: number, endMs: number, tzOffsetMin = 0, cs: Charset = 'GB2312'): Uint8Array {
  return encodeManscdp('Query', { cmdType: 'RecordInfo', sn, deviceId: channelId }, {
    StartTime: gbTime(startMs, tzOffsetMin), EndTime: gbTime(endMs, tzOffsetMin), FilePath: channelId, Address: 'Address1', Secrecy: 0, Type: 'all',
  }, cs);
}

export function ptzControl(sn: number, channelId: string, spec: PtzSpec, cs: Charset = 'GB2312'): Uint8Array {
  return encodeManscdp('Control', { cmdType: 'DeviceControl', sn, deviceId: channelId }, { PTZCmd: encodePtz(spec), Info: { ControlPriority: 5 } }, cs);
}

// ---- what a device sends (the simulator) ----

export const keepaliveBody = (sn: number, deviceId: string) => encodeManscdp('Notify', { cmdType: 'Keepalive', sn, deviceId }, { Status: 'OK' });

export function catalogParts(sn: number, deviceId: string, channels: Partial<CatalogItem>[], perPart: number, cs: Charset = 'GB2312'): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < Math.max(1, channels.length); i += perPart) {
    const slice = channels.slice(i, i + perPart).map((c) => ({
      DeviceID: c.deviceId, Name: c.name ?? '', Manufacturer: c.manufacturer ?? 'FLUX', Model: c.model ?? 'sim', Owner: 'Owner',
      CivilCode: c.civilCode ?? '340200', Address: c.address ?? '', Parental: 0, ParentID: c.parentId ?? deviceId, SafetyWay: 0,
      RegisterWay: 1, Secrecy: 0, Status: c.status ?? 'ON',
    }));
    parts.push(encodeManscdp('Response', { cmdType: 'Catalog', sn, deviceId }, { SumNum: channels.length, DeviceList: list(slice) }, cs));
  }
  return parts;
}

export function recordInfoParts(sn: number, channelId: string, records: Partial<RecordItem>[], perPart: number, cs: Charset = 'GB2312'): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < Math.max(1, records.length); i += perPart) {
    const slice = records.slice(i, i + perPart).map((r) => ({
      DeviceID: channelId, Name: r.name ?? 'rec', FilePath: r.filePath ?? '', Address: r.address ?? '', StartTime: r.startTime ?? '', EndTime: r.endTime ?? '', Secrecy: 0, Type: r.type ?? 'time',
    }));
    parts.push(encodeManscdp('Response', { cmdType: 'RecordInfo', sn, deviceId: channelId }, { Name: 'sim', SumNum: records.length, RecordList: list(slice) }, cs));
  }
  return parts;
}
