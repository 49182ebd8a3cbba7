// RTSP/1.0 messages over one TCP byte stream: a request serializer and an incremental reader of
// responses, server-to-client requests and interleaved binary frames (RFC 2326 §6, §7, §10.12).

/** The largest start line + header block we accept: real DESCRIBE replies carry < 2 KiB of headers; ×8. */
export const MAX_HEADER_BYTES = 16 << 10;
/** Header lines per message: cameras send about 10; ×6. */
export const MAX_HEADER_COUNT = 64;
/** Message bodies (SDP): 4 tracks with large sprop-parameter-sets stay < 8 KiB; ×8. */
export const MAX_BODY_BYTES = 64 << 10;

/** A parsed RTSP response (status line) or server-to-client request (request line). */
export interface RtspMessage {
  kind: 'response' | 'request';
  /** Responses: status code and reason phrase; 0 and '' for requests. */
  status: number;
  reason: string;
  /** Requests: method and Request-URI; '' for responses. */
  method: string;
  uri: string;
  /** Header lines in order, names lower-cased, values trimmed, folded lines joined. */
  headers: [string, string][];
  /** A copy of the body (Content-Length bytes); owned by the message. */
  body: Uint8Array;
}

/** First value of a header (case-insensitive name), or undefined. */
export function getHeader(m: RtspMessage, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of m.headers) if (k === n) return v;
  return undefined;
}

/** Every value of a header, in order (e.g. several WWW-Authenticate challenges). */
export function getHeaders(m: RtspMessage, name: string): string[] {
  const n = name.toLowerCase();
  const out: string[] = [];
  for (const [k, v] of m.headers) if (k === n) out.push(v);
  return out;
}

export interface RtspRequest {
  method: string;
  uri: string;
  cseq: number;
  /** Extra headers in order; CSeq is written first, Content-Length added when there is a body. */
  headers: [string, string][];
  body?: Uint8Array;
}

const enc = new TextEncoder();
const FORBIDDEN = /[\r\n\0]/;

/** RFC 2326 §6: `Method SP Request-URI SP RTSP/1.0 CRLF *(header CRLF) CRLF [body]`. Throws on CR/LF/NUL in any field (a bug in the caller). */
export function serializeRequest(r: RtspRequest): Uint8Array {
  if (!/^[A-Z_]+$/.test(r.method) || /[\s]/.test(r.uri) || FORBIDDEN.test(r.uri)) {
    throw new TypeError(`invalid RTSP request line: ${JSON.stringify(r.method)} ${JSON.stringify(r.uri)}`);
  }
  let head = `${r.method} ${r.uri} RTSP/1.0\r\nCSeq: ${r.cseq}\r\n`;
  for (const [k, v] of r.headers) {
    if (FORBIDDEN.test(k) || FORBIDDEN.test(v) || k.includes(':')) throw new TypeError(`invalid RTSP header ${JSON.stringify(k)}`);
    head += `${k}: ${v}\r\n`;
  }
  const body = r.body ?? new Uint8Array(0);
  if (body.length > 0) head += `Content-Length: ${body.length}\r\n`;
  head += '\r\n';
  const h = enc.encode(head);
  if (body.length === 0) return h;
  const out = new Uint8Array(h.length + body.length);
  out.set(h);
  out.set(body, h.length);
  return out;
}

/** RFC 2326 §7.1 status line and CSeq only: the client's answer to a server-to-client request. */
export function serializeResponse(status: number, reason: string, cseq: number): Uint8Array {
  return enc.encode(`RTSP/1.0 ${status} ${reason.replace(/[\r\n]/g, ' ')}\r\nCSeq: ${cseq}\r\n\r\n`);
}

/* RFC 2326 §10.12 interleaved binary data:
    0                   1                   2                   3
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |  '$' (0x24)   |    channel    |        length (u16, BE)       |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |                     data (length bytes) ...                   |                    */
const DOLLAR = 0x24;
const INTERLEAVED_HEADER = 4;

