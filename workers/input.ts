// The contract between a stream's input adapter (one per ingest format, chosen once) and
// its pipeline: tracks, then access units on the stream's media timeline.
import type { AccessUnit, TrackInfo } from '../media/types.ts';

export interface InputSink {
  /**
   * The stream's tracks (track 0 is the video, if any). Called again when they change
   * (new parameter sets): the recorder rotates to a new segment at the next keyframe.
   */
  setTracks(tracks: TrackInfo[]): void;
  /**
   * One access unit of track `t` (index into the last setTracks list), with dts/pts in
   * ticks of the track's timescale since the stream's wall-clock base. Views are valid
   * during the call only.
   */
  unit(t: number, au: AccessUnit): void;
  /** Frames lost before becoming units (counted in droppedFrames). */
  dropped(n: number): void;
}

export interface StreamInput {
  /** One ring record of this stream; `payload` is valid during the call only. */
  push(kind: number, flags: number, ts: number, payload: Uint8Array): void;
  /** Packets seen missing (RTP sequence gaps), for the lost-packets counter. */
  readonly lostPackets: number;
  /** Times a container demuxer lost sync (MPEG-PS); absent for the other inputs. */
  readonly resyncs?: number;
}

/** Converts ms to ticks of `timescale` with integer maths. */
export const msToTicks = (ms: number, timescale: number): number => Math.round((ms * timescale) / 1000);
