// System routes: /healthz (always open), /metrics (Prometheus text), /api/video/system (writer,
// disk, CPU and memory, media workers) for the UI's health page.
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import type { Hono } from 'hono';
import type { AppContext } from './app.ts';
import { diskSpace } from './metrics.ts';

export function systemRoutes(app: Hono, { engine, metrics }: AppContext): void {
  app.get('/healthz', (c) =>
    c.json({ ok: true, uptime_ms: Date.now() - engine.startedAt, streams: engine.streams.size, writer: engine.writerKind }),
  );

  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));

  // CPU use between two calls of this route (the first call measures since start-up).
  let lastCpu = { at: performance.now() - (Date.now() - engine.startedAt), usage: { user: 0, system: 0 } };
  app.get('/api/video/system', (c) => {
    const now = performance.now();
    const usage = process.cpuUsage();
    const busyUs = usage.user - lastCpu.usage.user + (usage.system - lastCpu.usage.system);
    const cpuPercent = now > lastCpu.at ? (busyUs / 1000 / (now - lastCpu.at)) * 100 : 0;
    lastCpu = { at: now, usage };
    const mem = process.memoryUsage();
    let recordedBytes = 0, segments = 0;
    for (const id of engine.index.segmentStreamIds()) {
      const s = engine.index.streamStats(id);
      recordedBytes += s.bytes;
      segments += s.count;
    }
    const disk = diskSpace(engine.basePath);
    const states = [...engine.streams.values()].map((e) => e.state);
    const loads = engine.pool.workerLoads();
    return c.json({
      uptime_ms: Date.now() - engine.startedAt,
      writer: { kind: engine.writerKind, native_status: engine.nativeStatus, queue_depth: loads.reduce((a, w) => a + w.writeQueue, 0) },
      keyframes: { stored: engine.snapshots.stored, skipped: engine.snapshots.skipped, failed: engine.snapshots.failed },
      storage: {
        base_path: engine.basePath,
        recorded_bytes: recordedBytes,
        segments,
        disk_total_bytes: disk?.total ?? null,
        disk_free_bytes: disk?.free ?? null,
      },
      process: {
        cpu_percent: Math.round(cpuPercent * 10) / 10,
        cpu_user_ms: Math.round(usage.user / 1000),
        cpu_system_ms: Math.round(usage.system / 1000),
        rss_bytes: mem.rss,
        heap_used_bytes: mem.heapUsed,
        gc_requests: engine.gcPacer.requests,
      },
      host: { cpus: cpus().length, load_average: loadavg(), mem_total_bytes: totalmem(), mem_free_bytes: freemem() },
      workers: loads.map((w) => ({
        index: w.index, alive: w.alive, streams: w.streams, bytes_per_sec: w.bytesPerSec, ring_fill: w.ringFill, write_queue: w.writeQueue, heap_bytes: w.heapBytes,
      })),
      streams: { total: states.length, live: states.filter((s) => s === 'live').length },
    });
  });
}
