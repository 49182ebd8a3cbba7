import { describe, expect, test } from 'bun:test';
import iconv from 'iconv-lite';
import { mulberry32, mutate, randInt } from '../../media/testdata/test-helpers.ts';
import { catalogParts, gbTime, keepaliveBody, parseGbTime, ptzControl, readAlarm, readCatalog, readDeviceInfo, readRecordInfo, recordInfoParts, recordInfoQuery } from './commands.ts';
import { decodeManscdp, detectCharset, encodeManscdp, MAX_ITEMS_PER_MESSAGE, str } from './manscdp.ts';
import { MultiPartCollector, MAX_LIST_ITEMS } from './multipart.ts';

const gb = (s: string) => new Uint8Array(iconv.encode(s, 'gb2312'));
const utf8 = (s: string) => new TextEncoder().encode(s);
const DEV = '34020000001320000001';

/** A Catalog part as a Hikvision NVR sends it (GB2312, CRLF, an Info block). */
const HIK_CATALOG = `<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n<SN>17430</SN>\r\n<DeviceID>${DEV}</DeviceID>\r\n<SumNum>3</SumNum>\r\n<DeviceList Num="2">\r\n<Item>\r\n<DeviceID>34020000001310000001</DeviceID>\r\n<Name>大门口</Name>\r\n<Manufacturer>Hikvision</Manufacturer>\r\n<Model>IP Camera</Model>\r\n<Owner>Owner</Owner>\r\n<CivilCode>3402000000</CivilCode>\r\n<Address>Address</Address>\r\n<Parental>0</Parental>\r\n<ParentID>${DEV}</ParentID>\r\n<SafetyWay>0</SafetyWay>\r\n<RegisterWay>1</RegisterWay>\r\n<Secrecy>0</Secrecy>\r\n<Status>ON</Status>\r\n<Info><PTZType>1</PTZType></Info>\r\n</Item>\r\n<Item>\r\n<DeviceID>34020000001310000002</DeviceID>\r\n<Name>停车场 &amp; 出口</Name>\r\n<Status>OFF</Status>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n`;

describe('MANSCDP charset', () => {
  test('reads a GB2312 body by its prolog', () => {
    const r = decodeManscdp(gb(HIK_CATALOG));
    if (!r.ok) throw new Error(r.reason);
    expect(r.doc.charset).toBe('GB2312');
    const c = readCatalog(r.doc);
    expect(c.sumNum).toBe(3);
    expect(c.items.map((i) => [i.deviceId, i.name, i.status])).toEqual([
      ['34020000001310000001', '大门口', 'ON'], ['34020000001310000002', '停车场 & 出口', 'OFF'],
    ]);
    expect(c.items[0]!.ptzType).toBe('1');
  });

  test('the Content-Type charset wins over the prolog', () => {
    const body = utf8(HIK_CATALOG); // UTF-8 bytes under a GB2312 prolog (devices do this)
    expect(detectCharset(body, 'Application/MANSCDP+xml;charset=UTF-8')).toBe('UTF-8');
    const r = decodeManscdp(body, 'Application/MANSCDP+xml; charset="utf-8"');
    expect(r.ok && readCatalog(r.doc).items[0]!.name).toBe('大门口');
  });

  test('without any declaration: UTF-8 when it validates, else GB2312', () => {
    const plain = HIK_CATALOG.replace(' encoding="GB2312"', '');
    expect(detectCharset(utf8(plain))).toBe('UTF-8');
    expect(detectCharset(gb(plain))).toBe('GB2312');
    const r = decodeManscdp(gb(plain));
    expect(r.ok && readCatalog(r.doc).items[1]!.name).toBe('停车场 & 出口');
  });

  test('encodes GB2312 and UTF-8 with a matching prolog, and reads both back', () => {
    for (const cs of ['GB2312', 'UTF-8'] as const) {
      const b = encodeManscdp('Response', { cmdType: 'DeviceInfo', sn: 9, deviceId: DEV }, { DeviceName: '前门 <1>', Result: 'OK', Channel: 4 }, cs);
      expect(new TextDecoder('latin1').decode(b.subarray(0, 40))).toContain(`encoding="${cs}"`);
      const r = decodeManscdp(b);
      if (!r.ok) throw new Error(r.reason);
      expect(r.doc.charset).toBe(cs);
      expect(readDeviceInfo(r.doc)).toEqual({ deviceName: '前门 <1>', manufacturer: '', model: '', firmware: '', channel: 4, result: 'OK' });
    }
  });
});

