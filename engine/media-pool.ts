// The fixed Piscina pool of media workers: one long-lived task, one input ring and one
// MessagePort per worker; streams get a slot on the least-loaded worker; a worker that dies
// is restarted and its streams are re-added.
//
// The threads start just after start-up rather than during it: piscina (and node:worker_threads
// under it) is imported, and the first thread created, in the event-loop turn after
// MediaPool.start returns, so the HTTP API listens ~25 ms sooner. Everything else (rings,
// ports, the init message, stream requests) is set up at once; messages wait on the port until
// the worker reads them.
import type { Piscina } from 'piscina';
import { STATS_FIELDS } from '../workers/control.ts';
import type { WorkerInit, AddStream, FromWorker, InputFormat, KeyframeData, KeyframeEvent, KeyframeReply, Reply, SegmentClosed, SegmentOpened, StreamProblem, ToWorker, WriterKind } from '../workers/control.ts';
import { MAX_RECORD_BYTES } from '../workers/ring-format.ts';
import { createRing, RingConsumer, RingProducer, type RecordHandler } from '../workers/ring.ts';
import { readRecordedKeyframe } from './keyframe-file.ts';
import { log } from './log.ts';
import { workerEntry } from './worker-entry.ts';

/** Slots are u16 in ring records. */
const MAX_SLOTS = 0xffff;
/** A control request the worker does not answer in this time is failed (worker wedged). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Restart pauses for a worker that keeps dying: 1 s, 2 s, 4 s ... capped. */
const RESTART_PAUSE_MS = 1000;
const RESTART_PAUSE_MAX_MS = 30_000;
/** worker -> main ring: preview fragments only (one per frame while watched), droppable. */
const OUT_RING_BYTES = 4 << 20;
const OUT_RING_MAX_RECORD = 1 << 20;

export interface PoolOptions {
  /** Workers started at once; more are started as streams are added, up to maxWorkers. */
  workers: number;
  maxWorkers?: number;
  ringBytes: number;
  basePath: string;
  segmentDurationMs: number;
  fragmentDurationMs: number;
  writer: WriterKind;
  writerOptions?: WorkerInit['writerOptions'];
  allowFaults: boolean;
  onEvent(ev: SegmentOpened | SegmentClosed | StreamProblem | KeyframeEvent): void;
  /** One preview record (KIND_FRAGMENT) of a stream; `payload` is valid during the call only. */
  onFragment(h: StreamHandle, flags: number, ts: number, payload: Uint8Array): void;
  /** A worker died; its streams' open segments must be repaired (they got no close). */
  onWorkerLost(workerIndex: number, streamIds: string[]): void;
}

export interface StreamSpec {
  streamId: string;
  input: InputFormat;
  record: boolean;
  wallBaseMs: number;
  firstSegmentNumber: number;
  /** Expected bytes/s, used for placement until measured. */
  bitrateHint: number;
  /** Periodic keyframe events for keyframe JPEGs; 0 = none. */
  keyframeIntervalMs: number;
}

export interface StreamCounters {
  bytesIn: number;
  frames: number;
  droppedFrames: number;
  /** Records the producer could not put in the ring (full): counted drops. */
  ringDrops: number;
  /** Input bytes/s over the last stats interval (measured between the worker's stats messages). */
  bytesPerSec: number;
  /** Frames/s over the same interval. */
  fps: number;
  /** Preview fragments the worker could not queue to the main thread. */
  previewDrops: number;
  /** RTP packets seen missing (sequence gaps) since the stream was added. */
  lostPackets: number;
  /** Times the stream's container demuxer (MPEG-PS) lost sync and scanned for the next pack. */
  resyncs: number;
}

/** What an ingest adapter holds to feed a stream. */
export class StreamHandle {
  /** Preview requested (re-applied when the worker restarts). */
  previewOn = false;
  /** Told when preview turns on or off (the ingest adapter reads at once while someone watches). */
  onPreviewChange: ((on: boolean) => void) | null = null;
  readonly counters: StreamCounters = { bytesIn: 0, frames: 0, droppedFrames: 0, ringDrops: 0, bytesPerSec: 0, fps: 0, previewDrops: 0, lostPackets: 0, resyncs: 0 };
  /** When the last stats message for this stream arrived (performance.now()), 0 before the first. */
  statsAt = 0;
  constructor(
    readonly slot: number,
    readonly spec: StreamSpec,
    public worker: WorkerSlot,
  ) {}

