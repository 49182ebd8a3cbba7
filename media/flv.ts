// FLV tag bodies (as carried by RTMP messages 8 and 9) to access units and track info:
// AVC, legacy codec-id-12 HEVC, Enhanced RTMP avc1/hvc1 video; AAC and G.711 audio.
//
// Video: Adobe FLV spec v10.1 Annex E.4.3.1 VIDEODATA / AVCVIDEOPACKET:
//   | FrameType u4 | CodecID u4 | AVCPacketType u8 | CompositionTime SI24 | data |
// Enhanced RTMP v1 (veovera) ExVideoTagHeader, when the top bit of byte 0 is set:
//   | IsExHeader u1 | FrameType u3 | PacketType u4 | FourCC u32 | [CompositionTime SI24] | data |
// CompositionTime is present only for PacketType CodedFrames; CodedFramesX implies 0.
// CodecID 12 is not in the FLV spec: Chinese encoders and CDNs (and FFmpeg forks) send
// HEVC that way with the AVC layout and an hvcC sequence header.
// Audio: Annex E.4.2.1 AUDIODATA | SoundFormat u4 | SoundRate u2 | SoundSize u1 | SoundType u1 |
// and for AAC (format 10) AACPacketType u8 (0 = AudioSpecificConfig, 1 = raw frame).
import { AAC_SAMPLES_PER_FRAME, audioTrackInfoAac, parseAudioSpecificConfig } from './aac.ts';
import { splitAnnexB, splitLengthPrefixed, SPLIT_TRUNCATED } from './annexb.ts';
import { audioTrackInfoPcma, audioTrackInfoPcmu } from './g711.ts';
import { parseAvcC, videoTrackInfoH264 } from './h264-config.ts';
import { isKeyframe as isKeyframeH264 } from './h264.ts';
import { parseHvcC, videoTrackInfoH265 } from './h265-config.ts';
import { isKeyframe as isKeyframeH265, NAL_PPS, NAL_SPS, NAL_VPS } from './h265.ts';
import type { AccessUnit, AudioTrackInfo, VideoCodec, VideoTrackInfo } from './types.ts';

/** push() results; bit flags (a G.711 tag can both start a track and carry a frame). */
export const FLV_SKIP = 0;
/** `track` was set or replaced (a new or changed sequence header). */
export const FLV_TRACK = 1;
/** `au` holds a frame. */
export const FLV_FRAME = 2;
/** End of sequence (AVC packet type 2 / SequenceEnd). */
export const FLV_END = 4;
/** Malformed tag; `error` says why. The demuxer stays usable. */
export const FLV_ERROR = 8;

// FLV video frame types and codec ids (E.4.3.1); Enhanced RTMP packet types.
const FRAME_KEY = 1, FRAME_GENERATED_KEY = 4, FRAME_COMMAND = 5;
const CODEC_AVC = 7, CODEC_HEVC_LEGACY = 12;
const PT_SEQUENCE_START = 0, PT_CODED_FRAMES = 1, PT_SEQUENCE_END = 2, PT_CODED_FRAMES_X = 3;
const FOURCC_AVC1 = 0x61766331, FOURCC_HVC1 = 0x68766331;
// Audio sound formats (E.4.2.1).
const SOUND_PCMA = 7, SOUND_PCMU = 8, SOUND_AAC = 10;

/** FLV timestamps are milliseconds; video media time is 90 kHz. */
const TICKS_PER_MS = 90;

