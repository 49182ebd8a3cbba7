// INVITE dialogs (RFC 3261 §12-§15) from the caller's side (the platform inviting a device):
// the INVITE, the dialog made by its 2xx, the ACK, in-dialog requests (INFO, BYE), and
// matching a BYE the device sends.
import { buildRequest, newBranch, newTag, uuidV4 } from './build.ts';
import { getHeader, parseCSeq, parseNameAddr, type SipMessage } from './message.ts';

export interface LocalContact { transport: 'UDP' | 'TCP'; host: string; port: number; uri: string }

export interface Dialog {
  callId: string;
  localUri: string;
  localTag: string;
  remoteUri: string;
  /** Set by the 2xx; '' before. */
  remoteTag: string;
  /** Where in-dialog requests go: the 2xx Contact (else the INVITE's Request-URI). */
  remoteTarget: string;
  /** CSeq of the INVITE (the ACK reuses it) and the last one we used. */
  inviteSeq: number;
  localSeq: number;
  /** Highest CSeq seen from the remote side (requests at or below it are old). */
  remoteSeq: number;
  state: 'early' | 'confirmed' | 'terminated';
}

export function newInvite(o: {
  local: LocalContact;
  requestUri: string;
  to: string;
  extra?: [string, string][];
  contentType: string;
  body: Uint8Array;
}): { req: SipMessage; dialog: Dialog } {
  const dialog: Dialog = {
    callId: uuidV4(), localUri: o.local.uri, localTag: newTag(), remoteUri: o.to, remoteTag: '', remoteTarget: o.requestUri,
    inviteSeq: 1, localSeq: 1, remoteSeq: -1, state: 'early',
  };
  const req = buildRequest({
    method: 'INVITE', uri: o.requestUri, via: { transport: o.local.transport, host: o.local.host, port: o.local.port },
    from: { uri: dialog.localUri, tag: dialog.localTag }, to: { uri: o.to }, callId: dialog.callId, cseq: 1,
    contact: o.local.uri, contentType: o.contentType, body: o.body, extra: o.extra,
  });
  return { req, dialog };
}

/** Confirms the dialog from a 2xx to its INVITE (RFC 3261 §12.1.2): remote tag and target. */
export function confirmDialog(d: Dialog, res: SipMessage): void {
  const to = parseNameAddr(getHeader(res, 'to') ?? '');
  d.remoteTag = to?.params.get('tag') ?? '';
  const contact = parseNameAddr(getHeader(res, 'contact') ?? '');
  if (contact !== null) d.remoteTarget = contact.uri;
  d.state = 'confirmed';
}

/** RFC 3261 §13.2.2.4: the ACK of a 2xx is its own transaction (new branch) with the INVITE's CSeq number. */
export function ackFor(d: Dialog, local: LocalContact): SipMessage {
  return inDialog(d, local, 'ACK', d.inviteSeq);
}

/** An in-dialog request (BYE, INFO) with the next CSeq. */
export function dialogRequest(d: Dialog, local: LocalContact, method: 'BYE' | 'INFO', contentType?: string, body?: Uint8Array): SipMessage {
  d.localSeq++;
  return inDialog(d, local, method, d.localSeq, contentType, body);
}

function inDialog(d: Dialog, local: LocalContact, method: string, seq: number, contentType?: string, body?: Uint8Array): SipMessage {
  return buildRequest({
    method, uri: d.remoteTarget, via: { transport: local.transport, host: local.host, port: local.port, branch: newBranch() },
    from: { uri: d.localUri, tag: d.localTag }, to: { uri: d.remoteUri, tag: d.remoteTag || undefined }, callId: d.callId, cseq: seq,
    contact: local.uri, contentType, body,
  });
}

/**
 * Whether an incoming request belongs to this dialog (RFC 3261 §12.2.2: Call-ID, and our tag in
 * its To, their tag in its From); also rejects an old CSeq. Updates remoteSeq.
 */
export function matchesDialog(d: Dialog, req: SipMessage): boolean {
  if (getHeader(req, 'call-id') !== d.callId) return false;
  const to = parseNameAddr(getHeader(req, 'to') ?? '');
  const from = parseNameAddr(getHeader(req, 'from') ?? '');
  if (to?.params.get('tag') !== d.localTag) return false;
  if (d.remoteTag !== '' && from?.params.get('tag') !== d.remoteTag) return false;
  const cseq = parseCSeq(getHeader(req, 'cseq') ?? '');
  if (cseq === null || (d.remoteSeq >= 0 && cseq.seq < d.remoteSeq)) return false;
  d.remoteSeq = cseq.seq;
  return true;
}
