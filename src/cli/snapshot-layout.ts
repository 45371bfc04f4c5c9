/** Keys and control words shared by the snapshot demo and its writers. */
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
/** The outer map's only index. */
export const SLOT = u32(0);
export const PACKETS = u32(1);
export const BYTES = u32(2);
/** Control word: writers stop when it is non-zero. */
export const STOP_I32 = 0;
