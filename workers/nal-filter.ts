// Per-codec NAL classes the recorder cares about: parameter sets travel in the init segment,
// access-unit delimiters and filler are dropped; everything else is picture data.
import type { AccessUnit, VideoCodec } from '../media/types.ts';

export const NAL_PICTURE = 0, NAL_VPS = 1, NAL_SPS = 2, NAL_PPS = 3, NAL_DROP = 4;

/** Classifies a NAL unit by its header; picked once per stream (STYLE: no codec branch per NAL). */
export type NalClassifier = (n: Uint8Array) => number;

export const classifiers: Record<VideoCodec, NalClassifier> = {
  // ITU-T H.264 Table 7-1: 7 SPS, 8 PPS, 9 AUD, 12 filler.
  h264(n) {
    const t = n[0]! & 0x1f;
    return t === 7 ? NAL_SPS : t === 8 ? NAL_PPS : t === 9 || t === 12 ? NAL_DROP : NAL_PICTURE;
  },
  // ITU-T H.265 Table 7-1: 32 VPS, 33 SPS, 34 PPS, 35 AUD, 38 filler.
  h265(n) {
    const t = (n[0]! >> 1) & 0x3f;
    return t === 32 ? NAL_VPS : t === 33 ? NAL_SPS : t === 34 ? NAL_PPS : t === 35 || t === 38 ? NAL_DROP : NAL_PICTURE;
  },
};

/** Removes parameter sets, delimiters and filler from `au` in place (no allocation). */
export function keepPictureNalus(au: AccessUnit, classify: NalClassifier): void {
  let w = 0;
  let bytes = 0;
  for (let r = 0; r < au.nalus.length; r++) {
    const n = au.nalus[r]!;
    if (n.length === 0 || classify(n) !== NAL_PICTURE) continue;
    au.nalus[w++] = n;
    bytes += n.length;
  }
  au.nalus.length = w;
  au.bytes = bytes;
}
