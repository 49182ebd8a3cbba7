// Keyframe decoder that stays up: one ffmpeg per codec and output size reads Annex-B
// keyframes (each with its parameter sets, any picture size) on stdin and writes RGB24
// pictures of that size on stdout,
// so a snapshot costs a decode (~20 ms at 1080p) and not an ffmpeg start-up (~100-150 ms of
// a core: Debian's ffmpeg links ~100 libraries) per picture.
//
// ffmpeg hands a picture out only once later input has arrived: its demuxer reads one
// packet ahead, and a decoder that may reorder (B-frames, an H.265 DPB) holds the picture
// until the next one starts. So every keyframe is followed by `lag` copies of itself (each
// after an end of sequence, so that each is a picture of its own). Which picture out is the
// one asked for: the inputs are all intra pictures, so the n-th picture out is at best the
// n-th keyframe in; a decoder may drop a picture still waiting (H.265 drops the prior ones
// at a CRA after an end of sequence), which only ever makes a picture come from a later
// input than counted, i.e. a copy of the keyframe asked for. The copies left over from the
// last request come out first, and are told apart because they decode to exactly the last
// picture handed out. When output stalls short of the picture wanted, one more copy goes in
// and the lag learned grows. `-xerror`: a decode error ends the process rather than skipping
// a picture, and the next request starts a fresh one.
import type { Subprocess } from 'bun';

export type DecoderCodec = 'h264' | 'h265';

/** Output stalled this long (after the first picture) = ffmpeg waits for more input. */
const STALL_MS = 150;
/** Before the first picture the process is still starting: wait longer before pushing. */
const FIRST_STALL_MS = 1_000;
/** A request that takes longer ends the process (a stuck decoder must not hold the pool). */
const DECODE_TIMEOUT_MS = 5_000;
/** More copies than this means something else is wrong (an H.264 DPB holds at most 16). */
const MAX_LAG = 17;
/** A decoder nobody asked for this long exits (its process and frame buffer go). */
export const DECODER_IDLE_MS = 20_000;
/**
 * Output sizes with a decoder each, at most (full-size snapshots, 640-wide keyframe JPEGs and
 * the grid's thumbnails per codec); the least recently used idle one goes first.
 */
const MAX_DECODERS = 6;
/** 8K: larger pictures are not decoded here. */
const MAX_PIXELS = 7680 * 4320;

/**
 * What follows every keyframe: an end of sequence, so the next copy starts a new coded
 * video sequence (the same CRA twice is otherwise a duplicate POC, an error), and an access
 * unit delimiter, which ends the picture for ffmpeg's parser (H.264 §7.3.2.4/§7.4.1.2.3,
 * H.265 §7.3.2.5/§7.4.2.4.4).
 */
const TRAILER: Record<DecoderCodec, Uint8Array> = {
  h264: new Uint8Array([0, 0, 0, 1, 0x0a, 0, 0, 0, 1, 0x09, 0xf0]),
  h265: new Uint8Array([0, 0, 0, 1, 0x48, 0x01, 0, 0, 0, 1, 0x46, 0x01, 0x50]),
};
/** Copies that follow a keyframe at first: the demuxer's one; x265-style H.265 needs two. */
const INITIAL_LAG: Record<DecoderCodec, number> = { h264: 1, h265: 2 };

export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
}

interface Wanted {
  index: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** One ffmpeg for one codec and output size (pictures are scaled to it); requests run one at a time. */
export class FrameDecoder {
  readonly codec: DecoderCodec;
  readonly width: number;
  readonly height: number;
  readonly frameBytes: number;
  /** Copies written after each keyframe; learned upwards. */
  lag: number;
  /** Pictures decoded (the ones thrown away included), keyframes written. */
  framesOut = 0;
  framesIn = 0;
  lastUsed = 0;
  #proc: Subprocess<'pipe', 'pipe', 'pipe'>;
  /** The last picture handed out (valid when #have), and the one coming in. */
  #frame: Uint8Array;
  #next: Uint8Array;
  #have = false;
  /** The keyframe whose picture #frame holds. */
  #lastKeyframe: Uint8Array | null = null;
  /** The picture coming in equals #frame so far. */
  #same = true;
  #pos = 0;
  #wanted: Wanted | null = null;
  #progress: () => void = () => {};
  #stderr = '';
  #exited = false;
  #queue: Promise<unknown> = Promise.resolve();
  #idle: ReturnType<typeof setTimeout> | null = null;
  #onExit: (d: FrameDecoder) => void;

