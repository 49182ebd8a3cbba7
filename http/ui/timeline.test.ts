// spansOf: the timeline's recorded spans from the segment listing.
import { expect, test } from 'bun:test';
import { SPAN_JOIN_MS, spansOf } from './timeline.ts';

const seg = (a: number, b: number) => ({ start_ms: a, end_ms: b });

test('touching segments join into one span; a pause longer than the tolerance starts a new one', () => {
  expect(spansOf([])).toEqual([]);
  expect(spansOf([seg(0, 2000), seg(2000, 4000), seg(4000 + SPAN_JOIN_MS, 6000)])).toEqual([{ start: 0, end: 6000 }]);
  expect(spansOf([seg(0, 2000), seg(2000 + SPAN_JOIN_MS + 1, 5000), seg(15_000, 17_000)])).toEqual([
    { start: 0, end: 2000 }, { start: 3001, end: 5000 }, { start: 15_000, end: 17_000 },
  ]);
  // An overlapping (rewritten) segment never shrinks a span.
  expect(spansOf([seg(0, 5000), seg(1000, 3000)])).toEqual([{ start: 0, end: 5000 }]);
});
