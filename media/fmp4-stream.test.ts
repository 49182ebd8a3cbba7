import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readInitMeta } from './fmp4-init.ts';
import { readFragment, readInit } from './fmp4-read.ts';
import { scanFragments } from './fmp4-scan.ts';
import { ADDED, FRAGMENT_FULL, FragmentStreamer, NO_BLOCK, NoBlockError } from './fmp4-stream.ts';
import { MAX_FRAGMENT_BYTES } from './fmp4-fragment.ts';
import { initSegment } from './fmp4-init.ts';
import { aacClip, decodeErrors, ffprobeJson, MemorySink, muxClips, streamClips, tempDir, videoClip } from './testdata/fmp4-clips.ts';
import type { Clip } from './testdata/fmp4-clips.ts';
import type { AccessUnit } from './types.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip, h265: Clip, aac: Clip;

beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
  h265 = videoClip(tmp.dir, 'h265');
  aac = aacClip(tmp.dir);
});
afterAll(() => tmp.cleanup());

function save(name: string, bytes: Uint8Array): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, bytes);
  return file;
}

/** Every packet of a file as ffprobe sees it: stream, dts, pts, key flag, size and an MD5 of its bytes. */
function packets(file: string): string[] {
  const j = ffprobeJson(['-show_data_hash', 'md5', '-show_entries', 'packet=stream_index,dts,pts,flags,size,data_hash', file]);
  return j.packets.map((p: any) => `${p.stream_index} ${p.dts} ${p.pts} ${p.flags} ${p.size} ${p.data_hash}`);
}

describe('FragmentStreamer with real streams (judged by ffprobe)', () => {
  test('H.264 with B-frames and AAC: every packet equal to the in-memory muxer’s, and the file decodes', () => {
    const streamed = save('s-h264-aac.mp4', streamClips([h264, aac], new MemorySink(64 << 10)).bytes);
    const built = save('b-h264-aac.mp4', muxClips([h264, aac]).bytes);
    expect(decodeErrors(streamed)).toBe('');
    const got = packets(streamed);
    expect(got.length).toBe(h264.aus.length + aac.aus.length);
    expect(got.sort()).toEqual(packets(built).sort());
  });

  test('H.265 streams into hvc1 that ffprobe decodes, keyframes where the input has them', () => {
    const file = save('s-h265.mp4', streamClips([h265], new MemorySink(32 << 10)).bytes);
    expect(decodeErrors(file)).toBe('');
    expect(packets(file).sort()).toEqual(packets(save('b-h265.mp4', muxClips([h265]).bytes)).sort());
  });

  test('any block size gives the same media: blocks of one alignment unit, smaller than a picture, or larger than a fragment', () => {
    const want = packets(save('b-ref.mp4', muxClips([h264, aac]).bytes)).sort();
    for (const [block, align] of [[4096, 4096], [8192, 4096], [4096, 512], [1 << 20, 4096]] as const) {
      const file = save(`s-block-${block}.mp4`, streamClips([h264, aac], new MemorySink(block, align)).bytes);
      expect(packets(file).sort()).toEqual(want);
    }
  });

  test('durations patched with setLastDuration give the same packets as durations known up front', () => {
    const a = streamClips([h264, aac], new MemorySink(64 << 10)).bytes;
    const b = streamClips([h264, aac], new MemorySink(64 << 10), { patchDurations: true }).bytes;
    expect(b).toEqual(a);
  });
});

