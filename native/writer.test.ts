// Tests of the addon's segment writer from TypeScript: bytes read back equal bytes appended
// (random sizes, many files, O_DIRECT on and off), exact sizes after O_DIRECT tails, ENOSPC
// on a small loop-mounted ext4 with the intact prefix kept, misuse, and process-level safety
// (GC, exit and worker exit with open files) in child processes.
import { afterAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative, type WriterErrorInfo, type WriterHandle } from './index.ts';
import { NativeWriter, chooseWriter } from '../workers/writer-native.ts';
import { SegmentWriteError } from '../workers/writer.ts';

const root = join(import.meta.dir, '..');
const loaded = loadNative();
const addon = loaded.addon;
const ioUring = addon?.probe(root).ioUring ?? false;
const skip = addon === null || !ioUring;
if (skip) console.warn(`writer tests skipped: ${loaded.reason ?? 'io_uring unavailable'}`);
const TMPFS_MAGIC = 0x01021994;

// Under target/ (git-ignored) on the repository's disk: ext4 here, never tmpfs.
mkdirSync(join(root, 'target'), { recursive: true });
const scratch = mkdtempSync(join(root, 'target', 'flux-writer-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settle(w: WriterHandle): Promise<void> {
  for (let i = 0; i < 2000 && addon!.writerPending(w) > 0; i++) await sleep(2);
  expect(addon!.writerPending(w)).toBe(0);
}

function thrown(fn: () => unknown): WriterErrorInfo & Error {
  try {
    fn();
  } catch (e) {
    return e as WriterErrorInfo & Error;
  }
  throw new Error('expected a throw');
}

describe.skipIf(skip)('writer: data', () => {
  for (const directIo of [true, false]) {
    test(`bytes read back equal bytes appended, 40 files at once, random sizes, O_DIRECT ${directIo ? 'on' : 'off'}`, async () => {
      const dir = join(scratch, `rt-${directIo}`);
      mkdirSync(dir);
      expect(statfsSync(dir).type).not.toBe(TMPFS_MAGIC);
      const w = addon!.writerCreate({ directIo, chunkBytes: 64 << 10, poolChunks: 512, batchIntervalMs: 5 });
      const rnd = mulberry32(directIo ? 1 : 2);
      const files = Array.from({ length: 40 }, (_, i) => {
        const o = addon!.writerOpen(w, join(dir, `f${i}`));
        expect(o.direct).toBe(directIo);
        return { id: o.id, path: join(dir, `f${i}`), size: 0 };
      });
      for (let round = 0; round < 25; round++) {
        for (const f of files) {
          const n = Math.floor(rnd() ** 3 * 300_000); // mostly small, sometimes several chunks
          const data = new Uint8Array(n);
          for (let k = 0; k < n; k += 97) data[k] = (rnd() * 256) | 0;
          const cut = Math.floor(rnd() * n);
          f.size = addon!.writerAppend(w, f.id, [data.subarray(0, cut), new Uint8Array(0), data.subarray(cut)], 3);
          data.fill(0xee); // the writer copied it: reusing the views must not change the file
        }
        if (round % 8 === 0) await sleep(12); // let interval flushes cut partial chunks
      }
      // The sources were overwritten after each append: regenerate them from the same seed.
      const rnd2 = mulberry32(directIo ? 1 : 2);
      const expected = files.map(() => [] as Uint8Array[]);
      for (let round = 0; round < 25; round++) {
        for (let i = 0; i < files.length; i++) {
          const n = Math.floor(rnd2() ** 3 * 300_000);
          const data = new Uint8Array(n);
          for (let k = 0; k < n; k += 97) data[k] = (rnd2() * 256) | 0;
          rnd2();
          expected[i]!.push(data);
        }
      }
      for (const f of files) addon!.writerClose(w, f.id, true);
      await settle(w);
      files.forEach((f, i) => {
        const want = Buffer.concat(expected[i]!);
        const got = readFileSync(f.path);
        expect(got.length).toBe(f.size);
        expect(got.equals(want)).toBe(true);
      });
      const s = addon!.writerStats(w);
      expect(s).toMatchObject({ openFiles: 0, closingFiles: 0, inflight: 0, chunksInUse: 0, errors: 0, fsyncs: 40 });
      addon!.writerShutdown(w, true);
    });
  }

  test('an O_DIRECT tail is padded, then cut to the exact size', async () => {
    const w = addon!.writerCreate({ directIo: true, batchIntervalMs: 5 });
    for (const n of [0, 1, 4095, 4096, 4097, 8191, (256 << 10) + 3, 1_000_001]) {
      const path = join(scratch, `tail-${n}`);
      const o = addon!.writerOpen(w, path);
      expect(o.direct).toBe(true);
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 255);
      addon!.writerAppend(w, o.id, [data]);
      if (n > 5000) await sleep(15); // an interval flush in between: the tail moves on
      addon!.writerAppend(w, o.id, [data.subarray(0, 3)]);
      addon!.writerClose(w, o.id, false);
      await settle(w);
      expect(statSync(path).size).toBe(n + Math.min(3, n));
      expect(readFileSync(path).equals(Buffer.concat([data, data.subarray(0, 3)]))).toBe(true);
    }
    addon!.writerShutdown(w, true);
  });

  const shm = existsSync('/dev/shm') && statfsSync('/dev/shm').type === TMPFS_MAGIC;
  test.skipIf(!shm)('a file on tmpfs falls back to buffered I/O, says why, and still round-trips', async () => {
    const dir = mkdtempSync('/dev/shm/flux-writer-');
    try {
      const w = addon!.writerCreate({ directIo: true, batchIntervalMs: 5 });
      const o = addon!.writerOpen(w, join(dir, 'x'));
      expect(o.direct).toBe(false);
      expect(o.fallback).toContain('tmpfs');
      addon!.writerAppend(w, o.id, [Buffer.from('abc'), Buffer.from('defg')]);
      addon!.writerClose(w, o.id, true);
      await settle(w);
      expect(readFileSync(join(dir, 'x'), 'utf8')).toBe('abcdefg');
      expect(addon!.writerStats(w).fallbacks).toBe(1);
      addon!.writerShutdown(w, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('holds 3000 files open at once and closes them all', async () => {
    const dir = join(scratch, 'many');
    mkdirSync(dir);
    const w = addon!.writerCreate({ directIo: true, poolChunks: 64, chunkBytes: 16 << 10, batchIntervalMs: 5 });
    const ids = Array.from({ length: 3000 }, (_, i) => addon!.writerOpen(w, join(dir, `${i}`)).id);
    ids.forEach((id, i) => addon!.writerAppend(w, id, [Buffer.from(`file ${i}\n`)]));
    expect(addon!.writerStats(w).openFiles).toBe(3000);
    for (const id of ids) addon!.writerClose(w, id, false);
    await settle(w);
    for (const i of [0, 1, 1234, 2999]) expect(readFileSync(join(dir, `${i}`), 'utf8')).toBe(`file ${i}\n`);
    addon!.writerShutdown(w, true);
  });
});

describe.skipIf(skip)('writer: misuse', () => {
  test('double close, append after close and unknown ids: EBADF or a no-op, never a crash', async () => {
    const w = addon!.writerCreate({ batchIntervalMs: 5 });
    const o = addon!.writerOpen(w, join(scratch, 'misuse'));
    expect(addon!.writerAppend(w, o.id, [])).toBe(0); // empty parts
    expect(addon!.writerAppend(w, o.id, [new Uint8Array(0)], 1)).toBe(0);
    expect(addon!.writerAppend(w, o.id, [Buffer.from('ok')], 99)).toBe(2); // count past the end: clamped
    addon!.writerClose(w, o.id, false);
    addon!.writerClose(w, o.id, true); // no-op
    const e = thrown(() => addon!.writerAppend(w, o.id, [Buffer.from('late')]));
    expect(e.code).toBe('EBADF');
    expect(e.path).toBe(join(scratch, 'misuse'));
    expect(thrown(() => addon!.writerAppend(w, 123456789, [Buffer.from('x')])).code).toBe('EBADF');
    addon!.writerClose(w, 987654321, false); // unknown: no-op
    await settle(w);
    expect(readFileSync(join(scratch, 'misuse'), 'utf8')).toBe('ok');
    addon!.writerShutdown(w, true);
    expect(thrown(() => addon!.writerOpen(w, join(scratch, 'after'))).code).toBe('ESHUTDOWN');
    addon!.writerShutdown(w, true); // idempotent
  });

  test('an append larger than the whole pool is refused with ENOBUFS and keeps nothing', async () => {
    const w = addon!.writerCreate({ chunkBytes: 4096, poolChunks: 4, batchIntervalMs: 5 });
    const o = addon!.writerOpen(w, join(scratch, 'huge'));
    addon!.writerAppend(w, o.id, [Buffer.from('head')]);
    const e = thrown(() => addon!.writerAppend(w, o.id, [new Uint8Array(64 << 20)]));
    expect(e.code).toBe('ENOBUFS');
    expect(e.size).toBe(4);
    expect(addon!.writerAppend(w, o.id, [Buffer.from('tail')])).toBe(8);
    addon!.writerClose(w, o.id, false);
    await settle(w);
    expect(readFileSync(join(scratch, 'huge'), 'utf8')).toBe('headtail');
    addon!.writerShutdown(w, true);
  });

  test('bad arguments throw TypeErrors; a detached buffer appends nothing', async () => {
    const w = addon!.writerCreate({});
    const o = addon!.writerOpen(w, join(scratch, 'args'));
    const a = addon! as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const bad of [
      () => a.writerAppend!({}, o.id, []),
      () => a.writerAppend!(w, -1, []),
      () => a.writerAppend!(w, 1.5, []),
      () => a.writerAppend!(w, o.id, 'bytes'),
      () => a.writerAppend!(w, o.id, [[1, 2, 3]]),
      () => a.writerAppend!(w, o.id, [new Uint16Array(4)]),
      () => a.writerOpen!(w, 42),
      () => a.writerOpen!(w, 'a\0b'),
      () => a.writerCreate!({ chunkBytes: 'big' }),
      () => a.writerCreate!(7),
      () => a.writerClose!(null, o.id, false),
      () => a.writerPoll!(undefined),
    ]) {
      expect(bad).toThrow(TypeError);
    }
    const buf = new ArrayBuffer(16);
    const view = new Uint8Array(buf);
    structuredClone(buf, { transfer: [buf] }); // detaches `buf` under `view`
    expect(addon!.writerAppend(w, o.id, [view])).toBe(0);
    addon!.writerClose(w, o.id, false);
    await settle(w);
    expect(statSync(join(scratch, 'args')).size).toBe(0);
    addon!.writerShutdown(w, true);
  });

  test('opening in a missing directory throws ENOENT with the path', () => {
    const w = addon!.writerCreate({});
    const e = thrown(() => addon!.writerOpen(w, join(scratch, 'no-such-dir', 'x')));
    expect(e.code).toBe('ENOENT');
    expect(e.op).toBe('open');
    expect(e.path).toBe(join(scratch, 'no-such-dir', 'x'));
    addon!.writerShutdown(w, true);
  });
});

/** Mounts a fresh 8 MiB ext4 image (root only); null when this system cannot. */
function mountSmallExt4(): { dir: string; unmount(): void } | null {
  if (process.getuid?.() !== 0) return null;
  const base = mkdtempSync(join(scratch, 'enospc-'));
  const img = join(base, 'fs.img');
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  const ok = (cmd: string[]) => spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' }).status === 0;
  if (!ok(['truncate', '-s', '8M', img]) || !ok(['mkfs.ext4', '-q', '-F', img]) || !ok(['mount', '-o', 'loop', img, mnt])) return null;
  return { dir: mnt, unmount: () => void ok(['umount', mnt]) };
}

describe.skipIf(skip)('writer: a full disk', () => {
  const fs = skip ? null : mountSmallExt4();
  test.skipIf(fs === null)('ENOSPC comes back as a typed error tied to the file; acknowledged bytes stay intact', async () => {
    try {
      const w = addon!.writerCreate({ directIo: true, chunkBytes: 64 << 10, batchIntervalMs: 2 });
      // A file written completely before the disk fills must survive untouched.
      const early = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 13) & 255);
      const a = addon!.writerOpen(w, join(fs!.dir, 'early'));
      expect(a.direct).toBe(true);
      addon!.writerAppend(w, a.id, [early]);
      addon!.writerClose(w, a.id, true);
      await settle(w);
      const o = addon!.writerOpen(w, join(fs!.dir, 'filler'));
      const sent: Uint8Array[] = [];
      let err: (WriterErrorInfo & Error) | null = null;
      for (let i = 0; i < 2000 && err === null; i++) {
        const part = new Uint8Array(48_000 + (i % 7) * 1000).fill(i & 255);
        try {
          addon!.writerAppend(w, o.id, [part]);
          sent.push(part);
        } catch (e) {
          err = e as WriterErrorInfo & Error;
        }
        await sleep(1);
      }
      expect(err).not.toBeNull();
      expect(err!).toBeInstanceOf(Error);
      expect(err!.code).toBe('ENOSPC');
      expect(err!.op).toBe('write');
      expect(err!.path).toBe(join(fs!.dir, 'filler'));
      expect(err!.message).toContain('No space left on device');
      // The intact size is a whole number of appends below the failed offset.
      expect(err!.size).toBeLessThanOrEqual(err!.offset);
      let whole = 0;
      const bounds = new Set([0, ...sent.map((p) => (whole += p.length))]);
      expect(bounds.has(err!.size)).toBe(true);
      expect(err!.size).toBeGreaterThan(1_000_000);
      addon!.writerClose(w, o.id, false); // already reported: no second throw
      await settle(w);
      const file = readFileSync(join(fs!.dir, 'filler'));
      expect(file.length).toBe(err!.size);
      expect(file.equals(Buffer.concat(sent).subarray(0, err!.size))).toBe(true);
      expect(readFileSync(join(fs!.dir, 'early')).equals(early)).toBe(true);
      expect(addon!.writerStats(w).errors).toBeGreaterThan(0);
      addon!.writerShutdown(w, true);
    } finally {
      fs?.unmount();
    }
  });
});

describe.skipIf(skip)('writer: NativeWriter (workers/writer-native.ts)', () => {
  test('is a SegmentWriter whose errors are SegmentWriteErrors with the errno code', async () => {
    const w = new NativeWriter({ directIo: true, batchIntervalMs: 5 });
    const f = w.open(join(scratch, 'nw', 'a', 'seg.mp4')); // creates the directories
    f.append([Buffer.from('ftyp'), Buffer.from('moov')]);
    expect(f.size).toBe(8);
    f.close(true);
    f.close(true);
    let caught: unknown;
    try {
      f.append([Buffer.from('x')]);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SegmentWriteError);
    expect((caught as SegmentWriteError).code).toBe('EBADF');
    await w.drain();
    expect(readFileSync(join(scratch, 'nw', 'a', 'seg.mp4'), 'utf8')).toBe('ftypmoov');
    await w.shutdown();
  });

  test('chooseWriter: native only with use_io_uring, the addon and a ring; O_DIRECT only if probed', () => {
    const cfg = { use_io_uring: true, use_direct_io: true, buffer_pool_size: 64, buffer_size_mb: 4, batch_size: 32, batch_interval_ms: 100 };
    const probe = { ioUring: true, directIo: true, kernel: '6.1' };
    const load = { addon: addon!, path: 'x', reason: null };
    expect(chooseWriter(cfg, load, probe, 2)).toMatchObject({ kind: 'native', directIo: true, options: { chunkBytes: 1 << 20, poolChunks: 128 } });
    expect(chooseWriter({ ...cfg, use_direct_io: false }, load, probe, 2).reason).toContain('O_DIRECT off (use_direct_io = false)');
    expect(chooseWriter(cfg, load, { ...probe, directIo: false, directIoError: 'tmpfs' }, 2)).toMatchObject({ kind: 'native', directIo: false });
    expect(chooseWriter({ ...cfg, use_io_uring: false }, load, probe, 2).reason).toBe('writer portable: use_io_uring = false in the config');
    expect(chooseWriter(cfg, { addon: null, path: null, reason: 'gone' }, null, 2).reason).toBe('writer portable: native addon unavailable: gone');
    expect(chooseWriter(cfg, load, { ...probe, ioUring: false, ioUringError: 'EPERM' }, 2).kind).toBe('portable');
  });
});

describe.skipIf(skip)('writer: process safety (child processes: exit 0, no signal)', () => {
  const run = (script: string) => {
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env } });
    return { status: r.status, signal: r.signal, out: r.stdout.trim(), err: r.stderr.trim() };
  };
  const load = `const m = require(${JSON.stringify(loaded.path)});`;

  test('collected writers with open files, then exit with files still open, keeps the data', () => {
    const dir = join(scratch, 'exit');
    mkdirSync(dir);
    const r = run(`${load}
      for (let k = 0; k < 20; k++) {
        const w = m.writerCreate({ batchIntervalMs: 1000 });
        for (let i = 0; i < 10; i++) m.writerAppend(w, m.writerOpen(w, '${dir}/gc-' + k + '-' + i).id, [Buffer.alloc(5000, 1)]);
      }
      Bun.gc(true); Bun.gc(true);
      const w = m.writerCreate({ batchIntervalMs: 10000 });
      const o = m.writerOpen(w, '${dir}/raw-at-exit');
      m.writerAppend(w, o.id, [Buffer.alloc(10000, 7)]);
      const { NativeWriter } = require(${JSON.stringify(join(root, 'workers', 'writer-native.ts'))});
      const nw = new NativeWriter({ directIo: true, batchIntervalMs: 10000 });
      nw.open('${dir}/native-at-exit').append([Buffer.alloc(10000, 8)]);
      console.log('done');
      process.exit(0);`);
    expect(r).toMatchObject({ status: 0, signal: null, out: 'done' });
    // process.exit() runs no N-API cleanup hook: bytes the raw addon had not yet submitted
    // (the batch interval had not passed) may be lost, as in a crash; never a torn write.
    const raw = readFileSync(join(dir, 'raw-at-exit'));
    expect(raw.length === 0 || raw.equals(Buffer.alloc(10000, 7))).toBe(true);
    // NativeWriter hands everything to the kernel in its 'exit' listener.
    expect(readFileSync(join(dir, 'native-at-exit')).equals(Buffer.alloc(10000, 8))).toBe(true);
  });

  test('a script that ends with files still open writes them out (env cleanup hook)', () => {
    const dir = join(scratch, 'end');
    mkdirSync(dir);
    const r = run(`${load}
      const w = m.writerCreate({ batchIntervalMs: 10000 });
      m.writerAppend(w, m.writerOpen(w, '${dir}/x').id, [Buffer.alloc(12345, 9)]);`);
    expect(r).toMatchObject({ status: 0, signal: null });
    expect(readFileSync(join(dir, 'x')).equals(Buffer.alloc(12345, 9))).toBe(true);
  });

  test('a worker thread that exits with open files and a pending close does not take the process down', () => {
    const dir = join(scratch, 'worker');
    mkdirSync(dir);
    const r = run(`
      const { Worker } = require('node:worker_threads');
      const src = \`${load}
        const w = m.writerCreate({});
        const a = m.writerOpen(w, '${dir}/a'); m.writerAppend(w, a.id, [Buffer.alloc(70000, 3)]);
        const b = m.writerOpen(w, '${dir}/b'); m.writerAppend(w, b.id, [Buffer.alloc(9000, 4)]); m.writerClose(w, b.id, true);
        require('node:worker_threads').parentPort.postMessage('ready');\`;
      const wk = new Worker(src, { eval: true });
      wk.on('message', () => wk.terminate().then(() => { Bun.gc(true); console.log('done'); }));`);
    expect(r).toMatchObject({ status: 0, signal: null, out: 'done' });
    expect(readFileSync(join(dir, 'b')).equals(Buffer.alloc(9000, 4))).toBe(true);
    expect(readFileSync(join(dir, 'a')).equals(Buffer.alloc(70000, 3))).toBe(true);
  });
});
