import { describe, expect, test } from 'bun:test';
import { assertUnchanged, mulberry32, mutate, randInt, randomBytes } from '../../media/testdata/test-helpers.ts';
import {
  ChunkReader, MAX_ASSEMBLY_BYTES, MAX_CHUNK_STREAMS, MAX_MESSAGE_BYTES, READ_ERROR, READ_MESSAGE, READ_NEED_MORE,
  writeMessage,
} from './chunk.ts';
import { HANDSHAKE_LEN, loadCapture, type Msg, readMessages } from './testdata/rtmp-capture.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const summary = (ms: Msg[]) => ms.map((m) => `${m.csid}/${m.typeId}/${m.streamId}/${m.timestamp}/${hex(m.payload)}`);

/** A hand-made chunk: basic header, the message header of `fmt`, optional extended timestamp, data. */
function chunk(fmt: number, csid: number, h: { ts?: number; len?: number; type?: number; sid?: number; ext?: number }, data: number[] | Uint8Array): Uint8Array {
  const out: number[] = [];
  if (csid < 64) out.push((fmt << 6) | csid);
  else if (csid < 320) out.push(fmt << 6, csid - 64);
  else out.push((fmt << 6) | 1, (csid - 64) & 0xff, (csid - 64) >> 8);
  const ts = h.ts ?? 0;
  if (fmt <= 2) out.push(ts >> 16, (ts >> 8) & 0xff, ts & 0xff);
  if (fmt <= 1) out.push((h.len! >> 16) & 0xff, (h.len! >> 8) & 0xff, h.len! & 0xff, h.type!);
  if (fmt === 0) out.push(h.sid ?? 0, 0, 0, 0);
  if (h.ext !== undefined) out.push(h.ext >>> 24, (h.ext >>> 16) & 0xff, (h.ext >>> 8) & 0xff, h.ext & 0xff);
  return new Uint8Array([...out, ...data]);
}
const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));
const bytes = (n: number, v = 0) => new Array<number>(n).fill(v);

describe('ChunkReader on the ffmpeg capture', () => {
  const stream = loadCapture().subarray(HANDSHAKE_LEN);
  const whole = summary(readMessages([stream]));

  test('reads connect, Set Chunk Size, the commands, metadata and 4096-byte-chunked video', () => {
    const ms = readMessages([stream]);
    expect(ms[0]!.typeId).toBe(20);
    expect(ms[1]!.typeId).toBe(1);
    expect(ms.filter((m) => m.typeId === 9 && m.payload.length > 4096).length).toBeGreaterThanOrEqual(2);
    expect(ms.filter((m) => m.typeId === 9).length).toBe(17); // sequence header, 15 frames, end of sequence
    expect(ms.at(-1)!.typeId).toBe(20); // deleteStream
  });

  test('yields the same messages at every split point', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(summary(readMessages([stream.subarray(0, cut), stream.subarray(cut)])).length).toBe(whole.length);
    }
    for (let cut = 1; cut < stream.length; cut += 97) {
      expect(summary(readMessages([stream.subarray(0, cut), stream.subarray(cut)]))).toEqual(whole);
    }
  });

  test('yields the same messages when fed one byte at a time and in random pieces', () => {
    const ones: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) ones.push(stream.subarray(i, i + 1));
    expect(summary(readMessages(ones))).toEqual(whole);
    const rnd = mulberry32(11);
    const pieces: Uint8Array[] = [];
    for (let p = 0; p < stream.length; ) {
      const n = 1 + randInt(rnd, 3000);
      pieces.push(stream.subarray(p, p + n));
      p += n;
    }
    expect(summary(readMessages(pieces))).toEqual(whole);
  });

  test('does not modify its input and returns single-chunk messages as views of it', () => {
    const r = new ChunkReader();
    assertUnchanged(stream, () => readMessages([stream], r));
    const r2 = new ChunkReader();
    r2.push(stream);
    expect(r2.next()).toBe(READ_MESSAGE);
    expect(r2.message.payload.length).toBe(140); // connect spans two 128-byte chunks: copied once
    expect(r2.message.payload.buffer).not.toBe(stream.buffer);
    expect(r2.next()).toBe(READ_MESSAGE);
    expect(r2.message.typeId).toBe(1); // Set Chunk Size: one chunk, a view
    expect(r2.message.payload.buffer).toBe(stream.buffer);
  });
});

