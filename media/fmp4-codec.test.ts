import { expect, test } from 'bun:test';
import { audioSpecificConfig, audioTrackInfoAac } from './aac.ts';
import { initSegment } from './fmp4-init.ts';
import { codecStringsFromInit } from './fmp4-codec.ts';
import { audioTrackInfoPcma } from './g711.ts';
import { AnnexBAuAssembler } from './annexb-au.ts';
import { splitAnnexB } from './annexb.ts';
import { ffmpegFixture, mulberry32, mutate } from './testdata/test-helpers.ts';
import type { VideoTrackInfo } from './types.ts';

function videoTrack(codec: 'h264' | 'h265'): VideoTrackInfo {
  const enc = codec === 'h264' ? ['-c:v', 'libx264', '-profile:v', 'high', '-f', 'h264'] : ['-c:v', 'libx265', '-x265-params', 'log-level=error', '-f', 'hevc'];
  const { bytes } = ffmpegFixture(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10', '-t', '0.5', '-pix_fmt', 'yuv420p', ...enc], codec === 'h264' ? 'h264' : 'hevc');
  const nalus: Uint8Array[] = [];
  splitAnnexB(bytes, nalus);
  const a = new AnnexBAuAssembler(codec);
  for (const n of nalus) {
    a.push(n);
    const info = a.videoTrackInfo();
    if (info) return info;
  }
  throw new Error('no track info');
}

test('reads back the codec strings the track infos carry, for every sample entry we write', () => {
  const v264 = videoTrack('h264');
  const v265 = videoTrack('h265');
  const aac = audioTrackInfoAac(audioSpecificConfig(2, 48000, 2));
  const init = initSegment([v264, aac, audioTrackInfoPcma()]);
  expect(codecStringsFromInit(init)).toEqual([v264.codecString, 'mp4a.40.2', 'alaw']);
  expect(codecStringsFromInit(initSegment([v265]))).toEqual([v265.codecString]);
  expect(v264.codecString).toMatch(/^avc1\.64/);
  expect(v265.codecString).toMatch(/^hvc1\.1\./);
});

test('fuzz: mutated init segments never throw and yield only well-formed strings', () => {
  const init = initSegment([videoTrack('h264'), audioTrackInfoAac(audioSpecificConfig(2, 44100, 1))]);
  const rnd = mulberry32(7);
  for (let i = 0; i < 3000; i++) {
    for (const s of codecStringsFromInit(mutate(init, rnd))) expect(s).toMatch(/^(avc[13]|hvc1|hev1|mp4a|alaw|ulaw)/);
  }
});
