// RTCP (RFC 3550 §6.4): compound packet parser (SR, RR, SDES, BYE), receiver statistics
// (sequence accounting per A.1/A.3, interarrival jitter per A.8) and the receiver report
// builder. Time is always a parameter; nothing here reads a clock.
import { ParseError } from './types.ts';

export const RTCP_SR = 200, RTCP_RR = 201, RTCP_SDES = 202, RTCP_BYE = 203, RTCP_APP = 204;
/** SDES item types (§6.5). */
export const SDES_END = 0, SDES_CNAME = 1;
/** A compound packet travels in one UDP datagram or one interleaved frame (u16 length). */
export const MAX_RTCP_BYTES = 0xffff;
/** Packets in one compound: a receiver sends 2-3; 64 bounds the work on hostile input. */
export const MAX_RTCP_PACKETS = 64;
/** Seconds from 1900 (NTP epoch) to 1970 (Unix epoch). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;

export interface RtcpReportBlock {
  ssrc: number;
  /** Fraction lost since the last report, in 1/256 (0..255). */
  fractionLost: number;
  /** Cumulative packets lost (24-bit signed: late duplicates can make it negative). */
  cumulativeLost: number;
  extendedHighestSeq: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP time of the last SR received from this source, 0 if none. */
  lsr: number;
  /** Delay since that SR in 1/65536 s. */
  dlsr: number;
}

export interface RtcpSenderReport {
  type: 'sr';
  ssrc: number;
  ntpSeconds: number;
  ntpFraction: number;
  /** The NTP timestamp as Unix milliseconds (the sender's wall clock). */
  wallClockMs: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: RtcpReportBlock[];
}

export interface RtcpReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: RtcpReportBlock[];
}

export interface RtcpSdesChunk {
  ssrc: number;
  cname: string | null;
  items: { type: number; value: string }[];
}

export interface RtcpSdes {
  type: 'sdes';
  chunks: RtcpSdesChunk[];
}

export interface RtcpBye {
  type: 'bye';
  ssrcs: number[];
  reason: string | null;
}

/** APP and any other packet type: kept as a view of its body after the 4-byte header. */
export interface RtcpOther {
  type: 'other';
  packetType: number;
  count: number;
  body: Uint8Array;
}

export type RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpOther;

const u32 = (b: Uint8Array, p: number): number => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * NTP timestamp (§4) to Unix milliseconds. Seconds with the top bit clear are taken to be
 * in era 1 (after 2036-02-07), as RFC 4330 §3 suggests.
 */
export function ntpToUnixMs(seconds: number, fraction: number): number {
  const s = seconds >= 0x80000000 ? seconds : seconds + 0x100000000;
  return (s - NTP_UNIX_OFFSET_S) * 1000 + Math.floor((fraction * 1000) / 0x100000000);
}

