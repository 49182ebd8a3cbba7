// Piscina task of the small thumbnail pool: decode one keyframe (Annex-B with its parameter
// sets) with the thread's long-running ffmpeg for that codec and size (workers/frame-decoder.ts),
// then resize and encode it as JPEG with sharp.
import sharp from 'sharp';
import { FrameDecoders } from './frame-decoder.ts';

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

/** Ends the thread's decoders (sent before the pool is destroyed). */
export interface ThumbnailClose {
  close: true;
}

const decoders = new FrameDecoders();

export default async function thumbnail(t: ThumbnailTask | ThumbnailClose): Promise<Uint8Array | null> {
  if ('close' in t) {
    decoders.close();
    return null;
  }
  return decoders.decode(t.ffmpeg, t.codec, t.width, t.height, t.data, async (rgb) => {
    // sharp reads the picture while it works; the view stays valid until this returns.
    let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: t.width, height: t.height, channels: 3 } });
    if (t.outWidth > 0 && t.outWidth !== t.width) img = img.resize({ width: t.outWidth });
    return new Uint8Array(await img.jpeg({ quality: t.quality, mozjpeg: false }).toBuffer());
  });
}
