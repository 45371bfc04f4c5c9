/**
 * Shared shapes of `htab conntrack`: the flow key/value layout and the
 * per-worker counters (one Int32Array row of CT_WORDS per worker).
 */

/** 5-tuple key: saddr, daddr, sport|dport<<16, proto. */
export const CT_KEY_SIZE = 16;
/** last_seen u64 (µs), packets u64, bytes u64, created u64 (µs). */
export const CT_VALUE_SIZE = 32;
/** The GC compares last_seen and packets: packets grows on every refresh, so equality means untouched. */
export const CT_COMPARE_OFFSET = 0;
export const CT_COMPARE_SIZE = 16;

export const CT_WORDS = 16;
export const CT_PACKETS = 0;
export const CT_NEW = 1;
export const CT_REFRESH = 2;
export const CT_FULL = 3;
/** Datapath found its flow gone although it was refreshed less than a timeout ago. */
export const CT_BROKEN = 4;
export const CT_SWEEPS = 5;
export const CT_EXPIRED = 6;
/** GC deleted an entry whose value had changed since its snapshot (a live flow). */
export const CT_LIVE_DELETED = 7;
/** compareAndDelete refused (EBUSY): the race was caught. */
export const CT_AVOIDED = 8;

export type GcMode = "delete" | "compare";
