// RFC 6381 codec strings of an fMP4 init segment's tracks, for MSE's addSourceBuffer():
// read from the sample entries (avcC/hvcC/esds) rather than trusted from elsewhere.
import { avcCodecString, parseAvcC } from './h264-config.ts';
import { hevcCodecString, parseHvcC } from './h265-config.ts';
import { BOX_OK, findBox, fourcc, fourccString, newBoxHeader, readBoxHeader } from './mp4-box.ts';

const T = {
  moov: fourcc('moov'), trak: fourcc('trak'), mdia: fourcc('mdia'), minf: fourcc('minf'), stbl: fourcc('stbl'),
  stsd: fourcc('stsd'), avcC: fourcc('avcC'), hvcC: fourcc('hvcC'), esds: fourcc('esds'),
};
/** Bytes of a VisualSampleEntry before its child boxes (ISO/IEC 14496-12 §12.1.3). */
const VISUAL_ENTRY_BYTES = 8 + 78;
/** AudioSampleEntry (§12.2.3). */
const AUDIO_ENTRY_BYTES = 8 + 28;

/**
 * Codec strings, one per track in moov order ("avc1.64001f", "hvc1.1.6.L93.B0",
 * "mp4a.40.2", "alaw", "ulaw"); an entry it cannot read is skipped. Never throws.
 */
export function codecStringsFromInit(init: Uint8Array): string[] {
  const out: string[] = [];
  const h = newBoxHeader();
  const moov = newBoxHeader();
  try {
    if (!findBox(init, 0, init.length, T.moov, moov)) return out;
    let pos = moov.body;
    while (pos < moov.end && readBoxHeader(init, pos, moov.end, h) === BOX_OK) {
      if (h.type === T.trak) {
        const s = trackCodec(init, h.body, h.end);
        if (s !== null) out.push(s);
      }
      pos = h.end;
    }
  } catch {
    /* a corrupt init yields what was read before the damage */
  }
  return out;
}

function trackCodec(b: Uint8Array, start: number, end: number): string | null {
  const box = newBoxHeader();
  for (const t of [T.mdia, T.minf, T.stbl, T.stsd]) {
    if (!findBox(b, start, end, t, box)) return null;
    start = box.body;
    end = box.end;
  }
  const entry = newBoxHeader();
  if (readBoxHeader(b, start + 8, end, entry) !== BOX_OK) return null; // after version/flags, entry_count
  const type = fourccString(entry.type);
  const child = newBoxHeader();
  if (type === 'avc1' || type === 'avc3') {
    if (!findBox(b, entry.start + VISUAL_ENTRY_BYTES, entry.end, T.avcC, child)) return null;
    const sps = parseAvcC(b.subarray(child.body, child.end)).sps[0];
    return sps ? avcCodecString(sps).replace('avc1', type) : null;
  }
  if (type === 'hvc1' || type === 'hev1') {
    if (!findBox(b, entry.start + VISUAL_ENTRY_BYTES, entry.end, T.hvcC, child)) return null;
    return hevcCodecString(parseHvcC(b.subarray(child.body, child.end))).replace('hvc1', type);
  }
  if (type === 'mp4a') {
    if (!findBox(b, entry.start + AUDIO_ENTRY_BYTES, entry.end, T.esds, child)) return 'mp4a.40.2';
    return `mp4a.40.${audioObjectType(b.subarray(child.body, child.end)) ?? 2}`;
  }
  return type === 'alaw' || type === 'ulaw' ? type : null;
}

/**
 * The audioObjectType of an esds box body (after its 8-byte header): ES_Descriptor (0x03)
 * -> DecoderConfigDescriptor (0x04) -> DecoderSpecificInfo (0x05), ISO/IEC 14496-1 §7.2.6;
 * the AudioSpecificConfig's first 5 bits. null when the layout is not that.
 */
function audioObjectType(esds: Uint8Array): number | null {
  let p = 4; // version and flags of the full box
  const size = (): void => {
    for (let k = 0; k < 4; k++) if (((esds[p++] ?? 0) & 0x80) === 0) return; // expandable length
  };
  if (esds[p++] !== 0x03) return null;
  size();
  p += 2; // ES_ID
  const flags = esds[p++] ?? 0;
  if (flags & 0x80) p += 2; // dependsOn_ES_ID
  if (flags & 0x40) p += 1 + (esds[p] ?? 0); // URL
  if (flags & 0x20) p += 2; // OCR_ES_Id
  if (esds[p++] !== 0x04) return null;
  size();
  p += 13; // objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate
  if (esds[p++] !== 0x05) return null;
  size();
  const first = esds[p];
  return first === undefined ? null : first >> 3;
}
