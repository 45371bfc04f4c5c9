/**
 * The conntrack datapath as a BPF program (XDP), one instruction list for
 * both backends: run with BPF_PROG_TEST_RUN on a kernel map
 * (loadConntrackProgram) and compiled on an htab map in a loaded object
 * (loadConntrackObject), as Cilium's datapath runs in the kernel. The
 * packet carries the flow key (bytes 0-15) and the packet time in µs
 * (bytes 16-23). The program looks the flow up; a tracked flow is
 * refreshed by copying its value to the stack, updating it (last_seen set,
 * packets and bytes added) and writing it back with BPF_EXIST; an
 * untracked one, or one deleted between the lookup and the update, is
 * inserted with BPF_NOEXIST.
 *
 * Why not refresh in place through the lookup's pointer (as Cilium does):
 * an update holds the bucket lock, so the GC's compareAndDelete (atomic
 * with every bucket-lock holder) either sees the refresh or deletes before
 * it; a store through the pointer holds nothing, and a compare could pass
 * just before it (seed 001's "atomicity boundary").
 *
 * Return value: 1 refreshed, 2 created, 3 not created (map full, or another
 * CPU created it first), 0 short packet.
 */
import { asm, Helper, type Insn, program, R0, R1, R2, R3, R4, R6, R7, R8, R9, R10 } from "../bpf/isa.js";
import type { BpfObjectSpec } from "../bpf/loader.js";
import { LoadedObject } from "../bpf/object.js";
import type { KernelMap } from "../kernel/kernel-map.js";
import { type BpfProgram, loadProgram, ProgType } from "../kernel/program.js";
import { MapType } from "../uapi.js";
import { CT_KEY_SIZE, CT_VALUE_SIZE } from "./conntrack-layout.js";

export const CT_PROG_REFRESHED = 1;
export const CT_PROG_CREATED = 2;
export const CT_PROG_NOT_CREATED = 3;
/** Packet bytes: key (16), time (8), padding to a minimal frame. */
export const CT_PACKET_BYTES = 64;
/** The program's name (both backends). */
export const CT_PROG_NAME = "htab_ct";
const BPF_NOEXIST = 1;
const BPF_EXIST = 2;

/**
 * The datapath's instructions on `map` (key 16 bytes, value last_seen,
 * packets, bytes, created: u64 each): a kernel map's fd, or `{ fd: i }`
 * for map `i` of a loaded object. Stack: the key at -16, the value at -48.
 */
export function conntrackInsns(map: { readonly fd: number }): Insn[] {
  return program(
    asm.load("w", R6, R1, 0), // 0: xdp_md->data
    asm.load("w", R7, R1, 4), // 1: xdp_md->data_end
    asm.mov(R2, R6),
    asm.aluImm("add", R2, 24),
    asm.jmp("jgt", R2, R7, 43), // 4: short packet: to "return 0" (48)
    // The key onto the stack, the packet time into r8.
    asm.load("dw", R3, R6, 0),
    asm.store("dw", R10, -16, R3),
    asm.load("dw", R3, R6, 8),
    asm.store("dw", R10, -8, R3),
    asm.load("dw", R8, R6, 16),
    asm.mov(R2, R10),
    asm.aluImm("add", R2, -16),
    ...asm.ldMapFd(R1, map), // 12, 13
    asm.call(Helper.mapLookupElem),
    asm.jmpImm("jeq", R0, 0, 12), // 15: untracked: to the insert (28)
    // Refresh: the value copied to the stack and changed there.
    asm.store("dw", R10, -48, R8), // last_seen
    asm.load("dw", R1, R0, 8),
    asm.aluImm("add", R1, 1),
    asm.store("dw", R10, -40, R1), // packets
    asm.load("dw", R1, R0, 16),
    asm.aluImm("add", R1, 1500),
    asm.store("dw", R10, -32, R1), // bytes
    asm.load("dw", R1, R0, 24),
    asm.store("dw", R10, -24, R1), // created
    asm.movImm(R4, BPF_EXIST),
    asm.movImm(R9, CT_PROG_REFRESHED),
    asm.ja(6), // 27: to the update (34)
    // 28: insert: a new value on the stack.
    asm.store("dw", R10, -48, R8),
    asm.storeImm("dw", R10, -40, 1),
    asm.storeImm("dw", R10, -32, 64),
    asm.store("dw", R10, -24, R8),
    asm.movImm(R4, BPF_NOEXIST),
    asm.movImm(R9, CT_PROG_CREATED),
    // 34: update(map, key, value, r4); r9 is what success answers.
    ...asm.ldMapFd(R1, map),
    asm.mov(R2, R10),
    asm.aluImm("add", R2, -16),
    asm.mov(R3, R10),
    asm.aluImm("add", R3, -48),
    asm.call(Helper.mapUpdateElem),
    asm.jmpImm("jne", R0, 0, 2), // 41: failed: to 44
    asm.mov(R0, R9),
    asm.exit(),
    // 44: a failed insert is final; a failed refresh (deleted since the lookup) inserts.
    asm.jmpImm("jeq", R9, CT_PROG_CREATED, 1),
    asm.ja(-18), // 45: to the insert (28)
    asm.movImm(R0, CT_PROG_NOT_CREATED),
    asm.exit(),
    asm.movImm(R0, 0), // 48
    asm.exit(),
  );
}

/** Load the datapath program for kernel map `map`. */
export function loadConntrackProgram(map: KernelMap): BpfProgram {
  return loadProgram(conntrackInsns(map), { type: ProgType.Xdp, name: CT_PROG_NAME });
}

/**
 * A loaded object holding the CT map (`ct`: HASH, or LRU_HASH with `lru`)
 * and the datapath program, compiled where wasm threads exist. Workers
 * attach its `handle()` on their own CPU slots.
 */
export function loadConntrackObject(o: { maxEntries: number; lru: boolean; nrCpus: number }): LoadedObject {
  const insns = conntrackInsns({ fd: 0 });
  const spec: BpfObjectSpec = {
    name: "conntrack",
    license: "GPL",
    maps: [
      {
        name: "ct",
        type: o.lru ? MapType.LruHash : MapType.Hash,
        keySize: CT_KEY_SIZE,
        valueSize: CT_VALUE_SIZE,
        maxEntries: o.maxEntries,
        flags: 0,
        pinning: 0,
        keyType: 0,
        valueType: 0,
      },
    ],
    programs: [
      {
        name: CT_PROG_NAME,
        section: "xdp",
        type: ProgType.Xdp,
        insns,
        lines: insns.map(() => undefined),
        origin: insns.map((_, insn) => ({ section: "xdp", insn })),
      },
    ],
  };
  return LoadedObject.fromSpec(spec, { name: "conntrack", nrCpus: o.nrCpus });
}
