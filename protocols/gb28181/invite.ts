// The SDP of GB28181 INVITEs (GB/T 28181-2016 §C.2, Annex F) on top of media/sdp.ts: the
// platform's offer (live `s=Play`, `s=Playback` with `t=start end`, `y=` SSRC, `f=`) and the
// device's answer read back (where it sends from, over which transport, with which SSRC).
import { gbInviteSdp, parseSdp, serializeSdp, type GbInviteOptions } from '../../media/sdp.ts';
import { ParseError } from '../../media/types.ts';

export const SDP_CONTENT_TYPE = 'APPLICATION/SDP';

/** `f=v/编码格式/分辨率/帧率/码率类型/码率大小a/编码格式/码率大小/采样率`: empty fields = device's choice. */
export const GB_FORMAT_ANY = 'v/////a///';

/** Download speeds a device is asked for (GB/T 28181-2016 §C.2 `a=downloadspeed:`): 1 to 16 times real time. */
export const MAX_DOWNLOAD_SPEED = 16;

export function inviteOffer(o: GbInviteOptions & { downloadSpeed?: number }): Uint8Array {
  const sdp = gbInviteSdp(o);
  sdp.media[0]!.format = GB_FORMAT_ANY;
  if (o.sessionName === 'Download') sdp.media[0]!.attributes.push({ name: 'downloadspeed', value: String(o.downloadSpeed ?? 1) });
  return new TextEncoder().encode(serializeSdp(sdp));
}

export interface DeviceAnswer {
  address: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** y= as sent; null when the device left it out (some do for live). */
  ssrc: string | null;
  /** a=setup of a TCP answer. */
  setup: string | null;
}

export type AnswerResult = { ok: true; answer: DeviceAnswer } | { ok: false; reason: string };

export function readAnswer(body: Uint8Array): AnswerResult {
  try {
    const s = parseSdp(new TextDecoder().decode(body));
    const m = s.media.find((x) => x.type === 'video') ?? s.media[0];
    if (m === undefined) return { ok: false, reason: 'no m= line in the answer' };
    const conn = m.connection ?? s.connection;
    const setup = m.attributes.find((a) => a.name === 'setup')?.value ?? null;
    return {
      ok: true,
      answer: { address: conn?.address ?? '', port: m.port, transport: /TCP/i.test(m.protocol) ? 'tcp' : 'udp', ssrc: m.ssrc, setup },
    };
  } catch (e) {
    return { ok: false, reason: e instanceof ParseError ? e.message : String(e) };
  }
}

/** The offer as a device reads it (the simulator): session name, where to send, transport, SSRC, times. */
export function readOffer(body: Uint8Array): { sessionName: string; address: string; port: number; transport: 'udp' | 'tcp'; ssrc: string | null; start: number; stop: number; uri: string | null; downloadSpeed: number | null } | null {
  try {
    const s = parseSdp(new TextDecoder().decode(body));
    const m = s.media[0];
    if (m === undefined) return null;
    return {
      sessionName: s.sessionName, address: (m.connection ?? s.connection)?.address ?? '', port: m.port,
      transport: /TCP/i.test(m.protocol) ? 'tcp' : 'udp', ssrc: m.ssrc, start: s.timing?.start ?? 0, stop: s.timing?.stop ?? 0, uri: s.uri,
      downloadSpeed: Number(m.attributes.find((a) => a.name === 'downloadspeed')?.value ?? Number.NaN) || null,
    };
  } catch {
    return null;
  }
}
