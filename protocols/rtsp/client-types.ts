// The RTSP client's public types: options, tracks and the events it emits (see client.ts).
import type { SdpMedia, SessionDescription } from '../../media/sdp.ts';
import type { RtpInfoEntry } from './headers.ts';
import type { TrackChoice } from './sdp-tracks.ts';

export interface RtspClientOptions {
  url: string;
  /** Override the URL's userinfo. */
  username?: string;
  password?: string;
  transport: 'tcp' | 'udp';
  /** UDP only: the local RTP/RTCP ports the adapter has bound for a track. */
  udpPorts?: (trackIndex: number) => { rtp: number; rtcp: number };
  userAgent?: string;
  /** Seconds, when the server's Session header has no timeout (RFC 2326 §12.37: 60). */
  sessionTimeoutDefault?: number;
  requestTimeoutMs?: number;
  /** Set up the audio track too (default true). */
  audio?: boolean;
  /**
   * The hot path: each interleaved RTP/RTCP frame of a set-up track, synchronously from `receive`.
   * `data` is a view valid only during the call (copy to keep it). No allocation per frame.
   */
  onInterleaved?: (track: number, rtcp: boolean, data: Uint8Array) => void;
  /** Digest client nonce source (tests pin it). */
  cnonce?: () => string;
}

/** A chosen SDP track (sdp-tracks.ts: media index, kind, codec, payload type, clock rate, channels) as set up. */
export interface RtspTrack extends TrackChoice {
  /** Position in `tracks` (video first); the adapter's track number. */
  index: number;
  media: SdpMedia;
  controlUrl: string;
  /** TCP: the channels asked for in SETUP (the reply may move them; see `playing`). */
  interleaved?: [number, number];
}

export interface PlayingTrack {
  index: number;
  serverPorts?: [number, number];
  ssrc?: number;
  interleaved?: [number, number];
  source?: string;
  /** From RTP-Info, matched by URL (or by order when the server's URLs differ from ours). */
  seq?: number;
  rtptime?: number;
}

export type RtspEvent =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'described'; sdp: SessionDescription; sdpText: string; baseUrl: string; tracks: RtspTrack[]; skipped: string[] }
  | { kind: 'playing'; transport: 'tcp' | 'udp'; tracks: PlayingTrack[]; rtpInfo: RtpInfoEntry[]; sessionId: string; sessionTimeoutS: number }
  | { kind: 'redirect'; url: string }
  | { kind: 'error'; fatal: boolean; message: string; status?: number }
  | { kind: 'closed' };

export type RtspState = 'idle' | 'options' | 'describe' | 'setup' | 'play' | 'playing' | 'redirect' | 'failed' | 'closed';
