// MANSRTSP bodies (GB/T 28181-2016 Annex B): the RTSP-like commands a platform sends in INFO
// within a playback dialog to change speed (Scale), pause, resume and seek (Range: npt=).

export const MANSRTSP_CONTENT_TYPE = 'Application/MANSRTSP';
/** Playback speeds devices accept: 1/4 up to 4x, as the standard's examples; some NVRs take 8 and 16. */
export const MANSRTSP_SCALES = [0.25, 0.5, 1, 2, 4, 8, 16] as const;

export type MansrtspCommand =
  | { action: 'play'; scale?: number; rangeSeconds?: number }
  | { action: 'pause' }
  | { action: 'seek'; rangeSeconds: number; scale?: number };

/** Seconds into the recording as `npt=` text ('now' when absent). */
const npt = (s: number | undefined) => (s === undefined ? 'now-' : `${Math.max(0, Math.floor(s))}-`);

export function encodeMansrtsp(c: MansrtspCommand, cseq: number): Uint8Array {
  let t: string;
  if (c.action === 'pause') t = `PAUSE RTSP/1.0\r\nCSeq: ${cseq}\r\nPauseTime: now\r\n\r\n`;
  else {
    const scale = c.scale === undefined ? '' : `Scale: ${c.scale.toFixed(c.scale % 1 === 0 ? 1 : 2)}\r\n`;
    t = `PLAY RTSP/1.0\r\nCSeq: ${cseq}\r\n${scale}Range: npt=${npt(c.rangeSeconds)}\r\n\r\n`;
  }
  return new TextEncoder().encode(t);
}

/** Reads one back (the device side, tests): method, CSeq, Scale, Range start. */
export function decodeMansrtsp(b: Uint8Array): { method: string; cseq: number; scale: number | null; rangeStart: number | 'now' | null } | null {
  const t = new TextDecoder('latin1').decode(b.subarray(0, 2048));
  const m = /^(PLAY|PAUSE|TEARDOWN) RTSP\/1\.0\r?\n/.exec(t);
  const cseq = /\r?\nCSeq:\s*(\d{1,9})/i.exec(t);
  if (m === null || cseq === null) return null;
  const scale = /\r?\nScale:\s*([0-9.]{1,8})/i.exec(t);
  const range = /\r?\nRange:\s*npt=(now|\d{1,9}(?:\.\d+)?)-/i.exec(t);
  return {
    method: m[1]!, cseq: Number(cseq[1]), scale: scale === null ? null : Number(scale[1]),
    rangeStart: range === null ? null : range[1] === 'now' ? 'now' : Number(range[1]),
  };
}
