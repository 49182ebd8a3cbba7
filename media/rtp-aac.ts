// AAC RTP depacketizer for RFC 3640 mpeg4-generic (AAC-hbr, AAC-lbr and generic fmtp
// layouts): AU header section, several AUs per packet, and AUs fragmented across packets.
import { AAC_SAMPLES_PER_FRAME, audioTrackInfoAac, parseAudioSpecificConfig } from './aac.ts';
import { RtpDepacketizerBase, type DepacketizerOptions } from './rtp-depacketizer-core.ts';
import { type AudioTrackInfo, ParseError } from './types.ts';

/** An AudioSpecificConfig is a few bytes; the hex config fmtp is not allowed to be huge. */
const MAX_CONFIG_BYTES = 64;
/** Header field widths above 32 bits cannot be meant (AU sizes fit 16 bits in practice). */
const MAX_FIELD_BITS = 32;
/** An AAC frame is at most 6144 bits per channel (ISO/IEC 14496-3 §4.5.3.2); 8 channels, x2. */
const MAX_AAC_AU_BYTES = 2 * 8 * 768;

/** Reads `n` bits (n <= 32) MSB-first at bit position `pos` of `b`. The caller bounds pos + n. */
function bitsAt(b: Uint8Array, pos: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const p = pos + i;
    v = v * 2 + ((b[p >> 3]! >> (7 - (p & 7))) & 1);
  }
  return v;
}

