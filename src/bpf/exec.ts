/**
 * The BPF conformance suite's plugin contract (Alan-Jowett/bpf_conformance),
 * as a function: run a program's raw bytes with MEMORY copied into a region
 * whose address is in r1 and length in r2, unverified, under the run-time
 * checks alone, and return r0. `htab prog exec` is its command line.
 */

import { BpfError, Errno } from "../errors.js";
import { baseHelpers } from "./helpers.js";
import { DEFAULT_BUDGET, Vm } from "./interp.js";
import { decodeInsns, decodeProgram, type Insn } from "./isa.js";
import { openObject } from "./loader.js";
import { INPUT_SLOT, Region } from "./memory.js";

/**
 * Bytes from base16 text: whitespace-separated tokens of one or two hex
 * digits each (what the suite writes), or one run of hex digit pairs.
 * @throws BpfError EINVAL naming the first token that is not a byte
 */
export function parseBase16(text: string, what: string): Uint8Array {
  const tokens = text.split(/\s+/).filter((t) => t !== "");
  const out: number[] = [];
  for (const t of tokens) {
    const hex = t.startsWith("0x") || t.startsWith("0X") ? t.slice(2) : t;
    if (!/^[0-9a-fA-F]+$/.test(hex) || (hex.length > 2 && hex.length % 2 !== 0))
      throw new BpfError("exec", Errno.EINVAL, `${what}: "${t}" is not base16 bytes`);
    if (hex.length <= 2) out.push(Number.parseInt(hex, 16));
    else for (let i = 0; i < hex.length; i += 2) out.push(Number.parseInt(hex.slice(i, i + 2), 16));
  }
  return Uint8Array.from(out);
}

export interface ExecOptions {
  /** Executed-instruction budget (default DEFAULT_BUDGET). */
  budget?: number;
  /** The CPU slot reported by bpf_get_smp_processor_id. */
  cpu?: number;
}

/**
 * Run raw instructions (8 bytes each) with `memory` at r1 (length in r2;
 * r1 = r2 = 0 without memory). Helpers: the map-free set of helpers.ts.
 * @returns r0, all 64 bits, unsigned
 * @throws BpfError EINVAL at decode (bad opcode, reserved fields, jump out of
 * range), BpfRunError when the run faults (EFAULT), overruns its budget or call depth (E2BIG)
 */
export function execRaw(code: Uint8Array, memory: Uint8Array, opts: ExecOptions = {}): bigint {
  return execInsns(decodeInsns(code, "exec"), memory, opts);
}

/**
 * As execRaw, for an ELF object (`htab prog exec --elf`): the program is the
 * function `main` (what the suite's ELF writer names it, in `.text` or
 * `xdp`), else the object's only program, linked by the loader. Objects
 * with maps or globals are refused (EOPNOTSUPP): this mode has none.
 */
export function execElf(object: Uint8Array, memory: Uint8Array, opts: ExecOptions = {}): bigint {
  const spec = openObject(object, { name: "exec", textPrograms: true });
  if (spec.maps.length > 0)
    throw new BpfError(
      "exec",
      Errno.EOPNOTSUPP,
      `the object has maps or globals (${spec.maps.map((m) => m.name).join(", ")}); exec runs programs without them`,
    );
  const prog =
    spec.programs.find((p) => p.name === "main") ??
    (spec.programs.length === 1 ? spec.programs[0] : undefined);
  if (prog === undefined)
    throw new BpfError(
      "exec",
      Errno.EINVAL,
      `no program 'main' among ${spec.programs.length} programs (${spec.programs.map((p) => p.name).join(", ")})`,
    );
  return execInsns(prog.insns, memory, opts);
}

function execInsns(insns: Insn[], memory: Uint8Array, opts: ExecOptions): bigint {
  const helpers = baseHelpers();
  const prog = decodeProgram(insns, { op: "exec", helpers: (id) => helpers.has(id) });
  const vm = new Vm(prog, { helpers, budget: opts.budget ?? DEFAULT_BUDGET, cpu: opts.cpu ?? 0 });
  let r1 = 0n;
  if (memory.length > 0) r1 = vm.mem.mapFixed(INPUT_SLOT, new Region("input memory", memory, true));
  return vm.run([r1, BigInt(memory.length)]);
}
