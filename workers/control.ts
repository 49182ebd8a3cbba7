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
  basePath: string;
  segmentDurationMs: number;
  fragmentDurationMs: number;
  writer: WriterKind;
  /** Accept fault-injection messages (tests only). */
  allowFaults: boolean;
}

/** Where the bytes of a stream's input records come from; picks the depacketizer once. */
export type InputFormat = { kind: 'annexb'; codec: VideoCodec };

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

export type ToWorker = WorkerInit | AddStream | RemoveStream | Shutdown | InjectFault;

export interface Reply {
  type: 'reply';
  id: number;
  ok: boolean;
  error?: string;
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

export interface StreamStats {
  type: 'stats';
  /** Per slot: [slot, bytesIn, frames, droppedFrames] flattened. */
  slots: number[];
}

export type FromWorker = Reply | SegmentOpened | SegmentClosed | StreamProblem | StreamStats;
