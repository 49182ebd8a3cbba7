// Piscina task of the small thumbnail pool: decode one keyframe (Annex-B with its parameter
// sets) with the thread's long-running ffmpeg for that codec and output size
// (workers/frame-decoder.ts), which also scales it (in the same pass that converts it to RGB:
// a 640-wide keyframe JPEG never moves a 1080p RGB picture), then encode it as JPEG with sharp.
import sharp from 'sharp';
import { FrameDecoders } from './frame-decoder.ts';

export interface ThumbnailTask {
  ffmpeg: string;
  codec: 'h264' | 'h265';
  width: number;
  height: number;
  data: Uint8Array;
  /** Output width (height keeps the aspect ratio); 0 or more than the picture's = its own size. */
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
  const width = t.outWidth > 0 && t.outWidth < t.width ? t.outWidth : t.width;
  const height = width === t.width ? t.height : Math.max(2, Math.round((t.height * width) / t.width));
  return decoders.decode(t.ffmpeg, t.codec, width, height, t.data, async (rgb) => {
    // sharp reads the picture while it works; the view stays valid until this returns.
    const img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
    return new Uint8Array(await img.jpeg({ quality: t.quality, mozjpeg: false }).toBuffer());
  });
}
