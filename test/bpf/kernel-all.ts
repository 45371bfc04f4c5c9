/**
 * The kernel side of the multi-map objects (map-in-map, PROG_ARRAY): like
 * kernel-object.ts's KernelObject (which stays as it is), but every program
 * of the object is loaded, a map-in-map gets its inner template map
 * (inner_map_fd) and its initial slots, and a PROG_ARRAY its programs, as
 * libbpf does at load.
 */
import type { Insn } from "../../src/bpf/isa.js";
import { type BpfObjectSpec, type MapDef, ProgType } from "../../src/bpf/loader.js";
import { KernelMap } from "../../src/kernel/kernel-map.js";
import { type BpfProgram, loadProgram } from "../../src/kernel/program.js";
import type { MapType } from "../../src/uapi.js";
import { KernelObject, rawElem } from "./kernel-object.js";

const PROG_ARRAY = 3;

function create(spec: BpfObjectSpec, def: MapDef, inner?: KernelMap): KernelMap {
  return KernelMap.create(
    {
      type: def.type as MapType,
      keySize: def.keySize,
      valueSize: def.valueSize,
      maxEntries: def.maxEntries,
      flags: def.flags,
      name: def.name.replace(/[^A-Za-z0-9_.]/g, "_").slice(0, 15),
    },
    {
      ...(inner ? { innerMap: inner } : {}),
      ...(def.global || def.keyType === 0 || def.valueType === 0 || spec.btfBytes === undefined
        ? {}
        : { btf: { blob: spec.btfBytes, keyTypeId: def.keyType, valueTypeId: def.valueType } }),
    },
  );
}

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);

/** All of an object's maps and programs in the kernel. */
export class KernelObjectAll {
  readonly maps: KernelMap[] = [];
  readonly templates: KernelMap[] = [];
  readonly progs = new Map<string, BpfProgram>();

  /** @param skip programs not to load (the kernel needs func info for some; this loader passes none) */
  constructor(
    readonly spec: BpfObjectSpec,
    skip: readonly string[] = [],
  ) {
    try {
      for (const def of spec.maps) {
        let inner: KernelMap | undefined;
        if (def.inner) {
          inner = create(spec, def.inner);
          this.templates.push(inner);
        }
        const m = create(spec, def, inner);
        this.maps.push(m);
        if (def.global) rawElem("update", m.fd, new Uint8Array(4), def.global.data);
      }
      for (const p of spec.programs) if (!skip.includes(p.name)) this.load(p);
      spec.maps.forEach((def, i) => {
        this.fill(def, i);
      });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private load(p: BpfObjectSpec["programs"][number]): void {
    const insns: Insn[] = p.insns.map((x) => ({ ...x }));
    for (const x of insns) if (x.code === 0x18 && (x.src === 1 || x.src === 2)) x.imm = this.maps[x.imm].fd;
    this.progs.set(
      p.name,
      loadProgram(insns, {
        type: p.type === ProgType.Xdp ? 6 : p.type,
        license: this.spec.license,
        name: p.name,
      }),
    );
  }

  /** The initial slots of map `i`: inner map fds, or program fds of a PROG_ARRAY. */
  private fill(def: MapDef, i: number): void {
    for (const s of def.slots ?? []) {
      const fd =
        def.type === PROG_ARRAY
          ? (this.progs.get(s.program as string) as BpfProgram).fd
          : this.maps[s.map as number].fd;
      rawElem("update", this.maps[i].fd, u32(s.index), u32(fd));
    }
  }

  /** The kernel map of the object's map `name`. */
  map(name: string): KernelMap {
    return this.maps[this.spec.maps.findIndex((d) => d.name === name)];
  }

  /** Put the program `program` in slot `index` of PROG_ARRAY `map`. */
  setTailCall(map: string, index: number, program: string): void {
    rawElem("update", this.map(map).fd, u32(index), u32((this.progs.get(program) as BpfProgram).fd));
  }

  /** A global section's bytes now. */
  global(section: string): Uint8Array {
    return KernelObject.prototype.global.call(
      { maps: this.maps } as unknown as KernelObject,
      this.spec,
      section,
    );
  }

  close(): void {
    for (const p of this.progs.values()) p.close();
    for (const m of this.maps) m.close();
    for (const m of this.templates) m.close();
  }
}
