// Piscina entry point of a media worker: one long-lived task per worker that drains its
// input ring into per-stream pipelines and answers control messages on its MessagePort.
import { heapSize } from 'bun:jsc';
import type { MessagePort } from 'node:worker_threads';
import { RingConsumer, RingProducer } from './ring.ts';
import type { AddStream, FromWorker, ToWorker, WorkerInit } from './control.ts';
import { StreamPipeline, type PipelineContext } from './pipeline.ts';
import type { SegmentWriter } from './writer.ts';
import { createSegmentWriter } from './writer-native.ts';

/** How long a busy worker sleeps between ring reads before it parks (see #loop). */
const LINGER_MS = 2;
/** Records drained per turn before yielding to control messages and timers. */
const READ_BATCH = 512;
const STATS_INTERVAL_MS = 1000;

export interface MediaTask {
  port: MessagePort;
  workerIndex: number;
}

/**
 * Never resolves: the task lives as long as the worker. The pool ends it with
 * `destroy()` after the shutdown reply, which follows every event on the same port; a task
 * that resolved itself could be reported to the pool before those port messages arrive.
 */
export default function mediaWorker(task: MediaTask): Promise<void> {
  return new Promise<void>(() => {
    const port = task.port;
    const send = (m: FromWorker) => port.postMessage(m);
    let worker: MediaWorker | null = null;
    port.on('message', (msg: ToWorker) => {
      if (msg.type === 'init') {
        worker = new MediaWorker(msg, send);
        return;
      }
      if (worker === null) {
        if ('id' in msg) send({ type: 'reply', id: msg.id, ok: false, error: 'worker not initialised' });
        return;
      }
      worker.control(msg);
    });
  });
}

