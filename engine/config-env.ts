// Environment overrides: FLUX_<key path> for every scalar key of the schema, coerced by its type.
//
// One rule: FLUX_ + the key path upper-cased and joined by "_", with the leading "video"
// section dropped (video.storage.base_path -> FLUX_STORAGE_BASE_PATH, http.port ->
// FLUX_HTTP_PORT). Key names contain underscores, so an env name is never split: the
// table below is built by enumerating the schema's leaves, and names are looked up whole.
import type { z } from 'zod';
import { ConfigSchema } from './config-schema.ts';

export type LeafKind = 'number' | 'boolean' | 'string' | 'string[]';

export interface EnvLeaf {
  /** ['video', 'storage', 'base_path'] */
  path: readonly string[];
  /** `video.storage.base_path` */
  key: string;
  /** `FLUX_STORAGE_BASE_PATH` */
  env: string;
  kind: LeafKind;
}

export const ENV_PREFIX = 'FLUX_';
/** FLUX_* variables that are settings of the program, not config keys: not warned about. */
export const NON_CONFIG_ENV = new Set(['FLUX_FFMPEG', 'FLUX_NO_BUNDLE', 'FLUX_TEST_FAULTS', 'FLUX_REGEN_FIXTURES', 'FLUX_SETUP_QUIET']);

/** The slice of a zod v4 schema's `def` that walking the shape needs. */
export interface Introspectable {
  def: { type: string; innerType?: Introspectable; shape?: Record<string, Introspectable>; element?: Introspectable };
}

/** Peels default/prefault/optional wrappers off a schema node. */
export function unwrap(s: Introspectable): Introspectable {
  let cur = s;
  while (cur.def.innerType && ['default', 'prefault', 'optional', 'nullable', 'readonly'].includes(cur.def.type)) {
    cur = cur.def.innerType;
  }
  return cur;
}

function leafKind(s: Introspectable): LeafKind | null {
  const t = s.def.type;
  if (t === 'number' || t === 'int') return 'number';
  if (t === 'boolean') return 'boolean';
  if (t === 'string' || t === 'enum') return 'string';
  if (t === 'array' && s.def.element && unwrap(s.def.element).def.type === 'string') return 'string[]';
  return null; // arrays of tables ([[video.streams]]) have no env form
}

/** Every scalar (and string-array) key of a strict-object schema, depth first, in schema order. */
export function enumerateLeaves(schema: z.ZodType): EnvLeaf[] {
  const out: EnvLeaf[] = [];
  const walk = (node: Introspectable, path: string[]) => {
    const n = unwrap(node);
    if (n.def.type === 'object' && n.def.shape) {
      for (const [k, child] of Object.entries(n.def.shape)) walk(child, [...path, k]);
      return;
    }
    const kind = leafKind(n);
    if (kind === null) return;
    const envPath = path[0] === 'video' ? path.slice(1) : path;
    out.push({ path, key: path.join('.'), env: ENV_PREFIX + envPath.join('_').toUpperCase(), kind });
  };
  walk(schema as unknown as Introspectable, []);
  return out;
}

export const CONFIG_LEAVES: readonly EnvLeaf[] = enumerateLeaves(ConfigSchema);

const BY_ENV = new Map<string, EnvLeaf>();
for (const leaf of CONFIG_LEAVES) {
  // A clash would make one key unreachable; fail at import so a schema edit cannot ship it.
  if (BY_ENV.has(leaf.env)) throw new Error(`env name ${leaf.env} maps to both ${BY_ENV.get(leaf.env)!.key} and ${leaf.key}`);
  BY_ENV.set(leaf.env, leaf);
}

export const envLeaf = (name: string): EnvLeaf | undefined => BY_ENV.get(name);

const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

/**
 * Converts an env string to the leaf's type. A string that cannot be converted is returned
 * unchanged, so validation reports it with the key's own rule and the env var's name.
 */
export function coerceEnv(kind: LeafKind, raw: string): unknown {
  const t = raw.trim();
  switch (kind) {
    case 'number':
      return NUMBER_RE.test(t) ? Number(t) : raw;
    case 'boolean': {
      const w = t.toLowerCase();
      return TRUE_WORDS.has(w) ? true : FALSE_WORDS.has(w) ? false : raw;
    }
    case 'string':
      return raw;
    case 'string[]':
      return t === '' ? [] : t.split(',').map((x) => x.trim()).filter((x) => x !== '');
  }
}

export interface EnvOverrides {
  /** A copy of `doc` with the overrides applied (doc itself is not modified). */
  doc: Record<string, unknown>;
  /** key path -> env var name, for every key the environment set. */
  fromEnv: Record<string, string>;
  /** FLUX_* variables that name no key (sorted), for main to warn about. */
  unknownEnv: string[];
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Applies every FLUX_* override from `env` onto a parsed TOML document. */
export function applyEnvOverrides(doc: Record<string, unknown>, env: Record<string, string | undefined>): EnvOverrides {
  const fromEnv: Record<string, string> = {};
  const unknownEnv: string[] = [];
  let out = doc;
  for (const name of Object.keys(env).sort()) {
    const raw = env[name];
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || NON_CONFIG_ENV.has(name)) continue;
    const leaf = BY_ENV.get(name);
    if (!leaf) {
      unknownEnv.push(name);
      continue;
    }
    const next = setIn(out, leaf.path, coerceEnv(leaf.kind, raw));
    if (next === null) continue; // `http = 5` in the file: validation reports that, not us
    out = next;
    fromEnv[leaf.key] = name;
  }
  return { doc: out, fromEnv, unknownEnv };
}

/** Copy-on-write set along `path`; null when a non-table value is in the way. */
function setIn(obj: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> | null {
  const [head, ...rest] = path;
  if (head === undefined) return obj;
  const copy: Record<string, unknown> = { ...obj };
  if (rest.length === 0) {
    copy[head] = value;
    return copy;
  }
  const child = Object.hasOwn(obj, head) ? obj[head] : undefined;
  if (child !== undefined && !isTable(child)) return null;
  const inner = setIn(child ?? {}, rest, value);
  if (inner === null) return null;
  copy[head] = inner;
  return copy;
}
