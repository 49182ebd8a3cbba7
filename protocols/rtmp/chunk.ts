// RTMP chunk stream: a reader that reassembles messages from interleaved chunks without
// allocating per chunk, and a writer that splits outgoing messages into chunks.
//
// Adobe RTMP specification 1.0 §5.3.1. Chunk format:
//   +--------------+----------------+--------------------+--------------+
//   | Basic Header | Message Header | Extended Timestamp |  Chunk Data  |
//   +--------------+----------------+--------------------+--------------+
//   |<------------------- Chunk Header ----------------->|
// Basic header (§5.3.1.1): fmt (2 bits) + csid 2..63, or csid 0 + 1 byte (64..319), or
// csid 1 + 2 bytes little-endian (64..65599). Message header (§5.3.1.2) by fmt:
//   0: timestamp u24, length u24, type u8, stream id u32 LE   (11 bytes)
//   1: timestamp delta u24, length u24, type u8                 (7 bytes)
//   2: timestamp delta u24                                      (3 bytes)
//   3: nothing: continuation, or a new message repeating the last header's fields
// A timestamp (delta) field of 0xFFFFFF means a u32 extended timestamp follows
// (§5.3.1.3). Per the spec's errata and what FFmpeg, librtmp and FMS write, type-3 chunks
// repeat it when the last type 0/1/2 header of that chunk stream used one.

/** Chunk size before any Set Chunk Size (§5.4.1). */
export const DEFAULT_CHUNK_SIZE = 128;
/** Set Chunk Size carries 31 bits; a chunk never needs to exceed a message (u24 length). */
export const MAX_CHUNK_SIZE = 0xffffff;
/**
 * Largest message we reassemble. A video message is one FLV tag: a 4K IDR at 50 Mbit/s is
 * ~1-3 MB; 8 MiB leaves headroom yet bounds what a peer can make us buffer per stream.
 */
export const MAX_MESSAGE_BYTES = 8 << 20;
/**
 * Chunk streams a peer may open. Encoders use 2 (control), 3-5 (commands), 4-8 (audio,
 * video, data); 64 bounds the per-session state and the scan for a free slot.
 */
export const MAX_CHUNK_STREAMS = 64;
/**
 * Sum of the reassembly buffers of one session. A publisher interleaves at most a video
 * and an audio message; 16 MiB fits two maximal messages and stops a peer from opening
 * many chunk streams, each with a half-sent large message.
 */
export const MAX_ASSEMBLY_BYTES = 16 << 20;
/** Longest chunk header: 3 (basic) + 11 (type 0) + 4 (extended timestamp). */
const MAX_HEADER_BYTES = 18;

export const READ_NEED_MORE = 0;
export const READ_MESSAGE = 1;
export const READ_ERROR = -1;
export type ReadStep = typeof READ_NEED_MORE | typeof READ_MESSAGE | typeof READ_ERROR;

/** One reassembled message; a single reused object (§5.4 message header fields). */
export interface RtmpMessage {
  csid: number;
  typeId: number;
  streamId: number;
  /** Absolute 32-bit timestamp (ms), wrapping as the wire does. */
  timestamp: number;
  /** View into the pushed buffer or a reassembly buffer; valid until the next next()/push(). */
  payload: Uint8Array;
}

/** Per chunk stream state (§5.3.1.2 "header compression" remembers the previous header). */
class ChunkStream {
  timestamp = 0;
  /** Field of the last type 0/1/2 header: absolute for type 0 (as FFmpeg reads it), else delta. */
  delta = 0;
  length = 0;
  typeId = 0;
  streamId = 0;
  extended = false;
  /** Bytes of the current message received so far; 0 between messages. */
  received = 0;
  buf: Uint8Array | null = null;
  constructor(readonly csid: number) {}
}

/** Parsed fields of the chunk header being read: scratch shared by all readers, filled and used within one next() call. */
const hdr = { fmt: 0, csid: 0, ts: 0, length: 0, typeId: 0, streamId: 0, extended: false, size: 0 };

