/**
 * One error class for every backend. `code` is the kernel's errno name and
 * `errno` its number, so callers can switch on either; messages start with
 * the operation and say what the bare errno hides.
 */

/** Linux errno numbers for the codes htab produces. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  ELOOP: 40,
  EOVERFLOW: 75,
  EBADFD: 77,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EUCLEAN: 117,
  ENOTSUPP: 524,
} as const;
/** The errno names htab knows (`'ENOENT'`, `'E2BIG'`, …). */
export type ErrnoCode = keyof typeof Errno;
/** What `BpfError.code` holds: a known name, or `E<number>` for an errno htab has no name for. */
export type ErrnoName = ErrnoCode | `E${number}`;

const NAMES: Record<number, ErrnoCode> = {};
for (const [name, n] of Object.entries(Errno)) NAMES[n] = name as ErrnoCode;

/** The errno name for a number, or `E<number>` when htab has no name for it. */
export function errnoName(errno: number): ErrnoName {
  const n = Math.abs(errno);
  return NAMES[n] ?? `E${n}`;
}

/** The error every htab operation throws. */
export class BpfError extends Error {
  /** Kernel errno name, for example `'ENOENT'` (`E<number>` for an errno htab has no name for). */
  readonly code: ErrnoName;
  /** Positive errno number, for example 2. */
  readonly errno: number;
  /** The operation that failed, for example `'update'`. */
  readonly op: string;
  /** The message without the operation and the code: what was wrong. */
  readonly detail: string;

  constructor(op: string, errno: number, detail?: string) {
    const n = Math.abs(errno);
    const code = errnoName(n);
    const what = detail ?? defaultDetail(n);
    super(`${op}: ${what} (${code})`);
    this.detail = what;
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
    case Errno.EUCLEAN:
      return "corrupt map";
    case Errno.EOPNOTSUPP:
    case Errno.ENOTSUPP:
      return "operation not supported";
    default:
      return "failed";
  }
}

/**
 * An argument shown with its type, for error messages: `"1024" (string)`,
 * `NaN (number)`, `{"a":1} (object)`, `16 bytes (Uint8Array)`. Never throws.
 */
export function showInput(v: unknown): string {
  const type =
    v === null ? "null" : Array.isArray(v) ? "array" : v instanceof Uint8Array ? "Uint8Array" : typeof v;
  return `${showValue(v)} (${type})`;
}

/** At most `n` characters of `text`, an ellipsis marking a cut. */
function clip(text: string, n = 40): string {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

function showValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(clip(v));
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === "function") return v.name === "" ? "function" : `function ${v.name}`;
  if (typeof v !== "object" || v === null) return String(v);
  try {
    return clip(JSON.stringify(v));
  } catch {
    return Array.isArray(v) ? `length ${v.length}` : "{…}"; // a cycle or a bigint inside
  }
}

/** Throw EINVAL for a JavaScript-level misuse (wrong buffer type or length). */
export function invalid(op: string, detail: string): never {
  throw new BpfError(op, Errno.EINVAL, detail);
}
