// End to end with the native writer (io_uring, O_DIRECT where the probe allows): the same
// recording scenario and checks as the portable run. Skipped where the addon or io_uring
// is missing (then the engine itself records with the portable writer).
import { describe, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { loadNative } from '../native/index.ts';
import { recordingScenario } from './recording-checks.ts';

const native = loadNative();
const probe = native.addon?.probe(tmpdir()) ?? null;

if (probe?.ioUring) {
  recordingScenario({
    name: 'recording with the native writer',
    toml: '[video.storage.performance]\nuse_io_uring = true\nuse_direct_io = true\n',
    writerLog: probe.directIo ? /writer native: io_uring, O_DIRECT on/ : /writer native: io_uring, O_DIRECT off/,
  });
} else {
  describe('recording with the native writer', () => {
    test.skip(`skipped: ${native.reason ?? probe?.ioUringError ?? 'no io_uring'}`, () => {});
  });
}