/** Middle 32 bits of an NTP timestamp (LSR, §6.4.1). */
export const ntpMiddle = (seconds: number, fraction: number): number => (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;

/*
 * RFC 3550 §6.4.1 common header:
 * |V=2|P|    RC   |   PT=SR=200   |             length            |
 * length: the packet's size in 32-bit words minus one, header included.
 */

/**
 * Parses a compound RTCP packet with the validity checks of §6.4.1 / A.2: version 2 in
 * every packet, the lengths adding up to the compound's size, padding only in the last
 * packet, and (unless `requireReportFirst` is false, as RFC 5506 reduced-size RTCP needs)
 * an SR or RR first. Throws ParseError; allocates (RTCP arrives about once a second).
 */
export function parseRtcp(b: Uint8Array, requireReportFirst = true): RtcpPacket[] {
  if (b.length < 4 || b.length > MAX_RTCP_BYTES) throw new ParseError(`RTCP compound of ${b.length} bytes`, 0);
  const out: RtcpPacket[] = [];
  let p = 0;
  while (p < b.length) {
    if (out.length >= MAX_RTCP_PACKETS) throw new ParseError(`more than ${MAX_RTCP_PACKETS} RTCP packets`, p);
    if (b.length - p < 4) throw new ParseError(`RTCP header needs 4 bytes, ${b.length - p} left`, p);
    const b0 = b[p]!;
    if (b0 >> 6 !== 2) throw new ParseError(`RTCP version ${b0 >> 6}`, p);
    const pt = b[p + 1]!;
    const count = b0 & 0x1f;
    const len = 4 * (((b[p + 2]! << 8) | b[p + 3]!) + 1);
    if (len > b.length - p) throw new ParseError(`RTCP length ${len} exceeds the ${b.length - p} bytes left`, p);
    let end = p + len;
    if (b0 & 0x20) {
      if (end !== b.length) throw new ParseError('RTCP padding before the last packet', p);
      const pad = b[end - 1]!;
      if (pad === 0 || pad > len - 4) throw new ParseError(`RTCP padding of ${pad} bytes`, end - 1);
      end -= pad;
    }
    if (out.length === 0 && requireReportFirst && pt !== RTCP_SR && pt !== RTCP_RR) {
      throw new ParseError(`RTCP compound starts with packet type ${pt}, not SR or RR`, p);
    }
    out.push(packet(b, p, end, pt, count));
    p += len;
  }
  return out;
}

function packet(b: Uint8Array, p: number, end: number, pt: number, count: number): RtcpPacket {
  const body = p + 4;
  if (pt === RTCP_SR) {
    if (end - body < 24 + 24 * count) throw new ParseError(`SR with ${count} reports needs ${28 + 24 * count} bytes`, p);
    const ntpSeconds = u32(b, body + 4);
    const ntpFraction = u32(b, body + 8);
    return {
      type: 'sr', ssrc: u32(b, body), ntpSeconds, ntpFraction, wallClockMs: ntpToUnixMs(ntpSeconds, ntpFraction),
      rtpTimestamp: u32(b, body + 12), packetCount: u32(b, body + 16), octetCount: u32(b, body + 20),
      reports: blocks(b, body + 24, count),
    };
  }
  if (pt === RTCP_RR) {
    if (end - body < 4 + 24 * count) throw new ParseError(`RR with ${count} reports needs ${8 + 24 * count} bytes`, p);
    return { type: 'rr', ssrc: u32(b, body), reports: blocks(b, body + 4, count) };
  }
  if (pt === RTCP_SDES) return sdes(b, body, end, count);
  if (pt === RTCP_BYE) {
    if (end - body < 4 * count) throw new ParseError(`BYE with ${count} sources needs ${4 + 4 * count} bytes`, p);
    const ssrcs: number[] = [];
    for (let i = 0; i < count; i++) ssrcs.push(u32(b, body + 4 * i));
    const r = body + 4 * count;
    let reason: string | null = null;
    if (r < end) {
      const n = b[r]!;
      if (n > end - r - 1) throw new ParseError(`BYE reason of ${n} bytes overruns the packet`, r);
      reason = utf8.decode(b.subarray(r + 1, r + 1 + n));
    }
    return { type: 'bye', ssrcs, reason };
  }
  return { type: 'other', packetType: pt, count, body: b.subarray(body, end) };
}

// §6.4.1 report block: SSRC, fraction lost (8) + cumulative lost (24), extended highest
// sequence number, interarrival jitter, LSR, DLSR.
function blocks(b: Uint8Array, at: number, count: number): RtcpReportBlock[] {
  const out: RtcpReportBlock[] = [];
  for (let i = 0; i < count; i++) {
    const p = at + 24 * i;
    const lost = (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!;
    out.push({
      ssrc: u32(b, p), fractionLost: b[p + 4]!, cumulativeLost: lost & 0x800000 ? lost - 0x1000000 : lost,
      extendedHighestSeq: u32(b, p + 8), jitter: u32(b, p + 12), lsr: u32(b, p + 16), dlsr: u32(b, p + 20),
    });
  }
  return out;
}

// §6.5 SDES: chunks of [SSRC][items: type u8, length u8, text]... [0] padded to 32 bits.
function sdes(b: Uint8Array, at: number, end: number, count: number): RtcpSdes {
  const chunks: RtcpSdesChunk[] = [];
  let p = at;
  for (let i = 0; i < count; i++) {
    if (end - p < 4) throw new ParseError(`SDES chunk ${i} needs an SSRC, ${end - p} bytes left`, p);
    const chunk: RtcpSdesChunk = { ssrc: u32(b, p), cname: null, items: [] };
    p += 4;
    for (;;) {
      if (p >= end) throw new ParseError(`SDES chunk ${i} has no end item`, p);
      const type = b[p]!;
      if (type === SDES_END) {
        p = (p + 4) & ~3; // the null octet(s) pad the chunk to a 32-bit boundary
        break;
      }
      if (end - p < 2 || b[p + 1]! > end - p - 2) throw new ParseError(`SDES item ${type} overruns the packet`, p);
      const n = b[p + 1]!;
      const value = utf8.decode(b.subarray(p + 2, p + 2 + n));
      chunk.items.push({ type, value });
      if (type === SDES_CNAME && chunk.cname === null) chunk.cname = value;
      p += 2 + n;
    }
    chunks.push(chunk);
  }
  return { type: 'sdes', chunks };
}

/**
 * A receiver report for `ssrc` (our own SSRC) with up to 31 report blocks, followed by an
 * SDES CNAME chunk when `cname` is given (§6.1: every compound packet carries one).
 */
export function buildReceiverReport(ssrc: number, reports: readonly RtcpReportBlock[], cname?: string): Uint8Array {
  if (reports.length > 31) throw new RangeError(`${reports.length} report blocks, at most 31 fit one RR`);
  const text = cname === undefined ? null : new TextEncoder().encode(cname);
  if (text && text.length > 255) throw new RangeError(`CNAME of ${text.length} bytes exceeds 255`);
  const rrLen = 8 + 24 * reports.length;
  const sdesLen = text ? (8 + 2 + text.length + 4) & ~3 : 0;
  const out = new Uint8Array(rrLen + sdesLen);
  const dv = new DataView(out.buffer);
  out[0] = 0x80 | reports.length;
  out[1] = RTCP_RR;
  dv.setUint16(2, rrLen / 4 - 1);
  dv.setUint32(4, ssrc >>> 0);
  reports.forEach((r, i) => {
    const p = 8 + 24 * i;
    dv.setUint32(p, r.ssrc >>> 0);
    const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost));
    dv.setUint32(p + 4, ((r.fractionLost & 0xff) << 24 | (lost & 0xffffff)) >>> 0);
    dv.setUint32(p + 8, r.extendedHighestSeq >>> 0);
    dv.setUint32(p + 12, r.jitter >>> 0);
    dv.setUint32(p + 16, r.lsr >>> 0);
    dv.setUint32(p + 20, r.dlsr >>> 0);
  });
  if (text) {
    const s = rrLen;
    out[s] = 0x81; // V=2, one chunk
    out[s + 1] = RTCP_SDES;
    dv.setUint16(s + 2, sdesLen / 4 - 1);
    dv.setUint32(s + 4, ssrc >>> 0);
    out[s + 8] = SDES_CNAME;
    out[s + 9] = text.length;
    out.set(text, s + 10); // the rest stays 0: the end item and padding
  }
  return out;
}

