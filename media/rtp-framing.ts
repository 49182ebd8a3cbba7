// RFC 4571 §2 framing of RTP over a TCP byte stream: each packet is preceded by its length
// as a 16-bit big-endian number. The deframer takes chunks cut anywhere.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |             LENGTH            |  RTP or RTCP packet ...       |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/** Largest framed packet: the length field is 16 bits. */
export const MAX_FRAMED_PACKET = 0xffff;

export interface DeframerSink {
  /** One packet; a view valid during the call only. */
  packet(p: Uint8Array): void;
}

export class Rfc4571Deframer {
  /** Zero-length frames (allowed by the RFC, carry nothing). */
  empty = 0;
  #buf = new Uint8Array(2 + MAX_FRAMED_PACKET);
  #have = 0;
  #sink: DeframerSink;

  constructor(sink: DeframerSink) {
    this.#sink = sink;
  }

  /** Consumes bytes of the TCP stream; whole packets in `b` are passed on without a copy. */
  push(b: Uint8Array): void {
    let i = 0;
    const n = b.length;
    while (i < n) {
      if (this.#have === 0 && n - i >= 2) {
        const len = (b[i]! << 8) | b[i + 1]!;
        if (n - i - 2 >= len) {
          if (len === 0) this.empty++;
          else this.#sink.packet(b.subarray(i + 2, i + 2 + len));
          i += 2 + len;
          continue;
        }
      }
      // A frame cut by the chunk: collect it.
      const need = this.#have < 2 ? 2 - this.#have : 2 + ((this.#buf[0]! << 8) | this.#buf[1]!) - this.#have;
      const k = Math.min(need, n - i);
      this.#buf.set(b.subarray(i, i + k), this.#have);
      this.#have += k;
      i += k;
      if (this.#have >= 2) {
        const len = (this.#buf[0]! << 8) | this.#buf[1]!;
        if (this.#have === 2 + len) {
          if (len === 0) this.empty++;
          else this.#sink.packet(this.#buf.subarray(2, 2 + len));
          this.#have = 0;
        }
      }
    }
  }
}

/** Writes the 2-byte length prefix of `len` at `at` (for senders). */
export function writeRfc4571Length(b: Uint8Array, at: number, len: number): void {
  if (len > MAX_FRAMED_PACKET) throw new RangeError(`RTP packet of ${len} bytes cannot be framed (max ${MAX_FRAMED_PACKET})`);
  b[at] = len >> 8;
  b[at + 1] = len & 0xff;
}