describe('FragmentStreamer layout', () => {
  test('fragments start and end aligned, the first moof follows the init, and every reader finds every fragment', () => {
    const sink = new MemorySink(64 << 10);
    const { bytes, fragments } = streamClips([h264, aac], sink, { meta: { streamId: 'cam1', segmentNumber: 7, startUnixMs: 1_700_000_000_000 } });
    expect(fragments.length).toBe(muxClips([h264, aac]).fragments);
    expect(bytes.length % 4096).toBe(0);
    expect(fragments[0]!.offset).toBe(0);
    for (let i = 0; i < fragments.length; i++) {
      const f = fragments[i]!;
      expect(f.offset % 4096).toBe(0);
      expect(f.end % 4096).toBe(0);
      if (i > 0) expect(f.offset).toBe(fragments[i - 1]!.end);
      if (i > 0) expect(f.moofOffset).toBe(f.offset);
    }
    const init = bytes.subarray(0, fragments[0]!.moofOffset); // what HLS serves as EXT-X-MAP
    expect(readInitMeta(init)).toEqual({ streamId: 'cam1', segmentNumber: 7, startUnixMs: 1_700_000_000_000 });
    const info = readInit(init);
    const scan = scanFragments(bytes);
    expect(scan.fragments.map((f) => f.offset)).toEqual(fragments.map((f) => f.moofOffset));
    expect(scan.validEnd).toBe(bytes.length);
    expect(scan.truncated).toBe(false);
    let video = 0;
    for (let i = 0; i < fragments.length; i++) {
      const f = fragments[i]!;
      const r = readFragment(bytes.subarray(f.moofOffset, f.end), info, f.moofOffset);
      video += r.runs.filter((run) => run.track === 0).reduce((n, run) => n + run.samples.length, 0);
      expect(r.size).toBe(f.end - f.moofOffset);
    }
    expect(video).toBe(h264.aus.length);
  });

  test('slack and padding are zeros, never the old bytes of a reused block', () => {
    const sink = new MemorySink(16 << 10);
    const { bytes } = streamClips([h264, aac], sink);
    // Blocks come out of the sink filled with 0xEE; a run of them in the file would be stale bytes.
    let run = 0, worst = 0;
    for (const b of bytes) {
      run = b === 0xee ? run + 1 : 0;
      worst = Math.max(worst, run);
    }
    expect(worst).toBeLessThan(16);
    for (const f of scanFragments(bytes).fragments) {
      const mdatAt = f.offset + new DataView(bytes.buffer, f.offset).getUint32(0); // the box after the moof
      expect(new TextDecoder().decode(bytes.subarray(mdatAt + 4, mdatAt + 8))).toBe('mdat');
    }
  });

  test('each header is handed over after its fragment’s data, with the fragment end as commit point', () => {
    const sink = new MemorySink(32 << 10);
    const { fragments } = streamClips([h264, aac], sink);
    const heads = sink.puts.filter((p) => p.commitEnd > 0);
    expect(heads.map((p) => [p.offset, p.commitEnd])).toEqual(fragments.map((f) => [f.offset, f.end]));
    for (const h of heads) {
      const i = sink.puts.indexOf(h);
      const data = sink.puts.filter((p) => p.commitEnd === 0 && p.offset > h.offset && p.offset < h.commitEnd);
      expect(data.length).toBeGreaterThan(0);
      for (const d of data) expect(sink.puts.indexOf(d)).toBeLessThan(i);
    }
    expect(sink.outstanding).toBe(0);
  });

  test('a stream holds one data block at a time, whatever the fragment length', () => {
    const sink = new MemorySink(32 << 10);
    let most = 0;
    const take = sink.take.bind(sink);
    sink.take = () => {
      const b = take();
      most = Math.max(most, sink.outstanding);
      return b;
    };
    streamClips([h264, aac], sink, { fragmentSeconds: 2 });
    expect(most).toBe(1); // the header block is taken once the last data block is handed over
  });

  test('a crash before a header lands leaves zeros where the moof goes: the scan ends at the fragment before', () => {
    const sink = new MemorySink(16 << 10);
    const { bytes, fragments } = streamClips([h264, aac], sink);
    const lastHead = sink.puts.findLastIndex((p) => p.commitEnd > 0);
    // Replay every put but the last header onto a fresh file, as the disk would hold it.
    const crashed = new Uint8Array(bytes.length);
    sink.puts.forEach((p, i) => {
      if (i !== lastHead) crashed.set(bytes.subarray(p.offset, p.offset + p.len), p.offset);
    });
    const scan = scanFragments(crashed);
    expect(scan.fragments.length).toBe(fragments.length - 1);
    expect(scan.validEnd).toBe(fragments[fragments.length - 2]!.end);
    const file = save('crashed-cut.mp4', crashed.subarray(0, scan.validEnd));
    expect(decodeErrors(file)).toBe('');
  });
});

