import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortableWriter } from './writer.ts';

describe('PortableWriter', () => {
  test('an append of more parts than writev takes (a fragment in many staging blocks) writes every byte in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flux-portable-'));
    try {
      const w = new PortableWriter();
      const f = w.open(join(dir, 'a.mp4'));
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 3000; i++) parts.push(new Uint8Array(1 + (i % 7)).fill(i & 0xff));
      f.append([new Uint8Array([1, 2, 3])]);
      f.append(parts);
      f.append(parts, 5);
      f.close(false);
      await w.drain();
      const want = Buffer.concat([new Uint8Array([1, 2, 3]), ...parts, ...parts.slice(0, 5)]);
      expect(f.size).toBe(want.length);
      expect(Buffer.compare(readFileSync(join(dir, 'a.mp4')), want)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
