import { describe, expect, test } from 'bun:test';
import { HANDSHAKE_BYTES, HS_DONE, HS_ERROR, HS_NEED_MORE, HS_REPLY, RTMP_VERSION, ServerHandshake } from './handshake.ts';
import { HANDSHAKE_LEN, loadCapture } from './testdata/rtmp-capture.ts';

const fill = (v: number) => (b: Uint8Array) => b.fill(v);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Feeds `input` in the given pieces; returns the reply, the step list and the final consumed offset. */
function run(hs: ServerHandshake, pieces: Uint8Array[]): { reply: Uint8Array | null; steps: number[]; rest: number } {
  let reply: Uint8Array | null = null;
  const steps: number[] = [];
  let rest = 0;
  for (const piece of pieces) {
    if (hs.done) {
      rest += piece.length;
      continue;
    }
    let p = 0;
    for (;;) {
      const s = hs.push(piece, p);
      p = hs.consumed;
      steps.push(s);
      if (s === HS_REPLY) reply = hs.reply;
      if (s !== HS_REPLY) break;
    }
    rest += piece.length - p;
  }
  return { reply, steps, rest };
}

describe('ServerHandshake', () => {
  const capture = loadCapture();
  const c0c1c2 = capture.subarray(0, HANDSHAKE_LEN);
  const c1 = capture.subarray(1, 1 + HANDSHAKE_BYTES);

  test("answers ffmpeg's C0+C1 with S0 3, S1 (time 0, zero 0, random) and S2 echoing C1", () => {
    const { reply, steps } = run(new ServerHandshake(0, fill(0xab)), [c0c1c2.subarray(0, 1 + HANDSHAKE_BYTES)]);
    expect(steps).toEqual([HS_REPLY, HS_NEED_MORE]);
    expect(reply!.length).toBe(1 + 2 * HANDSHAKE_BYTES);
    expect(reply![0]).toBe(RTMP_VERSION);
    expect(hex(reply!.subarray(1, 9))).toBe('0000000000000000');
    expect(reply!.subarray(9, 1 + HANDSHAKE_BYTES).every((b) => b === 0xab)).toBe(true);
    expect(hex(reply!.subarray(1 + HANDSHAKE_BYTES))).toBe(hex(c1));
  });

  test('reports the Flash version ffmpeg puts in C1 (a digest handshake we answer simply)', () => {
    const hs = new ServerHandshake(0, fill(0));
    run(hs, [c0c1c2]);
    expect(hs.clientC1Version).toBe(0x09007c02); // 9.0.124.2
    expect(hs.done).toBe(true);
  });

  test('completes identically at every split point of C0+C1+C2 and leaves the following bytes unread', () => {
    const input = new Uint8Array(HANDSHAKE_LEN + 5);
    input.set(c0c1c2);
    input.set([1, 2, 3, 4, 5], HANDSHAKE_LEN);
    const whole = run(new ServerHandshake(0, fill(7)), [input]);
    expect(whole.steps).toEqual([HS_REPLY, HS_DONE]);
    expect(whole.rest).toBe(5);
    for (let cut = 0; cut <= input.length; cut++) {
      const hs = new ServerHandshake(0, fill(7));
      const r = run(hs, [input.subarray(0, cut), input.subarray(cut)]);
      expect(hs.done).toBe(true);
      expect(r.rest).toBe(5);
      expect(hex(r.reply!)).toBe(hex(whole.reply!));
    }
  });

  test('notices whether C2 echoes S1', () => {
    const hs = new ServerHandshake(0, fill(0x5a));
    const { reply } = run(hs, [c0c1c2.subarray(0, 1 + HANDSHAKE_BYTES)]);
    const c2 = reply!.slice(1, 1 + HANDSHAKE_BYTES);
    run(hs, [c2]);
    expect(hs.done && hs.c2EchoesS1).toBe(true);
    const other = new ServerHandshake(0, fill(0x5a));
    run(other, [c0c1c2]);
    expect(other.done && !other.c2EchoesS1).toBe(true);
  });

  test('refuses RTMPE (version 6) and text protocols at the first byte', () => {
    for (const first of [6, 0x47 /* 'G' of an HTTP GET */, 0, 0xff]) {
      const hs = new ServerHandshake(0, fill(0));
      expect(hs.push(new Uint8Array([first, 1, 2]), 0)).toBe(HS_ERROR);
      expect(hs.error).toContain(`version ${first}`);
      expect(hs.push(new Uint8Array(10), 0)).toBe(HS_ERROR);
    }
  });

  test('waits without output while C1 is incomplete', () => {
    const hs = new ServerHandshake(0, fill(0));
    expect(hs.push(new Uint8Array(0), 0)).toBe(HS_NEED_MORE);
    expect(hs.push(c0c1c2.subarray(0, 1000), 0)).toBe(HS_NEED_MORE);
    expect(hs.reply).toBe(null);
    expect(hs.consumed).toBe(1000);
  });
});