export class ChunkReader {
  chunkSize = DEFAULT_CHUNK_SIZE;
  readonly message: RtmpMessage = { csid: 0, typeId: 0, streamId: 0, timestamp: 0, payload: new Uint8Array(0) };
  error = '';
  /** Bytes currently held by reassembly buffers (checked against MAX_ASSEMBLY_BYTES). */
  assemblyBytes = 0;
  private readonly streams = new Map<number, ChunkStream>();
  private input: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** Header bytes carried over when a read ends inside a chunk header. */
  private readonly stash = new Uint8Array(MAX_HEADER_BYTES);
  private stashLen = 0;
  /** Chunk stream whose chunk data is being read, and the bytes of that chunk left. */
  private cur: ChunkStream | null = null;
  private chunkLeft = 0;
  private failed = false;

  constructor(
    private readonly maxMessageBytes = MAX_MESSAGE_BYTES,
    private readonly maxAssemblyBytes = MAX_ASSEMBLY_BYTES,
  ) {}

  /** Hands over the next received bytes; read them with next() until READ_NEED_MORE. */
  push(b: Uint8Array): void {
    this.input = b;
    this.pos = 0;
  }

  /** §5.4.1 Set Chunk Size from the peer; applies to the chunks that follow. */
  setChunkSize(n: number): boolean {
    if (n < 1 || n > 0x7fffffff) return false;
    this.chunkSize = Math.min(n, MAX_CHUNK_SIZE);
    return true;
  }

  /** §5.4.2 Abort Message: drop the partial message of `csid`. */
  abort(csid: number): void {
    const cs = this.streams.get(csid);
    if (!cs) return;
    cs.received = 0;
    if (this.cur === cs) {
      this.cur = null;
      this.chunkLeft = 0;
    }
  }

  next(): ReadStep {
    if (this.failed) return READ_ERROR;
    for (;;) {
      const cs = this.cur;
      if (cs) {
        const n = Math.min(this.chunkLeft, this.input.length - this.pos);
        if (n > 0) {
          cs.buf!.set(this.input.subarray(this.pos, this.pos + n), cs.received);
          cs.received += n;
          this.pos += n;
          this.chunkLeft -= n;
        }
        if (this.chunkLeft > 0) return READ_NEED_MORE;
        this.cur = null;
        if (cs.received === cs.length) {
          cs.received = 0;
          return this.emit(cs, cs.buf!.subarray(0, cs.length));
        }
        continue;
      }
      const size = this.readHeader();
      if (size === 0) return READ_NEED_MORE;
      if (size < 0) return this.fail(this.error);
      const step = this.applyHeader();
      if (step !== READ_NEED_MORE) return step;
    }
  }

  private fail(msg: string): ReadStep {
    this.failed = true;
    this.error = msg;
    return READ_ERROR;
  }

  private emit(cs: ChunkStream, payload: Uint8Array): ReadStep {
    const m = this.message;
    m.csid = cs.csid;
    m.typeId = cs.typeId;
    m.streamId = cs.streamId;
    m.timestamp = cs.timestamp;
    m.payload = payload;
    return READ_MESSAGE;
  }

  /**
   * Parses the next chunk header into `hdr` from the stash plus the input. Returns its
   * size, 0 when more bytes are needed (they are stashed), or -1 on a protocol error.
   */
  private readHeader(): number {
    const avail = this.input.length - this.pos;
    if (this.stashLen === 0) {
      const size = parseHeader(this.input, this.pos, this.input.length, this.streams);
      if (size > 0) this.pos += size;
      else if (size === 0) {
        this.stash.set(this.input.subarray(this.pos), 0);
        this.stashLen = avail;
        this.pos = this.input.length;
      } else this.error = headerError;
      return size;
    }
    // Top up the stash, parse from it, then give back what the header did not use.
    const take = Math.min(MAX_HEADER_BYTES - this.stashLen, avail);
    this.stash.set(this.input.subarray(this.pos, this.pos + take), this.stashLen);
    const had = this.stashLen;
    const size = parseHeader(this.stash, 0, had + take, this.streams);
    if (size > 0) {
      this.pos += size - had;
      this.stashLen = 0;
    } else if (size === 0) {
      this.stashLen = had + take;
      this.pos += take;
    } else this.error = headerError;
    return size;
  }

