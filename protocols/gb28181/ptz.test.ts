import { describe, expect, test } from 'bun:test';
import { mulberry32, randInt } from '../../media/testdata/test-helpers.ts';
import { decodeMansrtsp, encodeMansrtsp } from './mansrtsp.ts';
import { decodePtz, encodePtz, PTZ_COMMANDS } from './ptz.ts';
import { makeSsrc, parseSsrc, SsrcAllocator } from './ssrc.ts';
import { inviteOffer, readAnswer, readOffer } from './invite.ts';

describe('PTZCmd (GB/T 28181 A.3)', () => {
  // Codes as platforms in the field send them (wvp-GB28181-pro, Hikvision iVMS) for address 1.
  const TABLE: [Parameters<typeof encodePtz>[0], string][] = [
    [{ command: 'stop' }, 'A50F0100000000B5'],
    [{ command: 'right', speed: 0x80 }, 'A50F01018000' + '00' + ((0xa5 + 0x0f + 1 + 1 + 0x80) & 0xff).toString(16).toUpperCase()],
    [{ command: 'up', speed: 0x80 }, 'A50F0108008000' + ((0xa5 + 0x0f + 1 + 8 + 0x80) & 0xff).toString(16).toUpperCase()],
    [{ command: 'zoomin', speed: 0xff }, 'A50F01100000F0' + ((0xa5 + 0x0f + 1 + 0x10 + 0xf0) & 0xff).toString(16).toUpperCase().padStart(2, '0')],
    [{ command: 'preset_call', preset: 3 }, 'A50F0182000300' + ((0xa5 + 0x0f + 1 + 0x82 + 3) & 0xff).toString(16).toUpperCase().padStart(2, '0')],
  ];
  for (const [spec, hex] of TABLE) {
    test(`${spec.command} encodes to ${hex}`, () => expect(encodePtz(spec)).toBe(hex));
  }

  test('every command round trips with its speeds and preset', () => {
    for (const command of PTZ_COMMANDS) {
      const hex = encodePtz({ command, speed: 200, preset: 7 });
      const d = decodePtz(hex);
      if (!d.ok) throw new Error(d.reason);
      expect(d.cmd.command).toBe(command);
      if (command.startsWith('preset')) expect(d.cmd.preset).toBe(7);
      if (['left', 'right', 'upleft', 'downright'].includes(command)) expect(d.cmd.panSpeed).toBe(200);
      if (['up', 'down', 'upleft', 'downright'].includes(command)) expect(d.cmd.tiltSpeed).toBe(200);
      if (command.startsWith('zoom')) expect(d.cmd.zoomSpeed).toBe(200 >> 4);
    }
    expect(decodePtz(encodePtz({ command: 'up', address: 0xabc })).ok && (decodePtz(encodePtz({ command: 'up', address: 0xabc })) as { cmd: { address: number } }).cmd.address).toBe(0xabc);
  });

  test('rejects a bad header, check nibble or checksum', () => {
    expect(decodePtz('A50F0100000000B6')).toMatchObject({ ok: false, reason: expect.stringMatching(/checksum/) });
    expect(decodePtz('A51F0100000000C5')).toMatchObject({ ok: false, reason: expect.stringMatching(/check nibble/) });
    expect(decodePtz('B50F0100000000B5')).toMatchObject({ ok: false });
    expect(decodePtz('A50F')).toMatchObject({ ok: false });
  });

  test('fuzz: random codes never throw; a single flipped bit never passes', () => {
    const rnd = mulberry32(0x972);
    for (let i = 0; i < 2000; i++) {
      const hex = encodePtz({ command: PTZ_COMMANDS[randInt(rnd, PTZ_COMMANDS.length)]!, speed: randInt(rnd, 256), preset: 1 + randInt(rnd, 255) });
      const b = hex.match(/../g)!.map((x) => parseInt(x, 16));
      const at = randInt(rnd, 8);
      b[at]! ^= 1 << randInt(rnd, 8);
      expect(decodePtz(b.map((x) => x.toString(16).padStart(2, '0')).join('')).ok).toBe(false);
      decodePtz(Array.from({ length: 16 }, () => '0123456789ABCDEFxz'[randInt(rnd, 18)]).join(''));
    }
  });
});

describe('SSRC (Annex F)', () => {
  test('0 realtime / 1 history, domain digits 4-8, 4-digit sequence', () => {
    expect(makeSsrc(false, '3402000000', 1)).toBe('0200000001');
    expect(makeSsrc(true, '3402012345', 42)).toBe('1201230042');
    expect(parseSsrc('1201230042')).toEqual({ history: true, domainPart: '20123', seq: 42 });
    expect(Number(makeSsrc(true, '9999999999', 9999))).toBeLessThan(2 ** 32);
  });

  test('the allocator skips SSRCs in use and reuses released ones', () => {
    const a = new SsrcAllocator('3402000000');
    const x = a.allocate(false)!;
    const y = a.allocate(false)!;
    expect(x).not.toBe(y);
    a.release(x);
    const seen = new Set<string>();
    for (let i = 0; i < 9998; i++) seen.add(a.allocate(false)!);
    expect(seen.has(y)).toBe(false);
    expect(a.allocate(false)).toBeNull();
  });
});

describe('INVITE SDP and MANSRTSP', () => {
  test('the playback offer carries s=Playback, u=, t=start end, y= and f=; a device reads it back', () => {
    const body = inviteOffer({ platformId: '34020000002000000001', address: '10.0.0.1', port: 30000, ssrc: '1020000001', sessionName: 'Playback', channelId: '34020000001310000001', start: 1714521600, stop: 1714525200, tcpSetup: 'passive' });
    const text = new TextDecoder().decode(body);
    expect(text).toContain('s=Playback\r\nu=34020000001310000001:0\r\n');
    expect(text).toContain('t=1714521600 1714525200');
    expect(text).toContain('m=video 30000 TCP/RTP/AVP 96 98 97');
    expect(text).toContain('a=setup:passive');
    expect(text).toContain('y=1020000001\r\nf=v/////a///');
    expect(readOffer(body)).toMatchObject({ sessionName: 'Playback', address: '10.0.0.1', port: 30000, transport: 'tcp', ssrc: '1020000001', start: 1714521600 });
  });

  test('reads the device answer', () => {
    const ans = new TextEncoder().encode('v=0\r\no=x 0 0 IN IP4 10.0.0.9\r\ns=Play\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=rtpmap:96 PS/90000\r\ny=0020000001\r\n');
    expect(readAnswer(ans)).toEqual({ ok: true, answer: { address: '10.0.0.9', port: 15060, transport: 'udp', ssrc: '0020000001', setup: null } });
    expect(readAnswer(new TextEncoder().encode('garbage')).ok).toBe(false);
  });

  test('MANSRTSP PLAY/PAUSE/seek bodies round trip', () => {
    expect(new TextDecoder().decode(encodeMansrtsp({ action: 'play', scale: 2 }, 3))).toBe('PLAY RTSP/1.0\r\nCSeq: 3\r\nScale: 2.0\r\nRange: npt=now-\r\n\r\n');
    expect(decodeMansrtsp(encodeMansrtsp({ action: 'pause' }, 4))).toEqual({ method: 'PAUSE', cseq: 4, scale: null, rangeStart: null });
    expect(decodeMansrtsp(encodeMansrtsp({ action: 'seek', rangeSeconds: 120, scale: 0.5 }, 5))).toEqual({ method: 'PLAY', cseq: 5, scale: 0.5, rangeStart: 120 });
  });
});
