// Fuzz test: random and mutated TOML text and env values never raise anything but ConfigError.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseConfigText } from './config.ts';
import { isValidStreamId } from './config-schema.ts';
import { CONFIG_LEAVES } from './config-env.ts';
import { mulberry32 } from '../media/testdata/test-helpers.ts';


const EXAMPLE = readFileSync(join(import.meta.dir, '..', 'config.example.toml'), 'utf8');
const SEEDS = [
  EXAMPLE,
  EXAMPLE.replace(/^# (\[\[video\.streams\]\]$|(stream_id|protocol|source_url|record|publish_key) = )/gm, '$1'),
  '[http]\nport = 8080\n[[video.streams]]\nstream_id = "a"\nprotocol = "file"\nsource_url = "file:///x.mp4?fps=30"\n',
  'video.storage.performance = { worker_count = 2, write_alignment = 512 }\nvideo.storage.distributed.seeds = ["a", "b"]\n',
  'http.port = 1\nlog = { level = "warn" }\n[video.storage]\nretention_days = 0.5\nbase_path = "/tmp/x"\n',
];
const TOKENS = ['[', ']', '[[', ']]', '=', '"', "'", '"""', '\n', '#', '.', ',', '{', '}', '\\', '\\u0000', '0', '-1', '1e9',
  'inf', 'nan', 'true', '1979-05-27T07:32:00Z', 'video', 'streams', 'http', 'port', '__proto__', 'constructor', '\0', '\u00e9', ' ',
  '"x\\ny" = 1\n', '[[video.streams]]\n'];

function mutate(text: string, rnd: () => number): string {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  let s = text;
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 6)) {
      case 0: // truncate
        s = s.slice(0, at);
        break;
      case 1: // flip one character's low bits
        if (s.length > 0) s = s.slice(0, at) + String.fromCharCode((s.charCodeAt(at) ^ (1 << Math.floor(rnd() * 7))) & 0x7f) + s.slice(at + 1);
        break;
      case 2: // insert a TOML-significant token
        s = s.slice(0, at) + pick(TOKENS) + s.slice(at);
        break;
      case 3: // delete a run
        s = s.slice(0, at) + s.slice(at + Math.floor(rnd() * 40));
        break;
      case 4: { // splice in a slice of another seed
        const other = pick(SEEDS);
        const from = Math.floor(rnd() * other.length);
        s = s.slice(0, at) + other.slice(from, from + Math.floor(rnd() * 200)) + s.slice(at);
        break;
      }
      default: { // duplicate or swap lines
        const lines = s.split('\n');
        const a = Math.floor(rnd() * lines.length);
        const b = Math.floor(rnd() * lines.length);
        lines.splice(b, 0, lines[a]!);
        s = lines.join('\n');
      }
    }
  }
  return s;
}

function randomText(rnd: () => number): string {
  const len = Math.floor(rnd() * 300);
  let s = '';
  for (let i = 0; i < len; i++) {
    s += rnd() < 0.3 ? TOKENS[Math.floor(rnd() * TOKENS.length)] : String.fromCharCode(Math.floor(rnd() * 128));
  }
  return s;
}

const FILE = '/fuzz/config.toml';

/** Runs one input; asserts the invariants of either outcome. */
function check(text: string, env: Record<string, string>): 'ok' | 'error' {
  let loaded;
  try {
    loaded = parseConfigText(text, { file: FILE, env, cwd: '/srv' });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`non-ConfigError for ${JSON.stringify(text)}: ${String(e)}`, { cause: e });
    expect(e.problems.length).toBeGreaterThan(0);
    for (const line of e.message.split('\n')) {
      // Every problem line names where it came from; TOML code excerpts are indented.
      if (!line.startsWith(`config error in ${FILE}: `) && !line.startsWith('config error in env FLUX_') && !line.startsWith('    ')) {
        throw new Error(`unexpected message line ${JSON.stringify(line)}`);
      }
    }
    return 'error';
  }
  const c = loaded.config;
  expect(Number.isInteger(c.http.port) && c.http.port >= 1 && c.http.port <= 65535).toBe(true);
  expect(c.video.storage.base_path.startsWith('/')).toBe(true);
  const ids = c.video.streams.map((s) => s.stream_id);
  expect(ids.every(isValidStreamId)).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
  return 'ok';
}

describe('config fuzz', () => {
  test('mutated and random TOML text only ever fails with ConfigError', () => {
    const rnd = mulberry32(0xf1c5);
    const seen = { ok: 0, error: 0 };
    for (let i = 0; i < 4000; i++) {
      const text = i % 4 === 3 ? randomText(rnd) : mutate(SEEDS[i % SEEDS.length]!, rnd);
      seen[check(text, {})]++;
    }
    // Both outcomes are exercised: the mutations are not all fatal, nor all harmless.
    expect(seen.ok).toBeGreaterThan(100);
    expect(seen.error).toBeGreaterThan(1000);
  });

  test('random env values for every key only ever fail with ConfigError naming the variable', () => {
    const rnd = mulberry32(7);
    const values = ['', ' ', '0', '1', '-1', '65536', '1.5', '1e400', 'NaN', 'true', 'no', 'abc', ',', 'a,,b', '\0', '../x', '0x10', 'a\nb'];
    for (let i = 0; i < 1500; i++) {
      const env: Record<string, string> = {};
      for (let k = 0; k < 3; k++) {
        const leaf = CONFIG_LEAVES[Math.floor(rnd() * CONFIG_LEAVES.length)]!;
        env[leaf.env] = values[Math.floor(rnd() * values.length)]!;
      }
      check(i % 2 === 0 ? '' : mutate(SEEDS[0]!, rnd), env);
    }
  });
});
