/**
 * The bpf(2) system call, reached through koffi (an FFI that ships prebuilt
 * binaries, so `npm ci` compiles nothing) calling libc's syscall(SYS_bpf, …).
 * Loaded lazily: importing htab/kernel costs nothing until a map is made.
 */

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { BpfError, Errno } from "../errors.js";

/** fcntl's F_DUPFD_CLOEXEC (include/uapi/linux/fcntl.h). */
const F_DUPFD_CLOEXEC = 1030;

/** __NR_bpf on x86-64 and arm64. */
const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280 };

/** Native memory the kernel reads and writes: a view plus its address. */
export interface NativeBuf {
  ptr: unknown;
  u8: Uint8Array;
  dv: DataView;
  addr: bigint;
  free(): void;
}

interface Ffi {
  call(cmd: number, attr: unknown, size: number): number;
  close(fd: number): void;
  /** fcntl(fd, F_DUPFD_CLOEXEC, 0): a new fd for the same file, or -1 (errno()). */
  dup(fd: number): number;
  /** sched_setaffinity(0, …): pins the calling thread only. */
  setAffinity(mask: NativeBuf, bytes: number): number;
  /** sched_getaffinity(0, …): the calling thread's CPU mask. */
  getAffinity(mask: NativeBuf, bytes: number): number;
  errno(): number;
  alloc(bytes: number): NativeBuf;
  /** The address of a view's first byte (its backing store, shared or not). */
  addressOf(view: Uint8Array): bigint;
  /** madvise(view, len, advice) on the view's first `len` bytes: 0 or -1 (errno()). */
  madvise(view: Uint8Array, len: number, advice: number): number;
}

let ffi: Ffi | undefined;

