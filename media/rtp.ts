// RTP fixed header (RFC 3550 §5.1): a reusable header view, a header writer, and the
// 16-bit sequence and 32-bit timestamp wraparound helpers.

/**
 * Largest RTP packet we accept or keep a copy of. UDP datagrams top out at 65507 bytes
 * and RTSP interleaved frames carry a u16 length (RFC 2326 §10.12), so nothing larger
 * can reach us.
 */
export const MAX_RTP_PACKET_BYTES = 0xffff;

/** Fixed header bytes before the CSRC list. */
export const RTP_HEADER_BYTES = 12;

/** One parsed RTP header; filled in place by readRtp (no allocation per packet). */
export interface RtpView {
  marker: boolean;
  payloadType: number;
  seq: number;
  /** 32-bit RTP timestamp as an unsigned number. */
  timestamp: number;
  ssrc: number;
  csrcCount: number;
  /** Header extension profile (the 16 bits before its length), -1 when absent. */
  extensionProfile: number;
  /** Offset of the payload in the packet (after CSRCs and the extension). */
  payloadStart: number;
  /** Offset just past the payload (before any padding). */
  payloadEnd: number;
}

export const newRtpView = (): RtpView => ({
  marker: false, payloadType: 0, seq: 0, timestamp: 0, ssrc: 0, csrcCount: 0,
  extensionProfile: -1, payloadStart: 0, payloadEnd: 0,
});

/*
 * RFC 3550 §5.1
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           timestamp                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           synchronization source (SSRC) identifier            |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |            contributing source (CSRC) identifiers             |
 * |                             ....                              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * §5.3.1 extension: | defined by profile (16) | length in words (16) | words... |
 */

/**
 * Reads the header of one whole RTP packet into `out`. Returns false for a malformed
 * packet (too short, version not 2, CSRC list or extension past the end, padding larger
 * than the payload); never throws. The payload is `b.subarray(out.payloadStart, out.payloadEnd)`.
 */
export function readRtp(b: Uint8Array, out: RtpView): boolean {
  const n = b.length;
  if (n < RTP_HEADER_BYTES || n > MAX_RTP_PACKET_BYTES || b[0]! >> 6 !== 2) return false;
  const b0 = b[0]!;
  const cc = b0 & 0x0f;
  let start = RTP_HEADER_BYTES + 4 * cc;
  let profile = -1;
  if (b0 & 0x10) {
    if (n < start + 4) return false;
    profile = (b[start]! << 8) | b[start + 1]!;
    start += 4 + 4 * ((b[start + 2]! << 8) | b[start + 3]!);
  }
  let end = n;
  if (b0 & 0x20) {
    const pad = b[n - 1]!;
    if (pad === 0) return false; // §5.1: the count includes itself, so it is at least 1
    end = n - pad;
  }
  if (start > end) return false;
  const b1 = b[1]!;
  out.marker = (b1 & 0x80) !== 0;
  out.payloadType = b1 & 0x7f;
  out.seq = (b[2]! << 8) | b[3]!;
  out.timestamp = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
  out.ssrc = ((b[8]! << 24) | (b[9]! << 16) | (b[10]! << 8) | b[11]!) >>> 0;
  out.csrcCount = cc;
  out.extensionProfile = profile;
  out.payloadStart = start;
  out.payloadEnd = end;
  return true;
}

/**
 * Writes a 12-byte header (no CSRC, extension or padding) at `offset`; returns the offset
 * after it. For senders and tests; the caller sizes `target`.
 */
export function writeRtpHeader(
  target: Uint8Array,
  offset: number,
  marker: boolean,
  payloadType: number,
  seq: number,
  timestamp: number,
  ssrc: number,
): number {
  target[offset] = 0x80;
  target[offset + 1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  target[offset + 2] = (seq >> 8) & 0xff;
  target[offset + 3] = seq & 0xff;
  target[offset + 4] = timestamp >>> 24;
  target[offset + 5] = (timestamp >>> 16) & 0xff;
  target[offset + 6] = (timestamp >>> 8) & 0xff;
  target[offset + 7] = timestamp & 0xff;
  target[offset + 8] = ssrc >>> 24;
  target[offset + 9] = (ssrc >>> 16) & 0xff;
  target[offset + 10] = (ssrc >>> 8) & 0xff;
  target[offset + 11] = ssrc & 0xff;
  return offset + RTP_HEADER_BYTES;
}

/** Sequence number after `s`. */
export const seqNext = (s: number): number => (s + 1) & 0xffff;
/** True when `a` comes after `b` in sequence order (within half the number space). */
export const seqNewer = (a: number, b: number): boolean => a !== b && ((a - b) & 0xffff) < 0x8000;
/** Signed distance from `b` to `a` in [-32768, 32767]. */
export const seqDelta = (a: number, b: number): number => (((a - b) & 0xffff) ^ 0x8000) - 0x8000;

/**
 * Unwraps 32-bit RTP timestamps into a monotonic-in-spirit extended value (STYLE pattern 9):
 * seeded by the first timestamp, then `ext += (ts - prev) | 0`, so a step back (B-frames,
 * a reordered packet) is negative and a wrap past 2^32 keeps counting. Stays an exact
 * integer for 2^53 ticks (over 3000 years at 90 kHz).
 */
export class RtpTimestampUnwrapper {
  private prev = 0;
  private ext = 0;
  private seeded = false;

  unwrap(ts: number): number {
    if (!this.seeded) {
      this.seeded = true;
      this.prev = ts >>> 0;
      this.ext = this.prev;
      return this.ext;
    }
    this.ext += (ts - this.prev) | 0;
    this.prev = ts >>> 0;
    return this.ext;
  }

  reset(): void {
    this.seeded = false;
  }
}
