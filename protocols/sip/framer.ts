// Incremental SIP framing over a TCP byte stream (RFC 3261 §18.3): each message ends after its
// Content-Length body; CRLF keep-alives between messages (RFC 5626 §4.4.1) are skipped.
import { findHeadEnd, MAX_SIP_BODY_BYTES, MAX_SIP_HEADER_BYTES, parseSipMessage, type SipParseResult } from './message.ts';

/** Bytes held while waiting for the rest of a message: one head + one body at their caps. */
export const MAX_SIP_FRAMER_BUFFER = MAX_SIP_HEADER_BYTES + MAX_SIP_BODY_BYTES;

/**
 * push() bytes as they arrive; it returns the complete messages (or failures) found. After a
 * failure that breaks the framing (no head end within the cap, bad Content-Length) the framer is
 * `broken`: the adapter answers 400 and closes the connection, since resynchronising a byte
 * stream on a guess would misread whatever follows.
 */
export class SipStreamFramer {
  #buf = new Uint8Array(4096);
  #len = 0;
  broken = false;

  push(chunk: Uint8Array): SipParseResult[] {
    const out: SipParseResult[] = [];
    if (this.broken) return out;
    if (this.#len + chunk.length > this.#buf.length) {
      const need = this.#len + chunk.length;
      if (need > MAX_SIP_FRAMER_BUFFER + 65_536) {
        this.broken = true;
        out.push({ ok: false, reason: `more than ${MAX_SIP_FRAMER_BUFFER} bytes buffered without a complete message`, request: true, headers: [] });
        return out;
      }
      const nb = new Uint8Array(Math.max(need, this.#buf.length * 2));
      nb.set(this.#buf.subarray(0, this.#len));
      this.#buf = nb;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
    let pos = 0;
    for (;;) {
      while (pos < this.#len && (this.#buf[pos] === 0x0d || this.#buf[pos] === 0x0a)) pos++;
      if (pos >= this.#len) break;
      const head = findHeadEnd(this.#buf, pos, Math.min(this.#len, pos + MAX_SIP_HEADER_BYTES));
      if (head === null) {
        if (this.#len - pos > MAX_SIP_HEADER_BYTES) {
          this.broken = true;
          out.push({ ok: false, reason: `no end of headers within ${MAX_SIP_HEADER_BYTES} bytes`, request: true, headers: [] });
        }
        break;
      }
      const cl = contentLength(this.#buf, pos, head.end);
      if (cl === null || cl > MAX_SIP_BODY_BYTES) {
        this.broken = true;
        out.push(parseSipMessage(this.#buf.subarray(pos, head.body), true)); // reports why, with the headers
        if (out.at(-1)!.ok) out[out.length - 1] = { ok: false, reason: cl === null ? 'bad Content-Length' : `body over ${MAX_SIP_BODY_BYTES} bytes`, request: true, headers: [] };
        break;
      }
      if (head.body + cl > this.#len) break; // body still arriving
      out.push(parseSipMessage(this.#buf.subarray(pos, head.body + cl), true));
      pos = head.body + cl;
    }
    if (pos > 0) {
      this.#buf.copyWithin(0, pos, this.#len);
      this.#len -= pos;
    }
    return out;
  }

  /** Bytes held (tests, metrics). */
  get buffered(): number { return this.#len; }
}

/** Content-Length (or `l`) of a head; 0 when absent (RFC 3261 §18.3 requires it on streams; absent = no body), null when malformed. */
function contentLength(b: Uint8Array, from: number, to: number): number | null {
  const text = new TextDecoder('latin1').decode(b.subarray(from, to));
  const m = /(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/i.exec(text);
  if (m === null) return 0;
  const v = m[1]!.trim();
  return /^\d{1,9}$/.test(v) ? Number(v) : null;
}
