// Cuts one stream's access units into fMP4 fragments (~fragmentDurationMs) and segment
// files (rotated at the first keyframe after segmentDurationMs), and writes them: the video
// goes to the disk block by block as it arrives (media/fmp4-stream.ts), so a stream holds
// one write block, not its open fragment.
import { initSegment } from '../media/fmp4-init.ts';
import { ADDED, FRAGMENT_FULL, FragmentStreamer, NoBlockError, type BlockSink } from '../media/fmp4-stream.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import type { SegmentClosed, SegmentOpened } from './control.ts';
import type { SegmentFile, SegmentWriter } from './writer.ts';

/** After a write error, wait this much media time (doubling, capped) before a new segment. */
const RETRY_PAUSE_MS = 1000;
const RETRY_PAUSE_MAX_MS = 60_000;
/**
 * Audio frames held until the video reaches their time: encoders deliver video later than
 * audio (lookahead), so splitting by arrival would put audio that belongs after a keyframe
 * into the previous segment. 256 frames is > 5 s of AAC at 48 kHz or G.711 at 20 ms.
 */
const MAX_HELD_AUDIO = 256;

const EMPTY = new Uint8Array(0);

interface HeldAudio {
  t: number;
  dts: number;
  pts: number;
  buf: Uint8Array;
  len: number;
}

export interface SegmenterOptions {
  streamId: string;
  basePath: string;
  segmentDurationMs: number;
  fragmentDurationMs: number;
  /** Wall-clock Unix ms at media time 0 of the clock track. */
  wallBaseMs: number;
  firstSegmentNumber: number;
  writer: SegmentWriter;
  /** fdatasync each segment file when it closes (power-loss safety). */
  syncOnClose: boolean;
  emit(ev: SegmentOpened | SegmentClosed): void;
  /** Reports a write failure (the segmenter has already closed the file and will retry). */
  onError(err: Error): void;
}

interface TrackState {
  /** dts of the last sample added, or -1. */
  lastDts: number;
  lastDuration: number;
  /** dts of the fragment's first sample of this track, or -1 when it has none yet. */
  fragStartDts: number;
}

export class Segmenter {
  #o: SegmenterOptions;
  #tracks: TrackInfo[] = [];
  #state: TrackState[] = [];
  #stream: FragmentStreamer | null = null;
  #file: SegmentFile | null = null;
  /** Where the streamer's blocks come from (the writer) and go (the open file). */
  readonly #sink: BlockSink;
  #segStartDts = 0;
  #segStartMs = 0;
  #segNumber: number;
  #lastPath = '';
  #fragSeq = 1;
  #fragmentMs: number[] = [];
  #fragmentOffsets: number[] = [];
  #fragBase: number[] = [];
  #pending = 0; // samples in the open fragment, all tracks
  #lastSampleBytes = 0;
  #resumeAtDts = -1; // after an error: no new segment before this media time
  #retryPauseMs = RETRY_PAUSE_MS;
  /** Tracks changed: rotate at the next keyframe. */
  #tracksDirty = false;
  #nextTracks: TrackInfo[] | null = null;
  #held: HeldAudio[] = [];
  #heldFree: HeldAudio[] = [];
  #heldAu: AccessUnit = { nalus: [new Uint8Array(0)], bytes: 0, keyframe: true, dts: 0, pts: 0 };

