// GB28181 signalling against sipp as an independent SIP peer: REGISTER with a digest
// challenge/response (200 with the right password, 403 with a wrong one); malformed SIP over UDP
// and TCP gets 400 with a reason, and the engine keeps working (another stream keeps recording,
// a later REGISTER still succeeds).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { makeClip, sleep, startEngine, tempDir, waitFor, type EngineProcess, freeUdpTcpPort } from './helpers.ts';
import { mulberry32, mutate } from '../media/testdata/test-helpers.ts';
import { authorizationFor } from '../protocols/sip/digest.ts';

const SIPP = '/usr/bin/sipp';
const SCENARIOS = join(import.meta.dir, 'peers/sipp');
const PLATFORM = '34020000002000000001';
const DOMAIN = '3402000000';
const dir = tempDir('gbsipp');
let engine: EngineProcess;
let sipPort = 0;

async function sipp(scenario: string, device: string, password: string, transport: 'u1' | 't1' = 'u1'): Promise<{ code: number; out: string }> {
  const p = Bun.spawn([
    SIPP, '-sf', join(SCENARIOS, scenario), '-t', transport, '-m', '1', '-timeout', '10s', '-timeout_error', '-nostdin',
    '-key', 'device', device, '-key', 'platform', PLATFORM, '-key', 'domain', DOMAIN, '-au', device, '-ap', password,
    '-i', '127.0.0.1', '-p', String(await freeUdpTcpPort()), `127.0.0.1:${sipPort}`,
  ], { cwd: dir, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const kill = setTimeout(() => p.kill(), 15_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(kill);
  return { code, out: (out + err).slice(-2000) };
}

const api = (path: string) => fetch(`http://127.0.0.1:${engine.port}${path}`).then((r) => r.json() as Promise<any>);

/** Sends raw bytes over UDP and returns the first datagram answered (or null after 2 s). */
async function udpExchange(bytes: Uint8Array): Promise<string | null> {
  let resolve!: (s: string | null) => void;
  const got = new Promise<string | null>((r) => (resolve = r));
  const s = await Bun.udpSocket({ hostname: '127.0.0.1', socket: { data: (_s, b) => resolve(new TextDecoder().decode(b)) } });
  s.send(bytes, sipPort, '127.0.0.1');
  const t = setTimeout(() => resolve(null), 2000);
  const r = await got;
  clearTimeout(t);
  s.close();
  return r;
}

const enc = (s: string) => new TextEncoder().encode(s);
const head = (method: string, extra = '') =>
  `${method} sip:${PLATFORM}@${DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK${Math.random().toString(36).slice(2)}\r\nFrom: <sip:34020000001320000099@${DOMAIN}>;tag=1\r\nTo: <sip:${PLATFORM}@${DOMAIN}>\r\nCall-ID: bad-${Math.random()}\r\n${extra}`;

const MALFORMED: [string, string][] = [
  ['CSeq method mismatch', `${head('OPTIONS')}CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n`],
  ['no CSeq', `${head('OPTIONS')}Content-Length: 0\r\n\r\n`],
  ['Content-Length beyond the datagram', `${head('MESSAGE')}CSeq: 1 MESSAGE\r\nContent-Length: 500\r\n\r\n<x/>`],
  ['header line without a colon', `${head('OPTIONS')}CSeq: 1 OPTIONS\r\nthis is not a header\r\n\r\n`],
  ['a request line with SIP/3.0', `OPTIONS sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKq\r\n\r\n`],
  ['no end of headers', `${head('OPTIONS')}CSeq: 1 OPTIONS\r\n`],
  ['binary garbage after a request line', `OPTIONS sip:a@b SIP/2.0\r\n\u0001\u0002\u0003:\u0000\r\n\r\n`],
];

beforeAll(async () => {
  sipPort = await freeUdpTcpPort();
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 320, height: 180, fps: 25, seconds: 4 });
  engine = startEngine(dir, `[video.storage]
base_path = "${dir}/data"
segment_duration = 1
[video.demo]
enabled = false
[video.gb28181]
enabled = true
local_ip = "127.0.0.1"
local_port = ${sipPort}
password = "right-password"
query_timeout_ms = 2000
nonce_lifetime = 5
[[video.streams]]
stream_id = "keep"
protocol = "file"
source_url = "file://${clip}"
`);
  await engine.waitForLog(/FLUX video ready/);
  await engine.waitForLog(/GB28181 platform/);
}, 30_000);

afterAll(async () => {
  if (process.env.GB_DEBUG) console.log(engine?.output());
  await engine?.stop();
});

describe('GB28181 with sipp as the device', () => {
  test('REGISTER with the right password: 401 challenge, then 200; the device is online', async () => {
    const r = await sipp('register-ok.xml', '34020000001320000001', 'right-password');
    expect(r.code, r.out).toBe(0);
    const d = await waitFor(async () => (await api('/api/video/gb28181/devices/34020000001320000001')).status === 'online', 5000, 'device online');
    expect(d).toBe(true);
  }, 20_000);

  test('REGISTER with a wrong password gets 403 (UDP and TCP)', async () => {
    const r = await sipp('register-forbidden.xml', '34020000001320000002', 'wrong');
    expect(r.code, r.out).toBe(0);
    const t = await sipp('register-forbidden.xml', '34020000001320000003', 'wrong', 't1');
    expect(t.code, t.out).toBe(0);
    const res = await fetch(`http://127.0.0.1:${engine.port}/api/video/gb28181/devices/34020000001320000002`);
    expect(res.status).toBe(404);
  }, 30_000);

  test('an expired nonce gets 401 with stale=true, and the answer to the new nonce gets 200', async () => {
    const dev = '34020000001320000005';
    const register = (cseq: number, auth?: string) => enc(
      `REGISTER sip:${PLATFORM}@${DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5998;branch=z9hG4bK${Math.random().toString(36).slice(2)}\r\n` +
      `From: <sip:${dev}@${DOMAIN}>;tag=s1\r\nTo: <sip:${dev}@${DOMAIN}>\r\nCall-ID: stale-1\r\nCSeq: ${cseq} REGISTER\r\nExpires: 3600\r\n` +
      `${auth ? `Authorization: ${auth}\r\n` : ''}Content-Length: 0\r\n\r\n`);
    const challenge = (ans: string) => /WWW-Authenticate: (.*)\r\n/i.exec(ans)![1]!;
    const first = (await udpExchange(register(1)))!;
    expect(first).toStartWith('SIP/2.0 401');
    expect(first).not.toContain('stale=true');
    await sleep(5200); // nonce_lifetime = 5
    const auth = (ch: string) => authorizationFor({ challenge: ch, method: 'REGISTER', uri: `sip:${PLATFORM}@${DOMAIN}`, username: dev, password: 'right-password' })!;
    const stale = (await udpExchange(register(2, auth(challenge(first)))))!;
    expect(stale).toStartWith('SIP/2.0 401');
    expect(challenge(stale)).toContain('stale=true');
    const ok = (await udpExchange(register(3, auth(challenge(stale)))))!;
    expect(ok).toStartWith('SIP/2.0 200');
  }, 20_000);

  test('malformed SIP over UDP gets 400 with the reason', async () => {
    for (const [name, text] of MALFORMED) {
      const ans = await udpExchange(enc(text));
      expect(ans, name).not.toBeNull();
      expect(ans!.split('\r\n')[0], name).toMatch(/^SIP\/2\.0 400 \S/);
    }
    expect(engine.output()).toMatch(/malformed SIP from udp 127\.0\.0\.1/);
  }, 30_000);

  test('malformed SIP over TCP gets 400; a framing error closes the connection, a bad message does not', async () => {
    const chunks: string[] = [];
    let closed = false;
    const sock = await Bun.connect({ hostname: '127.0.0.1', port: sipPort, socket: { data: (_s, d) => { chunks.push(new TextDecoder().decode(d)); }, close: () => { closed = true; } } });
    const tcpHead = (m: string) => head(m).replace('SIP/2.0/UDP', 'SIP/2.0/TCP');
    sock.write(enc(`${tcpHead('OPTIONS')}CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n`)); // bad, but framed
    await waitFor(() => chunks.join('').includes(' 400 '), 3000, '400 over TCP');
    sock.write(enc(`${tcpHead('OPTIONS')}CSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n`)); // good: the stream goes on
    await waitFor(() => chunks.join('').includes('SIP/2.0 200'), 3000, '200 over TCP');
    sock.write(enc(`${tcpHead('OPTIONS')}CSeq: 3 OPTIONS\r\nContent-Length: ten\r\n\r\n`)); // framing broken
    await waitFor(() => closed, 3000, 'the connection closed');
    expect(chunks.join('').match(/SIP\/2\.0 400/g)!.length).toBe(2);
  }, 20_000);

  test('the engine keeps working: the other stream records, a later REGISTER succeeds', async () => {
    // The malformed set, then seeded mutations of a valid REGISTER and MESSAGE (some parse, most do not).
    const rnd = mulberry32(0x6b28);
    const valid = [enc(`${head('REGISTER')}CSeq: 1 REGISTER\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n`), enc(`${head('MESSAGE')}CSeq: 1 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: 20\r\n\r\n<Notify></Notify>\r\n`)];
    const flood = [
      ...Array.from({ length: 100 }, (_, i) => enc(MALFORMED[i % MALFORMED.length]![1])),
      ...Array.from({ length: 300 }, (_, i) => mutate(valid[i % 2]!, rnd)),
    ];
    const s = await Bun.udpSocket({ hostname: '127.0.0.1' });
    for (const b of flood) s.send(b, sipPort, '127.0.0.1');
    s.close();
    const before = (await api(`/api/video/recordings/keep?start=0&end=${Date.now() + 60_000}`)).segments.length as number;
    await sleep(2500);
    const stream = await api('/api/video/streams/keep');
    expect(stream.state).toBe('live');
    const after = (await api(`/api/video/recordings/keep?start=0&end=${Date.now() + 60_000}`)).segments.length as number;
    expect(after).toBeGreaterThan(before);
    const r = await sipp('register-ok.xml', '34020000001320000004', 'right-password', 't1');
    expect(r.code, r.out).toBe(0);
    expect(engine.proc.exitCode).toBeNull();
    expect((await api('/api/video/gb28181/devices')).counters.badMessages).toBeGreaterThan(100);
  }, 30_000);
});
