// The one unit of media every ingest path ends in, and the track descriptions every
// consumer (segmenter, muxer, preview) starts from. Pure types; no I/O.

export type VideoCodec = 'h264' | 'h265';
export type AudioCodec = 'aac' | 'pcma' | 'pcmu';
export type Codec = VideoCodec | AudioCodec;

/** Ticks per second of video media time (RTP and MPEG-TS/PS use 90 kHz). */
export const VIDEO_TIMESCALE = 90_000;

/**
 * One access unit (a video picture or an audio frame).
 * `nalus` are views (no start code, no length prefix) into a buffer owned by the producer;
 * valid until the producer's next call unless stated otherwise by the producer.
 * Times are integer ticks of the track's timescale (90 kHz video, sample rate for audio).
 */
export interface AccessUnit {
  nalus: Uint8Array[];
  /** Sum of nalus[i].length. */
  bytes: number;
  /** IDR (H.264) or IRAP (H.265) picture; every audio frame is a keyframe. */
  keyframe: boolean;
  dts: number;
  pts: number;
}

/** Video track parameters learnt from the parameter sets. */
export interface VideoTrackInfo {
  kind: 'video';
  codec: VideoCodec;
  timescale: number;
  width: number;
  height: number;
  /** Frames per second when the SPS signals it, else 0. */
  fps: number;
  /** avcC or hvcC record body (the bytes inside the box, without its 8-byte header). */
  config: Uint8Array;
  /** RFC 6381 codec string for MSE, e.g. "avc1.64001f", "hvc1.1.6.L93.B0". */
  codecString: string;
}

export interface AudioTrackInfo {
  kind: 'audio';
  codec: AudioCodec;
  /** Equal to sampleRate. */
  timescale: number;
  sampleRate: number;
  channels: number;
  /** AudioSpecificConfig bytes for AAC; empty for G.711. */
  config: Uint8Array;
  /** "mp4a.40.2" for AAC-LC, "alaw"/"ulaw" for G.711. */
  codecString: string;
}

export type TrackInfo = VideoTrackInfo | AudioTrackInfo;

/** Raised by the cursor-based parsers; caught once at the packet or message boundary. */
export class ParseError extends Error {
  override name = 'ParseError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
  }
}