/** One interleaved frame `$ channel len data` (e.g. an RTCP receiver report to send). */
export function encodeInterleaved(channel: number, data: Uint8Array): Uint8Array {
  if (channel < 0 || channel > 255 || data.length > 0xffff) throw new RangeError(`interleaved frame: channel ${channel}, ${data.length} bytes`);
  const out = new Uint8Array(INTERLEAVED_HEADER + data.length);
  out[0] = DOLLAR;
  out[1] = channel;
  out[2] = data.length >> 8;
  out[3] = data.length & 0xff;
  out.set(data, INTERLEAVED_HEADER);
  return out;
}

/** Where the reader delivers what it finds. Called synchronously from `push`. */
export interface RtspSink {
  /** An interleaved frame. `data` is a view into the pushed chunk or the reader's buffer: valid only during this call. */
  onInterleaved(channel: number, data: Uint8Array): void;
  onMessage(m: RtspMessage): void;
}

/** Why the reader gave up; after an error the stream is out of sync and the reader ignores further input. */
export type ReadError =
  | 'header-too-large'
  | 'too-many-headers'
  | 'bad-start-line'
  | 'bad-header-line'
  | 'bad-content-length'
  | 'body-too-large';

const latin1 = new TextDecoder('latin1');
const CR = 0x0d;
const LF = 0x0a;

/**
 * Incremental reader. Frames wholly inside a pushed chunk are delivered as views of that chunk
 * (no copy); only an item that straddles two chunks is copied, and only the bytes it needs.
 */
export class RtspReader {
  /** Set once the stream is unreadable; `push` then returns false without reading. */
  error: ReadError | null = null;
  /** The reason in words, with the numbers. */
  errorDetail = '';
  private pending = new Uint8Array(4096);
  private pendingLen = 0;

  constructor(private readonly sink: RtspSink) {}

  /** Reads every complete item in `chunk` and keeps the rest. Returns false once the stream is in error. */
  push(chunk: Uint8Array): boolean {
    if (this.error !== null) return false;
    const n = chunk.length;
    let off = 0;
    // First finish the item left over from the previous chunk.
    while (this.pendingLen > 0 && off < n) {
      const p = this.pending;
      if (p[0] === DOLLAR) {
        const want = this.pendingLen < INTERLEAVED_HEADER ? INTERLEAVED_HEADER : INTERLEAVED_HEADER + ((p[2]! << 8) | p[3]!);
        const take = Math.min(want - this.pendingLen, n - off);
        this.append(chunk, off, take);
        off += take;
        if (this.pendingLen >= INTERLEAVED_HEADER && this.pendingLen === INTERLEAVED_HEADER + ((p[2]! << 8) | p[3]!)) {
          this.readItem(this.pending, 0, this.pendingLen);
          this.pendingLen = 0;
        }
      } else {
        const room = MAX_HEADER_BYTES + MAX_BODY_BYTES - this.pendingLen;
        const take = Math.min(n - off, room);
        if (take <= 0) return this.fail('body-too-large', `message larger than ${MAX_HEADER_BYTES + MAX_BODY_BYTES} bytes`);
        const before = this.pendingLen;
        this.append(chunk, off, take);
        const r = this.readItem(this.pending, 0, this.pendingLen);
        if (r < 0) return false;
        if (r === 0) off += take;
        else {
          off += r - before; // the message ended inside this chunk: the rest is read from the chunk itself
          this.pendingLen = 0;
        }
      }
    }
    while (off < n) {
      const r = this.readItem(chunk, off, n);
      if (r < 0) return false;
      if (r === 0) {
        this.append(chunk, off, n - off);
        break;
      }
      off += r;
    }
    return true;
  }

  /** Bytes held back waiting for the rest of an item. */
  get buffered(): number {
    return this.pendingLen;
  }

  private append(src: Uint8Array, off: number, len: number): void {
    if (len <= 0) return;
    if (this.pendingLen + len > this.pending.length) {
      const grown = new Uint8Array(Math.max(this.pending.length * 2, this.pendingLen + len));
      grown.set(this.pending.subarray(0, this.pendingLen));
      this.pending = grown;
    }
    this.pending.set(src.subarray(off, off + len), this.pendingLen);
    this.pendingLen += len;
  }

