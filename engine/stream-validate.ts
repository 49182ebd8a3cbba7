// Validation of a stream definition that arrives over the API, by the very schema that checks
// [[video.streams]] in config.toml, so both paths accept and refuse the same streams.
import { ConfigSchema, type Config, type StreamConfig } from './config-schema.ts';

export type StreamCheck = { ok: true; stream: StreamConfig } | { ok: false; field: string; error: string };

const STREAM_KEYS = ['stream_id', 'protocol', 'source_url', 'record', 'publish_key'];

/**
 * Checks `input` (parsed JSON) as one [[video.streams]] entry of a config with the given
 * [video.protocols] switches: the same rules, defaults and "protocol is disabled" check as
 * a config file. On failure, names the first offending field and its rule.
 */
export function validateStream(input: unknown, protocols: Config['video']['protocols']): StreamCheck {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, field: '', error: 'the body must be a JSON object {stream_id, protocol, source_url, record?, publish_key?}' };
  }
  const r = ConfigSchema.safeParse({ video: { streams: [input] } });
  if (!r.success) {
    const issue = r.error.issues[0]!;
    // Paths are ['video', 'streams', 0, field, ...]; shorter ones concern the entry as a whole.
    const rest = issue.path.slice(3).map(String);
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      return { ok: false, field: key, error: `unknown field; allowed: ${STREAM_KEYS.join(', ')}` };
    }
    const field = rest.join('.');
    return { ok: false, field, error: field === '' ? issue.message : `${field} ${issue.message}` };
  }
  const stream = r.data.video.streams[0]!;
  if (stream.protocol !== 'file' && !protocols[stream.protocol]) {
    return { ok: false, field: 'protocol', error: `protocol ${stream.protocol} is disabled; set video.protocols.${stream.protocol} = true in config.toml` };
  }
  return { ok: true, stream };
}