describe('MANSCDP commands', () => {
  test('keepalive, queries and controls carry CmdType, SN and DeviceID as strings (20 digits stay exact)', () => {
    const r = decodeManscdp(keepaliveBody(42, DEV));
    expect(r.ok && [r.doc.root, r.doc.cmdType, r.doc.sn, r.doc.deviceId]).toEqual(['Notify', 'Keepalive', 42, DEV]);
    const q = decodeManscdp(recordInfoQuery(5, '34020000001310000001', Date.UTC(2024, 4, 1), Date.UTC(2024, 4, 1, 6)));
    expect(q.ok && [str(q.doc.body.StartTime), str(q.doc.body.EndTime), str(q.doc.body.Type)]).toEqual(['2024-05-01T00:00:00', '2024-05-01T06:00:00', 'all']);
    const p = decodeManscdp(ptzControl(6, '34020000001310000001', { command: 'left', speed: 0x40 }));
    expect(p.ok && str(p.doc.body.PTZCmd)).toBe('A50F01024000002F'.replace('2F', ((0xa5 + 0x0f + 1 + 2 + 0x40) & 0xff).toString(16).toUpperCase()));
  });

  test('GB times round trip (local time without zone, offset given)', () => {
    const t = Date.UTC(2024, 0, 2, 3, 4, 5);
    expect(gbTime(t, 480)).toBe('2024-01-02T11:04:05');
    expect(parseGbTime('2024-01-02T11:04:05', 480)).toBe(t);
    expect(parseGbTime('garbage')).toBeNull();
  });

  test('alarm notifications are read', () => {
    const b = encodeManscdp('Notify', { cmdType: 'Alarm', sn: 1, deviceId: DEV }, { AlarmPriority: 1, AlarmMethod: 2, AlarmTime: '2024-05-01T00:00:00', AlarmDescription: '移动侦测', Info: { AlarmType: 2 } });
    const r = decodeManscdp(b);
    if (!r.ok) throw new Error(r.reason);
    expect(readAlarm(r.doc)).toMatchObject({ deviceId: DEV, priority: '1', method: '2', description: '移动侦测', alarmType: '2' });
  });

  test('refuses what is not MANSCDP, with a reason', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['<a><b>', /bad XML|no Query/],
      ['<Query><SN>1</SN><DeviceID>1</DeviceID></Query>', /missing CmdType/],
      ['<Query><CmdType>Catalog</CmdType><SN>x</SN><DeviceID>1</DeviceID></Query>', /bad SN/],
      ['<Query><CmdType>Catalog</CmdType><SN>1</SN></Query>', /bad DeviceID/],
      ['<!DOCTYPE x [<!ENTITY a "aaaa">]><Query><CmdType>&a;</CmdType></Query>', /DOCTYPE/],
    ];
    for (const [text, re] of cases) {
      const r = decodeManscdp(utf8(text));
      expect(!r.ok && r.reason).toMatch(re);
    }
  });

  test('caps the items read from one message', () => {
    const item = (i: number) => `<Item><DeviceID>3402000000131${String(i).padStart(7, '0')}</DeviceID></Item>`;
    const xml = `<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>${DEV}</DeviceID><SumNum>2000</SumNum><DeviceList>${Array.from({ length: MAX_ITEMS_PER_MESSAGE + 5 }, (_, i) => item(i)).join('')}</DeviceList></Response>`;
    const r = decodeManscdp(utf8(xml));
    expect(r.ok && readCatalog(r.doc).items.length).toBe(MAX_ITEMS_PER_MESSAGE);
  });

  test('fuzz: mutated bodies never throw; accepted ones have a root, CmdType, SN and DeviceID', () => {
    const rnd = mulberry32(0x3a5);
    const seeds = [gb(HIK_CATALOG), keepaliveBody(1, DEV), ...recordInfoParts(3, DEV, [{ name: 'r', startTime: 'a', endTime: 'b' }], 1, 'UTF-8')];
    for (let i = 0; i < 3000; i++) {
      const input = i % 10 === 9 ? crypto.getRandomValues(new Uint8Array(randInt(rnd, 300))) : mutate(seeds[i % seeds.length]!, rnd);
      const r = decodeManscdp(input);
      if (!r.ok) { expect(r.reason.length).toBeGreaterThan(0); continue; }
      expect(['Query', 'Control', 'Response', 'Notify']).toContain(r.doc.root);
      expect(r.doc.cmdType.length).toBeGreaterThan(0);
      expect(Number.isInteger(r.doc.sn)).toBe(true);
      for (const it of readCatalog(r.doc).items) expect(it.deviceId).toMatch(/^[0-9A-Za-z]{1,32}$/);
      readRecordInfo(r.doc);
    }
  });
});

describe('multi-part lists', () => {
  const key = (x: { id: string }) => x.id;
  test('completes when SumNum items arrived across parts, ignoring a resent part', () => {
    const c = new MultiPartCollector(key);
    c.expect('k', 0, 1000);
    expect(c.add('k', 3, [{ id: 'a' }, { id: 'b' }])).toEqual({ kind: 'more', got: 2, sumNum: 3 });
    expect(c.add('k', 3, [{ id: 'a' }, { id: 'b' }]).kind).toBe('more');
    expect(c.add('k', 3, [{ id: 'c' }])).toEqual({ kind: 'complete', items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }], sumNum: 3 });
    expect(c.add('k', 3, [{ id: 'd' }])).toEqual({ kind: 'unexpected' });
  });

  test('hands back a partial list at the deadline', () => {
    const c = new MultiPartCollector(key);
    c.expect('k', 0, 1000);
    c.add('k', 5, [{ id: 'a' }]);
    expect(c.expire(999)).toEqual([]);
    expect(c.expire(1000)).toEqual([{ key: 'k', items: [{ id: 'a' }], sumNum: 5 }]);
    expect(c.size).toBe(0);
  });

  test('caps a list announcing more than MAX_LIST_ITEMS', () => {
    const c = new MultiPartCollector(key);
    c.expect('k', 0, 1000);
    const many = Array.from({ length: MAX_LIST_ITEMS + 1 }, (_, i) => ({ id: String(i) }));
    const r = c.add('k', 1_000_000, many);
    expect(r.kind === 'capped' && r.items.length).toBe(MAX_LIST_ITEMS);
  });
});
