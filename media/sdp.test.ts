import { describe, expect, test } from 'bun:test';
import { gbInviteSdp, MAX_SDP_MEDIA, parseFmtpParams, parseSdp, resolveControlUrl, serializeSdp } from './sdp.ts';
import { ParseError } from './types.ts';
import { mulberry32, randInt } from './testdata/test-helpers.ts';

/** Real-world shapes: FFmpeg's, a Hikvision-style DESCRIBE answer, a GB28181 device's 200 OK. */
const CASES: Record<string, string> = {
  ffmpeg: 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 5004 RTP/AVP 96\r\nb=AS:191\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAFqzZQUH7ARAAAAMAEAAAAwMg8WLZYA==,aOvjyyLA; profile-level-id=640016\r\nm=audio 5006 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1190\r\n',
  camera: 'v=0\no=- 1700000000000000 1700000000000000 IN IP4 192.168.1.64   \ns=Media Presentation\ne=NONE\nb=AS:5100\nt=0 0\na=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\nm=video 0 RTP/AVP 96\nc=IN IP4 0.0.0.0\nb=AS:5000\na=recvonly\na=x-dimensions:1920,1080\na=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1\na=rtpmap:96 H265/90000\na=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAAAMAAAMAAAMAlqwJ;sprop-sps=QgEBAWAAAAMAAAMAAAMAAAMAlqABQCAFodZq;sprop-pps=RAHA8vA8kA==\na=Media_header:MEDIAINFO=494D4B48;\na=appversion:1.0\nm=audio 0 RTP/AVP 8\na=rtpmap:8 PCMA/8000\na=control:trackID=2\nz=unknown line\n',
  gb28181: 'v=0\r\no=34020000001320000001 0 0 IN IP4 192.168.1.20\r\ns=Play\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\na=filesize:0\r\ny=0100000001\r\nf=v/2/5/25/1/4096a///\r\n',
};

describe('parseSdp', () => {
  test('reads FFmpeg\'s SDP: session fields, rtpmap, fmtp with lowercased keys and base64 padding', () => {
    const s = parseSdp(CASES.ffmpeg!);
    expect(s.origin).toEqual({ username: '-', sessionId: '0', sessionVersion: '0', netType: 'IN', addrType: 'IP4', address: '127.0.0.1' });
    expect(s.sessionName).toBe('No Name');
    expect(s.timing).toEqual({ start: 0, stop: 0 });
    expect(s.attributes).toEqual([{ name: 'tool', value: 'libavformat 59.27.100' }]);
    const [v, a] = s.media;
    expect(v).toMatchObject({ type: 'video', port: 5004, protocol: 'RTP/AVP', formats: ['96'] });
    expect(v!.rtpmap.get(96)).toEqual({ encoding: 'H264', clockRate: 90000, channels: 1 });
    expect(v!.fmtp.get(96)!.get('sprop-parameter-sets')).toBe('Z2QAFqzZQUH7ARAAAAMAEAAAAwMg8WLZYA==,aOvjyyLA');
    expect(a!.rtpmap.get(97)).toEqual({ encoding: 'MPEG4-GENERIC', clockRate: 48000, channels: 2 });
    expect(a!.fmtp.get(97)!.get('sizelength')).toBe('13');
    expect(a!.fmtp.get(97)!.get('config')).toBe('1190');
  });

  test('reads a camera DESCRIBE with LF endings, trailing spaces, unknown lines, controls and direction', () => {
    const s = parseSdp(CASES.camera!);
    expect(s.control).toBe('rtsp://192.168.1.64:554/Streaming/Channels/101/');
    expect(s.media.length).toBe(2);
    expect(s.media[0]!.direction).toBe('recvonly');
    expect(s.media[0]!.connection).toEqual({ netType: 'IN', addrType: 'IP4', address: '0.0.0.0' });
    expect(s.media[0]!.fmtp.get(96)!.get('sprop-pps')).toBe('RAHA8vA8kA==');
    expect(s.media[1]!.control).toBe('trackID=2');
    expect(s.media[1]!.rtpmap.get(8)!.encoding).toBe('PCMA');
    expect(s.media[0]!.attributes.map((x) => x.name)).toEqual(['x-dimensions', 'Media_header', 'appversion']);
  });

  test('reads the GB28181 y= (SSRC) and f= lines', () => {
    const m = parseSdp(CASES.gb28181!).media[0]!;
    expect(m.ssrc).toBe('0100000001');
    expect(m.format).toBe('v/2/5/25/1/4096a///');
    expect(m.direction).toBe('sendonly');
    expect(m.rtpmap.get(96)!.encoding).toBe('PS');
  });

  for (const [name, text] of Object.entries(CASES)) {
    test(`round-trips the ${name} SDP through serializeSdp`, () => {
      const a = parseSdp(text);
      const out = serializeSdp(a);
      expect(out.endsWith('\r\n')).toBe(true);
      expect(parseSdp(out)).toEqual(a);
      expect(serializeSdp(parseSdp(out))).toBe(out);
    });
  }

  const BAD: [string, string, number][] = [
    ['a line without "="', 'v=0\r\ns=x\r\nbogus\r\n', 3],
    ['version 1', 'v=1\r\n', 1],
    ['a non-numeric port', 'v=0\r\nm=video abc RTP/AVP 96\r\n', 2],
    ['a port above 65535', 'v=0\r\nm=video 70000 RTP/AVP 96\r\n', 2],
    ['an m= line with two fields', 'v=0\r\nm=video 0\r\n', 2],
    ['a bad rtpmap', 'v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n', 3],
    ['a zero clock rate', 'v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/0\r\n', 3],
    ['a bad t= line', 'v=0\r\nt=now\r\n', 2],
    ['an o= line with 3 fields', 'v=0\r\no=a b c\r\n', 2],
  ];
  for (const [what, text, line] of BAD) {
    test(`rejects ${what} with ParseError naming line ${line}`, () => {
      expect(() => parseSdp(text)).toThrow(ParseError);
      expect(() => parseSdp(text)).toThrow(`line ${line}:`);
    });
  }

  test('caps media sections, lines and size', () => {
    const many = `v=0\n${'m=audio 0 RTP/AVP 0\n'.repeat(MAX_SDP_MEDIA + 1)}`;
    expect(() => parseSdp(many)).toThrow(`line ${MAX_SDP_MEDIA + 2}:`);
    expect(() => parseSdp(`v=0\n${'a=x\n'.repeat(2000)}`)).toThrow('more than 1024 lines');
    expect(() => parseSdp(`v=0\na=${'x'.repeat(70000)}\n`)).toThrow(ParseError);
  });

  test('fmtp parameters: keys lowercased, values keep "=" and case', () => {
    expect([...parseFmtpParams(' Packetization-Mode=1 ;config=AbC=;flag;')]).toEqual([['packetization-mode', '1'], ['config', 'AbC='], ['flag', '']]);
  });
});

