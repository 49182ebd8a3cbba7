// Server side of the RTMP simple handshake (C0/C1/C2 in, S0/S1/S2 out) as a byte-fed state machine.
//
// Adobe RTMP specification 1.0 §5.2. The "complex" (digest, Flash Player 9) handshake is
// not implemented: a client only checks S1/S2 digests when it plays a stream. FFmpeg's
// rtmp_handshake() validates the server digest only when `is_input` (playing) and S1's
// version byte is >= 3; a publisher sends C1 with a digest but then simply echoes S1 as
// C2. librtmp (OBS) uses the simple handshake unless RTMPE or SWF verification is set,
// and only warns when S2 differs from C1. So S1 carries a zero version (bytes 4-7), which
// tells digest-aware clients that the server does the simple handshake.

/** C0/S0 version byte: plain RTMP. 6, 8, 9 (RTMPE) and anything else are refused. */
export const RTMP_VERSION = 3;
/** Size of C1/C2/S1/S2 (§5.2.3). */
export const HANDSHAKE_BYTES = 1536;

export const HS_NEED_MORE = 0;
export const HS_REPLY = 1;
export const HS_DONE = 2;
export const HS_ERROR = -1;
export type HandshakeStep = typeof HS_NEED_MORE | typeof HS_REPLY | typeof HS_DONE | typeof HS_ERROR;

const enum State { C0, C1, C2, Done, Failed }

/**
 * Feed bytes with `push(b, at)`; it consumes what belongs to the handshake and returns:
 * HS_REPLY once C0+C1 are in (`reply` then holds S0+S1+S2, 3073 bytes, owned by the
 * caller), HS_DONE when C2 is complete (bytes after it, `consumed` onwards, are chunk
 * stream), HS_NEED_MORE, or HS_ERROR (`error` says why). Call again after HS_REPLY: the
 * same buffer may already hold C2.
 */
export class ServerHandshake {
  private state = State.C0;
  /** C1 then C2 accumulate here (one copy; only when a read splits them). */
  private readonly c = new Uint8Array(HANDSHAKE_BYTES);
  private have = 0;
  /** Bytes of the last `push` buffer consumed, counting from its start. */
  consumed = 0;
  reply: Uint8Array | null = null;
  error = '';
  /** The version C0 asked for, for diagnostics. */
  clientVersion = -1;
  /** Bytes 4-7 of C1: zero for a simple-handshake client, a Flash/ffmpeg version otherwise. */
  clientC1Version = 0;
  /** Whether C2 echoed S1's random bytes (informational: clients in the wild do not always). */
  c2EchoesS1 = false;

  /**
   * @param serverTimeMs S1 time field (§5.2.3: any epoch; we use ms since session start).
   * @param fillRandom fills S1's 1528 random bytes (§5.2.3 "should be random").
   */
  constructor(
    private readonly serverTimeMs: number,
    private readonly fillRandom: (b: Uint8Array) => void,
  ) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  push(b: Uint8Array, at: number): HandshakeStep {
    let p = at;
    if (this.state === State.C0) {
      if (p >= b.length) return this.need(p);
      this.clientVersion = b[p++]!;
      if (this.clientVersion !== RTMP_VERSION) return this.fail(`C0 version ${this.clientVersion}, want ${RTMP_VERSION}`, p);
      this.state = State.C1;
    }
    if (this.state === State.C1) {
      p = this.fill(b, p);
      if (this.have < HANDSHAKE_BYTES) return this.need(p);
      this.reply = this.buildReply();
      this.have = 0;
      this.state = State.C2;
      this.consumed = p;
      return HS_REPLY;
    }
    if (this.state === State.C2) {
      p = this.fill(b, p);
      if (this.have < HANDSHAKE_BYTES) return this.need(p);
      const s1 = this.reply;
      if (s1) this.c2EchoesS1 = equal(this.c.subarray(8), s1.subarray(1 + 8, 1 + HANDSHAKE_BYTES));
      this.reply = null;
      this.state = State.Done;
      this.consumed = p;
      return HS_DONE;
    }
    this.consumed = p;
    return this.state === State.Done ? HS_DONE : HS_ERROR;
  }

  private fill(b: Uint8Array, p: number): number {
    const n = Math.min(HANDSHAKE_BYTES - this.have, b.length - p);
    if (n > 0) this.c.set(b.subarray(p, p + n), this.have);
    this.have += n;
    return p + n;
  }

  private need(p: number): HandshakeStep {
    this.consumed = p;
    return HS_NEED_MORE;
  }

  private fail(msg: string, p: number): HandshakeStep {
    this.state = State.Failed;
    this.error = msg;
    this.consumed = p;
    return HS_ERROR;
  }

  // §5.2.2-§5.2.4: S0 = version; S1 = time, zero, random; S2 = C1 echoed (time, time2, random).
  private buildReply(): Uint8Array {
    const c1 = this.c;
    this.clientC1Version = ((c1[4]! << 24) | (c1[5]! << 16) | (c1[6]! << 8) | c1[7]!) >>> 0;
    const out = new Uint8Array(1 + 2 * HANDSHAKE_BYTES);
    out[0] = RTMP_VERSION;
    const t = this.serverTimeMs >>> 0;
    out[1] = t >>> 24;
    out[2] = (t >>> 16) & 0xff;
    out[3] = (t >>> 8) & 0xff;
    out[4] = t & 0xff;
    // bytes 5..8 (S1 "zero") stay 0: simple handshake
    this.fillRandom(out.subarray(9, 1 + HANDSHAKE_BYTES));
    // S2 echoes C1 byte for byte: librtmp compares all 1536 bytes and warns otherwise.
    out.set(c1, 1 + HANDSHAKE_BYTES);
    return out;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Default S1 filler: Web Crypto random bytes (no I/O; available in Bun and Node). */
export function cryptoRandom(b: Uint8Array): void {
  for (let i = 0; i < b.length; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(b.length, i + 65536)));
}
