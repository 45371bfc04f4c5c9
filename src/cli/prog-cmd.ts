/**
 * `htab prog`: BPF programs on htab.
 *
 *   htab prog exec [MEMORY] [--elf]
 *
 * is the plugin protocol of the BPF conformance suite (Alan-Jowett/bpf_conformance),
 * which ubpf, rbpf, eBPF for Windows and bpftime report against: the program
 * as base16 bytes on standard input (whitespace-separated; an ELF object with
 * `--elf`), MEMORY as base16 bytes copied into a region whose address is in r1
 * and length in r2. It prints only r0 (all 64 bits, hex, no 0x) and exits 0,
 * or prints the error on standard error and exits 1. Programs run unverified,
 * under the interpreter's run-time checks alone.
 */

import { execElf, execRaw, parseBase16 } from "../bpf/exec.js";
import { BpfError } from "../errors.js";

/** What a command printed and how it ended, for the CLI and the tests. */
export interface ProgOutput {
  stdout: string;
  stderr: string;
  code: number;
}

/** `htab prog exec`: `stdin` is the program's text as read from standard input. */
export function progExec(memory: string | undefined, opts: { elf?: boolean }, stdin: string): ProgOutput {
  try {
    const mem = memory === undefined ? new Uint8Array(0) : parseBase16(memory, "MEMORY");
    const code = parseBase16(stdin, "program");
    const r0 = opts.elf ? execElf(code, mem) : execRaw(code, mem);
    return { stdout: `${r0.toString(16)}\n`, stderr: "", code: 0 };
  } catch (e) {
    if (e instanceof BpfError) return { stdout: "", stderr: `${e.message}\n`, code: 1 };
    throw e;
  }
}
