// Throughput of the SPSC ring (workers/ring.ts): records/s and MB/s, producer in a worker
// and consumer on the main thread, plus a same-thread write+read loop for the per-record cost.
// Usage: bun bench/ring-throughput.ts [--short] [--payload 1400] [--ring-kib 4096] [--rounds 5]
import { KIND_RTP } from '../workers/ring-format.ts';
import { createRing, RingConsumer, RingProducer } from '../workers/ring.ts';

declare var self: Worker;

interface Job { sab: SharedArrayBuffer; records: number; payload: number }

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

/** Worker side: writes `records` records as fast as the ring takes them (retrying when full). */
function produce(job: Job): { fullRetries: number } {
  const p = new RingProducer(job.sab);
  const payload = new Uint8Array(job.payload).fill(0x5a);
  let fullRetries = 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < job.records; i++) {
    payload[0] = i & 0xff;
    // Bench only (a real producer drops): when full, back off ~1 µs so the retries do not
    // keep stealing the TAIL cache line from the consumer.
    while (!p.tryWrite(i & 0xffff, KIND_RTP, 0, i, payload)) {
      fullRetries++;
      Atomics.wait(nap, 0, 0, 0.001);
    }
  }
  p.close();
  return { fullRetries };
}

async function crossThread(records: number, payload: number, ringBytes: number): Promise<void> {
  const sab = createRing(ringBytes, Math.max(payload, 64 << 10));
  const c = new RingConsumer(sab);
  const worker = new Worker(import.meta.url);
  const done = new Promise<{ fullRetries: number }>((resolve) => {
    worker.onmessage = (e: MessageEvent<{ fullRetries: number }>) => resolve(e.data);
  });
  let got = 0, check = 0;
  const onRecord = (_s: number, _k: number, _f: number, _t: number, b: Uint8Array) => {
    check += b[0]!; // touch the payload
    got++;
  };
  const t0 = performance.now();
  worker.postMessage({ sab, records, payload } satisfies Job);
  await c.consume(onRecord);
  const s = (performance.now() - t0) / 1000;
  const { fullRetries } = await done;
  worker.terminate();
  if (got !== records) throw new Error(`lost records: ${got} of ${records}`);
  report(`cross-thread ${payload} B`, records, payload, s, `full retries ${fullRetries}, late wakes ${c.lateWakes}, checksum ${check & 0xff}`);
}

function sameThread(records: number, payload: number): void {
  const sab = createRing(1 << 20, Math.max(payload, 1024));
  const p = new RingProducer(sab), c = new RingConsumer(sab);
  const b = new Uint8Array(payload).fill(1);
  let got = 0;
  const onRecord = () => void got++;
  const t0 = performance.now();
  for (let i = 0; i < records; i += 64) {
    for (let k = 0; k < 64; k++) p.tryWrite(1, KIND_RTP, 0, i, b);
    c.read(onRecord);
  }
  const s = (performance.now() - t0) / 1000;
  if (got < records) throw new Error(`lost records: ${got} of ${records}`);
  report(`same-thread ${payload} B`, got, payload, s, '');
}

function report(name: string, records: number, payload: number, s: number, extra: string): void {
  const rps = records / s;
  console.log(`${name.padEnd(22)} ${(rps / 1e6).toFixed(2)} M records/s  ${((rps * payload) / 1e6).toFixed(0)} MB/s  ${(1e9 / rps).toFixed(0)} ns/record  ${extra}`);
}

if (Bun.isMainThread) {
  const short = process.argv.includes('--short');
  const records = short ? 20_000 : 2_000_000;
  const rounds = short ? 1 : arg('--rounds', 5);
  const payload = arg('--payload', 1400);
  const ringBytes = arg('--ring-kib', 4096) << 10;
  for (let round = 0; round < rounds; round++) {
    await crossThread(records, payload, ringBytes);
    sameThread(records, payload);
    sameThread(records, 64);
  }
} else {
  self.onmessage = (e: MessageEvent<Job>) => postMessage(produce(e.data));
}
