// The RTP depacketizer contract and the factory that picks the per-codec handler once per
// track from the SDP's rtpmap/fmtp (RFC 6184 H.264, RFC 7798 H.265, RFC 3640 AAC, G.711).
import { AacDepacketizer } from './rtp-aac.ts';
import type { Depacketizer, DepacketizerOptions } from './rtp-depacketizer-core.ts';
import { G711Depacketizer, PT_PCMA, PT_PCMU } from './rtp-g711.ts';
import { H264Depacketizer } from './rtp-h264.ts';
import { H265Depacketizer } from './rtp-h265.ts';
import { firstPayloadType, type SdpMedia } from './sdp.ts';
import type { Codec } from './types.ts';

export type { Depacketizer, DepacketizerOptions, RtpCounters } from './rtp-depacketizer-core.ts';
export { newRtpCounters } from './rtp-depacketizer-core.ts';

const EMPTY_FMTP: ReadonlyMap<string, string> = new Map();

/**
 * The codec a media section's payload type carries, by its rtpmap encoding name
 * (case-insensitive) or, without an rtpmap, the static types 0 (PCMU) and 8 (PCMA).
 * null for anything we cannot depacketize (MP2T, PS, Opus, ...).
 */
export function rtpCodecOf(media: SdpMedia, payloadType = firstPayloadType(media)): Codec | null {
  const map = media.rtpmap.get(payloadType);
  if (!map) return payloadType === PT_PCMA ? 'pcma' : payloadType === PT_PCMU ? 'pcmu' : null;
  switch (map.encoding.toUpperCase()) {
    case 'H264':
      return 'h264';
    case 'H265':
    case 'HEVC':
      return 'h265';
    case 'MPEG4-GENERIC': {
      const mode = (media.fmtp.get(payloadType)?.get('mode') ?? '').toLowerCase();
      return mode === 'aac-hbr' || mode === 'aac-lbr' || mode === '' || mode === 'generic' ? 'aac' : null;
    }
    case 'PCMA':
      return 'pcma';
    case 'PCMU':
      return 'pcmu';
    default:
      return null;
  }
}

/**
 * A depacketizer for one track, chosen once from the SDP (`payloadType` defaults to the
 * m= line's first format). null when the payload format is not supported (see rtpCodecOf).
 */
export function createDepacketizer(media: SdpMedia, payloadType = firstPayloadType(media), options: DepacketizerOptions = {}): Depacketizer | null {
  if (payloadType < 0 || payloadType > 127) return null;
  const fmtp = media.fmtp.get(payloadType) ?? EMPTY_FMTP;
  const map = media.rtpmap.get(payloadType);
  switch (rtpCodecOf(media, payloadType)) {
    case 'h264':
      return new H264Depacketizer(payloadType, fmtp, options);
    case 'h265':
      return new H265Depacketizer(payloadType, fmtp, options);
    case 'aac':
      return new AacDepacketizer(payloadType, fmtp, options);
    case 'pcma':
      return new G711Depacketizer(payloadType, 'pcma', map?.clockRate, map?.channels, options);
    case 'pcmu':
      return new G711Depacketizer(payloadType, 'pcmu', map?.clockRate, map?.channels, options);
    default:
      return null;
  }
}
