// End to end with the portable writer, the native addon made unavailable (FLUX_NATIVE_PATH
// points at a missing file): the engine must start, say why, and record valid segments.
import { join } from 'node:path';
import { recordingScenario } from './recording-checks.ts';
import { tempDir } from './helpers.ts';

recordingScenario({
  name: 'recording with the portable writer (native addon absent)',
  env: { FLUX_NATIVE_PATH: join(tempDir('no-addon'), 'flux-native.missing.node') },
  writerLog: /writer portable: native addon unavailable: .*flux-native\.missing\.node not found/,
});