  /** Copies one record into the worker's ring; false (and counted) when the ring is full. */
  write(kind: number, flags: number, ts: number, payload: Uint8Array): boolean {
    if (this.worker.producer.tryWrite(this.slot, kind, flags, ts, payload)) return true;
    this.counters.ringDrops++;
    return false;
  }

  /** One record assembled from several views (copied once, in order). */
  writeParts(kind: number, flags: number, ts: number, parts: readonly Uint8Array[]): boolean {
    if (this.worker.producer.tryWriteParts(this.slot, kind, flags, ts, parts)) return true;
    this.counters.ringDrops++;
    return false;
  }
}

class WorkerSlot {
  producer!: RingProducer;
  /** The Web MessagePort (global MessageChannel; node:worker_threads is loaded later, with piscina). */
  port!: MessagePort;
  ring!: SharedArrayBuffer;
  out!: RingConsumer;
  streams = new Map<number, StreamHandle>();
  pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>();
  restartPause = RESTART_PAUSE_MS;
  alive = false;
  /** From the worker's last stats message. */
  writeQueue = 0;
  heapBytes = 0;
  constructor(readonly index: number) {}

  load(): number {
    let sum = 0;
    for (const h of this.streams.values()) sum += h.counters.bytesPerSec > 0 ? h.counters.bytesPerSec : h.spec.bitrateHint;
    return sum;
  }
}

/**
 * A worker takes no more streams than this, or than this many bytes a second (measured, or
 * the streams' hints before they have run), while another may be started: past ~128 cameras
 * of 4 Mbit/s one worker's ring no longer absorbs its pauses (see engine.ts workerCounts).
 */
export const WORKER_STREAMS = 128;
const WORKER_BYTES_PER_SEC = 64_000_000;

export class MediaPool {
  #o: PoolOptions;
  #piscina: Piscina | null = null;
  /** Resolves once piscina is loaded and the pool created (the turn after start). */
  #spawned: Promise<void>;
  #workers: WorkerSlot[] = [];
  #freeSlots: number[] = [];
  #nextSlot = 0;
  #nextId = 1;
  #closing = false;

