// Leveled logging to stderr/stdout, plus a per-key rate limiter for per-packet problems
// (STYLE 5: count bad input, report it at a bounded rate).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold = ORDER.info;

export function setLogLevel(level: LogLevel): void {
  threshold = ORDER[level];
}

function emit(level: LogLevel, msg: string): void {
  if (ORDER[level] < threshold) return;
  const line = `${new Date().toISOString()} ${level.padEnd(5)} ${msg}`;
  if (ORDER[level] >= ORDER.warn) console.error(line);
  else console.log(line);
}

export const log = {
  debug: (msg: string) => emit('debug', msg),
  info: (msg: string) => emit('info', msg),
  warn: (msg: string) => emit('warn', msg),
  error: (msg: string) => emit('error', msg),
};

/** Logs at most once per `intervalMs` per key, with the count of suppressed messages. */
export class RateLimitedLog {
  #last = new Map<string, { at: number; suppressed: number }>();
  constructor(readonly intervalMs = 1000) {}

  warn(key: string, msg: string, nowMs = Date.now()): void {
    const e = this.#last.get(key);
    if (e !== undefined && nowMs - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    const extra = e !== undefined && e.suppressed > 0 ? ` (+${e.suppressed} similar in the last ${Math.round((nowMs - e.at) / 1000)} s)` : '';
    this.#last.set(key, { at: nowMs, suppressed: 0 });
    log.warn(msg + extra);
  }
}
