// The SIP sockets of the GB28181 platform: one UDP socket and one TCP listener on
// [video.gb28181] local_ip:local_port; datagrams and framed TCP messages go to onMessage, bad
// ones to onBad (which answers 400), and replies go back the way the peer came.
import type { Socket, TCPSocketListener, udp } from 'bun';
import { SipStreamFramer } from '../protocols/sip/framer.ts';
import { parseSipMessage, type SipMessage, type SipParseFailure } from '../protocols/sip/message.ts';

/** TCP connections from devices: one per device; 4096 bounds a connection flood. */
export const MAX_SIP_TCP_CONNECTIONS = 4096;
/** Bytes queued to a TCP peer that does not read: a few dozen SIP messages; beyond, it is cut. */
const MAX_TCP_QUEUE_BYTES = 1 << 20;

/** Where a message came from and where its answer goes. */
export interface SipPeer {
  transport: 'udp' | 'tcp';
  host: string;
  port: number;
  /** The TCP connection (absent for UDP). */
  conn?: TcpConn;
}

export interface TcpConn {
  socket: Socket<TcpConn>;
  framer: SipStreamFramer;
  queue: Uint8Array[];
  queued: number;
  peer: SipPeer;
  closed: boolean;
}

export interface SipTransportOptions {
  host: string;
  port: number;
  onMessage(msg: SipMessage, peer: SipPeer): void;
  onBad(f: SipParseFailure, peer: SipPeer): void;
  onTcpClose?(peer: SipPeer): void;
}

export class SipTransport {
  #udp: udp.Socket<'uint8array'> | null = null;
  #tcp: TCPSocketListener<TcpConn> | null = null;
  readonly #conns = new Set<TcpConn>();
  /** Datagrams sent / refused by a full socket buffer (retransmission covers the loss). */
  udpSendFailures = 0;
  /** Socket errors (ICMP unreachable reported as ECONNREFUSED on send or receive). */
  udpErrors = 0;

  private constructor(private readonly o: SipTransportOptions) {}

  static async start(o: SipTransportOptions): Promise<SipTransport> {
    const t = new SipTransport(o);
    t.#udp = await Bun.udpSocket({
      hostname: o.host,
      port: o.port,
      binaryType: 'uint8array',
      socket: {
        data: (_s, buf, port, addr) => {
          const peer: SipPeer = { transport: 'udp', host: addr, port };
          if (buf.length <= 4 && buf.every((b) => b === 0x0d || b === 0x0a || b === 0)) return; // keep-alive pings
          const r = parseSipMessage(buf, false);
          if (r.ok) o.onMessage(r.msg, peer);
          else o.onBad(r, peer);
        },
        // ICMP port unreachable from a peer that went away surfaces here (ECONNREFUSED): counted, never fatal.
        error: () => { t.udpErrors++; },
      },
    });
    try {
      t.#tcp = Bun.listen<TcpConn>({
        hostname: o.host,
        port: o.port,
        socket: {
          open: (s) => t.#open(s),
          data: (s, d) => t.#data(s.data, d),
          drain: (s) => t.#flush(s.data),
          close: (s) => t.#closed(s.data),
          error: (s) => t.#closed(s.data),
        },
      });
    } catch (e) {
      t.#udp.close();
      throw e;
    }
    return t;
  }

  get port(): number { return this.#udp?.port ?? this.o.port; }
  get tcpConnections(): number { return this.#conns.size; }

  #open(s: Socket<TcpConn>): void {
    const peer: SipPeer = { transport: 'tcp', host: s.remoteAddress, port: (s as unknown as { remotePort?: number }).remotePort ?? 0 };
    const c: TcpConn = { socket: s, framer: new SipStreamFramer(), queue: [], queued: 0, peer, closed: false };
    peer.conn = c;
    s.data = c;
    if (this.#conns.size >= MAX_SIP_TCP_CONNECTIONS) { c.closed = true; s.end(); return; }
    this.#conns.add(c);
  }

  #data(c: TcpConn, d: Uint8Array): void {
    if (c.closed) return;
    for (const r of c.framer.push(d)) {
      if (r.ok) this.o.onMessage(r.msg, c.peer);
      else this.o.onBad(r, c.peer);
    }
    if (c.framer.broken) this.closeConn(c); // after the 400 went out (queued before end)
  }

  #closed(c: TcpConn | undefined): void {
    if (c === undefined || !this.#conns.delete(c)) return;
    c.closed = true;
    this.o.onTcpClose?.(c.peer);
  }

  /** Sends to a peer: UDP to its address, TCP on its connection (false when that is gone). */
  send(peer: SipPeer, bytes: Uint8Array): boolean {
    if (peer.transport === 'udp') {
      let ok = false;
      try {
        ok = this.#udp?.send(bytes, peer.port, peer.host) ?? false;
      } catch {
        this.udpErrors++; // ECONNREFUSED from an earlier ICMP error: the device is gone; timers handle it
      }
      if (!ok) this.udpSendFailures++;
      return ok;
    }
    const c = peer.conn;
    if (c === undefined || c.closed) return false;
    if (c.queued + bytes.length > MAX_TCP_QUEUE_BYTES) { this.closeConn(c); return false; }
    c.queue.push(bytes);
    c.queued += bytes.length;
    this.#flush(c);
    return true;
  }

  #flush(c: TcpConn): void {
    while (c.queue.length > 0) {
      const b = c.queue[0]!;
      const n = Math.max(0, c.socket.write(b));
      c.queued -= n;
      if (n < b.length) { c.queue[0] = b.subarray(n); return; }
      c.queue.shift();
    }
    if (c.closed) c.socket.end();
  }

  closeConn(c: TcpConn): void {
    if (c.closed) return;
    c.closed = true;
    this.#conns.delete(c);
    if (c.queue.length === 0) c.socket.end();
    this.o.onTcpClose?.(c.peer);
  }

  stop(): void {
    this.#udp?.close();
    this.#udp = null;
    this.#tcp?.stop(true);
    this.#tcp = null;
    for (const c of this.#conns) { c.closed = true; c.socket.end(); }
    this.#conns.clear();
  }
}
