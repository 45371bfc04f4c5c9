/**
 * An object spec written in instructions (isa.ts `asm`), for tests that load
 * one hand-written XDP program on both engines (LoadedObject.fromSpec) and
 * in the kernel (KernelObject.fromSpec): program "p", the given maps.
 */
import type { Insn } from "../../src/bpf/isa.js";
import { type BpfObjectSpec, type MapDef, ProgType } from "../../src/bpf/loader.js";
import { MapType } from "../../src/uapi.js";

/** One XDP program named "p" over `maps` (referenced by index: LD_IMM64 src 1, imm = the index). */
export function xdpSpec(insns: Insn[], maps: MapDef[] = []): BpfObjectSpec {
  return {
    name: "asm",
    license: "GPL",
    maps,
    programs: [
      {
        name: "p",
        section: "xdp",
        type: ProgType.Xdp,
        insns,
        lines: [],
        origin: insns.map((_x, i) => ({ section: "xdp", insn: i })),
      },
    ],
  };
}

/** A map definition of `type` with sizes given (no BTF), as `.maps` would give it. */
export function mapDef(
  name: string,
  type: number,
  keySize: number,
  valueSize: number,
  maxEntries: number,
): MapDef {
  return { name, type, keySize, valueSize, maxEntries, flags: 0, pinning: 0, keyType: 0, valueType: 0 };
}

/** A u32 -> u64 HASH map named "h" of 16 entries. */
export const HASH_U32_U64 = mapDef("h", MapType.Hash, 4, 8, 16);

/** The two instructions of BPF_LD_MAP_FD for the spec's map `index`. */
export function ldMap(dst: number, index: number): Insn[] {
  return [
    { code: 0x18, dst, src: 1, off: 0, imm: index },
    { code: 0, dst: 0, src: 0, off: 0, imm: 0 },
  ];
}
