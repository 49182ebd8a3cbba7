import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt } from '../../media/testdata/test-helpers.ts';
import { buildRequest, buildResponse, newBranch, uuidV4 } from './build.ts';
import {
  expiresOf, getHeader, getHeaders, MAX_SIP_HEADER_COUNT, parseCSeq, parseNameAddr, parseSipMessage, parseVia, serializeSipMessage, type SipMessage,
} from './message.ts';

const enc = (s: string) => new TextEncoder().encode(s);

/** A REGISTER as a Hikvision camera sends it (compact forms and a folded header added). */
const REGISTER = [
  'REGISTER sip:34020000002000000001@3402000000 SIP/2.0',
  'v: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1234',
  'f: <sip:34020000001320000001@3402000000>;tag=abc',
  't: <sip:34020000001320000001@3402000000>',
  'i: 1-2-3@192.168.1.64',
  'CSeq: 1 REGISTER',
  'm: <sip:34020000001320000001@192.168.1.64:5060>',
  'Max-Forwards: 70',
  'User-Agent: IP Camera',
  'Subject: first line',
  '  folded second line',
  'Expires: 3600',
  'l: 0',
  '',
  '',
].join('\r\n');

const MESSAGE_BODY = '<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>1</DeviceID></Notify>';
const MESSAGE = `MESSAGE sip:x@3402000000 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\nVia: SIP/2.0/UDP 10.0.0.3:5062;branch=z9hG4bKc\r\nFrom: "Cam" <sip:1@d>;tag=1\r\nTo: sip:x@d\r\nCall-ID: c1\r\nCSeq: 20 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: ${MESSAGE_BODY.length}\r\n\r\n${MESSAGE_BODY}`;
const RESPONSE = 'SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx\r\nFrom: <sip:a@d>;tag=1\r\nTo: <sip:a@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="3402000000", nonce="n"\r\nContent-Length: 0\r\n\r\n';

const VALID = [REGISTER, MESSAGE, RESPONSE];

