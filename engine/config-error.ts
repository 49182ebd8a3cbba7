// ConfigError and the one-line-per-problem message style shared by loading and preflight.

/** One thing wrong with the configuration. */
export interface ConfigProblem {
  /** Key path as written by a user: `http.port`, `video.streams[1].protocol`; "" for the file itself. */
  path: string;
  /** The offending value, already formatted (`70000`, `"ftp"`); undefined when the key is missing. */
  value?: string | undefined;
  /** What is wrong and what is allowed. */
  rule: string;
  /** Where the value came from: a file path, `env FLUX_HTTP_PORT`, or "defaults". */
  origin: string;
}

/** Thrown for any bad configuration; `message` is what main prints before exiting 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options?: ErrorOptions) {
    super(problems.map(formatProblem).join('\n'), options);
    this.problems = problems;
  }
}

/** `config error in /x/config.toml: http.port = 70000: must be an integer from 1 to 65535` */
export function formatProblem(p: ConfigProblem): string {
  const where = p.origin ? `config error in ${p.origin}: ` : 'config error: ';
  if (p.path === '') return where + p.rule;
  const what = p.value === undefined ? `${p.path} is missing` : `${p.path} = ${p.value}`;
  return `${where}${what}: ${p.rule}`;
}

/** Secrets are never echoed back into logs. */
const SECRET_KEYS = new Set(['token', 'password', 'publish_key']);
const MAX_VALUE_CHARS = 80;
const MAX_VALUE_DEPTH = 3;

/** Formats a value the way TOML would show it, bounded in length and depth. */
export function formatValue(v: unknown, path = ''): string {
  // Also hides a misspelt secret (`passwrd = "..."`), which is reported as an unknown key.
  const last = path.slice(path.lastIndexOf('.') + 1);
  if (typeof v === 'string' && v !== '' && closest(last, SECRET_KEYS, 2) !== undefined) return '"***"';
  // Camera URLs carry credentials (rtsp://user:pass@host): keep the user, hide the password.
  const s = show(typeof v === 'string' ? v.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@') : v, 0);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS - 3)}...` : s;
}

function show(v: unknown, depth: number): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 200 ? v.slice(0, 200) : v);
  if (typeof v === 'number') return Number.isNaN(v) ? 'nan' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v);
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v === undefined || v === null) return String(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'invalid date' : v.toISOString();
  if (depth >= MAX_VALUE_DEPTH) return Array.isArray(v) ? '[...]' : '{...}';
  if (Array.isArray(v)) return `[${v.slice(0, 8).map((x) => show(x, depth + 1)).join(', ')}${v.length > 8 ? ', ...' : ''}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).slice(0, 8);
    const parts = keys.map((k) => `${k} = ${show((v as Record<string, unknown>)[k], depth + 1)}`);
    return `{ ${parts.join(', ')} }`;
  }
  return typeof v;
}

/** Levenshtein distance, abandoned early once it exceeds `cap` (keys are short). */
export function editDistance(a: string, b: string, cap = 3): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(d);
      if (d < best) best = d;
    }
    if (best > cap) return cap + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidate within `maxDistance`, or undefined. Ties keep the first. */
export function closest(word: string, candidates: Iterable<string>, maxDistance = 2): string | undefined {
  let best: string | undefined;
  let bestD = maxDistance + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase(), maxDistance);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/**
 * `video.streams[1].protocol` from zod's ['video', 'streams', 1, 'protocol']. Keys that are
 * not TOML bare keys are quoted as TOML would, so a key never breaks the one-line message.
 */
export function joinPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') {
      out += `[${p}]`;
      continue;
    }
    const k = String(p);
    const shown = /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k);
    out += out === '' ? shown : `.${shown}`;
  }
  return out;
}
