// Test-only worker for ring.test.ts: produces numbered, checksummed records into a ring
// in bursts, never waiting on the ring, and reports what it sent and dropped.
import { CTRL_BYTES, CTRL_CAPACITY, CTRL_HEAD, CTRL_INDEX_MASK, CTRL_TAIL, recordSpan } from './ring-format.ts';
import { RingProducer } from './ring.ts';
import { mulberry32 } from '../media/testdata/test-helpers.ts';

declare var self: Worker;

export interface StressJob {
  sab: SharedArrayBuffer;
  records: number;
  seed: number;
  maxPayload: number;
}

export interface StressReport {
  sent: number;
  refused: number;
  /** Refusals while the ring, as seen just before the call, had room: must stay 0. */
  spuriousRefusals: number;
  maxWriteMs: number;
}

export { mulberry32 };

/** FNV-1a over b[from..to). */
export function fnv1a(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

// Header fields derived from the sequence number, so the reader can check them all.
export const slotOf = (seq: number) => seq & 0xffff;
export const kindOf = (seq: number) => 1 + (seq % 6);
export const flagsOf = (seq: number) => (seq * 7) & 0xff;
export const tsOf = (seq: number) => Math.imul(seq, 0x9e3779b1) >>> 0;

/** Independent re-statement of the room rule: could a record of `span` go in now? */
function roomFor(h: number, t: number, span: number, cap: number): boolean {
  if (h >= t) return h + span < cap || (h + span === cap && t !== 0) || span < t;
  return span < t - h;
}

function produce(job: StressJob): StressReport {
  const rand = mulberry32(job.seed);
  const ring = new RingProducer(job.sab);
  const ctrl = new Int32Array(job.sab, 0, CTRL_BYTES >> 2);
  const cap = ctrl[CTRL_CAPACITY]!;
  const pool = new Uint8Array(1 << 16);
  for (let i = 0; i < pool.length; i++) pool[i] = (rand() * 256) | 0;
  const payload = new Uint8Array(job.maxPayload);
  const dv = new DataView(payload.buffer);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const report: StressReport = { sent: 0, refused: 0, spuriousRefusals: 0, maxWriteMs: 0 };
  let burst = 0;
  for (let seq = 0; seq < job.records; seq++) {
    if (burst-- <= 0) {
      burst = 1 + ((rand() * 400) | 0);
      // Pauses let the ring drain so the consumer parks (exercising the wake-up path).
      if (rand() < 0.5) Atomics.wait(nap, 0, 0, rand());
    }
    const r = rand();
    const len = 8 + ((r < 0.7 ? rand() * 1400 : rand() * (job.maxPayload - 8)) | 0);
    const from = (seq * 977) % (pool.length - job.maxPayload);
    payload.set(pool.subarray(from, from + len - 8), 8);
    dv.setUint32(0, seq, true);
    dv.setUint32(4, fnv1a(payload, 8, len), true);
    const hBefore = Atomics.load(ctrl, CTRL_HEAD) & CTRL_INDEX_MASK;
    const tBefore = Atomics.load(ctrl, CTRL_TAIL);
    const t0 = performance.now();
    let ok: boolean;
    switch (seq % 3) {
      case 0:
        ok = ring.tryWrite(slotOf(seq), kindOf(seq), flagsOf(seq), tsOf(seq), payload.subarray(0, len));
        break;
      case 1: {
        const cut = 8 + ((len - 8) >> 1);
        const parts = [payload.subarray(0, 8), payload.subarray(8, cut), payload.subarray(cut, len)];
        ok = ring.tryWriteParts(slotOf(seq), kindOf(seq), flagsOf(seq), tsOf(seq), parts);
        break;
      }
      default: {
        const at = ring.reserveOffset(len);
        ok = at >= 0;
        if (ok) {
          ring.bytes.set(payload.subarray(0, len), at);
          ok = ring.commit(slotOf(seq), kindOf(seq), flagsOf(seq), tsOf(seq), len);
        }
      }
    }
    const ms = performance.now() - t0;
    if (ms > report.maxWriteMs) report.maxWriteMs = ms;
    if (ok) report.sent++;
    else {
      report.refused++;
      if (roomFor(hBefore, tBefore, recordSpan(len), cap)) report.spuriousRefusals++;
    }
  }
  ring.close();
  return report;
}

// The helpers above are imported by the test too; only a worker answers jobs.
if (!Bun.isMainThread) {
  self.onmessage = (e: MessageEvent<StressJob>) => {
    postMessage(produce(e.data));
  };
}
