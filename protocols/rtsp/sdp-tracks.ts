// Which SDP media an RTSP client sets up: the first H.264/H.265 video and the first AAC/G.711 audio,
// with codec, payload type and clock rate (RFC 4566 §5.14, §6; RFC 3551 §6 static payload types).
import { firstPayloadType, type SdpMedia, type SessionDescription } from '../../media/sdp.ts';
import type { Codec } from '../../media/types.ts';

export interface TrackChoice {
  /** Position of the media section in the SDP. */
  mediaIndex: number;
  kind: 'video' | 'audio';
  codec: Codec;
  payloadType: number;
  clockRate: number;
  channels: number;
}

// RFC 3551 §6 table 4: static audio payload types we support without an rtpmap line.
const STATIC_AUDIO: Record<number, { codec: Codec; clockRate: number }> = {
  0: { codec: 'pcmu', clockRate: 8000 },
  8: { codec: 'pcma', clockRate: 8000 },
};

function codecOf(m: SdpMedia): { codec: Codec; clockRate: number; channels: number } | string {
  const pt = firstPayloadType(m);
  if (pt < 0) return `${m.type}: no RTP payload type`;
  const map = m.rtpmap.get(pt);
  if (map === undefined) {
    const s = m.type === 'audio' ? STATIC_AUDIO[pt] : undefined;
    return s ? { ...s, channels: 1 } : `${m.type}: payload type ${pt} without rtpmap`;
  }
  const enc = map.encoding.toUpperCase();
  const { clockRate, channels } = map;
  const mode = m.fmtp.get(pt)?.get('mode') ?? '';
  if (m.type === 'video' && enc === 'H264') return { codec: 'h264', clockRate, channels };
  if (m.type === 'video' && (enc === 'H265' || enc === 'HEVC')) return { codec: 'h265', clockRate, channels };
  if (m.type === 'audio' && enc === 'PCMA') return { codec: 'pcma', clockRate, channels };
  if (m.type === 'audio' && enc === 'PCMU') return { codec: 'pcmu', clockRate, channels };
  // RFC 3640 §3.3.6: AAC in mpeg4-generic with mode AAC-hbr (or AAC-lbr)
  if (m.type === 'audio' && enc === 'MPEG4-GENERIC' && /^aac-(hbr|lbr)$/i.test(mode)) return { codec: 'aac', clockRate, channels };
  return `${m.type} ${map.encoding}${mode ? ` (mode ${mode})` : ''}: unsupported codec`;
}

/** The first supported video and (when wanted) audio media, plus a note for each media skipped. */
export function chooseTracks(sdp: SessionDescription, wantAudio: boolean): { tracks: TrackChoice[]; skipped: string[] } {
  const tracks: TrackChoice[] = [];
  const skipped: string[] = [];
  let video = false;
  let audio = false;
  sdp.media.forEach((m, mediaIndex) => {
    if (m.type !== 'video' && m.type !== 'audio') {
      skipped.push(`media ${mediaIndex} (${m.type}): not audio or video`);
      return;
    }
    const c = codecOf(m);
    if (typeof c === 'string') return void skipped.push(`media ${mediaIndex} (${c})`);
    const kind = m.type;
    if (kind === 'video' ? video : audio || !wantAudio) {
      skipped.push(`media ${mediaIndex} (${kind} ${c.codec}): ${kind === 'audio' && !wantAudio ? 'audio not wanted' : `another ${kind} track already chosen`}`);
      return;
    }
    if (kind === 'video') video = true;
    else audio = true;
    tracks.push({ mediaIndex, kind, codec: c.codec, payloadType: firstPayloadType(m), clockRate: c.clockRate, channels: c.channels });
  });
  // video first, so track 0 is video whenever there is one
  tracks.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'video' ? -1 : 1));
  return { tracks, skipped };
}
