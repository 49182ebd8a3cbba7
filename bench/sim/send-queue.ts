// What a simulated camera or publisher has written that the kernel has not taken yet: kept in
// order up to a bound, like a camera's send buffer; past it the caller skips (to a keyframe).

/** The one socket method a SendQueue needs (Bun's TCP sockets: bytes taken, maybe fewer). */
export interface Writable {
  write(b: Uint8Array): number;
}

export class SendQueue {
  #parts: Uint8Array[] = [];
  /** Bytes waiting. */
  bytes = 0;

  constructor(readonly maxBytes = 1 << 20) {}

  /** Writes `b`, or queues it behind what already waits; false (nothing queued) past maxBytes. */
  send(sock: Writable, b: Uint8Array): boolean {
    if (this.bytes > 0) {
      if (this.bytes + b.length > this.maxBytes) return false;
      this.#parts.push(b.slice());
      this.bytes += b.length;
      return true;
    }
    const n = sock.write(b);
    if (n < b.length) {
      const rest = b.slice(Math.max(0, n));
      this.#parts.push(rest);
      this.bytes += rest.length;
    }
    return true;
  }

  /** Writes what waits (on the socket's drain), up to the first short write. */
  flush(sock: Writable): void {
    while (this.#parts.length > 0) {
      const b = this.#parts[0]!;
      const n = Math.max(0, sock.write(b));
      if (n < b.length) {
        this.#parts[0] = b.subarray(n);
        this.bytes -= n;
        return;
      }
      this.#parts.shift();
      this.bytes -= b.length;
    }
  }

  clear(): void {
    this.#parts = [];
    this.bytes = 0;
  }
}
