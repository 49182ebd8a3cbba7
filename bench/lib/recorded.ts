// What each recorder left on disk, per camera: frames recorded and whether the files are
// valid (fMP4 scanned by our scanner and remuxed by ffmpeg; MP4 by ffprobe; the floor's raw
// RTSP-interleaved capture by walking its framing).
import { openSync, readSync, closeSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scanFragments } from '../../media/fmp4-scan.ts';

export interface CamRecord { frames: number; files: number; bad: string[] }

export function listFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try { names = readdirSync(d); } catch { return; }
    for (const n of names) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith(ext)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

async function tool(cmd: string[], timeoutMs = 120_000): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  return { code, out, err };
}

/** Empty when ffmpeg reads every packet of `file` without error (`decode` also decodes them). */
export async function fileErrors(file: string, decode: boolean): Promise<string> {
  const r = await tool(['ffmpeg', '-v', 'error', '-nostdin', '-i', file, ...(decode ? [] : ['-c', 'copy']), '-f', 'null', '-']);
  return r.code === 0 ? r.err.trim() : `exit ${r.code}: ${r.err.trim().slice(0, 300)}`;
}

/** Video frames in the engine's fMP4 segments of one camera (our scanner, all files). */
export function fluxFrames(streamDir: string): CamRecord {
  const rec: CamRecord = { frames: 0, files: 0, bad: [] };
  for (const f of listFiles(streamDir, '.mp4')) {
    rec.files++;
    const scan = scanFragments(new Uint8Array(readFileSync(f)));
    const v = scan.tracks.findIndex((t) => t.handler === 'vide');
    if (scan.initEnd === 0 || v < 0 || scan.truncated) rec.bad.push(`${f}: ${scan.initEnd === 0 ? 'no moov' : v < 0 ? 'no video track' : 'truncated'}`);
    for (const fr of scan.fragments) rec.frames += fr.sampleCounts[v] ?? 0;
  }
  return rec;
}

/** Video frames in ffmpeg's MP4 segments of one camera (ffprobe reads the moov's count). */
export async function mp4Frames(dir: string): Promise<CamRecord> {
  const rec: CamRecord = { frames: 0, files: 0, bad: [] };
  for (const f of listFiles(dir, '.mp4')) {
    rec.files++;
    const r = await tool(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=nb_frames', '-of', 'csv=p=0', f]);
    const n = Number(r.out.trim());
    if (r.code !== 0 || !Number.isFinite(n)) rec.bad.push(`${f}: ${r.err.trim().slice(0, 200) || 'no frame count'}`);
    else rec.frames += n;
  }
  return rec;
}

/**
 * Video frames in the floor's raw capture: RTSP interleaved frames (RFC 2326 §10.12) on
 * channel 0 whose RTP marker bit is set (RFC 6184 §5.1: last packet of an access unit).
 */
export function rawFrames(file: string): CamRecord {
  const rec: CamRecord = { frames: 0, files: 1, bad: [] };
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(4 << 20);
  let have = 0, pos = 0, fileOff = 0;
  try {
    for (;;) {
      if (have - pos < 6 + 65_536) { // keep at least one whole frame in the buffer
        buf.copy(buf, 0, pos, have);
        have -= pos; pos = 0;
        const n = readSync(fd, buf, have, buf.length - have, fileOff);
        fileOff += n; have += n;
        if (n === 0 && have < 4) break;
      }
      if (have - pos < 4) break;
      if (buf[pos] !== 0x24) { rec.bad.push(`${file}: framing lost at ${fileOff - have + pos}`); break; }
      const len = buf.readUInt16BE(pos + 2);
      if (have - pos < 4 + len) break; // cut at the end: the stop flushed mid-frame
      if (buf[pos + 1] === 0 && len >= 12 && (buf[pos + 5]! & 0x80) !== 0) rec.frames++;
      pos += 4 + len;
    }
  } finally {
    closeSync(fd);
  }
  return rec;
}