  /** Applies `hdr` to its chunk stream; emits a whole single-chunk message without copying. */
  private applyHeader(): ReadStep {
    let cs = this.streams.get(hdr.csid);
    if (!cs) {
      if (this.streams.size >= MAX_CHUNK_STREAMS) return this.fail(`more than ${MAX_CHUNK_STREAMS} chunk streams`);
      cs = new ChunkStream(hdr.csid); // once per chunk stream id, not per chunk
      this.streams.set(hdr.csid, cs);
    }
    const fmt = hdr.fmt;
    if (fmt < 3) {
      if (cs.received > 0) cs.received = 0; // a new header abandons a partial message (as FFmpeg and nginx-rtmp do)
      if (fmt === 0) cs.timestamp = hdr.ts;
      else cs.timestamp = (cs.timestamp + hdr.ts) >>> 0;
      cs.delta = hdr.ts;
      cs.extended = hdr.extended;
      if (fmt <= 1) {
        if (hdr.length > this.maxMessageBytes) return this.fail(`message of ${hdr.length} bytes on chunk stream ${hdr.csid} exceeds ${this.maxMessageBytes}`);
        cs.length = hdr.length;
        cs.typeId = hdr.typeId;
        if (fmt === 0) cs.streamId = hdr.streamId;
      }
    } else if (cs.received === 0) {
      cs.timestamp = (cs.timestamp + cs.delta) >>> 0; // §5.3.1.2.4: a new message with the same delta
    }
    const len = cs.length;
    const chunk = Math.min(this.chunkSize, len - cs.received);
    if (cs.received === 0 && chunk === len && this.input.length - this.pos >= len) {
      const payload = this.input.subarray(this.pos, this.pos + len); // whole message in one chunk: a view
      this.pos += len;
      return this.emit(cs, payload);
    }
    if (cs.received === 0 && (!cs.buf || cs.buf.length < len)) {
      const cap = Math.min(this.maxMessageBytes, Math.max(len, 4096, cs.buf ? cs.buf.length * 2 : 0));
      const grow = cap - (cs.buf ? cs.buf.length : 0);
      if (this.assemblyBytes + grow > this.maxAssemblyBytes) {
        return this.fail(`reassembly buffers would reach ${this.assemblyBytes + grow} bytes, cap ${this.maxAssemblyBytes}`);
      }
      cs.buf = new Uint8Array(cap); // grows rarely: reused for every later message of this stream
      this.assemblyBytes += grow;
    }
    this.cur = cs;
    this.chunkLeft = chunk;
    return READ_NEED_MORE;
  }
}

let headerError = '';