describe('FragmentStreamer limits and failures', () => {
  const oneTrack = () => new FragmentStreamer([h264.track], new MemorySink(8192));

  test('a fragment whose moof would outgrow its room is full; the next one reserves more', () => {
    const sink = new MemorySink(64 << 10);
    const fs = new FragmentStreamer([h264.track], sink);
    fs.startFile(initSegment([h264.track]));
    expect(fs.begin(1)).toBe(true);
    let n = 0;
    const au = h264.aus[1]!; // any picture will do
    while (fs.addSample(0, au, 3600) === ADDED) n++;
    expect(n).toBeGreaterThan(100); // 4 KiB of room less the init: ~12 bytes a sample
    expect(fs.addSample(0, au, 3600)).toBe(FRAGMENT_FULL);
    const first = fs.finish([0]);
    expect(first.end - first.offset).toBeGreaterThan(n * au.bytes);
    expect(fs.begin(2)).toBe(true);
    let m = 0;
    while (fs.addSample(0, au, 3600) === ADDED && m < 10_000) m++;
    expect(m).toBeGreaterThan(n); // 1.5 times the last moof, rounded up to the alignment
    fs.finish([n * 3600]);
    expect(scanFragments(sink.bytes()).fragments.map((f) => f.sampleCounts[0])).toEqual([n, m]);
  });

  test('the byte cap makes a fragment full instead of growing past 32-bit mdat sizes', () => {
    const fs = oneTrack();
    fs.startFile(new Uint8Array(0));
    fs.begin(1);
    const big: AccessUnit = { nalus: [new Uint8Array(MAX_FRAGMENT_BYTES)], bytes: MAX_FRAGMENT_BYTES, keyframe: true, dts: 0, pts: 0 };
    expect(fs.addSample(0, big, 3600)).toBe(FRAGMENT_FULL);
    expect(fs.sampleCount(0)).toBe(0);
    fs.abort();
  });

  test('no free block mid-fragment: NO_BLOCK, abort gives everything back, the next fragment starts at the same offset', () => {
    const sink = new MemorySink(4096);
    const fs = new FragmentStreamer([h264.track], sink);
    fs.startFile(initSegment([h264.track]));
    fs.begin(1);
    for (let i = 0; i < 10; i++) expect(fs.addSample(0, h264.aus[i]!, 3600)).toBe(ADDED);
    const ok = fs.finish([0]);
    fs.begin(2);
    sink.limit = 0; // the disk stalls: no block comes back
    let r = ADDED as number;
    for (let i = 10; i < 20 && r === ADDED; i++) r = fs.addSample(0, h264.aus[i]!, 3600);
    expect(r).toBe(NO_BLOCK);
    fs.abort();
    expect(sink.outstanding).toBe(0);
    expect(fs.offset).toBe(ok.end);
    sink.limit = Infinity;
    fs.begin(2);
    for (let i = 10; i < 20; i++) expect(fs.addSample(0, h264.aus[i]!, 3600)).toBe(ADDED);
    const next = fs.finish([36000]);
    expect(next.offset).toBe(ok.end);
    const scan = scanFragments(sink.bytes());
    expect(scan.fragments.map((f) => f.sampleCounts[0])).toEqual([10, 10]);
    expect(scan.validEnd).toBe(sink.size);
  });

  test('no block for the header: finish throws NoBlockError (ENOBUFS) and leaves nothing out', () => {
    const sink = new MemorySink(1 << 20);
    const fs = new FragmentStreamer([h264.track], sink);
    fs.startFile(new Uint8Array(0));
    fs.begin(1);
    fs.addSample(0, h264.aus[0]!, 3600);
    sink.limit = 0;
    expect(() => fs.finish([0])).toThrow(NoBlockError);
    expect(sink.outstanding).toBe(0);
    expect(fs.fragmentOpen).toBe(false);
    expect(fs.offset).toBe(0);
  });

  test('a write error from the sink reaches the caller; after abort no block is left out', () => {
    const sink = new MemorySink(4096);
    const fs = new FragmentStreamer([h264.track], sink);
    fs.startFile(new Uint8Array(0));
    fs.begin(1);
    sink.failPut = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    expect(() => {
      for (let i = 0; i < 10; i++) fs.addSample(0, h264.aus[i]!, 3600);
    }).toThrow('ENOSPC');
    fs.abort();
    expect(sink.outstanding).toBe(0);
  });

  test('addSample copies without mutating the access unit buffers', () => {
    const fs = oneTrack();
    fs.startFile(new Uint8Array(0));
    fs.begin(1);
    const before = h264.aus.slice(0, 30).map((a) => a.nalus.map((n) => n.slice()));
    for (let i = 0; i < 30; i++) fs.addSample(0, h264.aus[i]!, 3600);
    fs.finish([0]);
    expect(h264.aus.slice(0, 30).map((a) => a.nalus)).toEqual(before);
  });

  test('rejects caller bugs loudly', () => {
    const fs = oneTrack();
    expect(() => fs.addSample(0, h264.aus[0]!, 1)).toThrow('outside begin');
    expect(() => fs.finish([0])).toThrow('without begin');
    fs.startFile(new Uint8Array(0));
    fs.begin(1);
    expect(() => fs.begin(2)).toThrow('fragment open');
    expect(() => fs.addSample(1, h264.aus[0]!, 1)).toThrow(RangeError);
    expect(() => fs.addSample(0, h264.aus[0]!, -1)).toThrow(RangeError);
    fs.addSample(0, h264.aus[0]!, 1);
    expect(() => fs.finish([-1])).toThrow(RangeError);
    expect(() => new FragmentStreamer([h264.track], { blockBytes: 6000, align: 4096, take: () => null, put: () => {}, drop: () => {} })).toThrow(RangeError);
    const tiny = new FragmentStreamer([h264.track], new MemorySink(512, 512));
    tiny.startFile(new Uint8Array(500)); // an init that leaves no room for a moof in one block
    expect(() => tiny.begin(1)).toThrow('no room for a moof');
  });
});
