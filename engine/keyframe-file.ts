// Reads a recorded keyframe (workers/control.ts KeyframeRef) back from its segment file: the
// media worker keeps no copy of the picture of a stream it records, only where it lies.
import { open } from 'node:fs/promises';
import { isKeyframe as isH264Keyframe } from '../media/h264.ts';
import { isKeyframe as isH265Keyframe } from '../media/h265.ts';
import { splitLengthPrefixed, toAnnexB } from '../media/annexb.ts';
import type { KeyframeData, KeyframeRef } from '../workers/control.ts';

/** A picture larger than this is not one we wrote (an 8K IDR at 100 Mbit/s is ~3 MB). */
const MAX_KEYFRAME_BYTES = 16 << 20;

/**
 * The keyframe as Annex-B with its parameter sets, from the newest place where the file
 * holds it whole (length-prefixed NAL units that make up a keyframe): the latest one's
 * fragment may not be on disk yet, the one before it is. Null when neither can be read.
 */
export async function readRecordedKeyframe(ref: KeyframeRef): Promise<KeyframeData | null> {
  for (const at of ref.at) {
    if (!(at.size > 0 && at.size <= MAX_KEYFRAME_BYTES)) continue;
    const bytes = await readAt(at.path, at.offset, at.size);
    if (bytes === null) continue;
    const nalus: Uint8Array[] = [];
    if (splitLengthPrefixed(bytes, 4, nalus) <= 0) continue; // zeros: not written yet
    const key = ref.codec === 'h264' ? isH264Keyframe(nalus) : isH265Keyframe(nalus);
    if (!key) continue;
    const ps = ref.parameterSets;
    const data = new Uint8Array(ps.length + nalus.reduce((n, u) => n + 4 + u.length, 0));
    data.set(ps, 0);
    toAnnexB(nalus, data.subarray(ps.length));
    return { codec: ref.codec, width: ref.width, height: ref.height, wallMs: at.wallMs, data };
  }
  return null;
}

/** `size` bytes at `offset` of `path`, or null when the file is gone or shorter. */
async function readAt(path: string, offset: number, size: number): Promise<Uint8Array | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return null; // deleted (retention) or moved
  }
  try {
    const buf = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
      if (bytesRead <= 0) return null;
      got += bytesRead;
    }
    return buf;
  } catch {
    return null;
  } finally {
    await fh.close().catch(() => {});
  }
}