describe('resolveControlUrl', () => {
  const base = 'rtsp://cam/live/ch1';
  test.each([
    [null, base],
    ['*', base],
    ['', base],
    ['trackID=1', 'rtsp://cam/live/ch1/trackID=1'],
    ['/trackID=1', 'rtsp://cam/live/ch1/trackID=1'],
    ['rtsp://other:8554/x/track2', 'rtsp://other:8554/x/track2'],
    ['RTSP://CAM/A', 'RTSP://CAM/A'],
  ])('control %p resolves to %p', (control, want) => {
    expect(resolveControlUrl(base, control)).toBe(want);
  });
  test('a base ending in "/" gets no second slash', () => {
    expect(resolveControlUrl('rtsp://cam/Streaming/Channels/101/', 'trackID=1')).toBe('rtsp://cam/Streaming/Channels/101/trackID=1');
  });
});

describe('GB28181 INVITE offer', () => {
  test('live over UDP: the lines a device expects, in order', () => {
    const text = serializeSdp(gbInviteSdp({ platformId: '34020000002000000001', address: '10.0.0.5', port: 30000, ssrc: '0100000001' }));
    expect(text).toBe([
      'v=0', 'o=34020000002000000001 0 0 IN IP4 10.0.0.5', 's=Play', 'c=IN IP4 10.0.0.5', 't=0 0',
      'm=video 30000 RTP/AVP 96 98 97', 'a=recvonly', 'a=rtpmap:96 PS/90000', 'a=rtpmap:98 H264/90000',
      'a=rtpmap:97 MPEG4/90000', 'y=0100000001', '',
    ].join('\r\n'));
    expect(serializeSdp(parseSdp(text))).toBe(text);
  });

  test('playback over TCP: u= line, time range, setup and connection attributes', () => {
    const s = gbInviteSdp({ platformId: '34020000002000000001', address: '10.0.0.5', port: 30002, ssrc: '1100000002', sessionName: 'Playback', channelId: '34020000001320000001', start: 1700000000, stop: 1700003600, tcpSetup: 'passive' });
    const text = serializeSdp(s);
    expect(text).toContain('u=34020000001320000001:0\r\n');
    expect(text).toContain('t=1700000000 1700003600\r\n');
    expect(text).toContain('m=video 30002 TCP/RTP/AVP 96 98 97\r\n');
    expect(text).toContain('a=setup:passive\r\na=connection:new\r\n');
    expect(parseSdp(text)).toEqual(s);
  });
});

describe('fuzz', () => {
  test('mutated SDP either parses or throws ParseError, and a parse round-trips', () => {
    const rnd = mulberry32(4566);
    const seeds = Object.values(CASES);
    const alphabet = 'vosctmayfbu=:/ \r\n0123456789abcxyz;-.*';
    for (let i = 0; i < 3000; i++) {
      let t = seeds[randInt(rnd, seeds.length)]!;
      const edits = 1 + randInt(rnd, 6);
      for (let k = 0; k < edits; k++) {
        const at = randInt(rnd, t.length + 1);
        switch (randInt(rnd, 4)) {
          case 0: t = t.slice(0, at) + t.slice(at + 1 + randInt(rnd, 10)); break;
          case 1: t = t.slice(0, at) + alphabet[randInt(rnd, alphabet.length)]! + t.slice(at); break;
          case 2: t = t.slice(0, at); break;
          default: { const s = randInt(rnd, t.length); t = t.slice(0, at) + t.slice(s, s + randInt(rnd, 40)) + t.slice(at); }
        }
      }
      try {
        const s = parseSdp(t);
        expect(parseSdp(serializeSdp(s))).toEqual(s);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        expect(e.message).toMatch(/line \d+/);
      }
    }
  });
});
