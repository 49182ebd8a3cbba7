// Test-only: loads the recorded ffmpeg publish (client->server bytes) and reads it into a
// message list with the chunk reader, for split-point tests and the .txt dissection.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAmf0 } from '../amf0.ts';
import { ChunkReader, READ_ERROR, READ_MESSAGE } from '../chunk.ts';
import { HANDSHAKE_BYTES } from '../handshake.ts';

/** ffmpeg 5.1 publishing 0.6 s of 192x144 H.264 (2 slices, B-frames) + AAC to rtmp://127.0.0.1:PORT/live/pub1?key=SECRET. */
export const CAPTURE_PATH = join(import.meta.dir, 'ffmpeg-publish-h264-aac.bin');
export const loadCapture = (): Uint8Array => new Uint8Array(readFileSync(CAPTURE_PATH));
/** C0 + C1 + C2. */
export const HANDSHAKE_LEN = 1 + 2 * HANDSHAKE_BYTES;

export interface Msg {
  csid: number;
  typeId: number;
  streamId: number;
  timestamp: number;
  payload: Uint8Array;
}

/**
 * Reads `chunks` (consecutive pieces of the chunk stream after the handshake) and returns
 * copies of every message, applying Set Chunk Size as a receiver must. Throws on READ_ERROR.
 */
export function readMessages(chunks: Uint8Array[], reader = new ChunkReader()): Msg[] {
  const out: Msg[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (;;) {
      const s = reader.next();
      if (s === READ_ERROR) throw new Error(reader.error);
      if (s !== READ_MESSAGE) break;
      const m = reader.message;
      out.push({ csid: m.csid, typeId: m.typeId, streamId: m.streamId, timestamp: m.timestamp, payload: m.payload.slice() });
      if (m.typeId === 1) reader.setChunkSize(new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0) & 0x7fffffff);
    }
  }
  return out;
}

const TYPE_NAMES: Record<number, string> = {
  1: 'SetChunkSize', 2: 'Abort', 3: 'Ack', 4: 'UserControl', 5: 'WindowAckSize', 6: 'SetPeerBandwidth',
  8: 'Audio', 9: 'Video', 18: 'DataAMF0', 20: 'CommandAMF0',
};

/** One line per message: offset-free summary plus the decoded AMF0 for commands and data. */
export function dissect(capture: Uint8Array): string {
  const lines = [
    `C0 version ${capture[0]}; C1 time ${new DataView(capture.buffer, capture.byteOffset).getUint32(1)} version bytes ${[...capture.subarray(5, 9)].join('.')} (1536 bytes); C2 (1536 bytes)`,
  ];
  for (const m of readMessages([capture.subarray(HANDSHAKE_LEN)])) {
    let s = `csid ${m.csid} stream ${m.streamId} ts ${m.timestamp} ${TYPE_NAMES[m.typeId] ?? m.typeId} len ${m.payload.length}`;
    if (m.typeId === 20 || m.typeId === 18) s += ' ' + JSON.stringify(decodeAmf0(m.payload));
    else if (m.typeId === 1 || m.typeId === 5) s += ` value ${new DataView(m.payload.buffer).getUint32(0)}`;
    else if (m.typeId === 8 || m.typeId === 9) s += ` head ${Buffer.from(m.payload.subarray(0, 5)).toString('hex')}`;
    lines.push(s);
  }
  return lines.join('\n') + '\n';
}
