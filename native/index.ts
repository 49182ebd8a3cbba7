// Loader of the flux-native addon: finds the .node built for this platform and returns it,
// typed by flux-native.d.ts, or null with the reason. It never throws: the engine falls back
// to the portable writer and logs the reason.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Addon from './flux-native.d.ts';

export type {
  OpenedFile,
  ProbeResult,
  WriterErrorInfo,
  WriterHandle,
  WriterOptions,
  WriterStats,
} from './flux-native.d.ts';

/** The addon's surface, exactly as declared in flux-native.d.ts. */
export type FluxNative = typeof Addon;

/** Environment variable that points the loader at another .node file (tests, packaging). */
export const NATIVE_PATH_ENV = 'FLUX_NATIVE_PATH';

/** Every function of the contract; a loaded module lacking one is refused as a stale build. */
export const NATIVE_EXPORTS = [
  'version',
  'probe',
  'writerCreate',
  'writerOpen',
  'writerTake',
  'writerBlock',
  'writerWrite',
  'writerDrop',
  'writerClose',
  'writerPoll',
  'writerPending',
  'writerStats',
  'writerShutdown',
] as const satisfies readonly (keyof FluxNative)[];
// Compile-time check that NATIVE_EXPORTS lists every function flux-native.d.ts declares.
type Unlisted = Exclude<keyof FluxNative, (typeof NATIVE_EXPORTS)[number]>;
const everyExportListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyExportListed;

export type NativeLoad =
  | { readonly addon: FluxNative; readonly path: string; readonly reason: null }
  | { readonly addon: null; readonly path: string | null; readonly reason: string };

/** The C library flavour napi-rs puts in Linux file names: 'gnu' (glibc) or 'musl'. */
function linuxLibc(): 'gnu' | 'musl' {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
  } catch {
    return 'gnu';
  }
}

/**
 * The platform part of the file name `napi build --platform` writes, e.g. "linux-x64-gnu"
 * in flux-native.linux-x64-gnu.node (the same rule as scripts/build-native.mjs).
 */
export function platformSuffix(
  platform: string = process.platform,
  arch: string = process.arch,
  libc: () => 'gnu' | 'musl' = linuxLibc,
): string {
  if (platform === 'linux') return arch === 'arm' ? `linux-arm-${libc()}eabihf` : `linux-${arch}-${libc()}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** Where the build puts the addon for this platform: native/flux-native.<platform>.node. */
export function defaultNativePath(): string {
  return fileURLToPath(new URL(`./flux-native.${platformSuffix()}.node`, import.meta.url));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads the addon from `path`, else from $FLUX_NATIVE_PATH, else from defaultNativePath().
 * Returns `{ addon: null, reason }` when the file is missing, fails to load, or lacks a
 * declared function; never throws.
 */
export function loadNative(path?: string): NativeLoad {
  let target: string | null = null;
  try {
    const fromEnv = process.env[NATIVE_PATH_ENV];
    target = resolve(path ?? (fromEnv ? fromEnv : defaultNativePath()));
    if (!existsSync(target)) {
      return { addon: null, path: target, reason: `${target} not found (build it with \`npm run build:native\`, which needs cargo)` };
    }
    let mod: unknown;
    try {
      mod = createRequire(import.meta.url)(target);
    } catch (err) {
      return { addon: null, path: target, reason: `cannot load ${target}: ${message(err)}` };
    }
    const exports = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
    const missing = NATIVE_EXPORTS.filter((name) => typeof exports[name] !== 'function');
    if (missing.length > 0) {
      const list = missing.map((n) => `${n}()`).join(', ');
      return { addon: null, path: target, reason: `${target} lacks ${list}: stale build? run \`npm run build:native\`` };
    }
    return { addon: mod as FluxNative, path: target, reason: null };
  } catch (err) {
    return { addon: null, path: target, reason: `flux-native loader failed: ${message(err)}` };
  }
}
