/// <reference lib="dom" />
// Streams page: every stream's state and counters in one dense table (refreshed every 2 s),
// and the form that adds, edits (remove + add under the same id) and removes streams.
import { api, ApiError, enc, type StreamView } from './api.ts';
import { fill, fmtBitrate, fmtCount, h } from './dom.ts';
import type { Page } from './main.ts';

const REFRESH_MS = 2000;

const STATE_WORDS: Record<string, string> = {
  connecting: 'connecting to the source',
  live: 'receiving and recording',
  retrying: 'source lost, reconnecting',
  stopped: 'stopped',
};

export function stateBadge(state: string): HTMLElement {
  return h('span', { class: `state state-${state}`, title: STATE_WORDS[state] ?? state }, state);
}

/** The words an operator reads for a stream's condition: the engine's error, else what the state means. */
function condition(s: StreamView): string {
  if (s.error) return s.error;
  if (s.state === 'live' && s.counters && s.counters.frames === 0) return 'connected, waiting for the first frame';
  if (s.state === 'live' && !s.record) return 'live (not recording)';
  if (s.state === 'retrying') return `${STATE_WORDS.retrying} (${s.reconnects} reconnects)`;
  return STATE_WORDS[s.state] ?? '';
}

interface Form {
  el: HTMLFormElement;
  load(s: StreamView | null): void;
}

