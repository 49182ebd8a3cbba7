// The byte layout of the SharedArrayBuffer SPSC rings between the main thread and the
// media workers: the only file that knows control-word positions, record offsets and kinds.
//
// SharedArrayBuffer
// +---------------------------- control region, CTRL_BYTES ----------------------------+
// | line 0: HEAD   | line 1: TAIL   | line 2: SLEEPING | line 3: counters | line 4: geometry |
// +-------------------------------------------------------------------------------------+
// | data region, `capacity` bytes: records, each aligned to REC_ALIGN                   |
// +-------------------------------------------------------------------------------------+
//
// One record (all fields little-endian):
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       len (payload bytes)                     |  REC_LEN
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |            slot               |     kind      |     flags     |  REC_SLOT/KIND/FLAGS
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                              ts                               |  REC_TS
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  payload (len bytes) ... then zero to 7 pad bytes up to REC_ALIGN
//
// Indices are byte offsets into the data region, kept modulo capacity (not monotonic):
// the consumer can jump straight to offset 0 at a wrap marker, and bit 31 of HEAD is free
// for the closed flag, so "closed" changes the very word the consumer waits on (no lost
// wake-up on close). HEAD === TAIL means empty; the producer never lets HEAD catch up
// with TAIL from behind, so a full ring keeps at least REC_ALIGN bytes free.

/** Byte size of a cache line; each control word that a different thread writes gets its own. */
export const CACHE_LINE_BYTES = 64;
const LINE_I32 = CACHE_LINE_BYTES / 4;

// Control words, as Int32Array indices into the control region (for Atomics).
/** Write index (byte offset into the data region) | CTRL_CLOSED_BIT. Written by the producer
 *  (compare-exchange, so a concurrent close() is never overwritten) and by close() (Atomics.or). */
export const CTRL_HEAD = 0;
/** Read index (byte offset into the data region). Written by the consumer only. */
export const CTRL_TAIL = LINE_I32;
/** 1 while the consumer is (about to be) parked in Atomics.waitAsync on HEAD; the producer
 *  calls Atomics.notify only when it reads 1, and clears it. */
export const CTRL_SLEEPING = 2 * LINE_I32;
// Counters, written by the producer only (plain stores, u32 wrapping; read with >>> 0).
/** Records published. */
export const CTRL_WRITTEN = 3 * LINE_I32;
/** Records refused because the ring had no room (the stream then skips to a keyframe). */
export const CTRL_DROPPED = CTRL_WRITTEN + 1;
/** Payload bytes of the records counted in CTRL_DROPPED. */
export const CTRL_DROPPED_BYTES = CTRL_WRITTEN + 2;
/** Records refused because the payload exceeded the ring's maximum record size. */
export const CTRL_OVERSIZE = CTRL_WRITTEN + 3;
// Geometry, written once by createRing() and read-only afterwards.
export const CTRL_MAGIC = 4 * LINE_I32;
export const CTRL_VERSION = CTRL_MAGIC + 1;
/** Data region size in bytes (a multiple of REC_ALIGN). */
export const CTRL_CAPACITY = CTRL_MAGIC + 2;
/** Largest payload this ring accepts, in bytes. */
export const CTRL_MAX_PAYLOAD = CTRL_MAGIC + 3;
/** Size of the control region; the data region starts here (a multiple of 8). */
export const CTRL_BYTES = 5 * CACHE_LINE_BYTES;

/** Bit 31 of HEAD: the ring is closed (producers refuse, the consumer drains then stops). */
export const CTRL_CLOSED_BIT = 0x8000_0000 | 0;
/** Mask of the index part of HEAD. */
export const CTRL_INDEX_MASK = 0x7fff_ffff;
/** "FLXR" read as a little-endian u32: marks a buffer made by createRing(). */
export const RING_MAGIC = 0x52584c46;
/** Bumped on any change to this file's layout. */
export const RING_VERSION = 1;

// Record header, byte offsets from the record start.
export const REC_LEN = 0;
export const REC_SLOT = 4;
export const REC_KIND = 6;
export const REC_FLAGS = 7;
export const REC_TS = 8;
export const REC_HEADER_BYTES = 12;
/** Records start on 8-byte boundaries, so u32 header fields are aligned for typed arrays. */
export const REC_ALIGN = 8;

/** Bytes a record with `payloadBytes` of payload takes in the ring, header and padding included. */
export const recordSpan = (payloadBytes: number): number =>
  (REC_HEADER_BYTES + payloadBytes + REC_ALIGN - 1) & ~(REC_ALIGN - 1);

