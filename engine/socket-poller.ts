// Timer-driven reads for TCP sockets whose bytes may wait: each registered socket is read once
// per interval with non-blocking recv(2) into one reused buffer (libc through bun:ffi), the
// sockets' turns spread over the interval's ticks, instead of the event loop waking per socket
// and Bun handing each read over in a fresh buffer.
//
// A socket is paused on Bun's side (`socket.pause()`: its event loop stops reading it) while it
// is registered here, and resumed when it leaves; writes still go through Bun. What a read finds
// is handed to the owner as a view valid during the call only (the RTSP reader copies what it
// keeps). End of stream (recv 0) and errors are reported once, and the socket leaves the poller.
import type { Pointer } from 'bun:ffi';

const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
/** One recv's room: a 4 Mbit/s camera queues ~50 KB in 100 ms. */
const READ_BYTES = 256 << 10;
/** Reads of one socket in one round at most (then the next socket's turn). */
const MAX_READS_PER_ROUND = 16;

export interface PolledSocket {
  readonly fd: number;
  /** Bytes read; `view` is valid during this call only. */
  onData(view: Uint8Array): void;
  /** The peer closed (null) or the socket failed (the reason): the socket has left the poller. */
  onEnd(error: string | null): void;
}

interface Libc {
  recv: (fd: number, buf: Pointer, len: number, flags: number) => number | bigint;
  errno: () => number;
}

let libc: Libc | null | undefined;
let why: string | null = null;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux') {
    why = `not on ${process.platform}`;
    return null;
  }
  try {
    const ffi = require('bun:ffi') as typeof import('bun:ffi');
    const lib = ffi.dlopen('libc.so.6', {
      recv: { args: [ffi.FFIType.i32, ffi.FFIType.ptr, ffi.FFIType.u64, ffi.FFIType.i32], returns: ffi.FFIType.i64_fast },
      __errno_location: { args: [], returns: ffi.FFIType.ptr },
    });
    const errnoAt = lib.symbols.__errno_location as () => Pointer;
    libc = { recv: lib.symbols.recv as Libc['recv'], errno: () => ffi.read.i32(errnoAt(), 0) };
  } catch (err) {
    why = `libc's recv cannot be loaded: ${(err as Error).message}`;
  }
  return libc;
}

/** Why polled reads cannot work here (null: they can, or were not tried yet). */
export function pollerUnavailable(): string | null {
  loadLibc();
  return why;
}

/** The timer's tick: each socket's turn comes every interval, the sockets spread over the ticks. */
const TICK_MS = 10;

export class SocketPoller {
  readonly #sockets = new Set<PolledSocket>();
  /** The same sockets in turn order, and where the next tick starts. */
  #order: PolledSocket[] = [];
  #cursor = 0;
  readonly #intervalMs: number;
  readonly #tickMs: number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #buf: Uint8Array | null = null;
  #bufPtr: Pointer | null = null;
  /** recv calls made and bytes read since the start (diagnostics, tests). */
  reads = 0;
  bytes = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = Math.max(1, intervalMs);
    this.#tickMs = Math.min(TICK_MS, this.#intervalMs);
  }

  get size(): number {
    return this.#sockets.size;
  }

  /** Registers a socket (already paused on Bun's side). False when libc's recv is unavailable. */
  add(s: PolledSocket): boolean {
    const c = loadLibc();
    if (c === null) return false;
    if (this.#buf === null) {
      this.#buf = new Uint8Array(READ_BYTES);
      this.#bufPtr = (require('bun:ffi') as typeof import('bun:ffi')).ptr(this.#buf);
    }
    this.#sockets.add(s);
    this.#order.push(s);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
      this.#timer.unref?.();
    }
    return true;
  }

  /** Unregisters a socket (its owner resumes it on Bun's side). */
  delete(s: PolledSocket): void {
    if (!this.#sockets.delete(s)) return;
    const i = this.#order.indexOf(s);
    if (i >= 0) {
      this.#order.splice(i, 1);
      if (this.#cursor > i) this.#cursor--;
    }
    if (this.#sockets.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** One tick: the share of the sockets whose turn it is. */
  #tick(): void {
    const n = this.#order.length;
    if (n === 0) return;
    let k = Math.ceil((n * this.#tickMs) / this.#intervalMs);
    while (k-- > 0 && this.#order.length > 0) {
      if (this.#cursor >= this.#order.length) this.#cursor = 0;
      const s = this.#order[this.#cursor++]!;
      this.#read(s);
    }
  }

  /** One socket's turn: read until it has nothing more (or MAX_READS_PER_ROUND reads). */
  #read(s: PolledSocket): void {
    const c = libc;
    const buf = this.#buf;
    if (!c || buf === null) return;
    for (let i = 0; i < MAX_READS_PER_ROUND; i++) {
      const n = Number(c.recv(s.fd, this.#bufPtr!, READ_BYTES, MSG_DONTWAIT));
      this.reads++;
      if (n > 0) {
        this.bytes += n;
        s.onData(buf.subarray(0, n));
        if (!this.#sockets.has(s) || n < READ_BYTES) return; // drained (or the owner took it back)
        continue;
      }
      if (n === 0) {
        this.delete(s);
        s.onEnd(null);
        return;
      }
      const e = c.errno();
      if (e === EAGAIN || e === EINTR) return;
      this.delete(s);
      s.onEnd(`recv failed (errno ${e})`);
      return;
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#sockets.clear();
    this.#order = [];
    this.#cursor = 0;
  }
}