describe('ChunkReader header types', () => {
  test('accumulates type 1 and 2 deltas; a new message in a type 3 chunk repeats the last delta', () => {
    const input = cat(
      chunk(0, 4, { ts: 1000, len: 2, type: 8, sid: 1 }, [1, 1]),
      chunk(1, 4, { ts: 20, len: 3, type: 8 }, [2, 2, 2]),
      chunk(2, 4, { ts: 23 }, [3, 3, 3]),
      chunk(3, 4, {}, [4, 4, 4]),
    );
    expect(summary(readMessages([input]))).toEqual(['4/8/1/1000/0101', '4/8/1/1020/020202', '4/8/1/1043/030303', '4/8/1/1066/040404']);
  });

  test('a type 3 new message after a type 0 header adds that header\'s timestamp (as FFmpeg writes it)', () => {
    const input = cat(chunk(0, 6, { ts: 40, len: 1, type: 9, sid: 1 }, [9]), chunk(3, 6, {}, [8]));
    expect(summary(readMessages([input]))).toEqual(['6/9/1/40/09', '6/9/1/80/08']);
  });

  test('reads extended timestamps, repeated on type 3 continuation chunks', () => {
    const ext = 0x01234567;
    const input = cat(
      chunk(0, 5, { ts: 0xffffff, len: 200, type: 9, sid: 1, ext }, bytes(128, 1)),
      chunk(3, 5, { ext }, bytes(72, 2)),
      chunk(1, 5, { ts: 0xffffff, len: 1, type: 9, ext: 0x01000000 }, [7]),
    );
    const ms = readMessages([input]);
    expect(ms.map((m) => m.timestamp)).toEqual([ext, (ext + 0x01000000) >>> 0]);
    expect(ms[0]!.payload.length).toBe(200);
    expect(ms[0]!.payload[199]).toBe(2);
  });

  test('reassembles interleaved messages of two chunk streams', () => {
    const a = chunk(0, 4, { ts: 0, len: 200, type: 8, sid: 1 }, bytes(128, 0xa));
    const b = chunk(0, 6, { ts: 0, len: 130, type: 9, sid: 1 }, bytes(128, 0xb));
    const input = cat(a, b, chunk(3, 4, {}, bytes(72, 0xa)), chunk(3, 6, {}, bytes(2, 0xb)));
    const ms = readMessages([input]);
    expect(ms.map((m) => [m.csid, m.payload.length, m.payload.every((x) => x === (m.csid === 4 ? 0xa : 0xb))])).toEqual([[4, 200, true], [6, 130, true]]);
  });

  test('reads 2- and 3-byte basic headers', () => {
    const input = cat(chunk(0, 64 + 200, { len: 1, type: 8 }, [1]), chunk(0, 64 + 300, { len: 1, type: 8 }, [2]), chunk(3, 64 + 300, {}, [3]));
    expect(readMessages([input]).map((m) => m.csid)).toEqual([264, 364, 364]);
  });

  test('drops a partial message on Abort and reads the next one', () => {
    const r = new ChunkReader();
    const ms = readMessages([chunk(0, 4, { len: 300, type: 8, sid: 1 }, bytes(128, 1))], r);
    expect(ms.length).toBe(0);
    r.abort(4);
    expect(summary(readMessages([chunk(0, 4, { ts: 5, len: 2, type: 8, sid: 1 }, [7, 7])], r))).toEqual(['4/8/1/5/0707']);
  });

  test('round-trips writeMessage output at every chunk size and csid form, extended timestamps included', () => {
    const rnd = mulberry32(5);
    for (const chunkSize of [1, 2, 128, 4096]) {
      for (const csid of [3, 63, 64, 319, 320, 65599]) {
        for (const ts of [0, 0xfffffe, 0xffffff, 0xffffffff]) {
          const payload = randomBytes(rnd, randInt(rnd, 600));
          const r = new ChunkReader();
          r.setChunkSize(chunkSize);
          const [m] = readMessages([writeMessage(chunkSize, csid, 20, 7, ts, payload)], r);
          expect([m!.csid, m!.typeId, m!.streamId, m!.timestamp, hex(m!.payload)]).toEqual([csid, 20, 7, ts, hex(payload)]);
        }
      }
    }
  });
});

