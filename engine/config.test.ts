// Tests of loading the configuration: defaults, the example file, env overrides and error messages.
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { formatValue } from './config-error.ts';
import { CONFIG_LEAVES, ConfigError, loadConfig, parseFileSourceUrl } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'flux-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function write(text: string): string {
  const file = join(dir, `c${fileNo++}.toml`);
  writeFileSync(file, text);
  return file;
}

const load = (text: string, env: Record<string, string> = {}) => loadConfig({ argv: ['--config', write(text)], env, cwd: dir });

/** The ConfigError a load throws (fails the test if it throws nothing or something else). */
function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).name).toBe('ConfigError');
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const linesOf = (text: string, env: Record<string, string> = {}) => {
  const file = write(text);
  const e = errorOf(() => loadConfig({ argv: ['--config', file], env, cwd: dir }));
  return { file, lines: e.message.split('\n'), error: e };
};

const EXAMPLE = join(import.meta.dir, '..', 'config.example.toml');

describe('defaults and the example file', () => {
  test('with no --config the embedded defaults load, paths resolved against cwd', () => {
    const l = loadConfig({ argv: ['bun', 'engine/main.ts'], env: {}, cwd: dir });
    expect(l.source).toBe('defaults');
    expect(l.file).toBeNull();
    expect(l.config.http).toEqual({ port: 8080, host: '0.0.0.0', token: '' });
    expect(l.config.log.level).toBe('info');
    expect(l.config.video.storage.base_path).toBe(join(dir, 'data'));
    expect(l.config.video.storage.index_path).toBe(join(dir, 'data', 'index'));
    expect(l.config.video.storage.performance.write_alignment).toBe(4096);
    expect(l.config.video.storage.performance.ring_size_mb).toBe(8);
    expect(l.config.video.demo.enabled).toBe(true);
    expect(l.config.video.streams).toEqual([]);
    expect(l.fromEnv).toEqual({});
  });

  test('config.example.toml loads to exactly the defaults', () => {
    const fromFile = loadConfig({ argv: ['--config', EXAMPLE], env: {}, cwd: dir });
    const defaults = loadConfig({ argv: [], env: {}, cwd: dir });
    expect(fromFile.source).toBe('file');
    expect(fromFile.file).toBe(EXAMPLE);
    expect(fromFile.config).toEqual(defaults.config);
  });

  test('the commented-out example streams in config.example.toml are valid once uncommented', () => {
    const text = readFileSync(EXAMPLE, 'utf8').replace(/^# (\[\[video\.streams\]\]$|(stream_id|protocol|source_url|record|publish_key) = )/gm, '$1');
    const l = load(text);
    expect(l.config.video.streams.map((s) => `${s.stream_id}:${s.protocol}`)).toEqual(['cam1:rtsp', 'lobby:rtmp', 'loop:file']);
  });

  test('config.example.toml spells out every key', () => {
    const doc = parseToml(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;
    for (const leaf of CONFIG_LEAVES) {
      let cur: unknown = doc;
      for (const p of leaf.path) cur = (cur as Record<string, unknown> | undefined)?.[p];
      expect({ key: leaf.key, present: cur !== undefined }).toEqual({ key: leaf.key, present: true });
    }
  });

  test('--config=PATH and a relative --config PATH are read from cwd; relative base_path is not file-relative', () => {
    writeFileSync(join(dir, 'rel.toml'), '[video.storage]\nbase_path = "rec"\nindex_path = "idx"\n');
    const a = loadConfig({ argv: ['--config=rel.toml'], env: {}, cwd: dir });
    const b = loadConfig({ argv: ['--config', 'rel.toml'], env: {}, cwd: '/' + dir.slice(1) });
    expect(a.file).toBe(join(dir, 'rel.toml'));
    expect(b.config).toEqual(a.config);
    const other = loadConfig({ argv: [`--config=${join(dir, 'rel.toml')}`], env: {}, cwd: '/tmp' });
    expect(other.config.video.storage.base_path).toBe('/tmp/rec');
    expect(other.config.video.storage.index_path).toBe('/tmp/idx');
  });

  test('a missing file given explicitly is an error naming it', () => {
    const missing = join(dir, 'nope.toml');
    expect(errorOf(() => loadConfig({ argv: ['--config', missing], env: {} })).message).toBe(
      `config error in ${missing}: file not found`,
    );
    expect(errorOf(() => loadConfig({ argv: ['--config', dir], env: {} })).message).toContain('is a directory');
    expect(errorOf(() => loadConfig({ argv: ['--config'], env: {} })).message).toBe(
      'config error in command line: --config needs a file path',
    );
  });

  test('streams load with their defaults and a file source parses', () => {
    const l = load(`
[[video.streams]]
stream_id = "cam-1.main_2"
protocol = "rtsp"
source_url = "rtsp://u:p@10.0.0.5:554/s1"
[[video.streams]]
stream_id = "loop"
protocol = "file"
source_url = "file:///srv/a%20b.mp4?fps=25"
record = false
[[video.streams]]
stream_id = "obs"
protocol = "rtmp"
publish_key = "k"
`);
    expect(l.config.video.streams).toEqual([
      { stream_id: 'cam-1.main_2', protocol: 'rtsp', source_url: 'rtsp://u:p@10.0.0.5:554/s1', record: true },
      { stream_id: 'loop', protocol: 'file', source_url: 'file:///srv/a%20b.mp4?fps=25', record: false },
      { stream_id: 'obs', protocol: 'rtmp', publish_key: 'k', record: true },
    ]);
    expect(parseFileSourceUrl('file:///srv/a%20b.mp4?fps=25')).toEqual({ path: '/srv/a b.mp4', fps: 25, codec: undefined });
    expect(parseFileSourceUrl('file:///srv/a.h264')).toEqual({ path: '/srv/a.h264', fps: undefined, codec: undefined });
    expect(parseFileSourceUrl('file:///srv/a.bin?fps=29.97&codec=h265')).toEqual({ path: '/srv/a.bin', fps: 29.97, codec: 'h265' });
    for (const bad of ['file:///a?fps=25&fps=30', 'file:///a?codec=vp8', 'file:///a?fps=1e2', 'file:///a#x', 'file:///', 'file:///a%00b']) {
      expect(parseFileSourceUrl(bad)).toBeNull();
    }
  });
});

describe('environment overrides', () => {
  test('FLUX_* variables override numbers, booleans, strings and lists, and beat the file', () => {
    const l = load('[http]\nport = 9000\n[video.keyframe]\nenabled = true\n', {
      FLUX_HTTP_PORT: '9100',
      FLUX_KEYFRAME_ENABLED: 'no',
      FLUX_STORAGE_PERFORMANCE_USE_IO_URING: '0',
      FLUX_PROTOCOLS_WEBRTC: 'YES',
      FLUX_STORAGE_BASE_PATH: '/srv/rec',
      FLUX_STORAGE_RETENTION_DAYS: '0.0001',
      FLUX_STORAGE_PERFORMANCE_WORKER_COUNT: ' 4 ',
      FLUX_STORAGE_DISTRIBUTED_SEEDS: 'nats://a:4222, nats://b:4222,',
      FLUX_LOG_LEVEL: 'debug',
      FLUX_HTTP_TOKEN: '',
      FLUX_HTTP_PROT: '1',
      FLUX_SOMETHING_ELSE: 'x',
      FLUX_FFMPEG: '/usr/bin/ffmpeg', // a setting of the program (NON_CONFIG_ENV), not a config key: no warning
      FLUX_NO_BUNDLE: '1',
      HOME: '/root',
    });
    const c = l.config;
    expect(c.http.port).toBe(9100);
    expect(c.video.keyframe.enabled).toBe(false);
    expect(c.video.storage.performance.use_io_uring).toBe(false);
    expect(c.video.protocols.webrtc).toBe(true);
    expect(c.video.storage.base_path).toBe('/srv/rec');
    expect(c.video.storage.index_path).toBe('/srv/rec/index');
    expect(c.video.storage.retention_days).toBe(0.0001);
    expect(c.video.storage.performance.worker_count).toBe(4);
    expect(c.video.storage.distributed.seeds).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(c.log.level).toBe('debug');
    expect(l.fromEnv).toEqual({
      'http.port': 'FLUX_HTTP_PORT',
      'http.token': 'FLUX_HTTP_TOKEN',
      'log.level': 'FLUX_LOG_LEVEL',
      'video.keyframe.enabled': 'FLUX_KEYFRAME_ENABLED',
      'video.protocols.webrtc': 'FLUX_PROTOCOLS_WEBRTC',
      'video.storage.base_path': 'FLUX_STORAGE_BASE_PATH',
      'video.storage.retention_days': 'FLUX_STORAGE_RETENTION_DAYS',
      'video.storage.performance.worker_count': 'FLUX_STORAGE_PERFORMANCE_WORKER_COUNT',
      'video.storage.performance.use_io_uring': 'FLUX_STORAGE_PERFORMANCE_USE_IO_URING',
      'video.storage.distributed.seeds': 'FLUX_STORAGE_DISTRIBUTED_SEEDS',
    });
    expect(l.unknownEnv).toEqual(['FLUX_HTTP_PROT', 'FLUX_SOMETHING_ELSE']);
  });

  test('every env name follows the one rule and maps to one key', () => {
    const names = CONFIG_LEAVES.map((l) => l.env);
    expect(new Set(names).size).toBe(names.length);
    for (const leaf of CONFIG_LEAVES) {
      const rest = leaf.path[0] === 'video' ? leaf.path.slice(1) : leaf.path;
      expect(leaf.env).toBe(`FLUX_${rest.join('_').toUpperCase()}`);
    }
    expect(names).toContain('FLUX_GB28181_LOCAL_PORT');
    expect(names).toContain('FLUX_STORAGE_PERFORMANCE_WORKER_COUNT');
    expect(CONFIG_LEAVES.some((l) => l.key.startsWith('video.streams'))).toBe(false);
  });

  test('a value that cannot be coerced is an error naming the env var', () => {
    const e = errorOf(() =>
      loadConfig({ argv: [], env: { FLUX_HTTP_PORT: 'abc', FLUX_KEYFRAME_ENABLED: 'maybe', FLUX_LOG_LEVEL: 'loud', FLUX_GB28181_LOCAL_PORT: '' } }),
    );
    expect(e.message.split('\n')).toEqual([
      'config error in env FLUX_HTTP_PORT: http.port = "abc": must be an integer from 1 to 65535',
      'config error in env FLUX_LOG_LEVEL: log.level = "loud": must be one of debug, info, warn, error',
      'config error in env FLUX_KEYFRAME_ENABLED: video.keyframe.enabled = "maybe": must be true or false',
      'config error in env FLUX_GB28181_LOCAL_PORT: video.gb28181.local_port = "": must be an integer from 1 to 65535',
    ]);
  });
});

describe('[rtmp]', () => {
  test('defaults to port 1935 on all interfaces, no global key, unknown ids refused', () => {
    expect(load('').config.rtmp).toEqual({ port: 1935, host: '0.0.0.0', publish_key: '', allow_any: false });
  });

  test('loads from the file and from FLUX_RTMP_* variables, the env winning', () => {
    const l = load('[rtmp]\nport = 1936\npublish_key = "k1"\n', { FLUX_RTMP_PORT: '19350', FLUX_RTMP_ALLOW_ANY: 'yes', FLUX_RTMP_HOST: '127.0.0.1' });
    expect(l.config.rtmp).toEqual({ port: 19350, host: '127.0.0.1', publish_key: 'k1', allow_any: true });
    expect(l.fromEnv).toEqual({ 'rtmp.port': 'FLUX_RTMP_PORT', 'rtmp.host': 'FLUX_RTMP_HOST', 'rtmp.allow_any': 'FLUX_RTMP_ALLOW_ANY' });
    expect(l.config.video.protocols.rtmp).toBe(true); // the on/off switch stays in [video.protocols]
  });

  test('bad values name the key and the rule; the global key is never echoed', () => {
    const { file, lines } = linesOf('[rtmp]\nport = 0\nhost = ""\npublish_key = 5\nallow_any = "yes"\nallowany = 1\n');
    expect(lines).toEqual([
      `config error in ${file}: rtmp.port = 0: must be an integer from 1 to 65535`,
      `config error in ${file}: rtmp.host = "": must be a non-empty string`,
      `config error in ${file}: rtmp.publish_key = 5: must be a string`,
      `config error in ${file}: rtmp.allow_any = "yes": must be true or false`,
      `config error in ${file}: rtmp.allowany = 1: unknown key; did you mean rtmp.allow_any?`,
    ]);
    expect(formatValue('hunter2', 'rtmp.publish_key')).toBe('"***"');
  });

  test('an rtmp stream needs no source_url', () => {
    const l = load('[[video.streams]]\nstream_id = "pub1"\nprotocol = "rtmp"\npublish_key = "SECRET"\n');
    expect(l.config.video.streams).toEqual([{ stream_id: 'pub1', protocol: 'rtmp', publish_key: 'SECRET', record: true }]);
  });
});

describe('validation messages', () => {
  test('a bad port names the file, key, value and the allowed range', () => {
    for (const [value, shown] of [['70000', '70000'], ['"abc"', '"abc"'], ['0', '0'], ['80.5', '80.5'], ['true', 'true']]) {
      const { file, lines } = linesOf(`[http]\nport = ${value}\n`);
      expect(lines).toEqual([`config error in ${file}: http.port = ${shown}: must be an integer from 1 to 65535`]);
    }
  });

  test('every problem is listed, one per line', () => {
    const { file, lines } = linesOf(`
[http]
port = 0
[video.storage]
segment_duration = 0
retention_days = -1
[video.storage.performance]
write_alignment = 1000
[video.gb28181]
domain = "34020"
`);
    expect(lines).toEqual([
      `config error in ${file}: http.port = 0: must be an integer from 1 to 65535`,
      `config error in ${file}: video.storage.retention_days = -1: must be a number greater than 0 and at most 36500`,
      `config error in ${file}: video.storage.segment_duration = 0: must be an integer from 1 to 3600`,
      `config error in ${file}: video.storage.performance.write_alignment = 1000: must be a power of two from 512 to 1048576`,
      `config error in ${file}: video.gb28181.domain = "34020": must be a string of exactly 10 digits`,
    ]);
  });

  test('an unknown protocol lists the allowed ones', () => {
    const { file, lines } = linesOf(`
[[video.streams]]
stream_id = "a"
protocol = "rtmp"
[[video.streams]]
stream_id = "b"
protocol = "ftp"
source_url = "ftp://x"
`);
    expect(lines).toEqual([`config error in ${file}: video.streams[1].protocol = "ftp": must be one of file, rtsp, rtmp, gb28181, webrtc`]);
  });

  test('unknown keys are errors with a "did you mean" when one is close', () => {
    const { file, lines } = linesOf(`
storage = 1
[http]
prot = 8080
[video.storge]
base_path = "x"
[video.keyframe]
level = "x"
frobnicate = 1
[[video.streams]]
stream_id = "a"
protocl = "rtmp"
`);
    expect(lines).toEqual([
      `config error in ${file}: http.prot = 8080: unknown key; did you mean http.port?`,
      `config error in ${file}: video.keyframe.level = "x": unknown key here; did you mean log.level?`,
      `config error in ${file}: video.keyframe.frobnicate = 1: unknown key; allowed in video.keyframe: enabled, interval_seconds, retention_days`,
      `config error in ${file}: video.streams[0].protocol is missing: must be one of file, rtsp, rtmp, gb28181, webrtc`,
      `config error in ${file}: video.streams[0].protocl = "rtmp": unknown key; did you mean video.streams[0].protocol?`,
      `config error in ${file}: video.storge = { base_path = "x" }: unknown key; did you mean video.storage?`,
      `config error in ${file}: storage = 1: unknown key here; did you mean video.storage?`,
    ]);
  });

  test('duplicate stream ids are errors pointing at the first use', () => {
    const { file, lines } = linesOf(`
[[video.streams]]
stream_id = "cam1"
protocol = "rtmp"
[[video.streams]]
stream_id = "cam2"
protocol = "rtmp"
[[video.streams]]
stream_id = "cam1"
protocol = "rtmp"
`);
    expect(lines).toEqual([`config error in ${file}: video.streams[2].stream_id = "cam1": duplicate stream id: already used by video.streams[0]`]);
  });

  test('stream ids that are unsafe as a path component are rejected', () => {
    const bad = ['../x', 'a/b', 'a\\\\b', 'a\\u0001b', 'tab\\there', '', '.hidden', '-x', 'a..b', '..', 'x'.repeat(65), 'caf\\u00e9'];
    for (const id of bad) {
      const { file, lines } = linesOf(`[[video.streams]]\nstream_id = "${id}"\nprotocol = "rtmp"\n`);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(`config error in ${file}: video.streams[0].stream_id = "`);
      expect(lines[0]).toEndWith(': must be 1 to 64 characters of A-Z a-z 0-9 _ . -, start with a letter or digit, and not contain ".."');
    }
    // JSON-style quoting keeps control characters visible in the message.
    expect(linesOf('[[video.streams]]\nstream_id = "a\\u0001b"\nprotocol = "rtmp"\n').lines[0]).toContain('"a\\u0001b"');
    const ok = load(`[[video.streams]]\nstream_id = "${'x'.repeat(64)}"\nprotocol = "rtmp"\n`);
    expect(ok.config.video.streams[0]!.stream_id).toHaveLength(64);
  });

  test('source_url is required and checked for file and rtsp streams', () => {
    const cases: Array<[string, string]> = [
      ['protocol = "file"', 'is missing: required for protocol "file": must be an absolute file URL'],
      ['protocol = "rtsp"', 'is missing: required for protocol "rtsp": must be an rtsp:// or rtsps:// URL with a host'],
      ['protocol = "file"\nsource_url = "file:relative.mp4"', '= "file:relative.mp4": must be an absolute file URL'],
      ['protocol = "file"\nsource_url = "file://host/x.mp4"', '= "file://host/x.mp4": must be an absolute file URL'],
      ['protocol = "file"\nsource_url = "file:///x.mp4?fps=0"', '= "file:///x.mp4?fps=0": must be an absolute file URL'],
      ['protocol = "file"\nsource_url = "file:///x.mp4?fps=241"', '= "file:///x.mp4?fps=241": must be'],
      ['protocol = "file"\nsource_url = "file:///x.mp4?fps=0.5"', '= "file:///x.mp4?fps=0.5": must be'],
      ['protocol = "file"\nsource_url = "file:///x.mp4?speed=2"', '= "file:///x.mp4?speed=2": must be'],
      ['protocol = "rtsp"\nsource_url = "http://cam/x"', '= "http://cam/x": must be an rtsp:// or rtsps:// URL with a host'],
    ];
    for (const [body, expected] of cases) {
      const { lines } = linesOf(`[[video.streams]]\nstream_id = "s"\n${body}\n`);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`video.streams[0].source_url ${expected}`);
    }
  });

  test('a stream whose protocol is switched off is an error', () => {
    const { file, lines } = linesOf('[video.protocols]\nrtmp = false\n[[video.streams]]\nstream_id = "s"\nprotocol = "rtmp"\n');
    expect(lines).toEqual([
      `config error in ${file}: video.streams[0].protocol = "rtmp": protocol is disabled; set video.protocols.rtmp = true or remove the stream`,
    ]);
  });

  test('a key that is not a bare TOML key is quoted so the message stays one line', () => {
    const { file, lines } = linesOf('"a\\nb" = 1\n');
    expect(lines).toEqual([`config error in ${file}: "a\\nb" = 1: unknown key; allowed at the top level: http, log, rtmp, rtsp, video`]);
  });

  test('a TOML syntax error names the file, line and column', () => {
    const { file, lines } = linesOf('# comment\n[http]\nport = = 8080\n');
    expect(lines[0]).toBe(`config error in ${file}: line 3, column 8: invalid TOML: invalid value`);
    expect(lines.slice(1).join('\n')).toContain('port = = 8080');
    expect(lines.slice(1).every((l) => l.startsWith('    '))).toBe(true);
  });

  test('secrets are never echoed back', () => {
    expect(formatValue('hunter2', 'video.gb28181.password')).toBe('"***"');
    expect(formatValue('hunter2', 'video.streams[3].publish_key')).toBe('"***"');
    expect(formatValue('hunter2', 'video.gb28181.passwrd')).toBe('"***"'); // a misspelt secret too
    expect(formatValue('rtsp://admin:hunter2@10.0.0.5/s', 'video.streams[0].source_url')).toBe('"rtsp://admin:***@10.0.0.5/s"');
    expect(formatValue('x'.repeat(500), 'http.host')).toHaveLength(80);
    expect(formatValue(Infinity)).toBe('inf');
  });
});

describe('what a user sees', () => {
  test('main printing err.message and exiting 2 shows one line per problem', () => {
    const file = write('[http]\nport = 70000\n[[video.streams]]\nstream_id = "../etc"\nprotocol = "ftp"\n');
    const script = [
      `import { loadConfig } from ${JSON.stringify(join(import.meta.dir, 'config.ts'))};`,
      'try { loadConfig({ argv: process.argv }); }',
      "catch (err) { if (err instanceof Error && err.name === 'ConfigError') { console.error(err.message); process.exit(2); } throw err; }",
    ].join('\n');
    const bun = join(import.meta.dir, '..', 'node_modules', '.bin', 'bun');
    const r = Bun.spawnSync([bun, '-e', script, '--', '--config', file], {
      env: { PATH: process.env.PATH ?? '', HOME: dir, FLUX_LOG_LEVEL: 'loud' },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr.toString()).toBe(
      [
        `config error in ${file}: http.port = 70000: must be an integer from 1 to 65535`,
        'config error in env FLUX_LOG_LEVEL: log.level = "loud": must be one of debug, info, warn, error',
        `config error in ${file}: video.streams[0].stream_id = "../etc": must be 1 to 64 characters of A-Z a-z 0-9 _ . -, start with a letter or digit, and not contain ".."`,
        `config error in ${file}: video.streams[0].protocol = "ftp": must be one of file, rtsp, rtmp, gb28181, webrtc`,
        '',
      ].join('\n'),
    );
  });
});