function streamForm(onDone: () => void): Form {
  let editing: StreamView | null = null;
  const id = h('input', { name: 'stream_id', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}', placeholder: 'gate-1', autocomplete: 'off' });
  const protocol = h('select', { name: 'protocol' }, h('option', { value: 'rtsp' }, 'RTSP camera (pull)'), h('option', { value: 'rtmp' }, 'RTMP publisher (push)'), h('option', { value: 'file' }, 'File (looped)'));
  const url = h('input', { name: 'source_url', placeholder: 'rtsp://user:pass@192.0.2.10:554/stream', autocomplete: 'off', size: 48 });
  const key = h('input', { name: 'publish_key', placeholder: 'publish key', autocomplete: 'off' });
  const record = h('input', { name: 'record', type: 'checkbox', checked: true });
  const msg = h('span', { class: 'form-msg', role: 'status' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add stream');
  const cancel = h('button', { type: 'button', hidden: true, onclick: () => load(null) }, 'Cancel');
  const urlLabel = h('span', {}, 'Source URL');
  const hint = h('span', { class: 'hint' });
  const urlField = h('label', {}, urlLabel, url);
  const keyField = h('label', {}, 'Publish key', key);

  const sync = () => {
    const p = protocol.value;
    urlField.hidden = p === 'rtmp';
    keyField.hidden = p !== 'rtmp';
    url.required = p !== 'rtmp';
    urlLabel.textContent = p === 'file' ? 'File URL' : 'RTSP URL';
    url.placeholder = p === 'file' ? 'file:///srv/clips/lobby.h264?fps=25' : 'rtsp://user:pass@192.0.2.10:554/stream';
    hint.textContent = p === 'rtmp' ? `publishers send to rtmp://${location.hostname}:<rtmp port>/live/${id.value || '<stream_id>'}?key=<publish key>` : '';
  };
  protocol.addEventListener('change', sync);
  id.addEventListener('input', sync);

  function load(s: StreamView | null): void {
    editing = s;
    id.value = s?.stream_id ?? '';
    id.readOnly = s !== null;
    protocol.value = s?.protocol ?? 'rtsp';
    url.value = s?.source_url ?? '';
    key.value = '';
    record.checked = s?.record ?? true;
    submit.textContent = s ? `Save ${s.stream_id}` : 'Add stream';
    cancel.hidden = s === null;
    msg.textContent = s ? 'Saving restarts the stream (it is removed and added again); recordings are kept.' : '';
    msg.className = 'form-msg';
    sync();
    if (s) id.scrollIntoView({ block: 'nearest' });
  }

  const el = h('form', { class: 'stream-form', 'data-testid': 'stream-form' },
    h('label', {}, 'Stream id', id), h('label', {}, 'Source', protocol), urlField, keyField,
    h('label', { class: 'check' }, record, 'Record'), submit, cancel, hint, msg);
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body: Record<string, unknown> = { stream_id: id.value.trim(), protocol: protocol.value, record: record.checked };
    if (protocol.value === 'rtmp') body.publish_key = key.value;
    else body.source_url = url.value.trim();
    submit.disabled = true;
    msg.className = 'form-msg';
    msg.textContent = editing ? 'restarting…' : 'adding…';
    try {
      if (editing) await api(`/api/video/streams/${enc(editing.stream_id)}`, { method: 'DELETE' });
      await api('/api/video/streams', { method: 'POST', json: body });
      load(null);
      msg.textContent = `${body.stream_id as string} ${editing ? 'saved' : 'added'}`;
      onDone();
    } catch (err) {
      msg.className = 'form-msg error';
      const f = err instanceof ApiError && err.field ? ` (${err.field})` : '';
      msg.textContent = `Refused${f}: ${(err as Error).message}`;
    } finally {
      submit.disabled = false;
    }
  });
  sync();
  return { el, load };
}

export const streamsPage: Page = ({ root, setTitle }) => {
  setTitle('Streams');
  const body = h('tbody');
  const status = h('p', { class: 'muted' }, 'loading…');
  const lastFrames = new Map<string, { t: number; frames: number; fps: number }>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  let gone = false;
  const form = streamForm(() => void refresh());

  async function remove(s: StreamView): Promise<void> {
    if (!confirm(`Remove stream ${s.stream_id}? Its recordings stay until retention deletes them.`)) return;
    try {
      await api(`/api/video/streams/${enc(s.stream_id)}`, { method: 'DELETE' });
    } catch (e) {
      alert(`Could not remove ${s.stream_id}: ${(e as Error).message}`);
    }
    void refresh();
  }

  /** fps from the engine when it sends it, else from the frame counter between two refreshes. */
  function fps(s: StreamView): number | null {
    if (typeof s.fps === 'number') return s.fps;
    const frames = s.counters?.frames;
    if (frames === undefined) return null;
    const now = performance.now();
    const prev = lastFrames.get(s.stream_id);
    const v = prev && now > prev.t && frames >= prev.frames ? ((frames - prev.frames) * 1000) / (now - prev.t) : (prev?.fps ?? null);
    lastFrames.set(s.stream_id, { t: now, frames, fps: v ?? 0 });
    return v;
  }

  function row(s: StreamView): HTMLTableRowElement {
    const c = s.counters;
    const id = enc(s.stream_id);
    const fromConfig = s.origin === 'config';
    const f = fps(s);
    return h('tr', { 'data-stream': s.stream_id, 'data-state': s.state },
      h('td', {}, h('a', { href: `/live/${id}`, class: 'mono' }, s.stream_id)),
      h('td', {}, s.protocol),
      h('td', { class: 'src mono', title: s.source_url ?? '' }, s.source_url ?? (s.protocol === 'rtmp' ? 'push' : '—')),
      h('td', {}, stateBadge(s.state)),
      h('td', { class: 'num' }, c ? fmtBitrate(c.bitrate_bps) : '—'),
      h('td', { class: 'num' }, f === null ? '—' : f.toFixed(1)),
      h('td', { class: 'num' }, fmtCount(c?.frames)),
      h('td', { class: `num${c && c.lost_packets > 0 ? ' warn' : ''}` }, fmtCount(c?.lost_packets)),
      h('td', { class: `num${c && c.dropped_frames + c.ring_drops > 0 ? ' warn' : ''}`, title: c ? `${c.dropped_frames} in the pipeline, ${c.ring_drops} at a full ring, ${c.preview_drops} preview` : '' }, c ? fmtCount(c.dropped_frames + c.ring_drops) : '—'),
      h('td', { class: 'num' }, s.viewers === undefined ? '—' : String(s.viewers)),
      h('td', { class: 'num' }, String(s.reconnects)),
      h('td', { class: `cond${s.error ? ' error' : ''}` }, condition(s)),
      h('td', { class: 'actions' },
        h('a', { href: `/live/${id}` }, 'live'),
        h('a', { href: `/recordings/${id}` }, 'recordings'),
        h('a', { href: `/snapshots/${id}` }, 'snapshots'),
        h('button', { type: 'button', class: 'link', disabled: fromConfig, title: fromConfig ? 'defined in config.toml: edit it there' : '', onclick: () => form.load(s) }, 'edit'),
        h('button', { type: 'button', class: 'link danger', disabled: fromConfig, title: fromConfig ? 'defined in config.toml: remove it there' : '', onclick: () => void remove(s) }, 'remove'),
      ),
    );
  }

  async function refresh(): Promise<void> {
    if (timer !== null) clearTimeout(timer);
    try {
      const { streams } = await api<{ streams: StreamView[] }>('/api/video/streams');
      if (gone) return;
      streams.sort((a, b) => a.stream_id.localeCompare(b.stream_id));
      fill(body, ...streams.map(row));
      if (streams.length === 0) body.append(h('tr', {}, h('td', { colspan: 13, class: 'muted' }, 'No streams yet: add one below.')));
      const live = streams.filter((s) => s.state === 'live').length;
      status.className = 'muted';
      status.textContent = `${streams.length} streams, ${live} live · refreshed ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (gone) return;
      status.className = 'error';
      status.textContent = `Cannot read the streams: ${(e as Error).message}`;
    }
    if (!gone) timer = setTimeout(() => void refresh(), REFRESH_MS);
  }

  const head = ['Stream', 'Proto', 'Source', 'State', 'Bitrate', 'fps', 'Frames', 'Lost', 'Dropped', 'Viewers', 'Reconn.', 'Condition', ''];
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Streams'), status),
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid-table streams', 'data-testid': 'streams' },
      h('thead', {}, h('tr', {}, ...head.map((t) => h('th', {}, t)))), body)),
    h('h2', {}, 'Add or edit a stream'),
    form.el,
  );
  void refresh();
  return () => {
    gone = true;
    if (timer !== null) clearTimeout(timer);
  };
};
