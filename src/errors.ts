/**
 * One error class for every backend. `code` is the kernel's errno name and
 * `errno` its number, so callers can switch on either; messages start with
 * the operation and say what the bare errno hides.
 */

/** Linux errno numbers for the codes htab produces. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EBADF: 9,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  EBADFD: 77,
  ETIMEDOUT: 110,
  E2BIG: 7,
  EOPNOTSUPP: 95,
  ENOTSUPP: 524,
} as const;
export type ErrnoCode = keyof typeof Errno;

const NAMES: Record<number, ErrnoCode> = {};
for (const [name, n] of Object.entries(Errno)) NAMES[n] = name as ErrnoCode;

/** The errno name for a number, or `E<number>` when htab has no name for it. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return NAMES[n] ?? `E${n}`;
}

/** The error every htab operation throws. */
export class BpfError extends Error {
  /** Kernel errno name, for example `'ENOENT'`. */
  readonly code: string;
  /** Positive errno number, for example 2. */
  readonly errno: number;
  /** The operation that failed, for example `'update'`. */
  readonly op: string;

  constructor(op: string, errno: number, detail?: string) {
    const n = Math.abs(errno);
    const code = errnoName(n);
    super(`${op}: ${detail ?? defaultDetail(n)} (${code})`);
    this.name = "BpfError";
    this.code = code;
    this.errno = n;
    this.op = op;
  }
}

function defaultDetail(errno: number): string {
  switch (errno) {
    case Errno.ENOENT:
      return "no such element";
    case Errno.EEXIST:
      return "element already exists";
    case Errno.E2BIG:
      return "map full or size too big";
    case Errno.EINVAL:
      return "invalid argument";
    case Errno.EPERM:
      return "operation not permitted";
    case Errno.EACCES:
      return "permission denied";
    case Errno.EBUSY:
      return "busy";
    case Errno.ENOSPC:
      return "buffer too small";
    case Errno.ETIMEDOUT:
      return "timed out waiting for a lock";
    case Errno.EOPNOTSUPP:
    case Errno.ENOTSUPP:
      return "operation not supported";
    default:
      return "failed";
  }
}

/** Throw EINVAL for a JavaScript-level misuse (wrong buffer type or length). */
export function invalid(op: string, detail: string): never {
  throw new BpfError(op, Errno.EINVAL, detail);
}