  private constructor(o: PoolOptions) {
    this.#o = o;
    this.#spawned = new Promise<void>((r) => setImmediate(r))
      .then(() => import('piscina'))
      .then(({ Piscina }) => this.#createPiscina(Piscina));
  }

  #createPiscina(P: typeof Piscina): void {
    if (this.#closing) return;
    const o = this.#o;
    this.#piscina = new P({
      filename: workerEntry('media-worker'),
      minThreads: o.workers,
      maxThreads: Math.max(o.workers, o.maxWorkers ?? o.workers),
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      maxQueue: Math.max(o.workers, o.maxWorkers ?? o.workers) * 2,
    });
  }

  static start(o: PoolOptions): MediaPool {
    const pool = new MediaPool(o);
    for (let i = 0; i < o.workers; i++) {
      const w = new WorkerSlot(i);
      pool.#workers.push(w);
      pool.#launch(w);
    }
    return pool;
  }

  get workerCount(): number {
    return this.#workers.length;
  }

  /** Measured input bytes a second of every stream (0 before the workers' first stats). */
  ingestBytesPerSec(): number {
    let sum = 0;
    for (const w of this.#workers) for (const h of w.streams.values()) sum += h.counters.bytesPerSec;
    return sum;
  }

  workerLoads(): { index: number; streams: number; bytesPerSec: number; alive: boolean; ringFill: number; writeQueue: number; heapBytes: number }[] {
    return this.#workers.map((w) => ({
      index: w.index,
      streams: w.streams.size,
      bytesPerSec: w.load(),
      alive: w.alive,
      ringFill: w.producer.fillRatio,
      writeQueue: w.writeQueue,
      heapBytes: w.heapBytes,
    }));
  }

  async addStream(spec: StreamSpec): Promise<StreamHandle> {
    if (this.#closing) throw new Error('media pool is closing');
    const slot = this.#freeSlots.pop() ?? this.#nextSlot++;
    if (slot >= MAX_SLOTS) throw new Error(`too many streams: ${MAX_SLOTS} slots in use`);
    let best = this.#workers[0]!;
    for (const w of this.#workers) if (w.load() < best.load()) best = w;
    if (this.#workers.length < (this.#o.maxWorkers ?? 0) && (best.streams.size >= WORKER_STREAMS || best.load() + spec.bitrateHint > WORKER_BYTES_PER_SEC)) {
      best = new WorkerSlot(this.#workers.length);
      this.#workers.push(best);
      this.#launch(best);
      log.info(`media worker ${best.index} started (${this.#workers.length} of at most ${this.#o.maxWorkers})`);
    }
    const h = new StreamHandle(slot, spec, best);
    best.streams.set(slot, h);
    try {
      await this.#request(best, this.#addMessage(h));
    } catch (err) {
      best.streams.delete(slot);
      this.#freeSlots.push(slot);
      throw err;
    }
    return h;
  }

  async removeStream(h: StreamHandle): Promise<void> {
    const w = h.worker;
    if (!w.streams.has(h.slot)) return;
    try {
      await this.#request(w, { type: 'remove-stream', id: this.#nextId++, slot: h.slot });
    } finally {
      w.streams.delete(h.slot);
      this.#freeSlots.push(h.slot);
    }
  }

  /**
   * Live preview on/off for a stream (the worker muxes one fragment per frame while on). On
   * goes with the latest keyframe, which the worker shows until the next one is due.
   */
  async setPreview(h: StreamHandle, on: boolean): Promise<void> {
    if (!h.worker.streams.has(h.slot)) return;
    if (h.previewOn !== on) {
      h.previewOn = on;
      h.onPreviewChange?.(on);
    }
    const still = on ? await this.latestKeyframe(h).catch(() => null) : null;
    if (h.previewOn !== on) return; // turned the other way meanwhile
    await this.#request(h.worker, { type: 'preview', id: this.#nextId++, slot: h.slot, on, ...(still !== null ? { still } : {}) });
  }

  /**
   * The stream's latest keyframe with its parameter sets, or null before the first. For a
   * recorded stream the worker says where the picture lies and it is read from the file.
   */
  async latestKeyframe(h: StreamHandle): Promise<KeyframeData | null> {
    const r = (await this.#request(h.worker, { type: 'keyframe-request', id: this.#nextId++, slot: h.slot })) as KeyframeReply;
    if (r.keyframe === null || 'data' in r.keyframe) return r.keyframe;
    return readRecordedKeyframe(r.keyframe);
  }

  /** Tests only: make a worker crash or a stream's pipeline throw. */
  injectFault(workerIndex: number, fault: 'crash-worker' | 'throw-in-stream', slot?: number): Promise<void> {
    const w = this.#workers[workerIndex]!;
    const msg: ToWorker = { type: 'inject-fault', id: this.#nextId++, fault };
    if (slot !== undefined) msg.slot = slot;
    return this.#request(w, msg).then(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#spawned.catch(() => {});
    if (this.#piscina === null) {
      // Closed before the threads started: no worker has run, nothing to ask or wait for.
      for (const w of this.#workers) {
        w.alive = false;
        w.out.close();
        w.port.close();
      }
      return;
    }
    await Promise.allSettled(
      this.#workers.filter((w) => w.alive).map((w) => this.#request(w, { type: 'shutdown', id: this.#nextId++ })),
    );
    await this.#piscina.destroy().catch(() => {});
  }

  #addMessage(h: StreamHandle): AddStream {
    return {
      type: 'add-stream',
      id: this.#nextId++,
      slot: h.slot,
      streamId: h.spec.streamId,
      input: h.spec.input,
      record: h.spec.record,
      wallBaseMs: h.spec.wallBaseMs,
      firstSegmentNumber: h.spec.firstSegmentNumber,
      keyframeIntervalMs: h.spec.keyframeIntervalMs,
    };
  }

  #launch(w: WorkerSlot): void {
    const { port1, port2 } = new MessageChannel();
    // Records up to a quarter of the ring (2 MB in the default 8 MB: a 1080p IDR is ~0.3 MB),
    // so a burst of large pictures still fits; 4K at high bitrates wants a larger ring_size_mb.
    w.ring = createRing(this.#o.ringBytes, Math.min(MAX_RECORD_BYTES, Math.floor(this.#o.ringBytes / 4)));
    w.producer = new RingProducer(w.ring);
    const outRing = createRing(OUT_RING_BYTES, OUT_RING_MAX_RECORD);
    w.out = new RingConsumer(outRing);
    w.port = port1;
    w.alive = true;
    void this.#drainOut(w, w.out);
    port1.onmessage = (e: MessageEvent<FromWorker>) => this.#onMessage(w, e.data);
    port1.postMessage({
      type: 'init',
      workerIndex: w.index,
      inRing: w.ring,
      outRing,
      basePath: this.#o.basePath,
      segmentDurationMs: this.#o.segmentDurationMs,
      fragmentDurationMs: this.#o.fragmentDurationMs,
      writer: this.#o.writer,
      ...(this.#o.writerOptions ? { writerOptions: this.#o.writerOptions } : {}),
      allowFaults: this.#o.allowFaults,
    } satisfies ToWorker);
    const run = (): void => {
      const started = Date.now();
      if (this.#piscina === null) return; // closed before the threads started
      this.#piscina.run({ port: port2, workerIndex: w.index }, { transferList: [port2] as never }).then(
        () => this.#lost(w, null, started),
        (err: Error) => this.#lost(w, err, started),
      );
    };
    if (this.#piscina !== null) run();
    else
      this.#spawned.then(run, (err: Error) => {
        log.error(`media workers cannot start: ${err.message}`);
        this.#lost(w, err, Date.now());
      });
  }

  /** Main-thread side of a worker's out ring: hands preview fragments to the live hub. */
  async #drainOut(w: WorkerSlot, ring: RingConsumer): Promise<void> {
    const handler: RecordHandler = (slot, _kind, flags, ts, payload) => {
      const h = w.streams.get(slot);
      if (h !== undefined) this.#o.onFragment(h, flags, ts, payload);
    };
    await ring.consume(handler);
  }

  #lost(w: WorkerSlot, err: Error | null, startedMs: number): void {
    w.alive = false;
    w.out.close();
    w.port.close();
    for (const p of w.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`media worker ${w.index} went away`));
    }
    w.pending.clear();
    if (this.#closing) return;
    log.error(`media worker ${w.index} died (${err?.message ?? 'task ended'}); restarting with ${w.streams.size} streams`);
    this.#o.onWorkerLost(w.index, [...w.streams.values()].map((h) => h.spec.streamId));
    // A worker that lived a while gets a quick restart; one that keeps dying waits longer.
    if (Date.now() - startedMs > RESTART_PAUSE_MAX_MS) w.restartPause = RESTART_PAUSE_MS;
    const pause = w.restartPause;
    w.restartPause = Math.min(w.restartPause * 2, RESTART_PAUSE_MAX_MS);
    setTimeout(() => {
      if (this.#closing) return;
      this.#launch(w);
      for (const h of w.streams.values()) {
        this.#request(w, this.#addMessage(h))
          .then(() => (h.previewOn ? this.#request(w, { type: 'preview', id: this.#nextId++, slot: h.slot, on: true }) : undefined))
          .catch((e: Error) => log.error(`stream ${h.spec.streamId}: re-adding after worker restart failed: ${e.message}`));
      }
    }, pause).unref?.();
  }

  #request(w: WorkerSlot, msg: ToWorker & { id: number }): Promise<unknown> {
    if (!w.alive) return Promise.reject(new Error(`media worker ${w.index} is restarting`));
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        w.pending.delete(msg.id);
        reject(new Error(`media worker ${w.index} did not answer ${msg.type} in ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      w.pending.set(msg.id, { resolve, reject, timer });
      w.port.postMessage(msg);
    });
  }

  #onMessage(w: WorkerSlot, m: FromWorker): void {
    switch (m.type) {
      case 'reply':
      case 'keyframe-reply':
        return this.#onReply(w, m);
      case 'stats': {
        w.writeQueue = m.writeQueue ?? 0;
        w.heapBytes = m.heapBytes ?? 0;
        const now = performance.now();
        for (let i = 0; i + STATS_FIELDS <= m.slots.length; i += STATS_FIELDS) {
          const h = w.streams.get(m.slots[i]!);
          if (h === undefined) continue;
          const c = h.counters;
          // Rates over the time between this stream's stats messages (~1 s, later under load):
          // a reader sampling on its own clock would see 0 whenever two of its samples fell
          // between two messages.
          const dt = h.statsAt > 0 ? Math.max(0.1, (now - h.statsAt) / 1000) : 1;
          h.statsAt = now;
          c.bytesPerSec = Math.round(Math.max(0, m.slots[i + 1]! - c.bytesIn) / dt);
          c.fps = Math.round((Math.max(0, m.slots[i + 2]! - c.frames) / dt) * 100) / 100;
          c.bytesIn = m.slots[i + 1]!;
          c.frames = m.slots[i + 2]!;
          c.droppedFrames = m.slots[i + 3]!;
          c.previewDrops = m.slots[i + 4]!;
          c.lostPackets = m.slots[i + 5]!;
          c.resyncs = m.slots[i + 6]!;
        }
        return;
      }
      default:
        this.#o.onEvent(m);
    }
  }

  #onReply(w: WorkerSlot, m: Reply | KeyframeReply): void {
    const p = w.pending.get(m.id);
    if (p === undefined) return;
    w.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.type === 'keyframe-reply') p.resolve(m);
    else if (m.ok) p.resolve(undefined);
    else p.reject(new Error(m.error ?? 'worker refused'));
  }
}
