// SSRC of GB28181 media (GB/T 28181-2016 Annex F): 10 decimal digits, the first 0 for realtime
// and 1 for history (playback/download), then digits 4-8 of the 10-digit SIP domain, then a
// 4-digit sequence. The value fits 32 bits (at most 1 999 999 999).

export interface SsrcParts { history: boolean; domainPart: string; seq: number }

export function makeSsrc(history: boolean, domain: string, seq: number): string {
  if (!/^\d{10}$/.test(domain)) throw new RangeError(`domain ${domain} is not 10 digits`);
  return `${history ? 1 : 0}${domain.slice(3, 8)}${String(seq % 10_000).padStart(4, '0')}`;
}

export function parseSsrc(s: string): SsrcParts | null {
  const m = /^([01])(\d{5})(\d{4})$/.exec(s);
  return m === null ? null : { history: m[1] === '1', domainPart: m[2]!, seq: Number(m[3]) };
}

/** Hands out sequence numbers 1-9999 skipping those in use (an open session holds its SSRC). */
export class SsrcAllocator {
  #next = 1;
  readonly #used = new Set<string>();
  constructor(readonly domain: string) {}

  allocate(history: boolean): string | null {
    for (let i = 0; i < 9999; i++) {
      const seq = this.#next;
      this.#next = (this.#next % 9999) + 1;
      const s = makeSsrc(history, this.domain, seq);
      if (!this.#used.has(s)) {
        this.#used.add(s);
        return s;
      }
    }
    return null;
  }

  release(s: string): void { this.#used.delete(s); }
}
