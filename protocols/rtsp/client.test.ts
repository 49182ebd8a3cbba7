import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { MAX_REDIRECTS } from './client.ts';
import { concat, frame, playToEnd, response, ScriptedCamera, SDP_CAMERA, SDP_H264_AAC } from './testdata/rtsp-script.ts';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const param = (v: string, name: string) => new RegExp(`[ ,]${name}="?([^",]*)"?`).exec(v)?.[1];

describe('RTSP client: the session sequence', () => {
  test('runs OPTIONS, DESCRIBE, SETUP per track and PLAY, then reports playing', () => {
    const cam = new ScriptedCamera({ userAgent: 'flux/1' }).start();
    playToEnd(cam);
    expect(cam.requests.map((r) => `${r.method} ${r.uri}`)).toEqual([
      'OPTIONS rtsp://cam.local/live',
      'DESCRIBE rtsp://cam.local/live',
      'SETUP rtsp://cam.local/live/stream=0',
      'SETUP rtsp://cam.local/live/stream=1',
      'PLAY rtsp://cam.local/live/',
    ]);
    expect(cam.requests.map((r) => cam.header('cseq', r))).toEqual(['1', '2', '3', '4', '5']);
    expect(cam.requests.map((r) => cam.header('user-agent', r))).toEqual(Array(5).fill('flux/1'));
    expect(cam.header('accept', cam.requests[1])).toBe('application/sdp');
    expect(cam.requests.map((r) => cam.header('transport', r))).toEqual([
      undefined, undefined, 'RTP/AVP/TCP;unicast;interleaved=0-1', 'RTP/AVP/TCP;unicast;interleaved=2-3', undefined,
    ]);
    expect(cam.requests.map((r) => cam.header('session', r))).toEqual([undefined, undefined, undefined, 'S3SS10N', 'S3SS10N']);
    expect(cam.header('range')).toBe('npt=0.000-');
    const [described] = cam.ofKind('described');
    expect(described!.tracks.map((t) => [t.index, t.mediaIndex, t.kind, t.codec, t.payloadType, t.clockRate, t.channels, t.interleaved])).toEqual([
      [0, 0, 'video', 'h264', 96, 90000, 1, [0, 1]],
      [1, 1, 'audio', 'aac', 97, 16000, 1, [2, 3]],
    ]);
    expect(described!.tracks[0]!.media.fmtp.get(96)?.get('packetization-mode')).toBe('1');
    const [playing] = cam.ofKind('playing');
    expect(playing).toMatchObject({
      transport: 'tcp', sessionId: 'S3SS10N', sessionTimeoutS: 60,
      tracks: [{ index: 0, interleaved: [0, 1], ssrc: 0xabc0, seq: 100, rtptime: 9000 }, { index: 1, interleaved: [2, 3], ssrc: 0xabc1, seq: 7, rtptime: 16000 }],
    });
    expect(cam.client.state).toBe('playing');
    expect(cam.ofKind('error')).toEqual([]);
  });

  test('maps interleaved channels to tracks, following channels the server moved, among responses', () => {
    const cam = new ScriptedCamera().start();
    cam.reply(200, [['Public', 'OPTIONS, DESCRIBE, SETUP, PLAY']]);
    cam.reply(200, [['Content-Base', 'rtsp://cam.local/live/']], SDP_H264_AAC);
    cam.reply(200, [['Session', 'x'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=6-7']]);
    cam.reply(200, [['Session', 'x'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=2-3']]);
    // frames may arrive before the PLAY reply and between responses
    cam.send(concat(frame(6, [0x80, 1]), response(200, 5, [['Session', 'x']]), frame(7, [0x81, 2]), frame(2, [0x80, 3]), frame(3, [0x81, 4]), frame(0, [9]), frame(200, [])));
    expect(cam.client.state).toBe('playing');
    expect(cam.packets.map((p) => [p.track, p.rtcp, p.data[1]])).toEqual([[0, false, 1], [0, true, 2], [1, false, 3], [1, true, 4]]);
    expect(cam.client.stats).toMatchObject({ interleavedFrames: 6, unknownChannelFrames: 2 });
    expect(cam.ofKind('playing')[0]!.tracks.map((t) => t.interleaved)).toEqual([[6, 7], [2, 3]]);
  });

  test('asks for client ports over UDP and reports the server ports and SSRC', () => {
    const cam = new ScriptedCamera({ transport: 'udp', udpPorts: (i) => ({ rtp: 5000 + 10 * i, rtcp: 5001 + 10 * i }) }).start();
    playToEnd(cam);
    expect(cam.requests.filter((r) => r.method === 'SETUP').map((r) => cam.header('transport', r))).toEqual([
      'RTP/AVP;unicast;client_port=5000-5001', 'RTP/AVP;unicast;client_port=5010-5011',
    ]);
    const [playing] = cam.ofKind('playing');
    expect(playing!.transport).toBe('udp');
    expect(playing!.tracks.map((t) => [t.serverPorts, t.ssrc, t.interleaved])).toEqual([[[6000, 6001], 0x12345670, undefined], [[6002, 6003], 0x12345671, undefined]]);
  });

  test('sets up the first supported video and audio, skipping others with a note', () => {
    const cam = new ScriptedCamera().start();
    const sdp = SDP_CAMERA.replace('m=video 0 RTP/AVP 96', 'm=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\nm=video 0 RTP/AVP 96');
    playToEnd(cam, { sdp, base: 'rtsp://cam.local/live/' });
    const [d] = cam.ofKind('described');
    expect(d!.tracks.map((t) => [t.mediaIndex, t.codec, t.controlUrl])).toEqual([[1, 'h265', 'rtsp://cam.local/live/trackID=1'], [2, 'pcma', 'rtsp://cam.local/live/trackID=2']]);
    expect(d!.skipped).toEqual(['media 0 (video JPEG: unsupported codec)', 'media 3 (application): not audio or video']);
  });

  test('fails with the notes when no track is supported', () => {
    const cam = new ScriptedCamera().start();
    cam.reply(200);
    cam.reply(200, [['Content-Type', 'application/sdp']], 'v=0\r\ns=x\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MP4A-LATM/44100\r\n');
    expect(cam.ofKind('error')).toEqual([{ kind: 'error', fatal: true, message: 'no supported track in the SDP (media 0 (audio MP4A-LATM: unsupported codec))' }]);
    expect(cam.client.state).toBe('failed');
  });

  test('continues without an audio track whose SETUP fails', () => {
    const cam = new ScriptedCamera().start();
    cam.reply(200).reply(200, [['Content-Base', 'rtsp://cam.local/live/']], SDP_H264_AAC);
    cam.reply(200, [['Session', 's1'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=0-1']]);
    cam.reply(404);
    expect(cam.last.method).toBe('PLAY');
    cam.reply(200, [['Session', 's1']]);
    expect(cam.ofKind('playing')[0]!.tracks.map((t) => t.index)).toEqual([0]);
    expect(cam.ofKind('error')).toMatchObject([{ fatal: false, status: 404 }]);
  });

  test('treats 404 on DESCRIBE and 461 on SETUP as fatal, with the status', () => {
    const a = new ScriptedCamera().start().reply(200).reply(404);
    expect(a.ofKind('error')).toEqual([{ kind: 'error', fatal: true, status: 404, message: 'DESCRIBE rtsp://cam.local/live failed: 404 Not Found' }]);
    const b = new ScriptedCamera().start().reply(200).reply(200, [], SDP_H264_AAC).reply(461);
    expect(b.ofKind('error')[0]).toMatchObject({ fatal: true, status: 461 });
    expect(b.ofKind('error')[0]!.message).toContain('does not offer RTP over TCP');
  });

  test('carries on when OPTIONS is not implemented', () => {
    const cam = new ScriptedCamera().start().reply(501);
    expect(cam.last.method).toBe('DESCRIBE');
  });
});

describe('RTSP client: control URLs (RFC 2326 §C.1.1)', () => {
  const cases: { name: string; headers: [string, string][]; url?: string; sessionControl?: string; control: string; setup: string; play: string }[] = [
    { name: 'relative control against Content-Base', headers: [['Content-Base', 'rtsp://cam.local/base/']], control: 'track1', setup: 'rtsp://cam.local/base/track1', play: 'rtsp://cam.local/base/' },
    { name: 'Content-Location when there is no Content-Base', headers: [['Content-Location', 'rtsp://cam.local/loc/']], control: 'track1', setup: 'rtsp://cam.local/loc/track1', play: 'rtsp://cam.local/loc/' },
    { name: 'the request URL without a trailing slash', headers: [], control: 'trackID=1', setup: 'rtsp://cam.local/live/trackID=1', play: 'rtsp://cam.local/live' },
    { name: 'an absolute control, userinfo stripped', headers: [['Content-Base', 'rtsp://cam.local/base/']], control: 'rtsp://u:p@10.0.0.9:8554/x/video', setup: 'rtsp://10.0.0.9:8554/x/video', play: 'rtsp://cam.local/base/' },
    { name: '"*" as the media control', headers: [['Content-Base', 'rtsp://cam.local/base/']], control: '*', setup: 'rtsp://cam.local/base/', play: 'rtsp://cam.local/base/' },
    { name: 'a session-level absolute control for PLAY', headers: [], sessionControl: 'rtsp://cam.local/agg', control: 'v', setup: 'rtsp://cam.local/live/v', play: 'rtsp://cam.local/agg' },
    { name: 'a query in the URL', url: 'rtsp://cam.local/stream?channel=1&subtype=0', headers: [], control: 'trackID=0', setup: 'rtsp://cam.local/stream?channel=1&subtype=0/trackID=0', play: 'rtsp://cam.local/stream?channel=1&subtype=0' },
  ];
  for (const c of cases) {
    test(`resolves ${c.name}`, () => {
      const cam = new ScriptedCamera(c.url ? { url: c.url } : {}).start();
      const sdp = `v=0\r\ns=x\r\n${c.sessionControl ? `a=control:${c.sessionControl}\r\n` : ''}m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:${c.control}\r\n`;
      cam.reply(200).reply(200, c.headers, sdp);
      expect(cam.last.uri).toBe(c.setup);
      cam.reply(200, [['Session', 'a'], ['Transport', 'RTP/AVP/TCP;interleaved=0-1']]);
      expect(cam.last.uri).toBe(c.play);
    });
  }
});

describe('RTSP client: authentication', () => {
  const DIGEST = 'Digest realm="IP Camera", nonce="abc123", qop="auth"';
  test('answers 401 with Digest (preferred over Basic), then sends it with each request, counting nc', () => {
    const cam = new ScriptedCamera({ url: 'rtsp://admin:p%40ss%3Aw@cam.local/live', cnonce: () => 'c0ffee' }).start();
    expect(cam.last.uri).toBe('rtsp://cam.local/live'); // userinfo never goes on the wire
    cam.reply(200);
    cam.reply(401, [['WWW-Authenticate', 'Basic realm="IP Camera"'], ['WWW-Authenticate', DIGEST]]);
    expect(cam.last.method).toBe('DESCRIBE');
    expect(cam.header('cseq')).toBe('3');
    const ha1 = md5('admin:IP Camera:p@ss:w');
    const expected = (method: string, uri: string, nc: string) => md5(`${ha1}:abc123:${nc}:c0ffee:auth:${md5(`${method}:${uri}`)}`);
    expect(cam.header('authorization')).toBe(
      `Digest username="admin", realm="IP Camera", nonce="abc123", uri="rtsp://cam.local/live", response="${expected('DESCRIBE', 'rtsp://cam.local/live', '00000001')}", qop=auth, nc=00000001, cnonce="c0ffee"`,
    );
    cam.reply(200, [['Content-Base', 'rtsp://cam.local/live/']], SDP_H264_AAC);
    expect(cam.header('authorization')).toContain(`response="${expected('SETUP', 'rtsp://cam.local/live/stream=0', '00000002')}"`);
    expect(cam.header('authorization')).toContain('nc=00000002');
    expect(cam.ofKind('error')).toEqual([]);
  });

  test('refreshes a stale nonce without calling it a failure', () => {
    const cam = new ScriptedCamera({ username: 'u', password: 'p', cnonce: () => 'x' }).start();
    cam.reply(401, [['WWW-Authenticate', DIGEST]]);
    cam.reply(401, [['WWW-Authenticate', 'Digest realm="IP Camera", nonce="fresh", qop="auth", stale=TRUE']]);
    expect(cam.last.method).toBe('OPTIONS');
    expect(cam.header('authorization')).toContain('nonce="fresh"');
    expect(cam.header('authorization')).toContain('nc=00000001');
    expect(cam.ofKind('error')).toEqual([]);
  });

  test('reports a wrong password as a fatal 401 after one retry', () => {
    const cam = new ScriptedCamera({ username: 'admin', password: 'nope' }).start();
    cam.reply(200).reply(401, [['WWW-Authenticate', DIGEST]]).reply(401, [['WWW-Authenticate', DIGEST]]);
    expect(cam.ofKind('error')).toEqual([{
      kind: 'error', fatal: true, status: 401,
      message: 'authentication failed for realm "IP Camera": wrong username or password for user "admin" (401 to DESCRIBE after sending credentials)',
    }]);
    expect(cam.requests).toHaveLength(3);
  });

  test('answers a nonce rotated mid-session (401 without stale) once', () => {
    const cam = new ScriptedCamera({ username: 'u', password: 'p', cnonce: () => 'x' }).start();
    cam.reply(401, [['WWW-Authenticate', DIGEST]]);
    playToEnd(cam);
    cam.tick(31_000).reply(401, [['WWW-Authenticate', 'Digest realm="IP Camera", nonce="rotated"']]);
    expect([cam.last.method, param(cam.header('authorization')!, 'nonce')]).toEqual(['GET_PARAMETER', 'rotated']);
    cam.reply(200);
    expect(cam.ofKind('error')).toEqual([]);
    cam.tick(62_000).reply(401, [['WWW-Authenticate', 'Digest realm="IP Camera", nonce="again"']]);
    expect(cam.last.method).toBe('GET_PARAMETER'); // one more retry, since the last 401 was answered with a 200
    cam.reply(401, [['WWW-Authenticate', 'Digest realm="IP Camera", nonce="again2"']]);
    expect(cam.ofKind('error')).toMatchObject([{ fatal: true, status: 401 }]);
  });

  test('reports a 401 without configured credentials as fatal', () => {
    const cam = new ScriptedCamera().start().reply(200).reply(401, [['WWW-Authenticate', DIGEST]]);
    expect(cam.ofKind('error')[0]).toMatchObject({ fatal: true, status: 401 });
    expect(cam.ofKind('error')[0]!.message).toContain('no username/password is configured');
  });

  test('uses Basic when it is all the camera offers', () => {
    const cam = new ScriptedCamera({ url: 'rtsp://Aladdin:open%20sesame@cam.local/live' }).start();
    cam.reply(401, [['WWW-Authenticate', 'Basic realm="cam"']]);
    expect(cam.header('authorization')).toBe('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  });
});

describe('RTSP client: redirects', () => {
  for (const status of [301, 302]) {
    test(`follows ${status} to a new server and starts over there`, () => {
      const cam = new ScriptedCamera().start().reply(200).reply(status, [['Location', 'rtsp://other.local:8554/real']]);
      expect(cam.ofKind('redirect')).toEqual([{ kind: 'redirect', url: 'rtsp://other.local:8554/real' }]);
      expect([cam.client.state, cam.client.host, cam.client.port]).toEqual(['redirect', 'other.local', 8554]);
      cam.start();
      expect(`${cam.last.method} ${cam.last.uri} ${cam.header('cseq')}`).toBe('OPTIONS rtsp://other.local:8554/real 3');
    });
  }

  test(`gives up after ${MAX_REDIRECTS} redirects`, () => {
    const cam = new ScriptedCamera().start();
    for (let i = 0; i <= MAX_REDIRECTS; i++) cam.reply(302, [['Location', `rtsp://cam.local/r${i}`]]).start();
    expect(cam.ofKind('redirect')).toHaveLength(MAX_REDIRECTS);
    expect(cam.ofKind('error')).toMatchObject([{ fatal: true, status: 302 }]);
  });

  test('treats a redirect without Location as fatal', () => {
    const cam = new ScriptedCamera().start().reply(302);
    expect(cam.ofKind('error')[0]).toMatchObject({ fatal: true, status: 302 });
  });
});

describe('RTSP client: keepalive, timeouts and teardown', () => {
  test('keeps the session alive at half its timeout with GET_PARAMETER when the server lists it', () => {
    const cam = playToEnd(new ScriptedCamera().start(), { timeout: '30' });
    expect(cam.ofKind('playing')[0]!.sessionTimeoutS).toBe(30);
    const n = cam.requests.length;
    expect(cam.client.nextTickMs).toBe(1_000 + 15_000);
    cam.tick(15_999);
    expect(cam.requests).toHaveLength(n);
    cam.tick(16_000);
    expect(cam.requests).toHaveLength(n + 1);
    expect([cam.last.method, cam.last.uri, cam.header('session')]).toEqual(['GET_PARAMETER', 'rtsp://cam.local/live/', 'S3SS10N']);
    cam.tick(25_999);
    expect(cam.ofKind('error')).toEqual([]);
    cam.tick(26_000); // unanswered for the request timeout: reported, not fatal
    expect(cam.ofKind('error')).toMatchObject([{ fatal: false, message: 'no reply to keepalive GET_PARAMETER within 10000 ms' }]);
    expect(cam.requests).toHaveLength(n + 1);
    cam.tick(31_000);
    expect(cam.requests).toHaveLength(n + 2);
    expect(cam.last.method).toBe('GET_PARAMETER');
    cam.reply(200);
    expect(cam.client.state).toBe('playing');
  });

  test('uses OPTIONS when GET_PARAMETER is not listed, or after it is refused', () => {
    const a = playToEnd(new ScriptedCamera().start(), { publicMethods: 'OPTIONS, DESCRIBE, SETUP, PLAY' });
    a.tick(31_000);
    expect(a.last.method).toBe('OPTIONS');
    const b = playToEnd(new ScriptedCamera().start());
    b.tick(31_000).reply(501).tick(62_000);
    expect(b.last.method).toBe('OPTIONS');
    expect(b.ofKind('error')).toMatchObject([{ fatal: false, status: 501 }]);
  });

  test('reads the session timeout: default 60 s, clamped to 2..3600', () => {
    expect(playToEnd(new ScriptedCamera({ sessionTimeoutDefault: 45 }).start()).ofKind('playing')[0]!.sessionTimeoutS).toBe(45);
    expect(playToEnd(new ScriptedCamera().start(), { timeout: '0' }).ofKind('playing')[0]!.sessionTimeoutS).toBe(2);
    expect(playToEnd(new ScriptedCamera().start(), { timeout: '99999' }).ofKind('playing')[0]!.sessionTimeoutS).toBe(3600);
  });

  test('fails when the camera drops the session (454 to a keepalive)', () => {
    const cam = playToEnd(new ScriptedCamera().start());
    cam.tick(31_000).reply(454);
    expect(cam.ofKind('error')).toMatchObject([{ fatal: true, status: 454 }]);
  });

  test('fails when a setup request gets no reply in time', () => {
    const cam = new ScriptedCamera({ requestTimeoutMs: 5000 }).start();
    expect(cam.client.nextTickMs).toBe(6_000);
    cam.tick(5_999);
    expect(cam.ofKind('error')).toEqual([]);
    cam.tick(6_000);
    expect(cam.ofKind('error')).toEqual([{ kind: 'error', fatal: true, message: 'no reply to OPTIONS within 5000 ms' }]);
  });

  test('reports a response nobody asked for without failing', () => {
    const cam = new ScriptedCamera().start();
    cam.send(response(200, 99));
    expect(cam.ofKind('error')).toEqual([{ kind: 'error', fatal: false, status: 200, message: 'unexpected response 200 with CSeq "99"' }]);
    expect(cam.client.state).toBe('options');
  });

  test('answers requests from the server', () => {
    const cam = playToEnd(new ScriptedCamera().start());
    cam.send(new TextEncoder().encode('GET_PARAMETER rtsp://cam.local/live RTSP/1.0\r\nCSeq: 7\r\n\r\nANNOUNCE rtsp://cam.local/live RTSP/1.0\r\nCSeq: 8\r\n\r\n'));
    // the camera's reader collects what the client wrote: here, its two answers
    expect(cam.requests.slice(-2).map((r) => [r.kind, r.status, cam.header('cseq', r)])).toEqual([['response', 200, '7'], ['response', 501, '8']]);
  });

  test('tears down the session on stop and reports closed; a connection loss is fatal', () => {
    const cam = playToEnd(new ScriptedCamera().start());
    cam.client.stop(2_000);
    cam.pump();
    expect([cam.last.method, cam.last.uri, cam.header('session')]).toEqual(['TEARDOWN', 'rtsp://cam.local/live/', 'S3SS10N']);
    expect(cam.events.at(-1)).toEqual({ kind: 'closed' });
    const b = playToEnd(new ScriptedCamera().start());
    b.client.connectionLost(3_000);
    b.pump();
    expect(b.ofKind('error')).toEqual([{ kind: 'error', fatal: true, message: 'connection closed by the server during playing' }]);
  });

  test('sends RTCP on the track’s interleaved RTCP channel', () => {
    const cam = playToEnd(new ScriptedCamera().start());
    expect(cam.client.sendRtcp(1, new Uint8Array([0x81, 201, 0, 1, 1, 2, 3, 4]))).toBe(true);
    const sent = cam.client.drain()[0]!;
    expect(sent.kind === 'send' && [...sent.bytes]).toEqual([0x24, 3, 0, 8, 0x81, 201, 0, 1, 1, 2, 3, 4]);
  });
});