  private fail(e: ReadError, detail: string): boolean {
    this.error = e;
    this.errorDetail = detail;
    this.pendingLen = 0;
    return false;
  }

  /** Reads one item at b[start..end): returns bytes consumed, 0 if incomplete, -1 on error. */
  private readItem(b: Uint8Array, start: number, end: number): number {
    const c = b[start]!;
    if (c === DOLLAR) {
      if (end - start < INTERLEAVED_HEADER) return 0;
      const len = (b[start + 2]! << 8) | b[start + 3]!;
      if (end - start < INTERLEAVED_HEADER + len) return 0;
      this.sink.onInterleaved(b[start + 1]!, b.subarray(start + INTERLEAVED_HEADER, start + INTERLEAVED_HEADER + len));
      return INTERLEAVED_HEADER + len;
    }
    if (c === CR || c === LF) return 1; // stray line ends between messages
    return this.readMessage(b, start, end);
  }

  // RFC 2326 §7.1 / §6.1: start line, header lines, an empty line, then Content-Length bytes.
  // Bare LF line ends are accepted (seen from small embedded servers).
  private readMessage(b: Uint8Array, start: number, end: number): number {
    const limit = Math.min(end, start + MAX_HEADER_BYTES);
    let headEnd = -1; // index just past the empty line
    for (let i = start; i < limit; i++) {
      if (b[i] !== LF) continue;
      if (i + 1 < end && b[i + 1] === LF) { headEnd = i + 2; break; }
      if (i + 2 < end && b[i + 1] === CR && b[i + 2] === LF) { headEnd = i + 3; break; }
    }
    if (headEnd < 0) {
      if (end - start >= MAX_HEADER_BYTES) {
        this.fail('header-too-large', `no end of headers within ${MAX_HEADER_BYTES} bytes`);
        return -1;
      }
      return 0;
    }
    const lines = latin1.decode(b.subarray(start, headEnd)).split('\n');
    const m: RtspMessage = { kind: 'response', status: 0, reason: '', method: '', uri: '', headers: [], body: EMPTY };
    const first = lines[0]!.replace(/\r$/, '');
    const resp = /^RTSP\/1\.\d+ +(\d{3})(?: +(.*))?$/.exec(first);
    if (resp) {
      m.status = Number(resp[1]);
      m.reason = resp[2] ?? '';
    } else {
      const req = /^([A-Z_]{1,32}) +(\S{1,4096}) +RTSP\/1\.\d+$/.exec(first);
      if (!req) {
        this.fail('bad-start-line', `bad start line ${JSON.stringify(first.slice(0, 64))}`);
        return -1;
      }
      m.kind = 'request';
      m.method = req[1]!;
      m.uri = req[2]!;
    }
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!.replace(/\r$/, '');
      if (line === '') continue;
      if ((line[0] === ' ' || line[0] === '\t') && m.headers.length > 0) {
        m.headers[m.headers.length - 1]![1] += ' ' + line.trim(); // folded continuation (RFC 2616 §2.2)
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) {
        this.fail('bad-header-line', `bad header line ${JSON.stringify(line.slice(0, 64))}`);
        return -1;
      }
      if (m.headers.length >= MAX_HEADER_COUNT) {
        this.fail('too-many-headers', `more than ${MAX_HEADER_COUNT} header lines`);
        return -1;
      }
      m.headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
    }
    const cl = getHeader(m, 'content-length');
    let bodyLen = 0;
    if (cl !== undefined) {
      if (!/^\d{1,9}$/.test(cl)) {
        this.fail('bad-content-length', `bad Content-Length ${JSON.stringify(cl.slice(0, 32))}`);
        return -1;
      }
      bodyLen = Number(cl);
      if (bodyLen > MAX_BODY_BYTES) {
        this.fail('body-too-large', `Content-Length ${bodyLen} > ${MAX_BODY_BYTES}`);
        return -1;
      }
    }
    if (end - headEnd < bodyLen) return 0;
    if (bodyLen > 0) m.body = b.slice(headEnd, headEnd + bodyLen);
    this.sink.onMessage(m);
    return headEnd + bodyLen - start;
  }
}

const EMPTY = new Uint8Array(0);
