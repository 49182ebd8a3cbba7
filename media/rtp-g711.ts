// G.711 RTP depacketizer (RFC 3551 §4.5.14 PCMA/PCMU): one access unit per packet, the
// payload as is, timed by the RTP timestamp.
import { audioTrackInfoPcma, audioTrackInfoPcmu, G711_DEFAULT_RATE } from './g711.ts';
import { RtpDepacketizerBase, type DepacketizerOptions } from './rtp-depacketizer-core.ts';
import type { AudioTrackInfo } from './types.ts';

/** RFC 3551 Table 4 static payload types. */
export const PT_PCMU = 0;
export const PT_PCMA = 8;

export class G711Depacketizer extends RtpDepacketizerBase {
  private readonly info: AudioTrackInfo;

  constructor(
    payloadType: number,
    readonly codec: 'pcma' | 'pcmu',
    sampleRate = G711_DEFAULT_RATE,
    channels = 1,
    options: DepacketizerOptions = {},
  ) {
    super(payloadType, options);
    this.info = codec === 'pcma' ? audioTrackInfoPcma(sampleRate, channels) : audioTrackInfoPcmu(sampleRate, channels);
  }

  get paramsVersion(): number {
    return 0;
  }

  trackInfo(): AudioTrackInfo {
    return this.info;
  }

  protected end(): void {}

  protected payload(b: Uint8Array, s: number, e: number, time: number): void {
    if (e <= s) {
      this.counters.malformed++; // an empty payload carries no samples
      return;
    }
    if (this.arena.addNal(b, s, e)) this.arena.commit(time, true);
  }
}