  constructor(opts: SegmenterOptions) {
    this.#o = opts;
    this.#segNumber = opts.firstSegmentNumber;
    const w = opts.writer;
    this.#sink = {
      blockBytes: w.blockBytes,
      align: w.align,
      take: () => w.take(),
      drop: (b) => w.drop(b),
      put: (b, offset, len, commitEnd) => {
        if (this.#file === null) {
          w.drop(b);
          throw new Error('segmenter: a block handed over with no file open');
        }
        this.#file.writeBlock(b, offset, len, commitEnd);
      },
    };
  }

  /** Number the next segment will carry. */
  get nextSegmentNumber(): number {
    return this.#segNumber;
  }

  /** Continues a predecessor's numbering (a pipeline rebuilt after a failure). */
  continueNumbering(n: number): void {
    if (this.#file === null) this.#segNumber = n;
  }

  get segmentOpen(): boolean {
    return this.#file !== null;
  }

  /**
   * Where the track-0 sample just added (push returned true) lies: the segment file, the file
   * offset of its length-prefixed NAL units and their bytes. Readable once its fragment is
   * written, which is how snapshots find a recorded keyframe without a copy in memory.
   */
  lastSampleAt(): { path: string; offset: number; size: number } | null {
    const s = this.#stream;
    if (this.#file === null || s === null || s.lastSampleOffset < 0) return null;
    return { path: this.#file.path, offset: s.lastSampleOffset, size: this.#lastSampleBytes };
  }

  /** Declares the tracks (track 0 is the clock track, normally video). A change rotates. */
  setTracks(tracks: TrackInfo[]): void {
    if (this.#tracks.length === 0) {
      this.#adoptTracks(tracks);
      return;
    }
    this.#nextTracks = tracks;
    this.#tracksDirty = true;
  }

  /**
   * Adds one access unit of track `t`. `au` views are consumed (copied) before returning.
   * The first sample of a segment must be a keyframe of track 0; until then input is skipped
   * and `false` is returned so the caller can count it.
   */
  push(t: number, au: AccessUnit): boolean {
    if (t >= this.#tracks.length) return false;
    const st = this.#state[t]!;
    if (t !== 0 && this.#tracks[0]!.kind === 'video') return this.#hold(t, au);
    if (t === 0) {
      if (au.keyframe && (this.#file === null || this.#rotationDue(au.dts))) this.#splitHeldAt(au.dts);
      this.#releaseAudio(au.dts); // audio before this picture's time belongs before it
      if (this.#held.length > 0 && this.#file === null && !au.keyframe) this.#releaseAudio(Infinity);
      if (st.lastDts >= 0 && this.#file !== null) {
        const d = au.dts - st.lastDts;
        if (d > 0) st.lastDuration = d;
        // Keep durations exact: the last video sample learns its length from this AU.
        if (st.fragStartDts >= 0) this.#stream!.setLastDuration(0, st.lastDuration);
      }
      if (au.keyframe && this.#file !== null && this.#rotationDue(au.dts)) this.#closeSegment(au.dts);
      else if (this.#file !== null && this.#fragmentDue(au)) this.#flushFragment();
      if (this.#file === null) {
        if (!au.keyframe || (this.#resumeAtDts >= 0 && au.dts < this.#resumeAtDts)) {
          st.lastDts = -1;
          return false;
        }
        if (this.#tracksDirty) this.#adoptTracks(this.#nextTracks!);
        if (!this.#openSegment(au.dts)) return false;
      }
    } else if (this.#file === null) {
      return false; // audio before the first video keyframe of a segment
    }
    this.#add(t, this.#state[t]!, au); // not `st`: opening a segment may have adopted new tracks (fresh state)
    return true;
  }

  /** A free hold entry with room for `bytes` (sized to the frame: a stream may hold hundreds). */
  #heldEntry(bytes: number): HeldAudio {
    const h = this.#heldFree.pop() ?? { t: 0, dts: 0, pts: 0, buf: EMPTY, len: 0 };
    if (h.buf.length < bytes) h.buf = new Uint8Array((bytes + 255) & ~255);
    return h;
  }

  /** Copies an audio frame into the hold queue (pooled buffers; audio frames are small). */
  #hold(t: number, au: AccessUnit): boolean {
    if (this.#held.length >= MAX_HELD_AUDIO) this.#releaseOne(); // video stalled: do not wait for ever
    const h = this.#heldEntry(au.bytes);
    let at = 0;
    for (const n of au.nalus) {
      h.buf.set(n, at);
      at += n.length;
    }
    h.t = t;
    h.dts = au.dts;
    h.pts = au.pts;
    h.len = at;
    this.#held.push(h);
    return true;
  }

  /**
   * At a segment boundary, cuts held G.711 units that straddle it (its samples are
   * independent, so both halves decode): each segment then starts its audio exactly at the
   * keyframe. Cameras send G.711 in packets of up to ~175 ms. AAC frames cannot be cut.
   */
  #splitHeldAt(videoDts: number): void {
    const vts = this.#tracks[0]!.timescale;
    for (let i = 0; i < this.#held.length; i++) {
      const h = this.#held[i]!;
      const tr = this.#tracks[h.t]!;
      if (tr.kind !== 'audio' || (tr.codec !== 'pcma' && tr.codec !== 'pcmu') || tr.channels !== 1) continue;
      const boundary = Math.floor((videoDts * tr.timescale) / vts);
      if (h.dts >= boundary || h.dts + h.len <= boundary) continue;
      const k = boundary - h.dts;
      const rest = this.#heldEntry(h.len - k);
      rest.buf.set(h.buf.subarray(k, h.len));
      rest.len = h.len - k;
      rest.t = h.t;
      rest.dts = boundary;
      rest.pts = h.pts + k;
      h.len = k;
      this.#held.splice(++i, 0, rest);
    }
  }

  /** Moves held audio whose time is before `videoDts` (video ticks) into the open segment. */
  #releaseAudio(videoDts: number): void {
    const vts = this.#tracks[0]!.timescale;
    while (this.#held.length > 0) {
      const h = this.#held[0]!;
      const tr = this.#tracks[h.t]!;
      // G.711 waits until it has ended (it may be cut at the next keyframe); AAC by its start.
      const at = tr.codec === 'pcma' || tr.codec === 'pcmu' ? h.dts + h.len : h.dts;
      if (at * vts > videoDts * tr.timescale) return;
      this.#releaseOne();
    }
  }

  #releaseOne(): void {
    const h = this.#held.shift()!;
    this.#heldFree.push(h);
    // Audio before the segment's first picture has no place (the segment starts at a keyframe).
    if (this.#file === null || h.dts * this.#tracks[0]!.timescale < this.#segStartDts * this.#tracks[h.t]!.timescale) return;
    const au = this.#heldAu;
    au.nalus[0] = h.buf.subarray(0, h.len);
    au.bytes = h.len;
    au.dts = h.dts;
    au.pts = h.pts;
    this.#add(h.t, this.#state[h.t]!, au);
  }

  /** Ends the current segment (stream stopped): the last video sample keeps its estimate. */
  close(): void {
    if (this.#file !== null) {
      this.#releaseAudio(Infinity);
      const st0 = this.#state[0]!;
      this.#closeSegment(st0.lastDts >= 0 ? st0.lastDts + st0.lastDuration : this.#segStartDts);
    }
    this.#stream?.abort();
    this.#pending = 0;
  }

  #adoptTracks(tracks: TrackInfo[]): void {
    this.#tracks = tracks;
    this.#state = tracks.map(() => ({ lastDts: -1, lastDuration: 0, fragStartDts: -1 }));
    this.#fragBase = tracks.map(() => 0);
    this.#stream?.abort();
    this.#stream = new FragmentStreamer(tracks, this.#sink);
    this.#tracksDirty = false;
    this.#nextTracks = null;
  }

  #rotationDue(dts: number): boolean {
    const ts = this.#tracks[0]!.timescale;
    return this.#tracksDirty || (dts - this.#segStartDts) * 1000 >= this.#o.segmentDurationMs * ts;
  }

  #fragmentDue(au: AccessUnit): boolean {
    const st = this.#state[0]!;
    if (st.fragStartDts < 0) return false;
    const ts = this.#tracks[0]!.timescale;
    const elapsed = au.dts - st.fragStartDts;
    // Cut at a keyframe (a fragment then starts with a sync sample) or when long enough.
    return (au.keyframe && elapsed > 0) || elapsed * 1000 >= this.#o.fragmentDurationMs * ts;
  }

  #add(t: number, st: TrackState, au: AccessUnit): void {
    const tr = this.#tracks[t]!;
    let duration: number;
    if (tr.kind === 'audio') {
      // Audio durations are intrinsic: AAC frames are 1024 samples; G.711 one byte a sample.
      duration = tr.codec === 'aac' ? 1024 : au.bytes;
    } else {
      duration = st.lastDuration > 0 ? st.lastDuration : Math.round(tr.timescale / (tr.fps > 0 ? tr.fps : 25));
      st.lastDuration = duration;
    }
    if (this.#pending === 0 && !this.#beginFragment(au.dts)) return;
    if (st.fragStartDts < 0) {
      st.fragStartDts = au.dts;
      this.#fragBase[t] = au.dts;
    }
    let r: number;
    try {
      r = this.#stream!.addSample(t, au, duration);
      if (r === FRAGMENT_FULL && this.#pending > 0) {
        // The moof's room (or a cap) is used up: this sample starts the next fragment.
        this.#flushFragment();
        if (this.#file === null || !this.#beginFragment(au.dts)) return;
        st.fragStartDts = au.dts;
        this.#fragBase[t] = au.dts;
        r = this.#stream!.addSample(t, au, duration);
      }
    } catch (err) {
      this.#abortSegment(au.dts, err as Error); // a write error from a full block
      return;
    }
    if (r !== ADDED) {
      this.#abortSegment(au.dts, r === FRAGMENT_FULL ? new Error(`a sample of ${au.bytes} bytes is larger than a fragment may be`) : new NoBlockError());
      return;
    }
    st.lastDts = au.dts;
    this.#pending++;
    if (t === 0) this.#lastSampleBytes = au.bytes + (tr.kind === 'video' ? 4 * au.nalus.length : 0);
  }

  /** Opens the next fragment; false (the segment aborted) when no write block is free. */
  #beginFragment(dts: number): boolean {
    if (this.#stream!.begin(this.#fragSeq)) return true;
    this.#abortSegment(dts, new NoBlockError());
    return false;
  }

  #openSegment(dts: number): boolean {
    const ts = this.#tracks[0]!.timescale;
    const startMs = this.#o.wallBaseMs + Math.floor((dts * 1000) / ts);
    let rel = segmentPath(this.#o.streamId, startMs);
    if (rel === this.#lastPath) rel = rel.replace(/\.mp4$/, `-${this.#segNumber}.mp4`);
    const init = initSegment(this.#tracks, {
      streamId: this.#o.streamId,
      segmentNumber: this.#segNumber,
      startUnixMs: startMs,
    });
    let file: SegmentFile;
    try {
      file = this.#o.writer.open(`${this.#o.basePath}/${rel}`);
    } catch (err) {
      this.#failed(dts, err as Error);
      return false;
    }
    this.#stream!.startFile(init); // written in front of the first fragment's moof
    this.#file = file;
    this.#lastPath = rel;
    this.#segStartDts = dts;
    this.#segStartMs = startMs;
    this.#fragmentMs = [];
    this.#fragmentOffsets = [];
    this.#resumeAtDts = -1;
    this.#retryPauseMs = RETRY_PAUSE_MS;
    const v = this.#tracks.find((x) => x.kind === 'video');
    this.#o.emit({
      type: 'segment-open',
      streamId: this.#o.streamId,
      startMs,
      path: rel,
      segmentNumber: this.#segNumber,
      codecs: this.#tracks.map((x) => x.codec),
      width: v?.kind === 'video' ? v.width : 0,
      height: v?.kind === 'video' ? v.height : 0,
    });
    return true;
  }

  #flushFragment(): void {
    if (this.#pending === 0 || this.#file === null) return;
    const ts = this.#tracks[0]!.timescale;
    const startDts = this.#state[0]!.fragStartDts >= 0 ? this.#state[0]!.fragStartDts : this.#segStartDts;
    this.#pending = 0;
    this.#fragSeq++;
    for (const st of this.#state) st.fragStartDts = -1;
    let done;
    try {
      done = this.#stream!.finish(this.#fragBase);
    } catch (err) {
      this.#abortSegment(startDts, err as Error);
      return;
    }
    this.#fragmentMs.push(this.#o.wallBaseMs + Math.floor((startDts * 1000) / ts));
    this.#fragmentOffsets.push(done.moofOffset);
  }

  #closeSegment(endDts: number): void {
    this.#flushFragment();
    const file = this.#file;
    if (file === null) return;
    this.#file = null;
    const size = this.#stream!.offset;
    try {
      file.close(this.#o.syncOnClose, size);
    } catch (err) {
      this.#o.onError(err as Error);
    }
    this.#emitClose(size, endDts);
  }

  /** A write failed: close what we have (the writer keeps its whole fragments) and pause. */
  #abortSegment(dts: number, err: Error): void {
    this.#stream!.abort();
    const file = this.#file!;
    this.#file = null;
    const size = this.#stream!.offset;
    try {
      file.close(false, size);
    } catch {
      /* report the first error */
    }
    this.#emitClose(size, dts);
    this.#failed(dts, err);
  }

  #emitClose(bytes: number, endDts: number): void {
    const ts = this.#tracks[0]!.timescale;
    this.#o.emit({
      type: 'segment-close',
      streamId: this.#o.streamId,
      startMs: this.#segStartMs,
      endMs: this.#o.wallBaseMs + Math.floor((endDts * 1000) / ts),
      bytes,
      fragmentMs: this.#fragmentMs,
      fragmentOffsets: this.#fragmentOffsets,
    });
    this.#segNumber++;
    for (const st of this.#state) st.fragStartDts = -1;
  }

  #failed(dts: number, err: Error): void {
    const ts = this.#tracks[0]!.timescale;
    this.#resumeAtDts = dts + Math.round((this.#retryPauseMs * ts) / 1000);
    this.#retryPauseMs = Math.min(this.#retryPauseMs * 2, RETRY_PAUSE_MAX_MS);
    this.#pending = 0;
    this.#o.onError(err);
  }
}

/** SPEC.md local layout: `<stream_id>/<YYYY-MM-DD>/<HH>/<start_unix>.mp4`, UTC. */
export function segmentPath(streamId: string, startMs: number): string {
  const d = new Date(startMs);
  const day = d.toISOString().slice(0, 10);
  const hour = d.toISOString().slice(11, 13);
  return `${streamId}/${day}/${hour}/${Math.floor(startMs / 1000)}.mp4`;
}