/**
 * Default largest payload: an Annex-B access unit or FLV tag carries a whole picture; a
 * 4K IDR at 50 Mbit/s is about 0.8 MB, x10 for peaks and bad encoders = 8 MiB (the same
 * bound as the access-unit cap). A ring must hold at least two of these (see MIN_RING_BYTES).
 */
export const MAX_RECORD_BYTES = 8 << 20;
/** Largest data region: HEAD keeps bit 31 for the closed flag, and 1 GiB is plenty. */
export const MAX_RING_BYTES = 1 << 30;
/** Smallest data region for a given payload cap: two maximal records, so an empty ring
 *  always accepts one, wherever its indices stand. */
export const minRingBytes = (maxPayloadBytes: number): number => 2 * recordSpan(maxPayloadBytes);

// Record kinds (u8 at REC_KIND). `slot` is the stream's slot id in every kind.
/** Internal wrap marker: the rest of the data region is unused, continue at offset 0. Only
 *  the first 8 bytes (len = 0, slot = 0, kind, flags = 0) are written. Never delivered. */
export const KIND_WRAP = 0;
/** main -> worker: one Annex-B access unit from a file source. Payload: the composition
 *  offset (pts - dts, i32 little-endian, 90 kHz ticks; ANNEXB_CTS_BYTES), then the unit's
 *  bytes with start codes. flags: FLAG_KEYFRAME. ts: dts in 90 kHz ticks, low 32 bits. */
export const KIND_ANNEXB_AU = 1;
/** Bytes of the composition-offset prefix of a KIND_ANNEXB_AU payload. */
export const ANNEXB_CTS_BYTES = 4;
/** main -> worker: one RTP packet (RFC 3550 §5.1, whole packet from the version byte).
 *  flags: the track index within the stream (0..255). ts: arrival time in ms since the
 *  stream's wall-clock base (AddStream.wallBaseMs), low 32 bits. Also GB28181 media
 *  (input 'ps-rtp'): the payload is MPEG-PS, flags 0; the worker needs the sequence number
 *  for its reorder window and loss detection, so the whole packet travels. */
export const KIND_RTP = 2;
/** main -> worker: one FLV tag (11-byte tag header with the publisher's timestamp, then the
 *  body; no PreviousTagSize), from RTMP. flags: FLAG_KEYFRAME when the tag is a video
 *  keyframe. ts: arrival time in ms since the stream's wall-clock base, low 32 bits. */
export const KIND_FLV_TAG = 3;
/** main -> worker: the payload of one RTP packet carrying MPEG-PS (GB28181, RTP header
 *  stripped). flags: FLAG_MARKER when the RTP marker bit was set. ts: the RTP timestamp.
 *  Reserved, unused: GB28181 media travels as KIND_RTP (see there). */
export const KIND_PS_PAYLOAD = 4;
/** worker -> main: one msgpack-encoded event record (segment open/close, keyframe, error).
 *  flags: 0. ts: worker's wall-clock ms, low 32 bits. */
export const KIND_EVENT = 5;
/** worker -> main: fMP4 bytes for live preview: an init segment (FLAG_INIT) or one
 *  moof+mdat fragment (FLAG_KEYFRAME when it starts with a keyframe). ts: dts in ms, low 32 bits. */
export const KIND_FRAGMENT = 6;
/** main -> worker: one RTCP compound packet of an RTP session (sender reports map each
 *  track's RTP clock to the sender's wall clock, for A/V sync). flags: the track index.
 *  ts: arrival ms since the stream's wall-clock base, low 32 bits. */
export const KIND_RTCP = 7;
/** One past the largest kind in use; readers may reject kinds at or above it. */
export const KIND_COUNT = 8;

// Flag bits (u8 at REC_FLAGS) for the kinds whose flags are a bit set.
/** The record starts with (or is) a keyframe: ANNEXB_AU, FLV_TAG, FRAGMENT. */
export const FLAG_KEYFRAME = 1 << 0;
/** FRAGMENT: the bytes are an init segment (ftyp+moov), not a moof+mdat. */
export const FLAG_INIT = 1 << 1;
/** PS_PAYLOAD: the RTP marker bit was set (last packet of a PS frame). */
export const FLAG_MARKER = 1 << 2;
/** RTP: flags hold the track index, not bits. */
export const RTP_TRACK_MASK = 0xff;