/** RFC 3550 A.1 */
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const SEQ_MOD = 0x10000;

/**
 * What a receiver knows about one source, fed with every RTP packet (sequence number,
 * RTP timestamp, arrival time in ms) and every SR; yields the report block for it.
 */
export class RtpReceiverStats {
  private started = false;
  private baseSeq = 0;
  private maxSeq = 0;
  private cycles = 0;
  private badSeq = -1;
  /** Packets received (duplicates included, as A.3 counts them). */
  received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private prevArrival = 0;
  private prevTs = 0;
  /** Jitter estimate in timestamp units (A.8, floating point form). */
  private jit = 0;
  private lsr = 0;
  private srArrivalMs = -1;

  constructor(
    readonly ssrc: number,
    readonly clockRate: number,
  ) {}

  // A.1 init_seq
  private init(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = -1;
    this.cycles = 0;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
  }

  onPacket(seq: number, rtpTimestamp: number, arrivalMs: number): void {
    const arrival = (arrivalMs * this.clockRate) / 1000;
    if (!this.started) {
      this.started = true;
      this.init(seq);
    } else {
      // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), S unwrapped by the signed 32-bit difference
      const d = arrival - this.prevArrival - ((rtpTimestamp - this.prevTs) | 0);
      this.jit += (Math.abs(d) - this.jit) / 16;
      const delta = (seq - this.maxSeq) & 0xffff;
      if (delta < MAX_DROPOUT) {
        if (seq < this.maxSeq) this.cycles += SEQ_MOD; // wrapped
        this.maxSeq = seq;
      } else if (delta <= SEQ_MOD - MAX_MISORDER) {
        // A.1: a big jump; two sequential packets mean the source restarted
        if (seq !== this.badSeq) {
          this.badSeq = (seq + 1) & 0xffff;
          this.prevArrival = arrival;
          this.prevTs = rtpTimestamp >>> 0;
          return;
        }
        this.init(seq);
      }
    }
    this.received++;
    this.prevArrival = arrival;
    this.prevTs = rtpTimestamp >>> 0;
  }

  onSenderReport(ntpSeconds: number, ntpFraction: number, arrivalMs: number): void {
    this.lsr = ntpMiddle(ntpSeconds, ntpFraction);
    this.srArrivalMs = arrivalMs;
  }

  get extendedHighestSeq(): number {
    return this.cycles + this.maxSeq;
  }

  get jitter(): number {
    return Math.floor(this.jit);
  }

  /** A.3: the report block as of `nowMs`; starts a new reporting interval. */
  reportBlock(nowMs: number): RtcpReportBlock {
    const extMax = this.cycles + this.maxSeq;
    const expected = this.started ? extMax - this.baseSeq + 1 : 0;
    const lost = expected - this.received;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fraction = expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    return {
      ssrc: this.ssrc,
      fractionLost: Math.min(255, fraction),
      cumulativeLost: Math.max(-0x800000, Math.min(0x7fffff, lost)),
      extendedHighestSeq: extMax >>> 0,
      jitter: this.jitter >>> 0,
      lsr: this.lsr,
      dlsr: this.srArrivalMs < 0 ? 0 : Math.max(0, Math.floor(((nowMs - this.srArrivalMs) * 65536) / 1000)) >>> 0,
    };
  }
}
