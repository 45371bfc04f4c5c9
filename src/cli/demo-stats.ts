/** Per-worker counters of `htab demo`, one Int32Array row of STAT_WORDS per worker. */
export const STAT_WORDS = 8;
export const STAT_LOOKUP = 0;
export const STAT_HIT = 1;
export const STAT_REFRESH = 2;
export const STAT_INSERT = 3;
export const STAT_FULL = 4;
export const STAT_EXPIRE = 5;
