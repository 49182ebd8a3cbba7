// GB28181 end to end with the device simulator (bench/gb28181-device.ts) against the engine run
// as users run it: register, catalog over several MESSAGEs, live over UDP and TCP recorded and
// judged by ffprobe, PTZ bytes checked on the device, BYE both ways, records, playback control,
// offline after missed keepalives, alarms, and devices kept across a restart.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SimDevice } from '../bench/gb28181-device.ts';
import { gbTime } from '../protocols/gb28181/commands.ts';
import { decodeErrors, makeClip, probe, sleep, startEngine, tempDir, waitFor, type EngineProcess, freeUdpTcpPort } from './helpers.ts';

const dir = tempDir('gb');
const A = '34020000001320000011';
const B = '34020000001320000012';
const C = '34020000001320000013';
let engine: EngineProcess;
let sipPort = 0;
let toml = '';
const devices: SimDevice[] = [];
let clip264 = '';
let clip265 = '';

const url = (p: string) => `http://127.0.0.1:${engine.port}/api/video/gb28181${p}`;
async function call(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url(p), { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  return { status: r.status, json: text === '' ? null : JSON.parse(text) };
}
const device = async (id: string) => (await call('GET', `/devices/${id}`)).json;

function sim(id: string, o: Partial<ConstructorParameters<typeof SimDevice>[0]> = {}): SimDevice {
  const d = new SimDevice({ platformHost: '127.0.0.1', platformPort: sipPort, deviceId: id, password: 'pw', keepaliveMs: 500, ...o });
  devices.push(d);
  return d;
}

/** Runs a live session for ~3 s (snapshot taken), stops it with DELETE, and judges a closed segment with ffprobe. */
async function liveRecorded(dev: SimDevice, transport: 'udp' | 'tcp', codec: string) {
  const ch = dev.channelId(0);
  const r = await call('POST', `/devices/${dev.o.deviceId}/channels/${ch}/live?transport=${transport}`);
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  const streamId = r.json.stream_id as string;
  expect(r.json.ssrc).toMatch(/^0\d{9}$/);
  await waitFor(async () => (await (await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/${streamId}`)).json() as any).state === 'live', 10_000, `${streamId} live`);
  await sleep(3500);
  const snap = await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/${streamId}/snapshot?width=160`);
  expect(snap.status).toBe(200);
  expect(snap.headers.get('content-type')).toBe('image/jpeg');
  const call0 = [...dev.calls.values()].at(-1)!;
  expect(call0.transport).toBe(transport);
  expect(call0.sender?.packetsSent ?? 0).toBeGreaterThan(0);
  const del = await call('DELETE', `/devices/${dev.o.deviceId}/channels/${ch}/live`);
  expect(del.status).toBe(204);
  await waitFor(() => call0.byeReceived, 5000, 'BYE at the device');
  const rec = await (await fetch(`http://127.0.0.1:${engine.port}/api/video/recordings/${streamId}?start=0&end=${Date.now() + 60_000}`)).json() as any;
  const seg = (rec.segments as any[]).find((s) => s.url !== null && s.duration_ms >= 500);
  expect(seg, JSON.stringify(rec)).toBeDefined();
  const file = join(dir, `${streamId}.mp4`);
  writeFileSync(file, new Uint8Array(await (await fetch(`http://127.0.0.1:${engine.port}${seg.url}`)).arrayBuffer()));
  const p = await probe(file);
  expect(p.codec).toBe(codec);
  expect([p.width, p.height]).toEqual([320, 180]);
  expect(p.frames).toBeGreaterThan(10);
  expect(p.keyframeTimes.length).toBeGreaterThan(0);
  expect(await decodeErrors(file)).toBe('');
  return streamId;
}

beforeAll(async () => {
  sipPort = await freeUdpTcpPort();
  const rtp = 40_000 + Math.floor(Math.random() * 20_000);
  clip264 = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 320, height: 180, fps: 25, seconds: 4, gop: 25 });
  clip265 = await makeClip(join(dir, 'clips'), { codec: 'h265', width: 320, height: 180, fps: 25, seconds: 4, gop: 25 });
  toml = `[video.storage]
base_path = "${dir}/data"
segment_duration = 1
[video.demo]
enabled = false
[video.protocols]
gb28181 = true
[video.gb28181]
local_ip = "127.0.0.1"
local_port = ${sipPort}
password = "pw"
keepalive_interval = 1
keepalive_timeout_count = 3
query_timeout_ms = 3000
rtp_port_min = ${rtp}
rtp_port_max = ${rtp + 50}
`;
  engine = startEngine(dir, toml);
  await engine.waitForLog(/FLUX video ready/);
  const a = sim(A, { channels: 5, perPart: 2, clipPath: clip264, codec: 'h264' });
  const b = sim(B, { transport: 'tcp', channels: 1, clipPath: clip265, codec: 'h265', charset: 'UTF-8' });
  const c = sim(C, { channels: 1 });
  expect(await Promise.all([a.start(), b.start(), c.start()])).toEqual([200, 200, 200]);
}, 30_000);

afterAll(async () => {
  await Promise.all(devices.map((d) => d.stop().catch(() => {})));
  if (process.env.GB_DEBUG) console.log(engine?.output());
  await engine?.stop();
});

describe('GB28181 with the device simulator', () => {
  test('registered devices show up with their catalog (multi-part) and DeviceInfo', async () => {
    const a = await waitFor(async () => { const d = await device(A); return d.channels?.length === 5 && d.name !== '' ? d : null; }, 8000, 'catalog of A');
    expect(a).toMatchObject({ status: 'online', transport: 'udp', manufacturer: 'FLUX', model: 'SIM-1', firmware: 'V1.0' });
    expect(a.channels.map((c: any) => c.name)).toEqual(['通道 1', '通道 2', '通道 3', '通道 4', '通道 5']);
    const b = await waitFor(async () => { const d = await device(B); return d.channels?.length === 1 ? d : null; }, 8000, 'catalog of B');
    expect(b).toMatchObject({ status: 'online', transport: 'tcp' });
    const st = await call('GET', `/devices/${A}/status`);
    expect(st.json).toMatchObject({ device_id: A, result: 'OK', online: 'ONLINE', encode: 'ON' });
    const all = (await call('GET', '/devices')).json;
    expect(all.devices.map((d: any) => d.device_id).sort()).toEqual([A, B, C]);
    expect((await call('GET', '/devices/34020000001329999999')).status).toBe(404);
    expect((await call('GET', '/devices/bad-id')).status).toBe(400);
  }, 15_000);

  test('live over UDP (H.264) and over TCP (H.265) are recorded; DELETE sends BYE', async () => {
    const [u, t] = await Promise.all([liveRecorded(devices[0]!, 'udp', 'h264'), liveRecorded(devices[1]!, 'tcp', 'hevc')]);
    expect(u).toBe(`gb_${A}_${devices[0]!.channelId(0)}`);
    expect(t).toBe(`gb_${B}_${devices[1]!.channelId(0)}`);
  }, 40_000);

  test('a BYE from the device closes the session and its stream', async () => {
    const a = devices[0]!;
    const ch = a.channelId(1);
    const r = await call('POST', `/devices/${A}/channels/${ch}/live`);
    expect(r.status).toBe(201);
    const callId = [...a.calls.values()].at(-1)!.callId;
    await waitFor(() => a.calls.get(callId)!.acked, 5000, 'ACK');
    expect(await a.hangup(callId)).toBe(200);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/${r.json.stream_id}`)).status === 404, 5000, 'stream removed');
    // Removing the stream through the streams API ends the dialog too.
    const r2 = await call('POST', `/devices/${A}/channels/${a.channelId(3)}/live`);
    expect(r2.status).toBe(201);
    const c2 = [...a.calls.values()].at(-1)!;
    await waitFor(() => c2.acked, 5000, 'ACK');
    expect((await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/${r2.json.stream_id}`, { method: 'DELETE' })).status).toBeLessThan(300);
    await waitFor(() => c2.byeReceived, 5000, 'BYE after DELETE /api/video/streams');
  }, 15_000);

  test('a device that answers with its own SSRC (y=) is accepted: its packets are recorded', async () => {
    const b = devices[1]!;
    b.o.ownSsrc = '0123456789';
    try {
      const r = await call('POST', `/devices/${B}/channels/${b.channelId(0)}/live?transport=tcp`);
      expect(r.status, JSON.stringify(r.json)).toBe(201);
      expect(r.json.ssrc).not.toBe('0123456789');
      const s = await waitFor(async () => {
        const v = (await (await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/${r.json.stream_id}`)).json()) as any;
        return v.state === 'live' && v.counters?.frames > 0 ? v : null;
      }, 10_000, 'live with the answered SSRC');
      expect(s.gb28181_media.ssrc_mismatches).toBe(0);
      expect((await call('DELETE', `/devices/${B}/channels/${b.channelId(0)}/live`)).status).toBeLessThan(300);
    } finally {
      delete b.o.ownSsrc;
    }
  }, 20_000);

  test('PTZ commands reach the device as A50F01 codes with the right bytes', async () => {
    const ch = devices[0]!.channelId(2);
    const cmds = [['up', 100], ['downleft', 30], ['zoomin', 255], ['stop', 0]] as const;
    for (const [command, speed] of cmds) expect((await call('POST', `/devices/${A}/ptz`, { channel_id: ch, command, speed })).status).toBe(200);
    expect((await call('POST', `/devices/${A}/ptz`, { channel_id: ch, command: 'preset_call', preset: 7 })).status).toBe(200);
    await waitFor(() => devices[0]!.ptz.length >= 5, 5000, 'PTZ at the device');
    const got = devices[0]!.ptz.map((p) => [p.command, p.panSpeed, p.tiltSpeed, p.zoomSpeed, p.preset]);
    expect(got).toEqual([['up', 0, 100, 0, 0], ['downleft', 30, 30, 0, 0], ['zoomin', 0, 0, 15, 0], ['stop', 0, 0, 0, 0], ['preset_call', 0, 0, 0, 7]]);
    expect(devices[0]!.ptzHex[0]).toBe('A50F0108006400' + ((0xa5 + 0x0f + 1 + 8 + 100) & 0xff).toString(16).toUpperCase());
    expect((await call('POST', `/devices/${A}/ptz`, { channel_id: ch, command: 'spin' })).json.field).toBe('command');
    expect((await call('POST', `/devices/${A}/ptz`, { channel_id: ch, command: 'preset_set' })).json.field).toBe('preset');
    expect((await call('POST', `/devices/${A}/ptz`, { channel_id: '34020000001319999999', command: 'up' })).status).toBe(404);
  }, 15_000);

  test('records come back from RecordInfo; playback INVITEs s=Playback and INFO carries MANSRTSP', async () => {
    const ch = devices[0]!.channelId(0);
    const start = Date.UTC(2024, 4, 1), end = Date.UTC(2024, 4, 1, 5);
    const r = await call('GET', `/devices/${A}/records?channel_id=${ch}&start=${start}&end=${end}`);
    expect(r.status).toBe(200);
    expect(r.json.complete).toBe(true);
    // Local times on the wire (both sides in this process's zone); start_ms reads them back.
    expect(r.json.records.map((x: any) => x.start_ms)).toEqual([start, start + 3_600_000, start + 7_200_000]);
    expect(r.json.records[0].start_time).toBe(gbTime(start, -new Date(start).getTimezoneOffset()));
    const pb = await call('POST', `/devices/${A}/playback`, { channel_id: ch, start_time: start, end_time: end, transport: 'udp' });
    expect(pb.status, JSON.stringify(pb.json)).toBe(201);
    expect(pb.json.ssrc).toMatch(/^1\d{9}$/);
    const c = [...devices[0]!.calls.values()].at(-1)!;
    expect([c.sessionName, c.start, c.stop, c.ssrc]).toEqual(['Playback', start / 1000, end / 1000, pb.json.ssrc]);
    const ctl = (body: unknown) => call('POST', `/devices/${A}/playback/${pb.json.stream_id}/control`, body);
    expect((await ctl({ action: 'pause' })).status).toBe(200);
    expect((await ctl({ action: 'play', scale: 2 })).status).toBe(200);
    expect((await ctl({ action: 'seek', range: 600 })).status).toBe(200);
    expect((await ctl({ action: 'play', scale: 3 })).json.field).toBe('scale');
    expect(devices[0]!.infos.map((i) => [i?.method, i?.scale, i?.rangeStart])).toEqual([['PAUSE', null, null], ['PLAY', 2, 'now'], ['PLAY', null, 600]]);
    expect((await call('DELETE', `/devices/${A}/playback/${pb.json.stream_id}`)).status).toBe(204);
    await waitFor(() => c.byeReceived, 5000, 'BYE of the playback');
    const dl = await call('POST', `/devices/${A}/playback`, { channel_id: ch, start_time: new Date(start).toISOString(), end_time: new Date(end).toISOString(), download_speed: 4 });
    expect(dl.status, JSON.stringify(dl.json)).toBe(201);
    expect(dl.json.kind).toBe('download');
    expect(dl.json.ssrc).toMatch(/^1\d{9}$/);
    const d = [...devices[0]!.calls.values()].at(-1)!;
    expect([d.sessionName, d.downloadSpeed, d.start]).toEqual(['Download', 4, start / 1000]);
    expect((await call('DELETE', `/devices/${A}/playback/${dl.json.stream_id}`)).status).toBe(204);
    expect((await call('POST', `/devices/${A}/playback`, { channel_id: ch, start_time: start, end_time: end, download_speed: 99 })).json.field).toBe('download_speed');
    expect((await call('POST', `/devices/${A}/playback`, { channel_id: ch, start_time: end, end_time: start })).json.field).toBe('end_time');
  }, 20_000);

  test('alarms become events', async () => {
    await devices[0]!.alarm('移动侦测');
    await engine.waitForLog(/alarm from 34020000001320000011: priority 1, method 2, 移动侦测/, 5000);
  }, 10_000);

  test('a refresh keeps the device online without a new online event; too short an Expires gets 423; Expires: 0 unregisters', async () => {
    const onlineLines = () => engine.output().split('\n').filter((l) => l.includes(`device ${A} online`)).length;
    const before = onlineLines();
    expect(await devices[0]!.register(3600)).toBe(200);
    expect(await devices[0]!.register(10)).toBe(423); // below register_expires_min (60)
    expect((await device(A)).status).toBe('online');
    expect(onlineLines()).toBe(before);
    const b = devices[1]!;
    b.stopKeepalive();
    expect(await b.register(0)).toBe(200);
    await engine.waitForLog(/device 34020000001320000012 offline: unregistered \(Expires: 0\)/, 3000);
    expect((await device(B)).status).toBe('offline');
  }, 15_000);

  test('a device missing 3 keepalives goes offline; then live answers 409', async () => {
    const c = devices[2]!;
    c.stopKeepalive();
    await waitFor(async () => (await device(C)).status === 'offline', 8000, 'C offline');
    await engine.waitForLog(/device 34020000001320000013 offline: no keepalive/, 1000);
    const r = await call('POST', `/devices/${C}/channels/${c.channelId(0)}/live`);
    expect(r.status).toBe(409);
    expect((await call('POST', `/devices/${A}/channels/${devices[0]!.channelId(0)}/live?transport=quic`)).json.field).toBe('transport');
  }, 15_000);

  test('devices and channels persist across a restart, offline until they register again', async () => {
    for (const d of devices) d.stopKeepalive();
    expect(await engine.stop()).toBe(0);
    engine = startEngine(dir, toml);
    await engine.waitForLog(/FLUX video ready/);
    await engine.waitForLog(/3 known devices/, 1000);
    const a = await device(A);
    expect(a.status).toBe('offline');
    expect(a.channels.length).toBe(5);
    expect(a.manufacturer).toBe('FLUX');
    // The device's next keepalive is refused (403: not registered), so it registers again.
    expect(await devices[0]!.keepalive()).toBe(403);
    await waitFor(async () => (await device(A)).status === 'online', 5000, 'A online again');
  }, 30_000);
});