/** §5.3.1.1-§5.3.1.3 chunk header at b[p..end): size, 0 if incomplete, -1 on error (`headerError`). */
function parseHeader(b: Uint8Array, p: number, end: number, streams: Map<number, ChunkStream>): number {
  const avail = end - p;
  if (avail < 1) return 0;
  const b0 = b[p]!;
  const fmt = b0 >> 6;
  let csid = b0 & 0x3f;
  let basic = 1;
  if (csid === 0) {
    if (avail < 2) return 0;
    csid = 64 + b[p + 1]!;
    basic = 2;
  } else if (csid === 1) {
    if (avail < 3) return 0;
    csid = 64 + b[p + 1]! + (b[p + 2]! << 8);
    basic = 3;
  }
  const msgHeader = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
  if (avail < basic + msgHeader) return 0;
  const cs = streams.get(csid);
  if (fmt !== 0 && !cs) {
    headerError = `chunk type ${fmt} on chunk stream ${csid} before any type 0 header`;
    return -1;
  }
  const h = p + basic;
  let ts = 0;
  let extended: boolean;
  if (fmt < 3) {
    ts = (b[h]! << 16) | (b[h + 1]! << 8) | b[h + 2]!;
    extended = ts === 0xffffff;
  } else extended = cs!.extended;
  hdr.fmt = fmt;
  hdr.csid = csid;
  if (fmt <= 1) {
    hdr.length = (b[h + 3]! << 16) | (b[h + 4]! << 8) | b[h + 5]!;
    hdr.typeId = b[h + 6]!;
  }
  if (fmt === 0) hdr.streamId = (b[h + 7]! | (b[h + 8]! << 8) | (b[h + 9]! << 16) | (b[h + 10]! << 24)) >>> 0; // little-endian
  let size = basic + msgHeader;
  if (extended) {
    if (avail < size + 4) return 0;
    const e = p + size;
    if (fmt < 3) ts = ((b[e]! << 24) | (b[e + 1]! << 16) | (b[e + 2]! << 8) | b[e + 3]!) >>> 0;
    size += 4;
  }
  hdr.ts = ts;
  hdr.extended = extended;
  hdr.size = size;
  return size;
}

/**
 * Splits a message into chunks: a type 0 header on the first chunk, type 3 on the rest,
 * the extended timestamp repeated on each when the timestamp needs it. Returns a new
 * buffer (outgoing messages are few: control, command replies, acknowledgements).
 */
export function writeMessage(
  chunkSize: number,
  csid: number,
  typeId: number,
  streamId: number,
  timestamp: number,
  payload: Uint8Array,
): Uint8Array {
  if (csid < 2 || csid > 65599) throw new RangeError(`chunk stream id ${csid}`);
  if (payload.length > 0xffffff) throw new RangeError(`message of ${payload.length} bytes`);
  const basic = csid < 64 ? 1 : csid < 320 ? 2 : 3;
  const ts = timestamp >>> 0;
  const ext = ts >= 0xffffff ? 4 : 0;
  const chunks = Math.max(1, Math.ceil(payload.length / chunkSize));
  const out = new Uint8Array(basic + 11 + ext + payload.length + (chunks - 1) * (basic + ext));
  let p = 0;
  for (let i = 0; i < chunks; i++) {
    const fmt = i === 0 ? 0 : 3;
    if (basic === 1) out[p++] = (fmt << 6) | csid;
    else if (basic === 2) {
      out[p++] = fmt << 6;
      out[p++] = csid - 64;
    } else {
      out[p++] = (fmt << 6) | 1;
      out[p++] = (csid - 64) & 0xff;
      out[p++] = (csid - 64) >> 8;
    }
    if (i === 0) {
      const t = ext ? 0xffffff : ts;
      out[p++] = t >> 16;
      out[p++] = (t >> 8) & 0xff;
      out[p++] = t & 0xff;
      out[p++] = payload.length >> 16;
      out[p++] = (payload.length >> 8) & 0xff;
      out[p++] = payload.length & 0xff;
      out[p++] = typeId;
      out[p++] = streamId & 0xff;
      out[p++] = (streamId >>> 8) & 0xff;
      out[p++] = (streamId >>> 16) & 0xff;
      out[p++] = streamId >>> 24;
    }
    if (ext) {
      out[p++] = ts >>> 24;
      out[p++] = (ts >>> 16) & 0xff;
      out[p++] = (ts >>> 8) & 0xff;
      out[p++] = ts & 0xff;
    }
    const from = i * chunkSize;
    const n = Math.min(chunkSize, payload.length - from);
    out.set(payload.subarray(from, from + n), p);
    p += n;
  }
  return out;
}
