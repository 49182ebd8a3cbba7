// The periodic keyframe's per-stream phase: stable for a stream, spread over the interval.
import { expect, test } from 'bun:test';
import { keyframePhaseMs } from './pipeline.ts';

test('keyframe phases are stable per stream and spread 100 cameras over the interval', () => {
  expect(keyframePhaseMs('cam1', 10_000)).toBe(keyframePhaseMs('cam1', 10_000));
  const seconds = new Set<number>();
  for (let i = 1; i <= 100; i++) {
    const p = keyframePhaseMs(`cam${i}`, 10_000);
    expect(p).toBeGreaterThanOrEqual(0);
    expect(p).toBeLessThan(10_000);
    seconds.add(Math.floor(p / 1000));
  }
  expect(seconds.size).toBe(10); // every second of the interval gets some
});