  constructor(ffmpeg: string, codec: DecoderCodec, width: number, height: number, onExit: (d: FrameDecoder) => void = () => {}) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16 || width * height > MAX_PIXELS) {
      throw new FrameDecodeError(`cannot decode a ${width}x${height} picture (16x16 to 8K)`);
    }
    this.codec = codec;
    this.width = width;
    this.height = height;
    this.frameBytes = width * height * 3;
    this.lag = INITIAL_LAG[codec];
    this.#onExit = onExit;
    this.#frame = new Uint8Array(this.frameBytes);
    this.#next = new Uint8Array(this.frameBytes);
    this.#proc = Bun.spawn(
      [ffmpeg, '-hide_banner', '-nostats', '-v', 'error', '-xerror',
        '-threads', '1', '-probesize', '32', '-analyzeduration', '0', '-fflags', 'nobuffer',
        '-f', codec === 'h264' ? 'h264' : 'hevc', '-i', 'pipe:0',
        '-map', '0:v:0', '-fps_mode', 'passthrough', '-threads', '1', '-filter_threads', '1',
        // -s: the output is exactly this size even if the picture is not (the count of bytes
        // is how pictures are told apart).
        '-s', `${width}x${height}`, '-pix_fmt', 'rgb24', '-flush_packets', '1', '-f', 'rawvideo', 'pipe:1'],
      { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' },
    );
    void this.#read();
    void this.#readErr();
    void this.#proc.exited.then((code) => this.#ended(new FrameDecodeError(`ffmpeg exited (code ${code})${this.#stderr ? `: ${this.#stderr.trim().slice(-300)}` : ''}`)));
  }

  get alive(): boolean {
    return !this.#exited;
  }

  get busy(): boolean {
    return this.#wanted !== null;
  }

  /**
   * Decodes one keyframe (Annex-B with its parameter sets) and calls `use` with the RGB24
   * picture, a view that is valid until `use`'s promise settles.
   */
  decode<T>(keyframe: Uint8Array, use: (rgb: Uint8Array) => Promise<T> | T): Promise<T> {
    const run = this.#queue.then(async () => {
      if (this.#exited) throw new FrameDecodeError('decoder has exited');
      // The same keyframe again (two snapshots within a GOP): the picture is at hand.
      if (!this.#have || this.#lastKeyframe === null || !bytesEqual(keyframe, this.#lastKeyframe)) {
        this.#lastKeyframe = null;
        await this.#decodeOne(keyframe);
        this.#lastKeyframe = keyframe.slice();
      }
      return await use(this.#frame);
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  #decodeOne(keyframe: Uint8Array): Promise<void> {
    if (this.#exited) return Promise.reject(new FrameDecodeError('decoder has exited'));
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.lastUsed = Date.now();
    const index = this.framesIn + 1;
    this.#write(keyframe, 1 + this.lag);
    if (this.#exited) return Promise.reject(new FrameDecodeError(`ffmpeg's stdin has gone${this.#stderr ? `: ${this.#stderr.trim().slice(-300)}` : ''}`));
    return new Promise<void>((resolve, reject) => {
      let stall: ReturnType<typeof setTimeout> | null = null;
      const arm = (): void => {
        if (stall !== null) clearTimeout(stall);
        stall = setTimeout(() => {
          if (this.#wanted === null || this.lag >= MAX_LAG) return;
          this.lag++;
          this.#write(keyframe, 1); // one more copy of the same keyframe
          arm();
        }, this.framesOut > 0 ? STALL_MS : FIRST_STALL_MS);
      };
      const timeout = setTimeout(() => {
        done();
        reject(new FrameDecodeError(`no picture after ${DECODE_TIMEOUT_MS} ms (${this.framesOut} of ${index} out, lag ${this.lag})`));
        this.close();
      }, DECODE_TIMEOUT_MS);
      const done = (): void => {
        clearTimeout(timeout);
        if (stall !== null) clearTimeout(stall);
        this.#wanted = null;
        this.#progress = () => {};
        this.#idle = setTimeout(() => this.close(), DECODER_IDLE_MS);
      };
      this.#wanted = { index, resolve: () => { done(); resolve(); }, reject: (e) => { done(); reject(e); } };
      this.#progress = arm;
      arm();
    });
  }

  /** Writes `copies` copies of the keyframe, each with the trailer. */
  #write(keyframe: Uint8Array, copies: number): void {
    const sink = this.#proc.stdin;
    try {
      for (let i = 0; i < copies; i++) {
        sink.write(keyframe);
        sink.write(TRAILER[this.codec]);
      }
      void Promise.resolve(sink.flush()).catch(() => this.close());
    } catch {
      // The pipe has gone with the process (it may write from a timer: never throw there).
      this.close();
      return;
    }
    this.framesIn += copies;
  }

  async #read(): Promise<void> {
    try {
      for await (const chunk of this.#proc.stdout) this.#consume(chunk);
    } catch {
      // the exit handler reports it
    }
  }

  #consume(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(this.frameBytes - this.#pos, chunk.length - at);
      if (this.#wanted !== null) {
        const part = chunk.subarray(at, at + n);
        this.#next.set(part, this.#pos);
        if (this.#same && this.#have) this.#same = bytesEqual(part, this.#frame.subarray(this.#pos, this.#pos + n));
      }
      this.#pos += n;
      at += n;
      if (this.#pos === this.frameBytes) this.#frameDone();
    }
  }

  #frameDone(): void {
    this.#pos = 0;
    this.framesOut++;
    const w = this.#wanted;
    const stale = this.#have && this.#same;
    this.#same = true;
    if (w === null) return;
    // By count it is the keyframe asked for (the count is a lower bound), or it differs
    // from the last picture handed out, which every left-over copy equals.
    if (this.framesOut >= w.index || !stale) {
      [this.#frame, this.#next] = [this.#next, this.#frame];
      this.#have = true;
      if (this.framesOut < w.index) this.framesOut = w.index;
      w.resolve();
    } else this.#progress();
  }

  async #readErr(): Promise<void> {
    try {
      for await (const chunk of this.#proc.stderr) this.#stderr = (this.#stderr + new TextDecoder().decode(chunk)).slice(-2000);
    } catch {
      // ignore: stderr is only for messages
    }
  }

  #ended(e: Error): void {
    if (this.#exited) return;
    this.#exited = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#wanted?.reject(e);
    this.#onExit(this);
  }

  /** Ends the process: stdin closed, killed if it has not gone a second later. */
  close(): void {
    if (this.#idle !== null) clearTimeout(this.#idle);
    if (this.#exited) return;
    try {
      void this.#proc.stdin.end();
    } catch {
      // already closed
    }
    const p = this.#proc;
    setTimeout(() => p.kill(), 1_000).unref?.();
    this.#ended(new FrameDecodeError('decoder closed'));
  }

  /** Resolves when the process has gone (tests). */
  get exited(): Promise<number> {
    return this.#proc.exited;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Decoders by codec and output size, started on first use, at most MAX_DECODERS. */
export class FrameDecoders {
  #all = new Map<string, FrameDecoder>();

  get size(): number {
    return this.#all.size;
  }

  get(ffmpeg: string, codec: DecoderCodec, width: number, height: number): FrameDecoder {
    const key = `${codec}:${width}x${height}`;
    const have = this.#all.get(key);
    if (have !== undefined && have.alive) return have;
    if (this.#all.size >= MAX_DECODERS) {
      const idle = [...this.#all.values()].filter((d) => !d.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      idle?.close();
    }
    const d = new FrameDecoder(ffmpeg, codec, width, height, (gone) => {
      if (this.#all.get(key) === gone) this.#all.delete(key);
    });
    this.#all.set(key, d);
    return d;
  }

  /**
   * Decodes with the decoder for this size; a decoder that died under an earlier request
   * (not this one's input) is replaced once.
   */
  async decode<T>(ffmpeg: string, codec: DecoderCodec, width: number, height: number, keyframe: Uint8Array, use: (rgb: Uint8Array) => Promise<T> | T): Promise<T> {
    const d = this.get(ffmpeg, codec, width, height);
    const fresh = d.framesIn === 0;
    try {
      return await d.decode(keyframe, use);
    } catch (e) {
      if (fresh || !(e instanceof FrameDecodeError) || d.alive) throw e;
      return await this.get(ffmpeg, codec, width, height).decode(keyframe, use);
    }
  }

  close(): void {
    for (const d of this.#all.values()) d.close();
    this.#all.clear();
  }
}
