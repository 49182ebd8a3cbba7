import { describe, expect, test } from 'bun:test';
import { buildRequest, buildResponse } from './build.ts';
import { ackFor, confirmDialog, dialogRequest, matchesDialog, newInvite } from './dialog.ts';
import { getHeader, parseCSeq, parseNameAddr, type SipMessage } from './message.ts';
import { ClientTransactions, ServerTransactions, T1_MS, T2_MS, TIMEOUT_MS } from './transaction.ts';

const req = (method: string, branch = 'z9hG4bKabc') =>
  buildRequest({ method, uri: 'sip:1@d', via: { transport: 'UDP', host: 'h', port: 5060, branch }, from: { uri: 'sip:p@d', tag: 't' }, to: { uri: 'sip:1@d' }, callId: 'c', cseq: 1 });
const BYTES = new Uint8Array([1]);

function retransmitTimes(method: string, untilMs: number, provisionalAt = -1): number[] {
  const tx = new ClientTransactions<null>();
  const r = req(method);
  tx.start(r, BYTES, false, null, 0);
  const times: number[] = [];
  for (let t = 0; t <= untilMs; t += 50) {
    if (t === provisionalAt) tx.onResponse(buildResponse(r, 100, 'Trying'));
    for (const _ of tx.tick(t).retransmit) times.push(t);
  }
  return times;
}

describe('SIP client transactions', () => {
  test('Timer E: non-INVITE retransmits at T1 doubling, capped at T2', () => {
    expect(retransmitTimes('MESSAGE', 20_000)).toEqual([500, 1500, 3500, 7500, 11500, 15500, 19500]);
  });

  test('Timer A: INVITE retransmits doubling until a provisional answer', () => {
    expect(retransmitTimes('INVITE', 20_000)).toEqual([500, 1500, 3500, 7500, 15500]);
    expect(retransmitTimes('INVITE', 20_000, 1000)).toEqual([500]);
  });

  test('Timer B/F: gives up after 64·T1; a final answer ends it first', () => {
    const tx = new ClientTransactions<string>();
    tx.start(req('MESSAGE'), BYTES, false, 'a', 0);
    tx.start(req('INVITE', 'z9hG4bKinv'), BYTES, false, 'b', 0);
    const done = tx.onResponse(buildResponse(req('MESSAGE'), 200, 'OK'));
    expect(done?.final).toBe(true);
    expect(done?.tx.ctx).toBe('a');
    expect(tx.tick(TIMEOUT_MS - 1).timedOut).toEqual([]);
    expect(tx.tick(TIMEOUT_MS).timedOut.map((t) => t.ctx)).toEqual(['b']);
    expect(tx.size).toBe(0);
  });

  test('reliable transports are never retransmitted but still time out', () => {
    const tx = new ClientTransactions<null>();
    tx.start(req('MESSAGE'), BYTES, true, null, 0);
    expect(tx.tick(T2_MS * 4).retransmit).toEqual([]);
    expect(tx.tick(TIMEOUT_MS).timedOut.length).toBe(1);
  });

  test('a response with another branch or method matches nothing', () => {
    const tx = new ClientTransactions<null>();
    tx.start(req('MESSAGE'), BYTES, false, null, 0);
    expect(tx.onResponse(buildResponse(req('MESSAGE', 'z9hG4bKother'), 200, 'OK'))).toBeNull();
    expect(tx.onResponse(buildResponse(req('INFO'), 200, 'OK'))).toBeNull();
    expect(T1_MS).toBe(500);
  });
});

describe('SIP server transactions', () => {
  test('a retransmitted request gets the same answer again; expires after 64·T1', () => {
    const s = new ServerTransactions();
    const v = s.onRequest(req('REGISTER'), 0);
    expect(v?.kind).toBe('new');
    expect(s.onRequest(req('REGISTER'), 10)).toEqual({ kind: 'retransmission', response: null });
    if (v?.kind !== 'new') throw new Error();
    s.responded(v.key, 200, new Uint8Array([9]), 20);
    expect(s.onRequest(req('REGISTER'), 30)).toEqual({ kind: 'retransmission', response: new Uint8Array([9]) });
    s.tick(20 + TIMEOUT_MS);
    expect(s.onRequest(req('REGISTER'), 20 + TIMEOUT_MS)?.kind).toBe('new');
  });

  test('the ACK of a non-2xx is absorbed; the ACK of a 2xx (new branch) is new', () => {
    const s = new ServerTransactions();
    const v = s.onRequest(req('INVITE'), 0);
    if (v?.kind !== 'new') throw new Error();
    s.responded(v.key, 486, BYTES, 0);
    expect(s.onRequest(req('ACK'), 1)).toEqual({ kind: 'ack-absorbed' });
    expect(s.onRequest(req('ACK', 'z9hG4bKnew'), 1)?.kind).toBe('new');
  });
});

describe('INVITE dialogs', () => {
  const local = { transport: 'UDP' as const, host: '10.0.0.1', port: 5060, uri: 'sip:p@10.0.0.1:5060' };
  function dialog() {
    const { req: invite, dialog: d } = newInvite({ local, requestUri: 'sip:ch@10.0.0.2:5060', to: 'sip:ch@d', contentType: 'APPLICATION/SDP', body: new Uint8Array(0) });
    const ok = buildResponse(invite, 200, 'OK', { toTag: 'dev', extra: [['contact', '<sip:ch@10.0.0.2:5070>']] });
    confirmDialog(d, ok);
    return { invite, d };
  }

  test('ACK reuses the INVITE CSeq with a new branch; BYE and INFO go to the Contact with the next CSeq', () => {
    const { invite, d } = dialog();
    const ack = ackFor(d, local);
    expect(getHeader(ack, 'cseq')).toBe('1 ACK');
    expect(getHeader(ack, 'via')).not.toBe(getHeader(invite, 'via'));
    expect(ack.uri).toBe('sip:ch@10.0.0.2:5070');
    expect(parseNameAddr(getHeader(ack, 'to')!)!.params.get('tag')).toBe('dev');
    const info = dialogRequest(d, local, 'INFO');
    const bye = dialogRequest(d, local, 'BYE');
    expect([parseCSeq(getHeader(info, 'cseq')!)!.seq, parseCSeq(getHeader(bye, 'cseq')!)!.seq]).toEqual([2, 3]);
    expect(getHeader(bye, 'call-id')).toBe(getHeader(invite, 'call-id'));
  });

  test('a BYE from the device matches by Call-ID and both tags', () => {
    const { d } = dialog();
    const bye = (fromTag: string, toTag: string, callId = d.callId): SipMessage =>
      buildRequest({ method: 'BYE', uri: 'sip:p@d', via: { transport: 'UDP', host: 'h', port: 1 }, from: { uri: 'sip:ch@d', tag: fromTag }, to: { uri: 'sip:p@d', tag: toTag }, callId, cseq: 5 });
    expect(matchesDialog(d, bye('dev', 'wrong'))).toBe(false);
    expect(matchesDialog(d, bye('other', d.localTag))).toBe(false);
    expect(matchesDialog(d, bye('dev', d.localTag, 'nope'))).toBe(false);
    expect(matchesDialog(d, bye('dev', d.localTag))).toBe(true);
  });
});
