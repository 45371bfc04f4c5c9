/**
 * The conntrack datapath as a real BPF program (XDP, run with
 * BPF_PROG_TEST_RUN), as Cilium's datapath is: the packet carries the flow
 * key (bytes 0-15) and the packet time in µs (bytes 16-23). The program
 * looks the flow up; a tracked flow is refreshed in place through the
 * pointer the lookup returned (last_seen stored, packets and bytes added
 * atomically), an untracked one is inserted with BPF_NOEXIST.
 * Return value: 1 refreshed, 2 created, 3 not created (map full, or another
 * CPU created it first), 0 short packet.
 */
import type { KernelMap } from "../kernel/kernel-map.js";
import {
  asm,
  type BpfProgram,
  Helper,
  loadProgram,
  ProgType,
  program,
  R0,
  R1,
  R2,
  R3,
  R4,
  R6,
  R7,
  R8,
  R10,
} from "../kernel/program.js";

export const CT_PROG_REFRESHED = 1;
export const CT_PROG_CREATED = 2;
export const CT_PROG_NOT_CREATED = 3;
/** Packet bytes: key (16), time (8), padding to a minimal frame. */
export const CT_PACKET_BYTES = 64;

/** Load the datapath program for `map` (key 16 bytes, value last_seen/packets/bytes/created u64). */
export function loadConntrackProgram(map: KernelMap): BpfProgram {
  return loadProgram(
    program(
      asm.load("w", R6, R1, 0), // xdp_md->data
      asm.load("w", R7, R1, 4), // xdp_md->data_end
      asm.mov(R2, R6),
      asm.aluImm("add", R2, 24),
      asm.jmp("jgt", R2, R7, 37), // short packet: to "return 0" (instruction 42)
      // The key onto the stack, the packet time into r8.
      asm.load("dw", R3, R6, 0),
      asm.store("dw", R10, -16, R3),
      asm.load("dw", R3, R6, 8),
      asm.store("dw", R10, -8, R3),
      asm.load("dw", R8, R6, 16),
      asm.mov(R2, R10),
      asm.aluImm("add", R2, -16),
      ...asm.ldMapFd(R1, map),
      asm.call(Helper.mapLookupElem),
      asm.jmpImm("jeq", R0, 0, 6), // untracked: to the insert (instruction 22)
      // Refresh in place through the returned pointer.
      asm.store("dw", R0, 0, R8),
      asm.movImm(R1, 1),
      asm.atomicAdd("dw", R0, 8, R1),
      asm.movImm(R1, 1500),
      asm.atomicAdd("dw", R0, 16, R1),
      asm.ja(13), // to "r0 = 1" (instruction 35)
      // Insert: the value on the stack, then update(BPF_NOEXIST).
      asm.store("dw", R10, -48, R8),
      asm.storeImm("dw", R10, -40, 1),
      asm.storeImm("dw", R10, -32, 64),
      asm.store("dw", R10, -24, R8),
      ...asm.ldMapFd(R1, map),
      asm.mov(R2, R10),
      asm.aluImm("add", R2, -16),
      asm.mov(R3, R10),
      asm.aluImm("add", R3, -48),
      asm.movImm(R4, 1),
      asm.call(Helper.mapUpdateElem),
      asm.ja(2),
      asm.movImm(R0, CT_PROG_REFRESHED),
      asm.exit(),
      asm.jmpImm("jne", R0, 0, 2),
      asm.movImm(R0, CT_PROG_CREATED),
      asm.exit(),
      asm.movImm(R0, CT_PROG_NOT_CREATED),
      asm.exit(),
      asm.movImm(R0, 0),
      asm.exit(),
    ),
    { type: ProgType.Xdp, name: "htab_ct" },
  );
}
