// SIP transactions (RFC 3261 §17): client transactions with the UDP retransmission timers
// A/B (INVITE) and E/F (non-INVITE), driven by tick(nowMs); and the server side's duplicate
// detection, which replays the last response to a retransmitted request.
import { transactionKey } from './build.ts';
import { getHeader, parseCSeq, type SipMessage } from './message.ts';

/** RFC 3261 §17.1.1.1 defaults: RTT estimate, cap of the non-INVITE interval, 64·T1 timeout. */
export const T1_MS = 500;
export const T2_MS = 4000;
export const TIMEOUT_MS = 64 * T1_MS;
/** Pending client transactions: a platform with 1000 devices issues a few per device at once. */
export const MAX_CLIENT_TRANSACTIONS = 8192;
/** Server transactions remembered for dedup (Timer J = 64·T1 over UDP): ~1000 devices × a few. */
export const MAX_SERVER_TRANSACTIONS = 16_384;

export interface ClientTransaction<T> {
  key: string;
  method: string;
  bytes: Uint8Array;
  reliable: boolean;
  /** The caller's context (the destination, a promise to settle...). */
  ctx: T;
  startMs: number;
  nextMs: number;
  intervalMs: number;
  /** INVITE after a provisional response: Timer A stops, Timer B still runs until a final one. */
  proceeding: boolean;
}

export interface TickResult<T> {
  retransmit: ClientTransaction<T>[];
  timedOut: ClientTransaction<T>[];
}

/** Client transactions keyed by top-Via branch + method; bytes are resent as they were sent. */
export class ClientTransactions<T> {
  readonly #tx = new Map<string, ClientTransaction<T>>();

  /** Registers a request just sent; false when the table is full (the caller fails the request). */
  start(req: SipMessage, bytes: Uint8Array, reliable: boolean, ctx: T, nowMs: number): boolean {
    const key = transactionKey(req, req.method);
    if (key === null || this.#tx.size >= MAX_CLIENT_TRANSACTIONS) return false;
    this.#tx.set(key, { key, method: req.method, bytes, reliable, ctx, startMs: nowMs, nextMs: nowMs + T1_MS, intervalMs: T1_MS, proceeding: false });
    return true;
  }

  /**
   * Matches a response (RFC 3261 §17.1.3: branch + CSeq method). Returns the transaction and
   * whether the response was final (the transaction is then gone); null for a stray response.
   */
  onResponse(res: SipMessage): { tx: ClientTransaction<T>; final: boolean } | null {
    const cseq = parseCSeq(getHeader(res, 'cseq') ?? '');
    if (cseq === null) return null;
    const key = transactionKey(res, cseq.method);
    const tx = key === null ? undefined : this.#tx.get(key);
    if (tx === undefined) return null;
    if (res.status < 200) {
      tx.proceeding = true;
      if (tx.method !== 'INVITE') tx.intervalMs = T2_MS; // §17.1.2.2: in Proceeding, E fires every T2
      return { tx, final: false };
    }
    this.#tx.delete(tx.key);
    return { tx, final: true };
  }

  /** Timers A/E (retransmit over UDP, doubling; non-INVITE capped at T2) and B/F (give up after 64·T1). */
  tick(nowMs: number): TickResult<T> {
    const r: TickResult<T> = { retransmit: [], timedOut: [] };
    for (const tx of this.#tx.values()) {
      if (nowMs - tx.startMs >= TIMEOUT_MS) {
        this.#tx.delete(tx.key);
        r.timedOut.push(tx);
        continue;
      }
      if (tx.reliable || nowMs < tx.nextMs || (tx.method === 'INVITE' && tx.proceeding)) continue;
      r.retransmit.push(tx);
      tx.intervalMs = tx.method === 'INVITE' ? tx.intervalMs * 2 : Math.min(tx.intervalMs * 2, T2_MS);
      tx.nextMs = nowMs + tx.intervalMs;
    }
    return r;
  }

  /** Drops every transaction (shutdown); returns them so the caller can fail their requests. */
  clear(): ClientTransaction<T>[] {
    const all = [...this.#tx.values()];
    this.#tx.clear();
    return all;
  }

  get size(): number { return this.#tx.size; }
}

export type ServerVerdict =
  | { kind: 'new'; key: string }
  /** A retransmission: resend `response` when we already answered (null: still working on it). */
  | { kind: 'retransmission'; response: Uint8Array | null }
  /** An ACK for a non-2xx final answer of ours: absorbed by the transaction (§17.2.1). */
  | { kind: 'ack-absorbed' };

/** Server transactions for duplicate detection (RFC 3261 §17.2.3), forgotten after 64·T1. */
export class ServerTransactions {
  readonly #tx = new Map<string, { response: Uint8Array | null; status: number; untilMs: number }>();

  onRequest(req: SipMessage, nowMs: number): ServerVerdict | null {
    const key = transactionKey(req, req.method);
    if (key === null) return null;
    const t = this.#tx.get(key);
    if (req.method === 'ACK') {
      // ACK of a 2xx has a new branch (a new transaction, goes to the dialog); of a non-2xx the INVITE's.
      return t !== undefined && t.status >= 300 ? { kind: 'ack-absorbed' } : { kind: 'new', key };
    }
    if (t !== undefined) return { kind: 'retransmission', response: t.response };
    if (this.#tx.size >= MAX_SERVER_TRANSACTIONS) this.#evictOne();
    this.#tx.set(key, { response: null, status: 0, untilMs: nowMs + TIMEOUT_MS });
    return { kind: 'new', key };
  }

  /** Remembers our final (or provisional) answer for replay. */
  responded(key: string, status: number, bytes: Uint8Array, nowMs: number): void {
    const t = this.#tx.get(key);
    if (t === undefined) return;
    t.response = bytes;
    t.status = status;
    t.untilMs = nowMs + TIMEOUT_MS;
  }

  tick(nowMs: number): void {
    for (const [k, t] of this.#tx) if (nowMs >= t.untilMs) this.#tx.delete(k);
  }

  #evictOne(): void {
    for (const k of this.#tx.keys()) { this.#tx.delete(k); return; }
  }

  get size(): number { return this.#tx.size; }
}
