// PTZCmd (GB/T 28181-2016 Annex A.3): the 8-byte front-end control code written as 16 hex
// digits: A5, version+check nibble, address, command, data1, data2, data3|address-high, checksum.
//
//  byte 1   byte 2        byte 3      byte 4   byte 5     byte 6     byte 7               byte 8
//  0xA5     ver<<4|chk    addr low 8  command  data1      data2      data3<<4|addr high4  sum(1..7)%256
//  chk = (0xA + 0x5 + ver) % 16 → 0x0F for version 0.
//  PTZ command bits (A.3.2): 0 0 zoomOut zoomIn up down left right; data1 pan speed, data2 tilt
//  speed, data3 zoom speed (4 bits). Presets (A.3.4): 0x81 set, 0x82 call, 0x83 delete, data2 = preset.

export const PTZ_COMMANDS = ['stop', 'up', 'down', 'left', 'right', 'upleft', 'upright', 'downleft', 'downright', 'zoomin', 'zoomout', 'preset_set', 'preset_call', 'preset_delete'] as const;
export type PtzCommand = (typeof PTZ_COMMANDS)[number];

const BITS: Partial<Record<PtzCommand, number>> = {
  stop: 0x00, right: 0x01, left: 0x02, down: 0x04, up: 0x08, zoomin: 0x10, zoomout: 0x20,
  upleft: 0x0a, upright: 0x09, downleft: 0x06, downright: 0x05,
};
const PRESET: Partial<Record<PtzCommand, number>> = { preset_set: 0x81, preset_call: 0x82, preset_delete: 0x83 };

export interface PtzSpec {
  command: PtzCommand;
  /** Pan/tilt speed 0-255 (zoom uses its top 4 bits: 0-15). */
  speed?: number;
  /** Preset number 1-255 for preset_*. */
  preset?: number;
  /** Device address (12 bits); 1 as GB28181 platforms send. */
  address?: number;
}

export function encodePtz(s: PtzSpec): string {
  const speed = clampByte(s.speed ?? 128);
  const addr = (s.address ?? 1) & 0xfff;
  const b = new Uint8Array(8);
  b[0] = 0xa5;
  b[1] = 0x0f; // version 0, check nibble (0xA + 0x5 + 0) % 16
  b[2] = addr & 0xff;
  const preset = PRESET[s.command];
  let zoom = 0;
  if (preset !== undefined) {
    b[3] = preset;
    b[4] = 0;
    b[5] = clampByte(s.preset ?? 1);
  } else {
    const bits = BITS[s.command]!;
    b[3] = bits;
    b[4] = bits & 0x03 ? speed : 0; // pan speed when moving left/right
    b[5] = bits & 0x0c ? speed : 0; // tilt speed when moving up/down
    zoom = bits & 0x30 ? speed >> 4 : 0;
  }
  b[6] = (zoom << 4) | (addr >> 8);
  let sum = 0;
  for (let i = 0; i < 7; i++) sum += b[i]!;
  b[7] = sum & 0xff;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
}

const clampByte = (n: number) => Math.max(0, Math.min(255, Math.round(n)));

export interface PtzDecoded {
  command: PtzCommand | 'other';
  /** The command byte as sent (for commands outside the table: focus, iris, cruise...). */
  code: number;
  panSpeed: number;
  tiltSpeed: number;
  zoomSpeed: number;
  preset: number;
  address: number;
}

export type PtzDecodeResult = { ok: true; cmd: PtzDecoded } | { ok: false; reason: string };

/** Checks the header, check nibble and checksum, then names the command. */
export function decodePtz(hex: string): PtzDecodeResult {
  if (!/^[0-9A-Fa-f]{16}$/.test(hex)) return { ok: false, reason: 'PTZCmd must be 16 hex digits' };
  const b = Uint8Array.from({ length: 8 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  if (b[0] !== 0xa5) return { ok: false, reason: `first byte 0x${b[0]!.toString(16)} is not 0xA5` };
  const ver = b[1]! >> 4;
  if ((b[1]! & 0x0f) !== ((0xa + 0x5 + ver) & 0x0f)) return { ok: false, reason: 'bad check nibble in byte 2' };
  let sum = 0;
  for (let i = 0; i < 7; i++) sum += b[i]!;
  if ((sum & 0xff) !== b[7]) return { ok: false, reason: `checksum 0x${b[7]!.toString(16)} != 0x${(sum & 0xff).toString(16)}` };
  const code = b[3]!;
  let command: PtzCommand | 'other' = 'other';
  for (const [k, v] of Object.entries(PRESET)) if (v === code) command = k as PtzCommand;
  if (code < 0x40) for (const [k, v] of Object.entries(BITS)) if (v === code) command = k as PtzCommand;
  const isPreset = code >= 0x81 && code <= 0x83;
  return {
    ok: true,
    cmd: {
      command, code, panSpeed: isPreset ? 0 : b[4]!, tiltSpeed: isPreset ? 0 : b[5]!, zoomSpeed: b[6]! >> 4,
      preset: isPreset ? b[5]! : 0, address: b[2]! | ((b[6]! & 0x0f) << 8),
    },
  };
}
