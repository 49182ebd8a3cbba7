// What the GB28181 HTTP routes need from the platform without loading it: the error type,
// stream naming and the time-zone offset. The platform itself (SIP, MANSCDP XML) is imported
// only when GB28181 is enabled, which keeps ~15 ms off every start-up.

export type GbErrorCode = 'not-found' | 'offline' | 'timeout' | 'refused' | 'busy' | 'invalid';
export class GbError extends Error {
  override name = 'GbError';
  constructor(readonly code: GbErrorCode, message: string) { super(message); }
}

/** The engine stream a channel's live session becomes. */
export const liveStreamId = (deviceId: string, channelId: string): string => `gb_${deviceId}_${channelId}`;

/** Minutes east of UTC on this host at `ms` (MANSCDP times are local; see README). */
export const localOffsetMin = (ms: number): number => -new Date(ms).getTimezoneOffset();
