import { describe, expect, test } from 'bun:test';
import { constantTimeEqual, copyBytes } from './bytes.ts';

test('copyBytes copies a range between plain and SharedArrayBuffer-backed arrays, views at offsets, leaving the source as it was', () => {
  const sab = new Uint8Array(new SharedArrayBuffer(64), 8, 48);
  const plain = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
  const before = plain.slice();
  copyBytes(plain, 5, 25, sab, 10);
  expect([...sab.subarray(10, 30)]).toEqual([...plain.subarray(5, 25)]);
  expect(sab[9]).toBe(0);
  expect(sab[30]).toBe(0);
  expect(plain).toEqual(before);
  const back = new Uint8Array(20);
  copyBytes(sab, 10, 30, back, 0);
  expect([...back]).toEqual([...plain.subarray(5, 25)]);
  copyBytes(plain, 7, 7, back, 20); // empty range at the end: nothing
  expect([...back]).toEqual([...plain.subarray(5, 25)]);
});

describe('constantTimeEqual', () => {
  test('equal only for the same bytes and length', () => {
    const a = new Uint8Array([1, 2, 3, 4]);
    expect(constantTimeEqual(a, new Uint8Array([1, 2, 3, 4]))).toBe(true);
    expect(constantTimeEqual(a, new Uint8Array([1, 2, 3, 5]))).toBe(false);
    expect(constantTimeEqual(a, new Uint8Array([0, 2, 3, 4]))).toBe(false);
    expect(constantTimeEqual(a, new Uint8Array([1, 2, 3]))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });
});
