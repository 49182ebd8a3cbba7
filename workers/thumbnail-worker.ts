// Piscina task of the small thumbnail pool: decode one keyframe (Annex-B with its parameter
// sets) with ffmpeg to raw pixels, then resize and encode it as JPEG with sharp.
import sharp from 'sharp';

export interface ThumbnailTask {
  ffmpeg: string;
  codec: 'h264' | 'h265';
  width: number;
  height: number;
  data: Uint8Array;
  /** Output width (height keeps the aspect ratio); 0 = the picture's own size. */
  outWidth: number;
  quality: number;
}

/** A decoder that hangs (a corrupt picture, a stuck process) must not hold the pool. */
const DECODE_TIMEOUT_MS = 5_000;

export default async function thumbnail(t: ThumbnailTask): Promise<Uint8Array> {
  const p = Bun.spawn(
    [t.ffmpeg, '-v', 'error', '-threads', '1', '-f', t.codec === 'h264' ? 'h264' : 'hevc', '-i', 'pipe:0',
      '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' },
  );
  const timer = setTimeout(() => p.kill(), DECODE_TIMEOUT_MS);
  p.stdin.write(t.data);
  await p.stdin.end();
  const [pixels, err, code] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const need = t.width * t.height * 3;
  if (code !== 0 || pixels.byteLength < need) {
    throw new Error(`decoding the keyframe failed (ffmpeg exit ${code}, ${pixels.byteLength} of ${need} bytes): ${err.trim().slice(0, 300)}`);
  }
  let img = sharp(Buffer.from(pixels, 0, need), { raw: { width: t.width, height: t.height, channels: 3 } });
  if (t.outWidth > 0 && t.outWidth !== t.width) img = img.resize({ width: t.outWidth });
  return new Uint8Array(await img.jpeg({ quality: t.quality, mozjpeg: false }).toBuffer());
}