class MediaWorker {
  #init: WorkerInit;
  #send: (m: FromWorker) => void;
  #ring: RingConsumer;
  #pipes: (StreamPipeline | null)[] = [];
  #specs: (AddStream | null)[] = [];
  #previewOn: boolean[] = [];
  #ctx: PipelineContext;
  #stopping = false;
  #stats: ReturnType<typeof setInterval>;
  #faultSlot = -1;
  readonly #onRecord = (slot: number, kind: number, flags: number, ts: number, payload: Uint8Array): void => {
    const p = this.#pipes[slot];
    if (p == null) return; // a record of a stream removed meanwhile
    if (slot === this.#faultSlot) {
      this.#faultSlot = -1;
      this.#reset(slot, new Error('injected fault'));
      return;
    }
    try {
      p.push(kind, flags, ts, payload);
    } catch (err) {
      this.#reset(slot, err as Error);
    }
  };

  constructor(init: WorkerInit, send: (m: FromWorker) => void) {
    this.#init = init;
    this.#send = send;
    this.#ring = new RingConsumer(init.inRing);
    const out = new RingProducer(init.outRing);
    const writer: SegmentWriter = createSegmentWriter(
      init.writer,
      init.writerOptions,
      (message) => console.error(`media worker ${init.workerIndex}: ${message}`),
      (err) => send({ type: 'stream-error', streamId: err.path.slice(init.basePath.length + 1).split('/')[0] ?? '', message: err.message }),
    );
    this.#ctx = {
      basePath: init.basePath,
      segmentDurationMs: init.segmentDurationMs,
      fragmentDurationMs: init.fragmentDurationMs,
      writer,
      emit: (ev) => send(ev),
      problem: () => {},
      out,
    };
    this.#stats = setInterval(() => this.#sendStats(), STATS_INTERVAL_MS);
    void this.#loop();
  }

  control(msg: ToWorker): void {
    switch (msg.type) {
      case 'add-stream': {
        const ctx: PipelineContext = {
          ...this.#ctx,
          problem: (message) => this.#send({ type: 'stream-error', streamId: msg.streamId, message }),
        };
        this.#pipes[msg.slot]?.close();
        this.#pipes[msg.slot] = new StreamPipeline(msg, ctx);
        this.#specs[msg.slot] = msg;
        this.#previewOn[msg.slot] = false;
        this.#reply(msg.id, true);
        return;
      }
      case 'preview': {
        this.#previewOn[msg.slot] = msg.on;
        this.#pipes[msg.slot]?.setPreview(msg.on, msg.still);
        this.#reply(msg.id, true);
        return;
      }
      case 'keyframe-request': {
        const p = this.#pipes[msg.slot];
        this.#send({ type: 'keyframe-reply', id: msg.id, keyframe: p ? p.latestKeyframe() : null });
        return;
      }
      case 'remove-stream': {
        // Records already in the ring belong to this stream's last moments: keep them.
        this.#drain();
        this.#close(msg.slot);
        this.#reply(msg.id, true);
        return;
      }
      case 'shutdown': {
        this.#stopping = true;
        this.#drain();
        for (let s = 0; s < this.#pipes.length; s++) this.#close(s);
        clearInterval(this.#stats);
        // The native writer finishes closes off this thread: reply once they are on disk.
        void this.#ctx.writer.drain().then(() => this.#reply(msg.id, true));
        return;
      }
      case 'inject-fault': {
        if (!this.#init.allowFaults) return this.#reply(msg.id, false, 'faults not allowed');
        this.#reply(msg.id, true);
        if (msg.fault === 'crash-worker') {
          setTimeout(() => {
            throw new Error('injected worker crash');
          }, 0);
        } else if (msg.slot !== undefined) {
          this.#faultSlot = msg.slot;
        }
        return;
      }
      case 'init':
        return;
    }
  }

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      const n = this.#ring.read(this.#onRecord, READ_BATCH);
      if (n === READ_BATCH) {
        // More may be waiting, but let control messages and timers run between batches.
        await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      if (n > 0) {
        // Busy: linger on a short timer instead of parking. A parked worker costs the main
        // thread an Atomics.notify and both threads a cross-thread wake-up per park, which at
        // 100 cameras was ~5 futex calls per frame; while we linger SLEEPING stays 0 and the
        // producer never notifies. Adds at most LINGER_MS to ingest-to-preview latency.
        await new Promise<void>((r) => setTimeout(r, LINGER_MS));
        continue;
      }
      await this.#ring.waitReadable();
      if (this.#ring.closed) break;
    }
  }

  #drain(): void {
    while (this.#ring.read(this.#onRecord, READ_BATCH) > 0) {
      /* until empty */
    }
  }

  #close(slot: number): void {
    const p = this.#pipes[slot];
    if (p == null) return;
    this.#pipes[slot] = null;
    this.#specs[slot] = null;
    try {
      p.close();
    } catch (err) {
      this.#send({ type: 'stream-error', streamId: p.streamId, message: (err as Error).message });
    }
  }

  /** One stream failed: close its segment, rebuild its pipeline; the worker carries on. */
  #reset(slot: number, err: Error): void {
    const spec = this.#specs[slot];
    const old = this.#pipes[slot];
    if (spec == null || old == null) return;
    this.#send({ type: 'stream-error', streamId: spec.streamId, message: `pipeline reset: ${err.message}` });
    try {
      old.close();
    } catch {
      /* already reported */
    }
    const ctx: PipelineContext = {
      ...this.#ctx,
      problem: (message) => this.#send({ type: 'stream-error', streamId: spec.streamId, message }),
    };
    const fresh = new StreamPipeline(spec, ctx);
    fresh.inherit(old);
    if (this.#previewOn[slot]) fresh.setPreview(true);
    this.#pipes[slot] = fresh;
  }

  #reply(id: number, ok: boolean, error?: string): void {
    this.#send(error === undefined ? { type: 'reply', id, ok } : { type: 'reply', id, ok, error });
  }

  #sendStats(): void {
    const slots: number[] = [];
    for (let s = 0; s < this.#pipes.length; s++) {
      const p = this.#pipes[s];
      if (p == null) continue;
      slots.push(s, p.counters.bytesIn, p.counters.frames, p.counters.droppedFrames, p.previewDrops, p.lostPackets, p.resyncs); // STATS_FIELDS
    }
    const w = this.#ctx.writer as SegmentWriter & { stats?(): { queued: number; inflight: number } };
    const q = w.stats?.();
    this.#send({ type: 'stats', slots, writeQueue: q ? q.queued + q.inflight : 0, heapBytes: heapSize() });
  }
}