describe('ChunkReader caps and errors', () => {
  const failsWith = (input: Uint8Array, text: string, r = new ChunkReader()) => {
    r.push(input);
    let s;
    while ((s = r.next()) === READ_MESSAGE);
    expect(s).toBe(READ_ERROR);
    expect(r.error).toContain(text);
    expect(r.next()).toBe(READ_ERROR); // sticky
  };

  test('refuses a continuation header on a chunk stream never opened', () => {
    failsWith(chunk(1, 9, { len: 1, type: 8 }, [0]), 'before any type 0');
    failsWith(new Uint8Array([0xc9]), 'before any type 0');
  });

  test(`refuses messages above MAX_MESSAGE_BYTES (${MAX_MESSAGE_BYTES}) before buffering them`, () => {
    const r = new ChunkReader(1000);
    failsWith(chunk(0, 4, { len: 1001, type: 9 }, []), 'exceeds 1000', r);
    expect(r.assemblyBytes).toBe(0);
  });

  test(`refuses more than MAX_CHUNK_STREAMS (${MAX_CHUNK_STREAMS}) chunk streams`, () => {
    const parts: Uint8Array[] = [];
    for (let i = 0; i <= MAX_CHUNK_STREAMS; i++) parts.push(chunk(0, 3 + i, { len: 1, type: 8 }, [0]));
    failsWith(cat(...parts), 'chunk streams');
  });

  test(`caps the reassembly buffers of a session at MAX_ASSEMBLY_BYTES (${MAX_ASSEMBLY_BYTES})`, () => {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 10; i++) parts.push(chunk(0, 3 + i, { len: 0xfffff0, type: 9 }, bytes(128)));
    const r = new ChunkReader(0xffffff);
    failsWith(cat(...parts), 'cap', r);
    expect(r.assemblyBytes).toBeLessThanOrEqual(MAX_ASSEMBLY_BYTES);
  });

  test('refuses a zero chunk size', () => {
    const r = new ChunkReader();
    expect(r.setChunkSize(0)).toBe(false);
    expect(r.setChunkSize(0x7fffffff)).toBe(true);
  });

  test('fuzz: mutated captures and random bytes end in messages, NEED_MORE or a sticky error, within caps', () => {
    const stream = loadCapture().subarray(HANDSHAKE_LEN);
    const rnd = mulberry32(0xc4c4);
    let errors = 0;
    for (let i = 0; i < 600; i++) {
      const input = i % 5 === 0 ? randomBytes(rnd, randInt(rnd, 4000)) : mutate(stream.subarray(0, 1 + randInt(rnd, stream.length)), rnd);
      const r = new ChunkReader();
      let messages = 0;
      for (let p = 0; p < input.length; ) {
        const n = 1 + randInt(rnd, 2000);
        r.push(input.subarray(p, p + n));
        p += n;
        let s;
        while ((s = r.next()) === READ_MESSAGE) {
          messages++;
          expect(r.message.payload.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
          if (r.message.typeId === 1 && r.message.payload.length >= 4) r.setChunkSize(new DataView(r.message.payload.buffer, r.message.payload.byteOffset).getUint32(0) & 0x7fffffff);
        }
        if (s === READ_ERROR) {
          errors++;
          break;
        }
        expect(s).toBe(READ_NEED_MORE);
      }
      expect(messages).toBeLessThanOrEqual(input.length);
      expect(r.assemblyBytes).toBeLessThanOrEqual(MAX_ASSEMBLY_BYTES);
    }
    expect(errors).toBeGreaterThan(50);
  });
});
