// Process figures from /proc: CPU ticks (user+sys of all threads), RSS, peak RSS and PSS,
// for one process or a tree (the multi-process baselines are measured as their sum).
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: /proc/PID/stat counts CPU in these ticks (100 on every Linux we run on). */
export const CLK_TCK = 100;

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** utime + stime of a process (all its threads), in ticks; 0 if it is gone. */
export function cpuTicks(pid: number): number {
  const s = read(`/proc/${pid}/stat`);
  if (s === null) return 0;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return Number(f[11]) + Number(f[12]); // fields 14 and 15
}

function statusKb(pid: number, key: string): number {
  const s = read(`/proc/${pid}/status`);
  const m = s === null ? null : new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s);
  return m ? Number(m[1]) : 0;
}

export const rssKb = (pid: number) => statusKb(pid, 'VmRSS');
export const peakRssKb = (pid: number) => statusKb(pid, 'VmHWM');

/** Proportional set size: shared pages divided among the processes that map them. */
export function pssKb(pid: number): number {
  const s = read(`/proc/${pid}/smaps_rollup`);
  const m = s === null ? null : /^Pss:\s+(\d+) kB/m.exec(s);
  return m ? Number(m[1]) : 0;
}

/** `pid` and all its descendants alive now. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = read(`/proc/${d}/stat`);
    if (s === null) continue;
    const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(d));
    else children.set(ppid, [Number(d)]);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

export interface Sample {
  /** ms since the sampler started. */
  t: number;
  /** % of one core over the last interval. */
  cpuPct: number;
  rssMb: number;
  pssMb: number;
}

/**
 * Samples a set of processes every `intervalMs`: CPU since the previous sample, summed RSS and
 * PSS. CPU of a process that exits between samples is lost (fine for long-lived recorders).
 */
export class ProcSampler {
  readonly samples: Sample[] = [];
  peakRssMb = 0;
  #last = new Map<number, number>();
  #lastAt = 0;
  #t0 = performance.now();
  #cpuTicks = 0;
  #windowStart = -1;

  constructor(readonly pids: () => number[]) {
    this.#prime();
  }

  #prime(): void {
    this.#lastAt = performance.now();
    for (const p of this.pids()) this.#last.set(p, cpuTicks(p));
  }

  /** Starts the window over which meanCpuPct() is computed. */
  startWindow(): void {
    this.#prime();
    this.#cpuTicks = 0;
    this.#windowStart = performance.now();
    this.samples.length = 0;
    this.peakRssMb = 0;
  }

  sample(): Sample {
    const now = performance.now();
    let ticks = 0, rss = 0, pss = 0, peak = 0;
    const seen = new Map<number, number>();
    for (const p of this.pids()) {
      const t = cpuTicks(p);
      ticks += Math.max(0, t - (this.#last.get(p) ?? t));
      seen.set(p, t);
      rss += rssKb(p);
      pss += pssKb(p);
      peak += peakRssKb(p);
    }
    this.#last = seen;
    this.#cpuTicks += ticks;
    const dt = (now - this.#lastAt) / 1000;
    this.#lastAt = now;
    const s = { t: Math.round(now - this.#t0), cpuPct: dt > 0 ? (ticks / CLK_TCK / dt) * 100 : 0, rssMb: rss / 1024, pssMb: pss / 1024 };
    this.peakRssMb = Math.max(this.peakRssMb, peak / 1024, s.rssMb);
    this.samples.push(s);
    return s;
  }

  /** Mean CPU % of one core since startWindow(). */
  meanCpuPct(): number {
    const secs = (this.#lastAt - this.#windowStart) / 1000;
    return secs > 0 ? (this.#cpuTicks / CLK_TCK / secs) * 100 : 0;
  }
}
