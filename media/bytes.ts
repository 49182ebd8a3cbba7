// Copying a byte range between buffers without making a view of it: the hot paths copy every
// RTP payload and NAL unit, and `dst.set(src.subarray(a, b))` allocates a typed-array object
// per copy (a garbage object per packet, and ~2x the time for a 1400-byte payload).
// Buffer.prototype.copy (Node's API, native in Bun and Node) copies a range of any
// Uint8Array, SharedArrayBuffer-backed or not, with no allocation.

type CopyFn = (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;
const nativeCopy: CopyFn | null = typeof Buffer === 'function' ? (Buffer.prototype.copy as unknown as CopyFn) : null;

/** Copies `src[from, to)` into `dst` at `at`; the caller has checked that it fits. */
export function copyBytes(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): void {
  if (nativeCopy !== null) nativeCopy.call(src, dst, at, from, to);
  else dst.set(src.subarray(from, to), at);
}

/**
 * Equality of two byte strings in time that depends only on their lengths (for secrets: keys,
 * tokens, digests). Written here rather than imported from node:crypto, whose first import costs
 * ~10 ms of the engine's start-up.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
