// The MessagePort contract between the orchestrator and a media worker: control
// messages in, replies and low-rate events out. Bulk media never travels here (rings do).
//
// Why events use the port and not the worker->main ring: segment open/close records must
// never be dropped and must not overtake the reply they precede (a `remove-stream` reply
// follows that stream's `segment-close`); the port is ordered and lossless, and the rate is
// a few messages per segment. The out ring is for droppable bulk data (preview fragments).

import type { AudioCodec, VideoCodec } from '../media/types.ts';

export type WriterKind = 'portable' | 'native';

export interface WorkerInit {
  type: 'init';
  workerIndex: number;
  /** Input ring (main -> worker), see workers/ring.ts. */
  inRing: SharedArrayBuffer;
  /** Output ring (worker -> main): live-preview fragments, droppable. */
  outRing: SharedArrayBuffer;
  basePath: string;
  segmentDurationMs: number;
  fragmentDurationMs: number;
  writer: WriterKind;
  /** Settings of the native writer (O_DIRECT, pool and batch sizes), as chosen at start-up. */
  writerOptions?: import('./writer-native.ts').WriterSettings;
  /** Accept fault-injection messages (tests only). */
  allowFaults: boolean;
}

/** One RTP track of a session: its m= section in the SDP and the payload type in use. */
export interface RtpTrackSpec {
  mediaIndex: number;
  payloadType: number;
  /** UDP may reorder (a reorder window is kept); TCP interleaved never does. */
  transport: 'tcp' | 'udp';
}

/** An RTP session (RTSP today): the SDP text and the tracks set up, in record-flag order. */
export interface RtpInputSpec {
  kind: 'rtp';
  sdp: string;
  tracks: RtpTrackSpec[];
}

/**
 * GB28181 media: RTP packets whose payload is an MPEG program stream (workers/input-ps.ts).
 * Records are KIND_RTP (whole packets, flags 0); the main thread has checked the SSRC.
 */
export interface PsRtpInputSpec {
  kind: 'ps-rtp';
  /** UDP may reorder (a reorder window is kept); TCP (RFC 4571) never does. */
  transport: 'udp' | 'tcp';
}

/** Where the bytes of a stream's input records come from; picks the input adapter once. */
export type InputFormat = { kind: 'annexb'; codec: VideoCodec } | RtpInputSpec | { kind: 'flv' } | PsRtpInputSpec;

export interface TrackSpec {
  kind: 'video' | 'audio';
  codec: VideoCodec | AudioCodec;
}

export interface AddStream {
  type: 'add-stream';
  id: number;
  slot: number;
  streamId: string;
  input: InputFormat;
  record: boolean;
  /** Wall-clock Unix ms of input timestamp 0 (input ts are 90 kHz ticks, 32-bit, wrapping). */
  wallBaseMs: number;
  /** Number written into the next segment's identity (continues the index's numbering). */
  firstSegmentNumber: number;
  /** Send a `keyframe` event at most this often (media time); 0 = never. */
  keyframeIntervalMs: number;
}

/** Live preview on or off for a stream (on while at least one viewer watches). */
export interface SetPreview {
  type: 'preview';
  id: number;
  slot: number;
  on: boolean;
  /** The latest keyframe, shown at once until the next one is due (no wait for a GOP). */
  still?: KeyframeData;
}

/** Asks for the stream's latest keyframe; answered by a `keyframe-reply`. */
export interface KeyframeRequest {
  type: 'keyframe-request';
  id: number;
  slot: number;
}

export interface RemoveStream {
  type: 'remove-stream';
  id: number;
  slot: number;
}

export interface Shutdown {
  type: 'shutdown';
  id: number;
}

/** Tests only (honoured when init.allowFaults): make the worker fail in a given way. */
export interface InjectFault {
  type: 'inject-fault';
  id: number;
  fault: 'crash-worker' | 'throw-in-stream';
  slot?: number;
}

export type ToWorker = WorkerInit | AddStream | RemoveStream | Shutdown | InjectFault | SetPreview | KeyframeRequest;

export interface Reply {
  type: 'reply';
  id: number;
  ok: boolean;
  error?: string;
}

/** A decodable picture: Annex-B parameter sets followed by the keyframe's NAL units. */
export interface KeyframeData {
  codec: VideoCodec;
  width: number;
  height: number;
  /** Wall-clock Unix ms of the picture. */
  wallMs: number;
  data: Uint8Array;
}

/**
 * A recorded keyframe, by where it lies instead of a copy: a worker keeps no picture in
 * memory for a stream it records. The main thread reads it (engine/keyframe-file.ts).
 */
export interface KeyframeRef {
  codec: VideoCodec;
  width: number;
  height: number;
  wallMs: number;
  /** Annex-B parameter sets to put in front of the picture. */
  parameterSets: Uint8Array;
  /**
   * The picture's length-prefixed NAL units in segment files, newest first: the latest
   * keyframe, then the one before it (taken when the latest's fragment is not on disk yet).
   */
  at: { path: string; offset: number; size: number; wallMs: number }[];
}

export interface KeyframeReply {
  type: 'keyframe-reply';
  id: number;
  /** null when the stream has had no keyframe yet. */
  keyframe: KeyframeData | KeyframeRef | null;
}

/** The periodic keyframe of a stream (every keyframeIntervalMs), for keyframe JPEGs. */
export interface KeyframeEvent extends KeyframeData {
  type: 'keyframe';
  streamId: string;
}

export interface SegmentOpened {
  type: 'segment-open';
  streamId: string;
  startMs: number;
  /** Relative to basePath, '/'-separated. */
  path: string;
  segmentNumber: number;
  codecs: string[];
  width: number;
  height: number;
}

export interface SegmentClosed {
  type: 'segment-close';
  streamId: string;
  startMs: number;
  endMs: number;
  bytes: number;
  /** Per fragment: wall-clock start ms and byte offset in the file (parallel arrays). */
  fragmentMs: number[];
  fragmentOffsets: number[];
}

export interface StreamProblem {
  type: 'stream-error';
  streamId: string;
  message: string;
}

/** Numbers per slot in StreamStats.slots. */
export const STATS_FIELDS = 7;

export interface StreamStats {
  type: 'stats';
  /** Per slot: [slot, bytesIn, frames, droppedFrames, previewDrops, lostPackets, resyncs] flattened
   *  (STATS_FIELDS numbers each; resyncs: times a PS demuxer lost sync, 0 for other inputs). */
  slots: number[];
  /** Writes staged or in flight in this worker's segment writer (0 for the portable writer, which writes inline). */
  writeQueue?: number;
  /** This worker's JS heap (bun:jsc heapSize: objects plus typed-array memory it owns), bytes. */
  heapBytes?: number;
}

export type FromWorker = Reply | KeyframeReply | KeyframeEvent | SegmentOpened | SegmentClosed | StreamProblem | StreamStats;
