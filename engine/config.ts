// Loads the FLUX video configuration: TOML file (or embedded defaults), FLUX_* env overrides, validation.
//
// Order: `--config PATH` picks the file (none = defaults), the environment overrides single
// keys, then the schema validates the result. Every problem is collected and thrown at once
// as a ConfigError whose message has one line per problem. Relative paths are resolved
// against the process cwd (not the config file's directory). The result keeps TOML's
// snake_case keys; see config-schema.ts for every key and config.example.toml for defaults.
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem, closest, formatValue, joinPath } from './config-error.ts';
import { applyEnvOverrides, type Introspectable, unwrap } from './config-env.ts';
import { type Config, ConfigSchema } from './config-schema.ts';

export { ConfigError, type ConfigProblem } from './config-error.ts';
export { CONFIG_LEAVES } from './config-env.ts';
export { preflight, preflightProblems } from './config-preflight.ts';
export type { Config, StreamConfig, StreamProtocol } from './config-schema.ts';
export { parseFileSourceUrl } from './config-schema.ts';

export interface LoadOptions {
  /** Command-line arguments; `--config PATH` / `--config=PATH` anywhere in them. Default process.argv. */
  argv?: readonly string[];
  /** Default process.env. */
  env?: Record<string, string | undefined>;
  /** Base for the config path and relative storage paths. Default process.cwd(). */
  cwd?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the TOML file read, or null when running on embedded defaults. */
  file: string | null;
  source: 'file' | 'defaults';
  /** key path (`http.port`) -> env var (`FLUX_HTTP_PORT`) for every key the environment set. */
  fromEnv: Record<string, string>;
  /** FLUX_* variables that match no key; ignored, listed so main can warn. */
  unknownEnv: string[];
}

/** A config with 4096 streams is ~600 KB; anything far beyond is not a config file. */
const MAX_CONFIG_BYTES = 4 << 20;

/** Reads `--config` from argv; null when absent. Last one wins. */
export function configPathFromArgv(argv: readonly string[]): string | null {
  let path: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      const next = argv[i + 1];
      if (next === undefined || next === '' || next.startsWith('--')) throw argError('--config needs a file path');
      path = next;
      i++;
    } else if (a.startsWith('--config=')) {
      path = a.slice('--config='.length);
      if (path === '') throw argError('--config= needs a file path');
    }
  }
  return path;
}

const argError = (rule: string) => new ConfigError([{ path: '', rule, origin: 'command line' }]);

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const given = configPathFromArgv(opts.argv ?? process.argv);
  if (given === null) return parseConfigText('', { file: null, env, cwd });
  const file = resolve(cwd, given);
  return parseConfigText(readConfigFile(file), { file, env, cwd });
}

function readConfigFile(file: string): string {
  const fail = (rule: string, cause?: unknown) => new ConfigError([{ path: '', rule, origin: file }], { cause });
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw fail('is a directory, not a TOML file');
    if (st.size > MAX_CONFIG_BYTES) throw fail(`file is ${st.size} bytes; a config file is at most ${MAX_CONFIG_BYTES}`);
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw fail('file not found', e);
    if (code === 'EACCES' || code === 'EPERM') throw fail('file cannot be read: permission denied', e);
    throw fail(`file cannot be read: ${code ?? String(e)}`, e);
  }
}

/** The whole pipeline on TOML text already in memory (loadConfig reads the file, then calls this). */
export function parseConfigText(
  text: string,
  opts: { file: string | null; env?: Record<string, string | undefined>; cwd?: string },
): LoadedConfig {
  const origin = opts.file ?? 'defaults';
  const doc = parseTomlText(text, origin);
  const { doc: merged, fromEnv, unknownEnv } = applyEnvOverrides(doc, opts.env ?? {});
  const originOf = (path: string): string => {
    for (const [key, name] of Object.entries(fromEnv)) {
      if (path === key || path.startsWith(`${key}[`)) return `env ${name}`;
    }
    return origin;
  };

  const problems: ConfigProblem[] = [];
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(...translateIssue(issue, merged, originOf));
  }
  problems.push(...duplicateStreamIds(merged, origin));
  if (result.success) problems.push(...disabledProtocols(result.data, origin));
  if (problems.length > 0) throw new ConfigError(problems);

  const config = result.data!;
  const storage = config.video.storage;
  const cwd = opts.cwd ?? process.cwd();
  storage.base_path = resolve(cwd, storage.base_path);
  storage.index_path = storage.index_path === '' ? join(storage.base_path, 'index') : resolve(cwd, storage.index_path);
  return { config, file: opts.file, source: opts.file === null ? 'defaults' : 'file', fromEnv, unknownEnv };
}

