// Command-line entry: `bun engine/main.ts [--config PATH]`; `npm start` runs it through
// engine/launch.ts (from the start-up bundle when there is one).
// Exit codes: 0 after a clean stop, 2 for a configuration error, 1 for a start-up failure.
import { ConfigError, loadConfig, preflight, type Config } from './config.ts';
import { DEMO_STREAM_ID, ensureDemoStream } from './demo.ts';
import { Engine } from './engine.ts';
import { log, setLogLevel } from './log.ts';
import { websocket } from 'hono/bun';
import { createApp } from '../http/app.ts';

// No top-level await: the start-up bundle (scripts/bundle.mjs) is CommonJS, which is what
// Bun's bytecode cache supports outside `--compile`.
function fail(code: number, msg: string): never {
  console.error(msg);
  process.exit(code);
}

// Signals are taken from the first line that runs: one that arrives while the engine starts is
// acted on once it is up, so it still stops cleanly (segments closed, index flushed).
let onStop: ((signal: string) => void) | null = null;
let pendingSignal: string | null = null;
const onSignal = (signal: string): void => {
  if (onStop !== null) onStop(signal);
  else pendingSignal ??= signal;
};
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));

async function main(): Promise<void> {
  // Start-up phases, in ms since the process started (performance.now()'s origin).
  const tModules = performance.now();
  let config: Config;
  try {
    const loaded = loadConfig();
    config = loaded.config;
    preflight(config, loaded);
    setLogLevel(config.log.level);
    for (const v of loaded.unknownEnv) log.warn(`ignoring environment variable ${v}: it names no configuration key`);
    log.info(`configuration: ${loaded.file ?? 'embedded defaults'}`);
  } catch (err) {
    if (err instanceof ConfigError) fail(2, err.message);
    throw err;
  }

  const tConfig = performance.now();
  if (config.video.demo.enabled && config.video.streams.length === 0) {
    try {
      config.video.streams.push(await ensureDemoStream(config.video.storage.base_path));
    } catch (err) {
      log.warn(`demo camera disabled: ${(err as Error).message}`);
    }
  }

  // The demo clip is made with ffmpeg on the first start only (seconds); 0 ms after that.
  const tDemo = performance.now();
  let engine: Engine;
  try {
    engine = await Engine.start(config, { allowFaults: process.env.FLUX_TEST_FAULTS === '1' });
  } catch (err) {
    fail(1, `start-up failed: ${(err as Error).message}`);
  }

  const tEngine = performance.now();
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ hostname: config.http.host, port: config.http.port, fetch: createApp(engine).fetch, websocket });
  } catch (err) {
    await engine.stop();
    fail(1, `cannot listen on ${config.http.host}:${config.http.port}: ${(err as Error).message}`);
  }
  const tReady = performance.now();
  const fromBundle = typeof (globalThis as { fluxBundle?: string }).fluxBundle === 'string';
  const ms = (a: number, b: number) => Math.round(b - a);
  log.info(
    `FLUX video ready ${Math.round(tReady)} ms after the process started (modules ${Math.round(tModules)}, config ${ms(tModules, tConfig)}, ` +
      `${tDemo - tConfig >= 1 ? `demo clip ${ms(tConfig, tDemo)}, ` : ''}engine ${ms(tDemo, tEngine)}, http ${ms(tEngine, tReady)}${fromBundle ? ', from the start-up bundle' : ''}): http://${config.http.host}:${server.port}` +
      (engine.streams.has(DEMO_STREAM_ID) ? ` (demo camera recording to ${engine.basePath}/${DEMO_STREAM_ID}/)` : ''),
  );

  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: closing segments and the index`);
    server.stop(true);
    const force = setTimeout(() => fail(1, 'shutdown took longer than 10 s; exiting'), 10_000);
    await engine.stop();
    clearTimeout(force);
    process.exit(0);
  }
  // A stray rejected promise in one stream's code path must not end recording for every camera:
  // log it loudly (it is a bug to fix) and keep running.
  process.on('unhandledRejection', (reason) => {
    log.error(`unhandled rejection (a bug; the engine keeps running): ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  });
  onStop = (signal) => void shutdown(signal);
  if (pendingSignal !== null) onStop(pendingSignal);
}

void main();
