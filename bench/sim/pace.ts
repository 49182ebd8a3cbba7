// Real-time pacing shared by the simulators: each source sends the frames due since it started,
// and one that fell too far behind (a stalled host) skips ahead and resumes at a keyframe.

/** A simulated camera's place in the clip. */
export interface PacedSource {
  cam: number;
  playing: boolean;
  startMs: number;
  /** Frames sent (or skipped) since start. */
  sent: number;
  /** Clip frame the source started at (0 = all in phase). */
  phase?: number;
  waitKey: boolean;
}

/**
 * Sends, for every source, the frames due at `nowMs`: `send(source, clipIndex, loop)` per
 * frame; a source more than `maxLagMs` behind has the missed frames counted by `lagged` and
 * resumes at the next keyframe (`waitKey`).
 */
export function paceSources<S extends PacedSource>(
  sources: readonly S[], nowMs: number, frameMs: number, maxLagMs: number, clipFrames: number,
  send: (s: S, clipIndex: number, loop: number) => void, lagged: (s: S, frames: number) => void,
): void {
  for (let k = 0; k < sources.length; k++) {
    const s = sources[k]!;
    const due = Math.floor((nowMs - s.startMs) / frameMs) + 1;
    if (due - s.sent > maxLagMs / frameMs) {
      lagged(s, due - s.sent - 1);
      s.sent = due - 1;
      s.waitKey = true;
    }
    while (s.sent < due && s.playing) {
      const i = (s.phase ?? 0) + s.sent;
      send(s, i % clipFrames, Math.floor(i / clipFrames));
      s.sent++;
    }
  }
}