function parseTomlText(text: string, origin: string): Record<string, unknown> {
  try {
    return parseToml(text.startsWith('\uFEFF') ? text.slice(1) : text) as Record<string, unknown>;
  } catch (e) {
    let rule: string;
    if (e instanceof TomlError) {
      const what = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
      const block = e.codeblock.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
      rule = `line ${e.line}, column ${e.column}: invalid TOML: ${what}${block ? `\n${block}` : ''}`;
    } else {
      rule = `invalid TOML: ${e instanceof Error ? e.message : String(e)}`;
    }
    throw new ConfigError([{ path: '', rule, origin }], { cause: e });
  }
}

function getIn(doc: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = doc;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, p)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function translateIssue(issue: z.core.$ZodIssue, doc: unknown, originOf: (path: string) => string): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const full = [...issue.path, key];
      const path = joinPath(full);
      return { path, value: formatValue(getIn(doc, full), path), rule: unknownKeyRule(issue.path, key), origin: originOf(path) };
    });
  }
  const path = joinPath(issue.path);
  const value = getIn(doc, issue.path);
  return [{ path, value: value === undefined ? undefined : formatValue(value, path), rule: issue.message, origin: originOf(path) }];
}

// ---- unknown keys: "did you mean" ----

/** The schema node at a document path (array indices step into the element schema). */
function schemaAt(path: readonly PropertyKey[]): Introspectable | undefined {
  let node: Introspectable | undefined = unwrap(ConfigSchema as unknown as Introspectable);
  for (const p of path) {
    if (!node) return undefined;
    node = typeof p === 'number' ? node.def.element : node.def.shape?.[String(p)];
    if (node) node = unwrap(node);
  }
  return node;
}

/** Every table and key path in the schema (`video.storage`, `video.storage.base_path`, ...). */
const ALL_KEY_PATHS: string[] = [];
(function walk(node: Introspectable, prefix: string) {
  for (const [k, child] of Object.entries(unwrap(node).def.shape ?? {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    ALL_KEY_PATHS.push(path);
    walk(child, path);
  }
})(ConfigSchema as unknown as Introspectable, '');

function unknownKeyRule(tablePath: readonly PropertyKey[], key: string): string {
  const siblings = Object.keys(schemaAt(tablePath)?.def.shape ?? {});
  const near = closest(key, siblings, 2);
  const prefix = joinPath(tablePath);
  if (near !== undefined) return `unknown key; did you mean ${prefix ? `${prefix}.` : ''}${near}?`;
  const elsewhere = ALL_KEY_PATHS.filter((p) => p.slice(p.lastIndexOf('.') + 1).toLowerCase() === key.toLowerCase());
  if (elsewhere.length > 0) return `unknown key here; did you mean ${elsewhere.join(' or ')}?`;
  const where = prefix ? `in ${prefix}` : 'at the top level';
  return `unknown key; allowed ${where}: ${siblings.join(', ')}`;
}

// ---- checks across entries ----

function duplicateStreamIds(doc: unknown, origin: string): ConfigProblem[] {
  const streams = getIn(doc, ['video', 'streams']);
  if (!Array.isArray(streams)) return [];
  const firstAt = new Map<string, number>();
  const out: ConfigProblem[] = [];
  streams.forEach((s: unknown, i) => {
    const id = getIn(s, ['stream_id']);
    if (typeof id !== 'string') return;
    const first = firstAt.get(id);
    if (first === undefined) firstAt.set(id, i);
    else {
      const path = `video.streams[${i}].stream_id`;
      out.push({ path, value: formatValue(id), rule: `duplicate stream id: already used by video.streams[${first}]`, origin });
    }
  });
  return out;
}

/** A stream whose protocol is switched off would silently never run: say so instead. */
function disabledProtocols(config: Config, origin: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  config.video.streams.forEach((s, i) => {
    if (s.protocol === 'file' || config.video.protocols[s.protocol]) return;
    out.push({
      path: `video.streams[${i}].protocol`,
      value: formatValue(s.protocol),
      rule: `protocol is disabled; set video.protocols.${s.protocol} = true or remove the stream`,
      origin,
    });
  });
  return out;
}
