// MANSCDP XML bodies (GB/T 28181-2016 Annex A): decoding with the charset of the Content-Type or
// of the XML prolog (GB2312 or UTF-8), encoding with a prolog, and typed readers of the commands
// a platform receives. Pure: bytes in, values out.
import iconv from 'iconv-lite';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

export const MANSCDP_CONTENT_TYPE = 'Application/MANSCDP+xml';
/** A Catalog part of 100 channels is ~40 KiB; the SIP body cap (256 KiB) also bounds this. */
export const MAX_MANSCDP_BYTES = 256 << 10;
/** Items (channels, records) in one MESSAGE: devices send 1-20 per part; 1000 bounds one body. */
export const MAX_ITEMS_PER_MESSAGE = 1000;
/** Field values we keep (names, addresses): longer is garbage or an attack on the store. */
const MAX_TEXT_CHARS = 256;

export type Charset = 'GB2312' | 'UTF-8';
export type ManscdpRoot = 'Query' | 'Control' | 'Response' | 'Notify';

/** A decoded body: its root element, the standard header fields, and the element tree (strings). */
export interface ManscdpDoc {
  root: ManscdpRoot;
  cmdType: string;
  sn: number;
  deviceId: string;
  /** The charset the body was read with. */
  charset: Charset;
  /** Child elements of the root (text as strings, repeated `Item`s as arrays, attributes as `@_name`). */
  body: Record<string, unknown>;
}
export type ManscdpResult = { ok: true; doc: ManscdpDoc } | { ok: false; reason: string };

const parser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false, // device ids are 20 digits: never numbers
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (name) => name === 'Item',
});
const builder = new XMLBuilder({ ignoreAttributes: false, format: false, suppressEmptyNode: false });

/** The charset to read a body with: Content-Type `charset=` first, then the prolog, else UTF-8 when it validates, else GB2312. */
export function detectCharset(body: Uint8Array, contentType?: string): Charset {
  const ct = /charset\s*=\s*"?([A-Za-z0-9_-]+)/i.exec(contentType ?? '')?.[1];
  const fromName = (n: string | undefined): Charset | null =>
    n === undefined ? null : /^(gb2312|gbk|gb18030|euc-cn|cp936)$/i.test(n) ? 'GB2312' : /^utf-?8$/i.test(n) ? 'UTF-8' : null;
  const c = fromName(ct);
  if (c !== null) return c;
  const head = new TextDecoder('latin1').decode(body.subarray(0, 200));
  const p = fromName(/<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/i.exec(head)?.[1]);
  if (p !== null) return p;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
    return 'UTF-8';
  } catch {
    return 'GB2312';
  }
}

/** GB2312 is read as GB18030 (its superset; devices put GBK characters in "GB2312" bodies). */
export function decodeText(body: Uint8Array, cs: Charset): string {
  return cs === 'UTF-8' ? new TextDecoder('utf-8').decode(body) : iconv.decode(Buffer.from(body.buffer, body.byteOffset, body.byteLength), 'gb18030');
}

export function decodeManscdp(body: Uint8Array, contentType?: string): ManscdpResult {
  if (body.length === 0) return { ok: false, reason: 'empty MANSCDP body' };
  if (body.length > MAX_MANSCDP_BYTES) return { ok: false, reason: `MANSCDP body of ${body.length} bytes exceeds ${MAX_MANSCDP_BYTES}` };
  const charset = detectCharset(body, contentType);
  const text = decodeText(body, charset);
  // No DTDs: entity definitions are the classic XML bomb, and MANSCDP never uses them.
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) return { ok: false, reason: 'DOCTYPE/ENTITY not allowed in MANSCDP' };
  let tree: Record<string, unknown>;
  try {
    tree = parser.parse(text, true) as Record<string, unknown>;
  } catch (e) {
    return { ok: false, reason: `bad XML: ${String((e as Error).message ?? e).split('\n')[0]!.slice(0, 120)}` };
  }
  const root = (['Query', 'Control', 'Response', 'Notify'] as const).find((r) => r in tree);
  if (root === undefined) return { ok: false, reason: 'no Query/Control/Response/Notify root element' };
  const b = tree[root];
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return { ok: false, reason: `empty <${root}>` };
  const body2 = b as Record<string, unknown>;
  const cmdType = str(body2.CmdType);
  const snText = str(body2.SN);
  const deviceId = str(body2.DeviceID);
  if (cmdType === '') return { ok: false, reason: 'missing CmdType' };
  if (!/^\d{1,10}$/.test(snText)) return { ok: false, reason: `bad SN ${JSON.stringify(snText.slice(0, 20))}` };
  if (!/^[0-9A-Za-z]{1,32}$/.test(deviceId)) return { ok: false, reason: `bad DeviceID ${JSON.stringify(deviceId.slice(0, 40))}` };
  return { ok: true, doc: { root, cmdType, sn: Number(snText), deviceId, charset, body: body2 } };
}

/** Text of an element (first when repeated), '' when absent or not text; clipped. */
export function str(v: unknown): string {
  if (Array.isArray(v)) return str(v[0]);
  if (typeof v === 'string') return v.length > MAX_TEXT_CHARS ? v.slice(0, MAX_TEXT_CHARS) : v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'object' && v !== null && '#text' in v) return str((v as Record<string, unknown>)['#text']);
  return '';
}

/** A non-negative integer element, or null. */
export function int(v: unknown): number | null {
  const s = str(v);
  return /^\d{1,9}$/.test(s) ? Number(s) : null;
}

/** The `<Item>` elements of a list element (DeviceList, RecordList), capped. */
export function items(list: unknown): Record<string, unknown>[] {
  if (typeof list !== 'object' || list === null) return [];
  const it = (list as Record<string, unknown>).Item;
  if (!Array.isArray(it)) return [];
  return it.slice(0, MAX_ITEMS_PER_MESSAGE).filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null);
}

/**
 * Encodes `<?xml version="1.0" encoding="cs"?><Root><CmdType/><SN/><DeviceID/>...fields</Root>`.
 * Field order is the object's key order (devices parse by name, but some expect CmdType first).
 */
export function encodeManscdp(root: ManscdpRoot, head: { cmdType: string; sn: number; deviceId: string }, fields: Record<string, unknown> = {}, cs: Charset = 'GB2312'): Uint8Array {
  const xml = builder.build({ [root]: { CmdType: head.cmdType, SN: head.sn, DeviceID: head.deviceId, ...fields } }) as string;
  const text = `<?xml version="1.0" encoding="${cs}"?>\r\n${xml}\r\n`;
  return cs === 'UTF-8' ? new TextEncoder().encode(text) : new Uint8Array(iconv.encode(text, 'gb18030'));
}

/** A list element with its `Num` attribute. */
export function list(itemsIn: Record<string, unknown>[]): Record<string, unknown> {
  return { '@_Num': itemsIn.length, Item: itemsIn };
}
