// Disk-write benchmark of the segment writers: N concurrent segment files fed 4 Mbit/s x 1 s
// fragments (plus an unpaced saturation run), for the native io_uring writer (O_DIRECT and
// buffered), the portable writer, Bun's FileSink and node:fs appends, side by side.
//
//   bun bench/disk.ts [--quick] [--json PATH] [--dir DIR] [--no-strace]
//                     [--methods native-uring,portable,...] [--files 100,300] [--seconds S] [--no-saturation]
//
// Reports MB/s, CPU seconds per GB (process.cpuUsage: every thread of this process,
// io_uring workers included; kernel writeback threads are not), syscalls per GB (strace -c
// -f on a smaller re-run in a child process, minus an idle baseline; else not measured) and
// p99 append latency (how long the caller waits per fragment: the call, or until the
// returned promise settles). Files are closed with fdatasync inside the timed window.
import { spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { NativeWriter, WRITE_BLOCK_BYTES } from '../workers/writer-native.ts';
import { PortableWriter, type SegmentFile, type SegmentWriter } from '../workers/writer.ts';

const FRAGMENT_BYTES = 500_000; // 4 Mbit/s camera, 1 s fragments
const TMPFS_MAGIC = 0x01021994;
/** Fragments per file in a syscall-counting run, so per-file open/close do not dominate. */
const STRACE_MIN_ROUNDS = 20;
const METHODS = ['native-uring', 'native-uring-noprealloc', 'native-uring-buffered', 'portable', 'bun-write', 'node-fs'] as const;
type Method = (typeof METHODS)[number];

interface Sink {
  /** Appends one fragment; a promise when the method is asynchronous. */
  append(data: Uint8Array): void | Promise<void>;
  /** Closes with fdatasync. */
  close(): Promise<void>;
}

interface Maker {
  open(path: string): Sink;
  /** Waits for background work (native closes). */
  drain(): Promise<void>;
  /** Releases the method (after its last run). */
  finish(): Promise<void>;
}

/**
 * One writer per method for the whole benchmark, as the engine keeps one per media worker
 * for its lifetime (the native staging pool is allocated and faulted in once).
 */
const makers = new Map<Method, Maker>();
function maker(m: Method): Maker {
  let mk = makers.get(m);
  if (mk === undefined) makers.set(m, (mk = makeMethod(m)));
  return mk;
}

/** Busy CPU seconds of the whole machine (/proc/stat): includes kernel writeback threads. */
function machineCpuSeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    return (f.reduce((a, b) => a + b, 0) - idle) / 100; // USER_HZ
  } catch {
    return Number.NaN;
  }
}

function makeMethod(m: Method): Maker {
  if (m.startsWith('native-uring')) {
    // The engine's defaults: 64 KiB blocks, 1024 of them, 100 ms batches of up to 32, space
    // reserved 4 MiB ahead.
    const w = new NativeWriter({
      directIo: m !== 'native-uring-buffered', blockBytes: WRITE_BLOCK_BYTES, poolBlocks: 2048, batchIntervalMs: 100, batchSize: 32,
      preallocBytes: m === 'native-uring-noprealloc' ? 0 : 4 << 20,
    });
    return {
      open: (p) => segmentSink(w, w.open(p)),
      drain: () => w.drain(),
      finish: () => w.shutdown(),
    };
  }
  if (m === 'portable') {
    const w = new PortableWriter();
    return { open: (p) => segmentSink(w, w.open(p)), drain: () => w.drain(), finish: async () => {} };
  }
  if (m === 'bun-write') {
    return {
      open(p) {
        const sink = Bun.file(p).writer({ highWaterMark: 1 << 20 });
        return {
          append: async (d) => {
            sink.write(d);
            await sink.flush();
          },
          async close() {
            await sink.end();
            datasyncPath(p);
          },
        };
      },
      drain: async () => {},
      finish: async () => {},
    };
  }
  return {
    open(p) {
      const fh: Promise<FileHandle> = openAsync(p, 'a');
      return {
        append: async (d) => {
          await (await fh).write(d);
        },
        async close() {
          const h = await fh;
          await h.datasync();
          await h.close();
        },
      };
    },
    drain: async () => {},
    finish: async () => {},
  };
}

