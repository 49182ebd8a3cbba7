import { describe, expect, test } from 'bun:test';
import { mulberry32, randInt } from '../../media/testdata/test-helpers.ts';
import { MAX_RTP_INFO, parsePublic, parseRtpInfo, parseRtspUrl, parseSession, parseTransport } from './headers.ts';

describe('RTSP header values', () => {
  test('Transport replies: interleaved, server ports, SSRC, source (RFC 2326 §12.39)', () => {
    expect(parseTransport('RTP/AVP/TCP;unicast;interleaved=4-5;ssrc=0A1B2C3D;mode="PLAY"')).toEqual({ lower: 'tcp', interleaved: [4, 5], ssrc: 0x0a1b2c3d });
    expect(parseTransport('RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;source=10.0.0.2;ssrc=FFFFFFFF')).toEqual({
      lower: 'udp', clientPorts: [5000, 5001], serverPorts: [6970, 6971], source: '10.0.0.2', ssrc: 0xffffffff,
    });
    expect(parseTransport('RTP/AVP/UDP;unicast;server_port=7000')).toMatchObject({ lower: 'udp', serverPorts: [7000, 7001] });
    expect(parseTransport('RTP/AVP;unicast;interleaved=0-1')).toMatchObject({ lower: 'tcp', interleaved: [0, 1] }); // Transport spelt loosely
    expect(parseTransport('RAW/RAW/UDP;unicast')).toBeNull();
    expect(parseTransport('RTP/AVP/TCP;interleaved=300-301')).toEqual({ lower: 'tcp', interleaved: undefined });
  });

  test('Session ids and timeouts (RFC 2326 §12.37)', () => {
    expect(parseSession('12345678;timeout=30')).toEqual({ id: '12345678', timeoutS: 30 });
    expect(parseSession('ABCDEF; Timeout = 75')).toEqual({ id: 'ABCDEF', timeoutS: 75 });
    expect(parseSession('xyz')).toEqual({ id: 'xyz', timeoutS: null });
    expect(parseSession('xyz;timeout=1')!.timeoutS).toBe(2);
    expect(parseSession('')).toBeNull();
    expect(parseSession('a'.repeat(300))).toBeNull();
  });

  test('RTP-Info entries: url, seq and rtptime per track, out-of-range numbers dropped', () => {
    expect(parseRtpInfo('url=rtsp://h/x/trackID=1;seq=65535;rtptime=4294967295, url=rtsp://h/x/trackID=2;seq=0;rtptime=0')).toEqual([
      { url: 'rtsp://h/x/trackID=1', seq: 65535, rtptime: 4294967295 },
      { url: 'rtsp://h/x/trackID=2', seq: 0, rtptime: 0 },
    ]);
    expect(parseRtpInfo('url=rtsp://h/a;seq=70000;rtptime=x')).toEqual([{ url: 'rtsp://h/a' }]);
    expect(parseRtpInfo('')).toEqual([]);
  });

  test('Public lists', () => {
    expect([...parsePublic('OPTIONS, DESCRIBE,get_parameter ,')]).toEqual(['OPTIONS', 'DESCRIBE', 'GET_PARAMETER']);
  });

  test('RTSP URLs: userinfo split off and percent-decoded, default port, IPv6', () => {
    expect(parseRtspUrl('rtsp://ad%40min:p%3Ass@192.168.1.64/Streaming/Channels/101?transportmode=unicast')).toEqual({
      requestUrl: 'rtsp://192.168.1.64/Streaming/Channels/101?transportmode=unicast', username: 'ad@min', password: 'p:ss', host: '192.168.1.64', port: 554,
    });
    expect(parseRtspUrl('rtsp://[::1]:8554/cam')).toEqual({ requestUrl: 'rtsp://[::1]:8554/cam', host: '::1', port: 8554 });
    expect(parseRtspUrl('RTSP://user@h')).toMatchObject({ requestUrl: 'rtsp://h', username: 'user' });
    expect(parseRtspUrl('rtsp://u:%zz@h/')).toMatchObject({ password: '%zz' }); // bad escapes kept as written
    for (const bad of ['http://h/x', 'rtsp://', 'rtsp://h:0/', 'rtsp://h:70000/', 'rtsp://h/a b', 'rtsp://h/\r\nX: 1']) expect(parseRtspUrl(bad)).toBeNull();
  });

  test('never throw and keep to their caps on random values', () => {
    const rnd = mulberry32(3);
    const alphabet = 'RTP/AVP/TCP;unicast=interleaved-0123456789,url=rtsp://h seqrtptime:timeout@%[]';
    for (let k = 0; k < 5000; k++) {
      let s = '';
      for (let i = randInt(rnd, 120); i > 0; i--) s += alphabet[randInt(rnd, alphabet.length)];
      const t = parseTransport(s);
      if (t?.interleaved) expect(t.interleaved.every((c) => c >= 0 && c <= 255)).toBe(true);
      if (t?.serverPorts) expect(t.serverPorts.every((p) => p >= 0 && p <= 65535)).toBe(true);
      const ses = parseSession(s);
      if (ses?.timeoutS != null) expect(ses.timeoutS).toBeGreaterThanOrEqual(2);
      expect(parseRtpInfo(s.repeat(3)).length).toBeLessThanOrEqual(MAX_RTP_INFO);
      const u = parseRtspUrl(s);
      if (u) expect(/^[a-z]+:\/\/[^/?#]*@/.test(u.requestUrl)).toBe(false); // no userinfo left in the authority
      parsePublic(s);
    }
  });
});
