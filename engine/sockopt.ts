// Socket options Bun's sockets do not expose, set on their file descriptor through libc
// (bun:ffi, loaded on first use). Linux only; elsewhere, or when libc cannot be opened, the
// setters say false and the socket keeps its defaults.
import type { Pointer } from 'bun:ffi';

const SOL_SOCKET = 1;
/** Linux's SO_RCVLOWAT: the fewest bytes a read (and epoll's readiness) waits for. */
const SO_RCVLOWAT = 18;

type SetSockOpt = (fd: number, level: number, name: number, value: Pointer, len: number) => number;

let setsockopt: SetSockOpt | null | undefined;
/** The option value handed to libc (one int), reused. */
let value: Int32Array | null = null;
let ptrOf: ((a: Int32Array) => Pointer) | null = null;
/** Why libc's setsockopt is unavailable, once known. */
let unavailable: string | null = null;

function load(): SetSockOpt | null {
  if (setsockopt !== undefined) return setsockopt;
  setsockopt = null;
  if (process.platform !== 'linux') {
    unavailable = `not on ${process.platform}`;
    return null;
  }
  try {
    const ffi = require('bun:ffi') as typeof import('bun:ffi');
    const lib = ffi.dlopen('libc.so.6', {
      setsockopt: { args: [ffi.FFIType.i32, ffi.FFIType.i32, ffi.FFIType.i32, ffi.FFIType.ptr, ffi.FFIType.u32], returns: ffi.FFIType.i32 },
    });
    value = new Int32Array(1);
    ptrOf = (a) => ffi.ptr(a);
    setsockopt = lib.symbols.setsockopt as SetSockOpt;
  } catch (err) {
    unavailable = `libc's setsockopt cannot be loaded: ${(err as Error).message}`;
  }
  return setsockopt;
}

/** Why the setters cannot work here (null: they can, or were not tried yet). */
export function sockoptUnavailable(): string | null {
  return unavailable;
}

/**
 * Sets SO_RCVLOWAT: epoll reports the socket readable, and a read returns, only once this many
 * bytes are queued (or the peer closed, or an error). 1 is the kernel's default. False when the
 * option could not be set (no libc, a closed descriptor).
 */
export function setRecvLowWater(fd: number, bytes: number): boolean {
  const f = load();
  if (f === null || !Number.isInteger(fd) || fd < 0) return false;
  value![0] = Math.max(1, Math.min(bytes, 0x7fffffff) | 0);
  return f(fd, SOL_SOCKET, SO_RCVLOWAT, ptrOf!(value!), 4) === 0;
}
