import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortableWriter, SegmentWriteError } from './writer.ts';

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flux-portable-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe('PortableWriter', () => {
  test('blocks land at their offsets, in any order, and close cuts the file to its size', withDir(async (dir) => {
    const w = new PortableWriter(() => {}, { blockBytes: 8192, align: 4096, poolBlocks: 8 });
    const f = w.open(join(dir, 'a.mp4'));
    const want = new Uint8Array(5 * 4096);
    const put = (offset: number, len: number, value: number, commit = 0) => {
      const b = w.take()!;
      b.fill(value, 0, len);
      want.fill(value, offset, offset + len);
      f.writeBlock(b, offset, len, commit);
    };
    put(4096, 8192, 2); // data first
    put(12288, 4096, 3);
    put(0, 4096, 1, 16384); // then the header committing it
    put(16384, 4096, 9); // a fragment whose header never comes
    f.close(true, 16384);
    await w.drain();
    expect(Buffer.compare(readFileSync(join(dir, 'a.mp4')), want.subarray(0, 16384))).toBe(0);
  }));

  test('take() is bounded by the pool and blocks come back once written or dropped', () => {
    const w = new PortableWriter(() => {}, { blockBytes: 4096, align: 4096, poolBlocks: 2 });
    const a = w.take()!, b = w.take()!;
    expect(w.take()).toBeNull();
    w.drop(a);
    expect(w.take()).toBe(a);
    w.drop(b);
    w.drop(a);
  });

  test('after a write error every write throws it and close cuts to the last whole fragment', withDir((dir) => {
    const w = new PortableWriter(() => {}, { blockBytes: 4096, align: 4096, poolBlocks: 4 });
    const path = join(dir, 'e.mp4');
    const f = w.open(path);
    f.writeBlock(w.take()!.fill(1), 0, 4096, 4096);
    const e = (() => {
      try {
        f.writeBlock(w.take()!, 2 ** 52, 4096, 0); // 4 PiB: past any file size ext4 allows (EFBIG)
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(SegmentWriteError);
    expect(() => f.writeBlock(w.take()!, 4096, 4096, 8192)).toThrow(SegmentWriteError);
    expect(w.take()).not.toBeNull(); // both blocks came back
    f.close(false, 8192);
    expect(statSync(path).size).toBe(4096);
    expect(() => f.writeBlock(w.take()!, 0, 4096, 0)).toThrow('closed');
  }));
});
