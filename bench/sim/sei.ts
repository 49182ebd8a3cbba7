// The bench's latency stamp: an SEI "user data unregistered" message (H.264 §D.1.6 /
// H.265 §D.2.7, payloadType 5) holding a fixed UUID and the wall-clock send time in µs.
//
// The time is written as 8 bytes of 7 bits each with the top bit set, so the payload never
// contains a zero byte and needs no emulation prevention (H.264 §7.4.1): the simulator can
// patch it in place in a pre-packetised RTP packet. 56 bits of µs last until year 4254.

/** Identifies our SEI among a camera's own (random; chosen with no 0x00 byte). */
export const SEI_UUID = Uint8Array.from([
  0x46, 0x4c, 0x55, 0x58, 0x2d, 0x62, 0x65, 0x6e, 0x63, 0x68, 0x9a, 0x3c, 0x71, 0xd2, 0x5e, 0x11,
]);
export const SEI_TIME_BYTES = 8;
const PAYLOAD_TYPE_USER_DATA_UNREGISTERED = 5;
const PAYLOAD_BYTES = SEI_UUID.length + SEI_TIME_BYTES; // 24

/** The SEI NAL unit (no start code) and the offset of its time field. */
export function seiNal(codec: 'h264' | 'h265'): { nal: Uint8Array; timeOffset: number } {
  // H.264 nal_unit_type 6 (nal_ref_idc 0); H.265 prefix SEI type 39, layer 0, tid 1.
  const header = codec === 'h264' ? [0x06] : [39 << 1, 0x01];
  const nal = new Uint8Array(header.length + 2 + PAYLOAD_BYTES + 1);
  nal.set(header, 0);
  let o = header.length;
  nal[o++] = PAYLOAD_TYPE_USER_DATA_UNREGISTERED;
  nal[o++] = PAYLOAD_BYTES;
  nal.set(SEI_UUID, o);
  o += SEI_UUID.length;
  const timeOffset = o;
  writeSeiTime(nal, timeOffset, 0);
  nal[o + SEI_TIME_BYTES] = 0x80; // rbsp_trailing_bits
  return { nal, timeOffset };
}

/** Writes `us` as 8 × 7 bits, most significant first, each byte with its top bit set. */
export function writeSeiTime(b: Uint8Array, at: number, us: number): void {
  let v = us;
  for (let i = SEI_TIME_BYTES - 1; i >= 0; i--) {
    b[at + i] = 0x80 | (v % 128);
    v = Math.floor(v / 128);
  }
}

export function readSeiTime(b: Uint8Array, at: number): number {
  let v = 0;
  for (let i = 0; i < SEI_TIME_BYTES; i++) v = v * 128 + (b[at + i]! & 0x7f);
  return v;
}

/** Wall-clock µs, comparable across processes on one host. */
export const wallUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/**
 * Finds our stamp in a NAL unit (without start code); returns the send time in µs or -1.
 * `headerBytes` is 1 for H.264, 2 for H.265.
 */
export function stampOfNal(n: Uint8Array, headerBytes: number): number {
  let o = headerBytes;
  if (n.length < o + 2 + PAYLOAD_BYTES) return -1;
  if (n[o] !== PAYLOAD_TYPE_USER_DATA_UNREGISTERED || n[o + 1] !== PAYLOAD_BYTES) return -1;
  o += 2;
  for (let i = 0; i < SEI_UUID.length; i++) if (n[o + i] !== SEI_UUID[i]) return -1;
  return readSeiTime(n, o + SEI_UUID.length);
}

/**
 * Finds our stamp in an fMP4 fragment (moof + mdat with 4-byte length-prefixed NAL units):
 * the send time in µs, or -1 when the fragment carries none.
 */
export function stampOfFragment(frag: Uint8Array, codec: 'h264' | 'h265'): number {
  const dv = new DataView(frag.buffer, frag.byteOffset, frag.byteLength);
  let p = 0;
  while (p + 8 <= frag.length) {
    const size = dv.getUint32(p);
    const isMdat = frag[p + 4] === 0x6d && frag[p + 5] === 0x64 && frag[p + 6] === 0x61 && frag[p + 7] === 0x74;
    if (size < 8) return -1;
    if (isMdat) return stampInLengthPrefixed(frag.subarray(p + 8, Math.min(frag.length, p + size)), codec);
    p += size;
  }
  return -1;
}

function stampInLengthPrefixed(b: Uint8Array, codec: 'h264' | 'h265'): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hb = codec === 'h264' ? 1 : 2;
  let p = 0;
  while (p + 5 <= b.length) {
    const len = dv.getUint32(p);
    p += 4;
    if (len === 0 || p + len > b.length) return -1;
    const t = codec === 'h264' ? b[p]! & 0x1f : (b[p]! >> 1) & 0x3f;
    if (t === (codec === 'h264' ? 6 : 39)) {
      const s = stampOfNal(b.subarray(p, p + len), hb);
      if (s >= 0) return s;
    }
    p += len;
  }
  return -1;
}