/**
 * A fragment the way the recorder writes one (media/fmp4-stream.ts): its bytes copied into
 * write blocks after a one-page header region, each full block handed over, then the last
 * (padded) and the header committing the fragment.
 */
function segmentSink(w: SegmentWriter, f: SegmentFile): Sink {
  let end = 0;
  /** A free block; when all are out the disk is behind: wait (counted in the append's latency). */
  const take = async (): Promise<Uint8Array> => {
    for (;;) {
      const b = w.take();
      if (b !== null) return b;
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  return {
    async append(d) {
      const at = end;
      let pos = at + w.align;
      for (let k = 0; k < d.length; ) {
        const b = w.take() ?? (await take());
        const n = Math.min(w.blockBytes, d.length - k);
        b.set(d.subarray(k, k + n));
        const len = Math.ceil(n / w.align) * w.align;
        b.fill(0, n, len);
        f.writeBlock(b, pos, len, 0);
        pos += len;
        k += n;
      }
      const h = w.take() ?? (await take());
      h.fill(0, 0, w.align);
      end = pos;
      f.writeBlock(h, at, w.align, end);
    },
    close: async () => f.close(true, end),
  };
}

function datasyncPath(p: string): void {
  const fd = openSync(p, 'r+');
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

interface Run {
  method: Method;
  files: number;
  /** Paced: seconds of 1 fragment/s per file. Unpaced (saturation): total bytes. */
  seconds?: number;
  bytes?: number;
}

interface Result {
  method: Method;
  files: number;
  mode: 'paced' | 'saturation';
  mb_per_s: number;
  cpu_s_per_gb: number;
  /** Whole-machine busy CPU per GB, kernel writeback included (noisy on a shared machine). */
  machine_cpu_s_per_gb: number;
  syscalls_per_gb: number | null;
  p99_ms: number;
  gb: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function p99(lat: number[]): number {
  if (lat.length === 0) return 0;
  lat.sort((a, b) => a - b);
  return lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]!;
}

async function runOnce(r: Run, dir: string, payload: Uint8Array): Promise<Result> {
  const runDir = mkdtempSync(join(dir, `${r.method}-${r.files}-`));
  const mk = maker(r.method);
  const lat: number[] = [];
  let bytes = 0;
  const machine0 = machineCpuSeconds();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sinks = Array.from({ length: r.files }, (_, i) => mk.open(join(runDir, `seg-${i}.mp4`)));
  const chains: Promise<void>[] = sinks.map(() => Promise.resolve());
  const emit = (i: number) => {
    const start = performance.now();
    const out = sinks[i]!.append(payload);
    bytes += payload.length;
    if (out === undefined) lat.push(performance.now() - start);
    else chains[i] = chains[i]!.then(() => out).then(() => void lat.push(performance.now() - start));
  };
  if (r.seconds !== undefined) {
    // File i sends at i/N of every second: the cameras' fragments are spread over time.
    const total = r.files * r.seconds;
    let sent = 0;
    while (sent < total) {
      const now = (performance.now() - t0) / 1000;
      while (sent < total && (Math.floor(sent / r.files) + (sent % r.files) / r.files) <= now) emit(sent++ % r.files);
      await sleep(5);
    }
  } else {
    // Saturation: rounds over every file, as fast as the method accepts them.
    const rounds = Math.max(1, Math.round((r.bytes ?? 0) / (payload.length * r.files)));
    for (let k = 0; k < rounds; k++) {
      for (let i = 0; i < r.files; i++) emit(i);
      if (k % 4 === 3) await Promise.all(chains); // bound the async methods' queues
    }
  }
  await Promise.all(chains);
  await Promise.all(sinks.map((s) => s.close()));
  await mk.drain();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const machine = machineCpuSeconds() - machine0;
  rmSync(runDir, { recursive: true, force: true });
  const gb = bytes / 1e9;
  return {
    method: r.method,
    files: r.files,
    mode: r.seconds !== undefined ? 'paced' : 'saturation',
    mb_per_s: bytes / 1e6 / seconds,
    cpu_s_per_gb: (cpu.user + cpu.system) / 1e6 / gb,
    machine_cpu_s_per_gb: machine / gb,
    syscalls_per_gb: null,
    p99_ms: p99(lat),
    gb,
  };
}

/** strace -c -f of a child doing `bytes` through `method` at `files`; null without strace. */
function countSyscalls(method: Method | 'none', files: number, bytes: number, dir: string): number | null {
  const out = join(dir, `strace-${method}-${files}.txt`);
  const r = spawnSync('strace', ['-f', '-c', '-o', out, process.execPath, import.meta.path, '--child', method, `${files}`, `${bytes}`, dir], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) return null;
  const total = /^\s*100\.00\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$/m.exec(readFileSync(out, 'utf8'));
  rmSync(out, { force: true });
  return total ? Number(total[1]) : null;
}

function table(results: Result[]): string {
  const head = ['method', 'files', 'mode', 'MB/s', 'CPU s/GB', 'machine CPU s/GB', 'syscalls/GB', 'p99 ms'];
  const rows = results.map((r) => [
    r.method,
    `${r.files}`,
    r.mode,
    r.mb_per_s.toFixed(1),
    r.cpu_s_per_gb.toFixed(2),
    r.machine_cpu_s_per_gb.toFixed(2),
    r.syscalls_per_gb === null ? 'n/a' : Math.round(r.syscalls_per_gb).toLocaleString('en-US'),
    r.p99_ms.toFixed(2),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const payload = new Uint8Array(FRAGMENT_BYTES);
  for (let i = 0; i < payload.length; i += 4) payload[i] = (i * 2654435761) >>> 24;
  if (args[0] === '--child') {
    const [, method, files, bytes, dir] = args as [string, Method | 'none', string, string, string];
    if (method !== 'none') await runOnce({ method, files: Number(files), bytes: Number(bytes) }, dir, payload);
    for (const mk of makers.values()) await mk.finish();
    return;
  }
  const quick = args.includes('--quick');
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const jsonPath = flag('--json');
  const base = flag('--dir') ?? join(import.meta.dir, '..', 'target');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'bench-disk-'));
  if (statfsSync(dir).type === TMPFS_MAGIC) throw new Error(`${dir} is tmpfs: give --dir on a real disk`);
  const useStrace = !args.includes('--no-strace') && spawnSync('strace', ['-V']).status === 0;
  const fileCounts = flag('--files')?.split(',').map(Number) ?? (quick ? [10, 100] : [1, 10, 100, 300]);
  const seconds = Number(flag('--seconds') ?? (quick ? 1.5 : 6));
  const only = flag('--methods')?.split(',');
  if (only?.some((m) => !(METHODS as readonly string[]).includes(m))) throw new Error(`--methods: some of ${METHODS.join(', ')}`);
  const methods = METHODS.filter((m) => only === undefined || only.includes(m));
  const saturation = !args.includes('--no-saturation');
  const satBytes = quick ? 200e6 : 2e9;
  const straceBytes = quick ? 40e6 : 200e6;
  const results: Result[] = [];
  try {
    const runs: Run[] = [
      ...fileCounts.flatMap((files) => methods.map((method) => ({ method, files, seconds }))),
      ...(saturation ? methods.map((method) => ({ method, files: 100, bytes: satBytes })) : []),
    ];
    for (const r of runs) {
      const res = await runOnce(r, dir, payload);
      results.push(res);
      console.error(`${res.method} x${res.files} ${res.mode}: ${res.mb_per_s.toFixed(1)} MB/s, ${res.cpu_s_per_gb.toFixed(2)} CPU s/GB`);
    }
    for (const mk of makers.values()) await mk.finish();
    if (useStrace) {
      const baseline = countSyscalls('none', 0, 0, dir) ?? 0;
      const counted = new Map<string, number | null>();
      for (const files of new Set(results.map((r) => r.files))) {
        for (const method of methods) {
          const want = Math.max(straceBytes, files * FRAGMENT_BYTES * STRACE_MIN_ROUNDS);
          const n = countSyscalls(method, files, want, dir);
          const got = Math.max(1, Math.round(want / (FRAGMENT_BYTES * files))) * FRAGMENT_BYTES * files;
          counted.set(`${method}/${files}`, n === null ? null : Math.max(0, n - baseline) / (got / 1e9));
        }
      }
      for (const r of results) r.syscalls_per_gb = counted.get(`${r.method}/${r.files}`) ?? null;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(table(results));
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ fragment_bytes: FRAGMENT_BYTES, quick, results }, null, 2)}\n`);
}

await main();