/** Load koffi and bind syscall(). Throws when not on Linux or koffi is missing. */
export function bpfFfi(): Ffi {
  if (ffi) return ffi;
  if (process.platform !== "linux")
    throw new BpfError("bpf", Errno.EOPNOTSUPP, `bpf() exists only on Linux, not ${process.platform}`);
  const nr = SYS_BPF[process.arch];
  if (nr === undefined)
    throw new BpfError("bpf", Errno.EOPNOTSUPP, `unknown bpf syscall number for ${process.arch}`);
  const require = createRequire(import.meta.url);
  // biome-ignore lint/suspicious/noExplicitAny: koffi's handle types are opaque
  let koffi: any;
  try {
    koffi = require("koffi");
  } catch (e) {
    // koffi is an optional peer dependency: only htab/kernel needs it (and its native binaries).
    throw new BpfError(
      "bpf",
      Errno.EOPNOTSUPP,
      `htab/kernel needs the koffi package to call bpf(); install it with "npm install koffi" (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const libc = koffi.load("libc.so.6");
  // Declared with fixed arguments: on x86-64/arm64 this is call-compatible with the
  // variadic syscall() for integer and pointer arguments, and avoids koffi's variadic path.
  const syscall = libc.func("long syscall(long nr, int cmd, void *attr, unsigned int size)");
  const close = libc.func("int close(int fd)");
  const fcntl = libc.func("int fcntl(int fd, int cmd, int arg)");
  const setaffinity = libc.func("int sched_setaffinity(int pid, size_t size, void *mask)");
  const getaffinity = libc.func("int sched_getaffinity(int pid, size_t size, void *mask)");
  // memmove(p, p, 0) returns p: the one portable way to ask koffi where a view's bytes are.
  const memmove = libc.func("void *memmove(void *dst, const void *src, size_t n)");
  const madvise = libc.func("int madvise(void *addr, size_t len, int advice)");
  ffi = {
    call: (cmd, attr, size) => Number(syscall(nr, cmd, attr, size)),
    close: (fd) => void close(fd),
    dup: (fd) => Number(fcntl(fd, F_DUPFD_CLOEXEC, 0)),
    setAffinity: (mask, bytes) => Number(setaffinity(0, bytes, mask.ptr)),
    getAffinity: (mask, bytes) => Number(getaffinity(0, bytes, mask.ptr)),
    errno: () => koffi.errno(),
    addressOf: (view) => BigInt(koffi.address(memmove(view, view, 0))),
    madvise: (view, len, advice) => Number(madvise(view, len, advice)),
    alloc(bytes: number): NativeBuf {
      const ptr = koffi.alloc("uint8_t", Math.max(bytes, 8));
      const ab: ArrayBuffer = koffi.view(ptr, Math.max(bytes, 8));
      const u8 = new Uint8Array(ab);
      u8.fill(0);
      let freed = false;
      return {
        ptr,
        u8,
        dv: new DataView(ab),
        addr: koffi.address(ptr),
        free() {
          if (!freed) koffi.free(ptr);
          freed = true;
        },
      };
    },
  };
  return ffi;
}

/** Number of possible CPUs (kernel: num_possible_cpus()), which sizes per-CPU values. */
export function possibleCpus(): number {
  const s = readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
  let n = 0;
  for (const part of s.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}

let pinnedTo = -1;

/**
 * Pin the calling thread to one CPU. The kernel's LRU lists and per-CPU
 * freelists follow the CPU a syscall runs on, so replaying an LRU script
 * against the kernel is only deterministic on one CPU (the kernel facts were
 * probed pinned to cpu0). Returns false if the kernel refused.
 */
export function pinThreadToCpu(cpu: number): boolean {
  if (pinnedTo === cpu) return true;
  const f = bpfFfi();
  const bytes = 128; // cpu_set_t
  const mask = f.alloc(bytes);
  try {
    mask.u8[cpu >> 3] |= 1 << (cpu & 7);
    const ok = f.setAffinity(mask, bytes) === 0;
    if (ok) pinnedTo = cpu;
    return ok;
  } finally {
    mask.free();
  }
}

/**
 * Run `fn` with the calling thread pinned to `cpu`, then give the thread
 * back the CPU mask it had (a pin made before, as replay's for LRU maps,
 * included). A run's `cpu` applies to that run only.
 * @throws BpfError EINVAL when the kernel refuses the CPU
 */
export function onCpu<T>(op: string, cpu: number, fn: () => T): T {
  if (pinnedTo === cpu) return fn();
  const f = bpfFfi();
  const bytes = 128; // cpu_set_t
  const saved = f.alloc(bytes);
  try {
    if (f.getAffinity(saved, bytes) !== 0)
      throw new BpfError(op, f.errno(), "sched_getaffinity failed for this thread");
    const before = pinnedTo;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= bytes * 8 || !pinThreadToCpu(cpu))
      throw new BpfError(
        op,
        Errno.EINVAL,
        `cannot run on CPU ${cpu}: the kernel refused to pin this thread there`,
      );
    try {
      return fn();
    } finally {
      f.setAffinity(saved, bytes);
      pinnedTo = before;
    }
  } finally {
    saved.free();
  }
}

/** The kernel's memlock figure for a map fd, from /proc/self/fdinfo. */
export function fdMemlock(fd: number): number {
  return fdinfoNumber(fd, "memlock");
}

/** Whether `fd` is a BPF map (its fdinfo has a map_type line; programs have prog_type). */
export function isMapFd(fd: number): boolean {
  try {
    return /^map_type:/m.test(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  } catch {
    return false;
  }
}

/** A numeric field of /proc/self/fdinfo/<fd> (memlock, frozen, map_id, …), or 0 when absent. */
export function fdinfoNumber(fd: number, field: string): number {
  const m = new RegExp(`^${field}:\\s*(\\d+)`, "m").exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** unprivileged_bpf_disabled, or -1 when unreadable. */
export function unprivilegedBpfDisabled(): number {
  try {
    return Number(readFileSync("/proc/sys/kernel/unprivileged_bpf_disabled", "utf8").trim());
  } catch {
    return -1;
  }
}
