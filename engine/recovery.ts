// Crash recovery: an index record still marked open (the process or a worker died while it
// was written) is repaired by scanning its file for the last complete fragment, truncating
// there, and closing the record with the end time the file proves.
import { openSync, closeSync, fstatSync, readSync, ftruncateSync, unlinkSync } from 'node:fs';
import { scanFragments } from '../media/fmp4-scan.ts';
import { readInitMeta } from '../media/fmp4-init.ts';
import type { IndexDb, SegmentRecord } from './index-db.ts';
import { containedPath } from './retention.ts';
import { log } from './log.ts';

/** A segment file larger than this is not ours (60 s at 50 Mbit/s is ~375 MB). */
const MAX_SEGMENT_FILE_BYTES = 2 * 1024 ** 3;

export type RepairOutcome =
  | { kind: 'repaired'; endMs: number; bytes: number; truncatedBytes: number; fragments: number }
  | { kind: 'deleted'; reason: string };

/** Repairs one open segment record and its file. Never throws for a bad file. */
export async function repairSegment(index: IndexDb, basePath: string, rec: SegmentRecord): Promise<RepairOutcome> {
  const abs = containedPath(basePath, rec.path);
  /** Forgets the record; deletes the file only when it holds no media at all. */
  const drop = async (reason: string, deleteFile: boolean): Promise<RepairOutcome> => {
    if (deleteFile && abs !== undefined) {
      try {
        unlinkSync(abs);
      } catch {
        /* already gone */
      }
    }
    await index.deleteSegment(rec.stream_id, rec.start_ms);
    return { kind: 'deleted', reason: deleteFile ? reason : `${reason}; file kept` };
  };
  if (abs === undefined) return drop(`path ${rec.path} escapes the storage base path`, false);
  let fd: number;
  try {
    fd = openSync(abs, 'r+');
  } catch (err) {
    return drop(`file unreadable: ${(err as Error).message}`, false);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_SEGMENT_FILE_BYTES) return drop(`file is ${size} bytes, larger than any segment we write`, false);
    const bytes = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, bytes, got, size - got, got);
      if (n <= 0) break;
      got += n;
    }
    const scan = scanFragments(bytes.subarray(0, got));
    const first = scan.fragments[0];
    const clock = scan.tracks[0];
    if (first === undefined || clock === undefined) return drop('no complete fragment in the file', true);
    const startMs = readInitMeta(bytes)?.startUnixMs ?? rec.start_ms;
    const base = first.firstTrackBaseDts[0]!;
    const end = scan.trackEnds[0]!;
    const toMs = (dts: number) => Math.floor(((dts - base) * 1000) / clock.timescale);
    const times: number[] = [];
    const offsets: number[] = [];
    for (const f of scan.fragments) {
      const d = f.firstTrackBaseDts[0]!;
      if (d < 0) continue; // a fragment without video: its offset is still reachable from the previous one
      times.push(toMs(d));
      offsets.push(f.offset);
    }
    if (scan.validEnd < got) ftruncateSync(fd, scan.validEnd);
    const endMs = startMs + toMs(end);
    await index.closeSegment(rec.stream_id, rec.start_ms, {
      end_ms: endMs,
      bytes: scan.validEnd,
      fragments: { times, offsets },
      state: 'repaired',
    });
    return { kind: 'repaired', endMs, bytes: scan.validEnd, truncatedBytes: got - scan.validEnd, fragments: scan.fragments.length };
  } finally {
    closeSync(fd);
  }
}

/** Repairs every open record (start-up, or a worker's streams after it died). */
export async function recoverOpenSegments(index: IndexDb, basePath: string, streamIds?: Set<string>): Promise<number> {
  let n = 0;
  for (const rec of index.listOpenSegments()) {
    if (streamIds !== undefined && !streamIds.has(rec.stream_id)) continue;
    const r = await repairSegment(index, basePath, rec);
    n++;
    if (r.kind === 'repaired') {
      log.info(
        `recovered ${rec.path}: ${r.fragments} fragments, ${((r.endMs - rec.start_ms) / 1000).toFixed(1)} s` +
          (r.truncatedBytes > 0 ? `, cut ${r.truncatedBytes} bytes of an incomplete fragment` : ''),
      );
    } else {
      log.warn(`dropped the index record of ${rec.path}: ${r.reason}`);
    }
  }
  await index.flushed();
  return n;
}
