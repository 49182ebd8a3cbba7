// Start-up checks of the storage paths, before anything is opened or created.
//
// For base_path and index_path: no NUL, not an existing non-directory, and the path itself
// (if it exists) or its nearest existing ancestor is a directory this process may write
// into (W_OK | X_OK, which is what creating the missing directories needs). Nothing is created.
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigProblem, formatValue } from './config-error.ts';
import type { Config } from './config-schema.ts';

/** Where the config came from, to name the file or env var in messages (a LoadedConfig fits). */
export interface PreflightOrigin {
  file: string | null;
  fromEnv?: Record<string, string>;
}

/** The problems with the configured paths; empty when start-up may proceed. */
export function preflightProblems(config: Config, origin?: PreflightOrigin): ConfigProblem[] {
  const storage = config.video.storage;
  const paths: Array<[string, string]> = [['video.storage.base_path', storage.base_path]];
  // "" means <base_path>/index (loadConfig fills it in; a hand-built Config may not).
  paths.push(['video.storage.index_path', storage.index_path === '' ? resolve(storage.base_path, 'index') : storage.index_path]);
  const out: ConfigProblem[] = [];
  for (const [key, p] of paths) {
    const rule = checkDirectoryPath(p);
    if (rule === null) continue;
    const env = origin?.fromEnv?.[key];
    out.push({ path: key, value: formatValue(p), rule, origin: env ? `env ${env}` : (origin?.file ?? '') });
  }
  return out;
}

/** Throws ConfigError listing every path problem. */
export function preflight(config: Config, origin?: PreflightOrigin): void {
  const problems = preflightProblems(config, origin);
  if (problems.length > 0) throw new ConfigError(problems);
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? 'error';

/** Null when `path` is, or can be created as, a writable directory; otherwise why not. */
export function checkDirectoryPath(path: string): string | null {
  if (path.includes('\0')) return 'must not contain a NUL character';
  const abs = resolve(path);
  let p = abs;
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = errCode(e);
      // ENOTDIR: a file further up; EACCES: an unsearchable directory further up.
      // Keep climbing and report the culprit by name.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') {
        const up = dirname(p);
        if (up === p) return `no existing ancestor directory of ${abs}`;
        p = up;
        continue;
      }
      return `${p} cannot be inspected (${code})`;
    }
    if (!isDir) return p === abs ? `${p} exists and is not a directory` : `${p} is not a directory`;
    try {
      accessSync(p, constants.W_OK | constants.X_OK);
    } catch (e) {
      const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
      return `${p} is not writable by this process${uid}: ${errCode(e)}`;
    }
    return null;
  }
}