describe('SIP message parser', () => {
  test('reads compact forms, folded lines and the request line', () => {
    const r = parseSipMessage(enc(REGISTER));
    if (!r.ok) throw new Error(r.reason);
    expect(r.msg.method).toBe('REGISTER');
    expect(r.msg.uri).toBe('sip:34020000002000000001@3402000000');
    expect(getHeader(r.msg, 'call-id')).toBe('1-2-3@192.168.1.64');
    expect(getHeader(r.msg, 'i')).toBe('1-2-3@192.168.1.64');
    expect(getHeader(r.msg, 'subject')).toBe('first line folded second line');
    expect(expiresOf(r.msg)).toBe(3600);
    expect(parseNameAddr(getHeader(r.msg, 'from')!)!.user).toBe('34020000001320000001');
    expect(parseNameAddr(getHeader(r.msg, 'from')!)!.params.get('tag')).toBe('abc');
  });

  test('splits several Via values, in order, across and within lines', () => {
    const r = parseSipMessage(enc(MESSAGE));
    if (!r.ok) throw new Error(r.reason);
    const vias = getHeaders(r.msg, 'via').map((v) => parseVia(v)!);
    expect(vias.map((v) => [v.transport, v.host, v.port, v.params.get('branch')])).toEqual([
      ['TCP', '10.0.0.1', 5060, 'z9hG4bKa'], ['UDP', '10.0.0.2', null, 'z9hG4bKb'], ['UDP', '10.0.0.3', 5062, 'z9hG4bKc'],
    ]);
    expect(new TextDecoder().decode(r.msg.body)).toBe(MESSAGE_BODY);
    expect(parseNameAddr(getHeader(r.msg, 'from')!)!.display).toBe('Cam');
    expect(parseNameAddr(getHeader(r.msg, 'to')!)!.user).toBe('x');
  });

  test('reads a status line', () => {
    const r = parseSipMessage(enc(RESPONSE));
    if (!r.ok) throw new Error(r.reason);
    expect([r.msg.kind, r.msg.status, r.msg.reason]).toEqual(['response', 401, 'Unauthorized']);
  });

  test('a datagram without Content-Length carries the rest as its body; a shorter one truncates', () => {
    const noCl = MESSAGE.replace(/Content-Length: \d+\r\n/, '');
    const r = parseSipMessage(enc(noCl));
    expect(r.ok && new TextDecoder().decode(r.msg.body)).toBe(MESSAGE_BODY);
    const short = MESSAGE.replace(/Content-Length: \d+/, 'Content-Length: 5');
    const s = parseSipMessage(enc(short));
    expect(s.ok && new TextDecoder().decode(s.msg.body)).toBe('<?xml');
  });

  const BAD: [string, string, RegExp][] = [
    ['no blank line', 'REGISTER sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1', /no empty line/],
    ['bad request line', 'REGISTER  sip:a@b SIP/2.0\r\n\r\n', /bad request line/],
    ['wrong version', 'REGISTER sip:a@b SIP/3.0\r\n\r\n', /bad request line/],
    ['missing Call-ID', REGISTER.replace(/i: .*\r\n/, ''), /missing call-id/],
    ['CSeq method mismatch', REGISTER.replace('CSeq: 1 REGISTER', 'CSeq: 1 INVITE'), /does not match/],
    ['bad CSeq', REGISTER.replace('CSeq: 1 REGISTER', 'CSeq: x REGISTER'), /bad CSeq/],
    ['Content-Length beyond the datagram', MESSAGE.replace(/Content-Length: \d+/, 'Content-Length: 9999'), /Content-Length 9999/],
    ['bad Content-Length', MESSAGE.replace(/Content-Length: \d+/, 'Content-Length: -1'), /bad Content-Length/],
    ['bad Via', REGISTER.replace(/v: .*\r\n/, 'v: garbage\r\n'), /bad Via/],
    ['bad From', REGISTER.replace(/f: .*\r\n/, 'f: nothing\r\n'), /bad From/],
    ['header without colon', REGISTER.replace('Max-Forwards: 70', 'Max-Forwards 70'), /without a name/],
    ['bad status', RESPONSE.replace('401', '999'), /out of 100-699/],
    ['non-SIP URI', REGISTER.replace('REGISTER sip:', 'REGISTER http:'), /scheme/],
  ];
  for (const [name, text, reason] of BAD) {
    test(`refuses ${name} with a reason`, () => {
      const r = parseSipMessage(enc(text));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    });
  }

  test('keeps the headers read before a fault (to build the 400)', () => {
    const r = parseSipMessage(enc(REGISTER.replace('CSeq: 1 REGISTER', 'CSeq: 1 INVITE')));
    if (r.ok) throw new Error('parsed');
    expect(r.request).toBe(true);
    const res = buildResponse({ headers: r.headers }, 400, r.reason);
    const back = parseSipMessage(serializeSipMessage(res));
    if (!back.ok) throw new Error(back.reason);
    expect(back.msg.status).toBe(400);
    expect(getHeader(back.msg, 'call-id')).toBe('1-2-3@192.168.1.64');
  });

  test('caps the header count', () => {
    const many = REGISTER.replace('Expires: 3600\r\n', 'X-A: 1\r\n'.repeat(MAX_SIP_HEADER_COUNT) + 'Expires: 3600\r\n');
    const r = parseSipMessage(enc(many));
    expect(!r.ok && r.reason).toMatch(/more than 64 headers/);
  });

  test('serialize then parse is the identity on the fields', () => {
    for (const text of VALID) {
      const a = parseSipMessage(enc(text));
      if (!a.ok) throw new Error(a.reason);
      const b = parseSipMessage(serializeSipMessage(a.msg));
      if (!b.ok) throw new Error(b.reason);
      const strip = (m: SipMessage) => ({ ...m, headers: m.headers.filter(([k]) => k !== 'content-length') });
      expect(strip(b.msg)).toEqual(strip(a.msg));
    }
  });

  test('built requests parse back, with a UUID v4 Call-ID and a cookie branch', () => {
    const id = uuidV4();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const req = buildRequest({
      method: 'MESSAGE', uri: 'sip:1@2', via: { transport: 'UDP', host: '1.2.3.4', port: 5060 }, from: { uri: 'sip:p@d', tag: 't' }, to: { uri: 'sip:1@d' },
      callId: id, cseq: 7, contentType: 'Application/MANSCDP+xml', body: enc('<x/>'),
    });
    const r = parseSipMessage(serializeSipMessage(req));
    if (!r.ok) throw new Error(r.reason);
    expect(parseCSeq(getHeader(r.msg, 'cseq')!)).toEqual({ seq: 7, method: 'MESSAGE' });
    expect(parseVia(getHeader(r.msg, 'via')!)!.params.get('branch')).toStartWith('z9hG4bK');
    expect(newBranch()).not.toBe(newBranch());
  });

  test('fuzz: mutated and random inputs never throw; accepted ones have the mandatory headers', () => {
    const rnd = mulberry32(0x5199);
    const seeds = VALID.map(enc);
    for (let i = 0; i < 6000; i++) {
      const input = i % 10 === 9 ? crypto.getRandomValues(new Uint8Array(randInt(rnd, 400))) : mutate(seeds[i % seeds.length]!, rnd);
      const copy = input.slice();
      const r = parseSipMessage(input);
      expect(input).toEqual(copy); // never mutates its input
      if (r.ok) {
        for (const h of ['via', 'from', 'to', 'call-id', 'cseq']) expect(getHeader(r.msg, h)).toBeDefined();
        expect(r.msg.headers.length).toBeLessThanOrEqual(MAX_SIP_HEADER_COUNT);
        const again = parseSipMessage(serializeSipMessage(r.msg));
        expect(again.ok).toBe(true);
      } else {
        expect(r.reason.length).toBeGreaterThan(0);
      }
    }
  });
});