const sameBytes = (a: Uint8Array | null, b: Uint8Array): boolean => {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

const newAu = (): AccessUnit => ({ nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 });

/** What both tag demuxers report besides units: the last error and why the last tag was skipped. */
abstract class FlvTagDemuxer {
  /** Views into the last pushed body; valid until the next push(). */
  readonly au: AccessUnit = newAu();
  error = '';
  /** Why the last FLV_SKIP skipped (a constant string). */
  skipReason = '';

  protected skip(reason: string): number {
    this.skipReason = reason;
    return FLV_SKIP;
  }

  protected fail(message: string): number {
    this.error = message;
    return FLV_ERROR;
  }
}

/** Video tags of one stream in, access units out. One instance per stream; reuses `au`. */
export class FlvVideoDemuxer extends FlvTagDemuxer {
  track: VideoTrackInfo | null = null;
  /** Frames whose FLV frame type disagreed with their NAL unit types (the NAL types win). */
  keyframeMismatches = 0;
  /** FLV frame type of the last frame (1 key, 2 inter, 3 disposable, 4 generated key). */
  frameType = 0;
  private codec: VideoCodec | null = null;
  private lengthSize: 1 | 2 | 4 = 4;
  private config: Uint8Array | null = null;
  private isKeyframe: (nalus: readonly Uint8Array[], count?: number) => boolean = isKeyframeH264;

  /** One VIDEODATA body with its tag timestamp in ms. Never throws. */
  push(body: Uint8Array, timestampMs: number): number {
    if (body.length < 1) return this.skip('empty tag');
    const b0 = body[0]!;
    if (b0 & 0x80) return this.pushEnhanced(body, timestampMs);
    const frameType = b0 >> 4;
    const codecId = b0 & 0x0f;
    if (frameType === FRAME_COMMAND) return this.skip('command frame');
    if (codecId !== CODEC_AVC && codecId !== CODEC_HEVC_LEGACY) return this.skip('unsupported video codec id');
    if (body.length < 5) return this.fail('AVC video tag shorter than 5 bytes');
    const codec: VideoCodec = codecId === CODEC_AVC ? 'h264' : 'h265';
    const packetType = body[1]!;
    if (packetType === 0) return this.sequenceStart(codec, body.subarray(5));
    if (packetType === 2) return FLV_END;
    if (packetType !== 1) return this.fail('AVCPacketType above 2');
    return this.frame(codec, frameType, body.subarray(5), timestampMs, si24(body, 2));
  }

  private pushEnhanced(body: Uint8Array, timestampMs: number): number {
    if (body.length < 5) return this.fail('ExVideoTagHeader shorter than 5 bytes');
    const b0 = body[0]!;
    const frameType = (b0 >> 4) & 7;
    const packetType = b0 & 0x0f;
    const fourcc = ((body[1]! << 24) | (body[2]! << 16) | (body[3]! << 8) | body[4]!) >>> 0;
    if (frameType === FRAME_COMMAND && packetType !== 4) return this.skip('command frame');
    const codec: VideoCodec | null = fourcc === FOURCC_AVC1 ? 'h264' : fourcc === FOURCC_HVC1 ? 'h265' : null;
    if (!codec) return this.skip('unsupported Enhanced RTMP FourCC');
    switch (packetType) {
      case PT_SEQUENCE_START: return this.sequenceStart(codec, body.subarray(5));
      case PT_SEQUENCE_END: return FLV_END;
      case PT_CODED_FRAMES:
        if (body.length < 8) return this.fail('CodedFrames tag without composition time');
        return this.frame(codec, frameType, body.subarray(8), timestampMs, si24(body, 5));
      case PT_CODED_FRAMES_X: return this.frame(codec, frameType, body.subarray(5), timestampMs, 0);
      default: return this.skip('Enhanced RTMP packet type not used for avc1/hvc1'); // metadata, MPEG2TSSequenceStart (av01), multitrack
    }
  }

  // ISO/IEC 14496-15 §5.3.3.1 avcC / §8.3.3.1 hvcC record as the sequence header.
  private sequenceStart(codec: VideoCodec, record: Uint8Array): number {
    if (codec === this.codec && sameBytes(this.config, record)) return this.skip('repeated sequence header');
    try {
      let track: VideoTrackInfo;
      let lengthSizeMinusOne: number;
      if (codec === 'h264') {
        const c = parseAvcC(record);
        if (c.sps.length === 0) return this.fail('avcC without an SPS');
        track = videoTrackInfoH264(c.sps, c.pps);
        lengthSizeMinusOne = c.lengthSizeMinusOne;
      } else {
        const c = parseHvcC(record);
        const sets = (type: number) => c.arrays.filter((a) => a.nalUnitType === type).flatMap((a) => a.nalus);
        const sps = sets(NAL_SPS);
        if (sps.length === 0) return this.fail('hvcC without an SPS');
        track = videoTrackInfoH265(sets(NAL_VPS), sps, sets(NAL_PPS));
        lengthSizeMinusOne = c.lengthSizeMinusOne;
      }
      if (lengthSizeMinusOne === 2) return this.fail('3-byte NAL lengths');
      this.lengthSize = (lengthSizeMinusOne + 1) as 1 | 2 | 4;
      this.track = track;
      this.codec = codec;
      this.config = record.slice(); // the body dies with the next push
      this.isKeyframe = codec === 'h264' ? isKeyframeH264 : isKeyframeH265; // picked once per track
      return FLV_TRACK;
    } catch (e) {
      return this.fail((e as Error).message);
    }
  }

  private frame(codec: VideoCodec, frameType: number, data: Uint8Array, timestampMs: number, cts: number): number {
    if (!this.track) return this.skip('frame before the sequence header');
    if (codec !== this.codec) return this.fail('frame codec differs from the sequence header');
    const au = this.au;
    let n = splitLengthPrefixed(data, this.lengthSize, au.nalus);
    // Some cameras send Annex-B start codes instead of lengths; recognise and accept them.
    if (n === SPLIT_TRUNCATED && data.length > 3 && data[0] === 0 && data[1] === 0 && (data[2] === 1 || (data[2] === 0 && data[3] === 1))) {
      n = splitAnnexB(data, au.nalus);
    }
    if (n < 0) return this.fail(n === SPLIT_TRUNCATED ? 'NAL length runs past the tag' : 'too many NAL units in one frame');
    if (n === 0) return this.skip('frame without NAL units');
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += au.nalus[i]!.length;
    au.bytes = bytes;
    au.dts = timestampMs * TICKS_PER_MS;
    au.pts = (timestampMs + cts) * TICKS_PER_MS;
    const flvKey = frameType === FRAME_KEY || frameType === FRAME_GENERATED_KEY;
    au.keyframe = this.isKeyframe(au.nalus, n);
    if (au.keyframe !== flvKey) this.keyframeMismatches++;
    this.frameType = frameType;
    return FLV_FRAME;
  }
}

/**
 * Audio timestamps in FLV are rounded to ms; ticks within this many ms of the running
 * sample count are snapped to it, so frame durations stay exact (1024 samples).
 */
const AUDIO_SNAP_MS = 2;

/** Audio tags of one stream in, access units out. One instance per stream; reuses `au`. */
export class FlvAudioDemuxer extends FlvTagDemuxer {
  track: AudioTrackInfo | null = null;
  // `au.nalus[0]` is the frame (a view into the last pushed body).
  private format = -1;
  private config: Uint8Array | null = null;
  private samplesPerFrame = AAC_SAMPLES_PER_FRAME;
  private nextDts = -1;

  /** One AUDIODATA body with its tag timestamp in ms. Never throws. */
  push(body: Uint8Array, timestampMs: number): number {
    if (body.length < 1) return this.skip('empty tag');
    const b0 = body[0]!;
    const format = b0 >> 4;
    if (format === SOUND_AAC) {
      if (body.length < 2) return this.fail('AAC tag shorter than 2 bytes');
      if (body[1] === 0) return this.aacConfig(body.subarray(2));
      if (!this.track || this.format !== SOUND_AAC) return this.skip('AAC frame before the sequence header');
      return this.frame(body.subarray(2), timestampMs, this.samplesPerFrame, 0);
    }
    if (format === SOUND_PCMA || format === SOUND_PCMU) {
      // FLV G.711 is 8 kHz whatever SoundRate says (FFmpeg's flvdec does the same).
      const channels = (b0 & 1) + 1;
      let result = 0;
      if (!this.track || this.format !== format || this.track.channels !== channels) {
        this.track = format === SOUND_PCMA ? audioTrackInfoPcma(8000, channels) : audioTrackInfoPcmu(8000, channels);
        this.format = format;
        this.nextDts = -1;
        result = FLV_TRACK;
      }
      const data = body.subarray(1);
      if (data.length < channels) return result === 0 ? this.skip('empty G.711 frame') : result;
      return this.frame(data, timestampMs, Math.floor(data.length / channels), result);
    }
    return this.skip('unsupported sound format');
  }

  // ISO/IEC 14496-3 §1.6.2.1 AudioSpecificConfig as the AAC sequence header.
  private aacConfig(asc: Uint8Array): number {
    if (this.format === SOUND_AAC && sameBytes(this.config, asc)) return this.skip('repeated sequence header');
    try {
      const copy = asc.slice();
      const c = parseAudioSpecificConfig(copy);
      this.track = audioTrackInfoAac(copy);
      this.samplesPerFrame = c.frameLengthFlag ? 960 : AAC_SAMPLES_PER_FRAME;
      this.config = copy;
      this.format = SOUND_AAC;
      this.nextDts = -1;
      return FLV_TRACK;
    } catch (e) {
      return this.fail((e as Error).message);
    }
  }

  private frame(data: Uint8Array, timestampMs: number, samples: number, flags: number): number {
    if (data.length === 0) return flags === 0 ? this.skip('empty frame') : flags;
    const rate = this.track!.sampleRate;
    const ticks = Math.round((timestampMs * rate) / 1000);
    const dts = this.nextDts >= 0 && Math.abs(ticks - this.nextDts) <= (AUDIO_SNAP_MS * rate) / 1000 ? this.nextDts : ticks;
    this.nextDts = dts + samples;
    const au = this.au;
    au.nalus.length = 1;
    au.nalus[0] = data;
    au.bytes = data.length;
    au.keyframe = true;
    au.dts = dts;
    au.pts = dts;
    return flags | FLV_FRAME;
  }
}

/** Signed 24-bit big-endian (CompositionTime, E.4.3.1). */
const si24 = (b: Uint8Array, p: number): number => (((b[p]! << 16) | (b[p + 1]! << 8) | b[p + 2]!) << 8) >> 8;
