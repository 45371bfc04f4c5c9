import { Errno } from "../errors.js";
import type { MapInfo } from "../map/raw-map.js";
import { BpfCmd } from "../uapi.js";
import { unprivilegedBpfDisabled } from "./bpf-syscall.js";

export const CMD_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(BpfCmd).map(([name, n]) => [
    n,
    `BPF_${name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}`,
  ]),
);

/**
 * What a bare errno from bpf() means for this command, as the SAB backend
 * would say it: "map full (max_entries 1024)" rather than "E2BIG".
 */
export function explainErrno(cmd: number, e: number, info: MapInfo): string {
  const name = CMD_NAMES[cmd] ?? `command ${cmd}`;
  const update = cmd === BpfCmd.MapUpdateElem || cmd === BpfCmd.MapUpdateBatch;
  const lookup = cmd === BpfCmd.MapLookupElem || cmd === BpfCmd.MapLookupAndDeleteElem;
  switch (e) {
    case Errno.E2BIG:
      if (update) return `map full (max_entries ${info.maxEntries} reached)`;
      break;
    case Errno.EEXIST:
      if (update) return "key already exists (BPF_NOEXIST)";
      break;
    case Errno.ENOENT:
      if (update) return "key not found (BPF_EXIST)";
      if (lookup || cmd === BpfCmd.MapDeleteElem || cmd === BpfCmd.MapDeleteBatch) return "key not found";
      if (cmd === BpfCmd.MapGetNextKey) return "no more keys";
      if (cmd === BpfCmd.MapLookupBatch || cmd === BpfCmd.MapLookupAndDeleteBatch)
        return "reached the last bucket";
      break;
    case Errno.EPERM:
      return `${name} refused: the map is frozen or read-only for the control plane, or ${capabilityHint()}`;
    case Errno.EACCES:
      return `${name} refused: the map is BPF_F_RDONLY/BPF_F_WRONLY for this access, or ${capabilityHint()}`;
    case Errno.EINVAL:
      return `${name}: the kernel refused the flags or arguments (unknown flag bits, BPF_F_LOCK without a bpf_spin_lock, a bad cursor)`;
    case Errno.ENOSPC:
      return "a bucket holds more elements than count: call again with a larger count";
    case Errno.ENOMEM:
      return `${name}: the kernel could not allocate (memlock or memory cgroup limit)`;
    case Errno.EBUSY:
      return `${name}: busy (a program holds the map's lock on this CPU)`;
  }
  return `${name} failed: ${strerror(e)}`;
}

/** Say which capability is missing when bpf() refuses. */
export function capabilityHint(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  const d = unprivilegedBpfDisabled();
  if (uid === 0) return "bpf() refused even for root: a seccomp filter or LSM blocks it";
  return `needs CAP_BPF (CAP_SYS_ADMIN for BPF_F_ZERO_SEED) or root; uid=${uid}, kernel.unprivileged_bpf_disabled=${d}`;
}

/** glibc's strerror() text for the errnos bpf() returns (what bpftool prints). */
export function strerror(e: number): string {
  const TEXT: Record<number, string> = {
    1: "Operation not permitted",
    2: "No such file or directory",
    3: "No such process",
    4: "Interrupted system call",
    7: "Argument list too long",
    9: "Bad file descriptor",
    11: "Resource temporarily unavailable",
    12: "Cannot allocate memory",
    13: "Permission denied",
    14: "Bad address",
    16: "Device or resource busy",
    17: "File exists",
    19: "No such device",
    20: "Not a directory",
    22: "Invalid argument",
    24: "Too many open files",
    28: "No space left on device",
    34: "Numerical result out of range",
    38: "Function not implemented",
    40: "Too many levels of symbolic links",
    75: "Value too large for defined data type",
    77: "File descriptor in bad state",
    95: "Operation not supported",
    110: "Connection timed out",
  };
  return TEXT[e] ?? `Unknown error ${e}`;
}