function hexBytes(s: string): Uint8Array | null {
  const t = s.trim();
  if (t.length === 0 || t.length % 2 !== 0 || t.length > 2 * MAX_CONFIG_BYTES || !/^[0-9a-fA-F]+$/.test(t)) return null;
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const field = (fmtp: ReadonlyMap<string, string>, key: string, dflt = 0): number => {
  const v = Number(fmtp.get(key) ?? dflt);
  return Number.isInteger(v) && v >= 0 && v <= MAX_FIELD_BITS ? v : 0;
};

export class AacDepacketizer extends RtpDepacketizerBase {
  private readonly sizeLength: number;
  private readonly indexLength: number;
  private readonly indexDeltaLength: number;
  private readonly ctsDeltaLength: number;
  private readonly dtsDeltaLength: number;
  private readonly rapFlag: number;
  private readonly streamStateLength: number;
  private readonly auxLength: number;
  private readonly constantSize: number;
  private readonly headerPresent: boolean;
  /** Samples per AU: 1024, or 960 with frameLengthFlag. */
  readonly samplesPerFrame: number;
  private readonly info: AudioTrackInfo | null;
  /** AU being reassembled from fragments: its announced size, 0 when none. */
  private fragSize = 0;
  private fragTime = 0;

  /** `fmtp`: the payload type's a=fmtp parameters (lowercased keys). */
  constructor(payloadType: number, fmtp: ReadonlyMap<string, string> = new Map(), options: DepacketizerOptions = {}) {
    super(payloadType, options);
    // RFC 3640 §3.3.6 AAC-hbr (13/3/3) and §3.3.5 AAC-lbr (6/2/2) fix the layout; explicit fmtp wins.
    const mode = (fmtp.get('mode') ?? '').toLowerCase();
    const dflt = mode === 'aac-hbr' ? [13, 3, 3] : mode === 'aac-lbr' ? [6, 2, 2] : [0, 0, 0];
    this.sizeLength = field(fmtp, 'sizelength', dflt[0]);
    this.indexLength = field(fmtp, 'indexlength', dflt[1]);
    this.indexDeltaLength = field(fmtp, 'indexdeltalength', dflt[2]);
    this.ctsDeltaLength = field(fmtp, 'ctsdeltalength');
    this.dtsDeltaLength = field(fmtp, 'dtsdeltalength');
    this.rapFlag = field(fmtp, 'randomaccessindication') > 0 ? 1 : 0;
    this.streamStateLength = field(fmtp, 'streamstateindication');
    this.auxLength = field(fmtp, 'auxiliarydatasizelength');
    const cs = Number(fmtp.get('constantsize') ?? 0);
    this.constantSize = Number.isInteger(cs) && cs > 0 && cs <= MAX_AAC_AU_BYTES ? cs : 0;
    this.headerPresent = this.sizeLength + this.indexLength + this.indexDeltaLength + this.ctsDeltaLength +
      this.dtsDeltaLength + this.rapFlag + this.streamStateLength > 0;
    let info: AudioTrackInfo | null = null;
    let frameLength = AAC_SAMPLES_PER_FRAME;
    const asc = hexBytes(fmtp.get('config') ?? '');
    if (asc) {
      try {
        if (parseAudioSpecificConfig(asc).frameLengthFlag) frameLength = 960;
        info = audioTrackInfoAac(asc);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
    this.info = info;
    this.samplesPerFrame = frameLength;
  }

  get paramsVersion(): number {
    return 0;
  }

  trackInfo(): AudioTrackInfo | null {
    return this.info;
  }

  protected end(): void {
    this.dropFragment();
  }

  private dropFragment(): void {
    if (this.fragSize === 0) return;
    this.fragSize = 0;
    this.arena.dropCurrent();
    this.counters.droppedFrames++;
  }

  /*
   * RFC 3640 §3.2: [AU-headers-length u16 (bits)][AU-header 1..n, bit-packed, byte-padded]
   *   [auxiliary section (opt)][AU 1 .. AU n | a fragment of one AU]
   * AU-header (§3.2.1.1): AU-size, AU-Index | AU-Index-delta, CTS-flag+CTS-delta,
   *   DTS-flag+DTS-delta, RAP-flag, Stream-state.
   */
  protected payload(b: Uint8Array, s: number, e: number, time: number, marker: boolean, missing: number): void {
    const c = this.counters;
    if (missing > 0 || (this.fragSize > 0 && time !== this.fragTime)) this.dropFragment();
    if (!this.headerPresent) {
      this.plain(b, s, e, time);
      return;
    }
    if (e - s < 2) {
      c.malformed++;
      return;
    }
    const headerBits = (b[s]! << 8) | b[s + 1]!;
    const hs = s + 2;
    let data = hs + ((headerBits + 7) >> 3);
    if (data > e) {
      c.malformed++;
      this.dropFragment();
      return;
    }
    if (this.auxLength > 0) {
      // §3.2.3 auxiliary section: its size in bits, then the data, padded to a byte.
      if ((e - data) * 8 < this.auxLength) return this.bad();
      const aux = bitsAt(b, data * 8, this.auxLength);
      data += (this.auxLength + aux + 7) >> 3;
      if (data > e) return this.bad();
    }
    let pos = hs * 8;
    const headersEnd = pos + headerBits;
    let n = 0;
    let p = data;
    const fixedBits = this.sizeLength + (this.ctsDeltaLength > 0 ? 1 : 0) + (this.dtsDeltaLength > 0 ? 1 : 0) +
      this.rapFlag + this.streamStateLength;
    // Every header has at least one bit (headerPresent), so each turn moves `pos` forward.
    while (headersEnd - pos >= Math.max(1, fixedBits + (n === 0 ? this.indexLength : this.indexDeltaLength))) {
      const size = this.constantSize > 0 && this.sizeLength === 0 ? this.constantSize : bitsAt(b, pos, this.sizeLength);
      pos += this.sizeLength;
      const idxBits = n === 0 ? this.indexLength : this.indexDeltaLength;
      const idx = bitsAt(b, pos, idxBits);
      pos += idxBits;
      if (n > 0 && idx !== 0) {
        c.unsupported++; // interleaving (AU-Index-delta != 0): the AU order is not decode order
        this.dropFragment();
        return;
      }
      if (this.ctsDeltaLength > 0 && pos < headersEnd && bitsAt(b, pos++, 1) === 1) pos += this.ctsDeltaLength;
      if (this.dtsDeltaLength > 0 && pos < headersEnd && bitsAt(b, pos++, 1) === 1) pos += this.dtsDeltaLength;
      pos += this.rapFlag + this.streamStateLength;
      if (pos > headersEnd) return this.bad();
      if (size > MAX_AAC_AU_BYTES) return this.bad();
      const avail = e - p;
      if (this.fragSize > 0) {
        // A continuation: one header repeating the whole AU's size (§3.2.3.1 fragmentation).
        if (n !== 0 || size !== this.fragSize) {
          this.dropFragment();
        } else {
          const want = this.fragSize - this.arena.currentBytes;
          const take = Math.min(want, avail);
          this.arena.append(b, p, p + take);
          if (take === want) this.completeFragment();
          else if (marker) this.dropFragment(); // marker on a short last fragment
          return;
        }
      }
      if (size > avail) {
        if (n === 0 && avail > 0 && !marker) {
          // The first fragment of an AU larger than this packet. (After a loss it may be a
          // middle one: then the fragments can never add up to `size`, and it is dropped.)
          this.arena.openNal();
          this.arena.append(b, p, e);
          this.fragSize = size;
          this.fragTime = time;
          return;
        }
        if (n === 0 && missing > 0) {
          this.counters.droppedFrames++; // the last fragment of an AU whose start was lost
          return;
        }
        return this.bad();
      }
      if (size > 0 && this.arena.addNal(b, p, p + size)) this.arena.commit(time + n * this.samplesPerFrame, true);
      p += size;
      n++;
    }
  }

  private completeFragment(): void {
    this.arena.closeNal();
    this.arena.commit(this.fragTime, true);
    this.fragSize = 0;
  }

  private bad(): void {
    this.counters.malformed++;
    this.dropFragment();
  }

  /** No AU header section: the payload is AUs of `constantsize` bytes, or one AU. */
  private plain(b: Uint8Array, s: number, e: number, time: number): void {
    const size = this.constantSize > 0 ? this.constantSize : e - s;
    let n = 0;
    for (let p = s; size > 0 && p + size <= e; p += size, n++) {
      if (this.arena.addNal(b, p, p + size)) this.arena.commit(time + n * this.samplesPerFrame, true);
    }
  }
}
