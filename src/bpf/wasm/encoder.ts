/**
 * A small WebAssembly binary encoder: what the BPF compiler needs and no
 * more. A byte writer with LEB128, the opcodes (core, sign extension, bulk
 * memory's memory.fill, threads' atomics under the 0xFE prefix), and a
 * module assembler (types, imports of functions and a memory, functions,
 * mutable globals, exports, code). Binary format: the WebAssembly core
 * specification, §5 (binary format), and the threads proposal.
 */

/** Value types. */
export const I32 = 0x7f;
export const I64 = 0x7e;
export type ValType = typeof I32 | typeof I64;
/** The empty block type. */
export const VOID = 0x40;

const UTF8 = new TextEncoder();

/** A growable byte buffer with the encodings the binary format uses. */
export class Writer {
  private buf = new Uint8Array(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  u8(b: number): this {
    this.room(1);
    this.buf[this.length++] = b;
    return this;
  }
  bytes(b: Uint8Array | readonly number[]): this {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  /** Unsigned LEB128 of a number below 2^32. */
  uleb(n: number): this {
    this.room(5);
    let v = n >>> 0;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.buf[this.length++] = b;
    } while (v !== 0);
    return this;
  }
  /** Signed LEB128 of a 32-bit integer. */
  sleb32(n: number): this {
    this.room(5);
    let v = n | 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.buf[this.length++] = b;
        return this;
      }
      this.buf[this.length++] = b | 0x80;
    }
  }
  /** Signed LEB128 of a 64-bit integer (any bigint is read as its low 64 bits, signed). */
  sleb64(n: bigint): this {
    let v = BigInt.asIntN(64, n);
    if (v >= -0x80000000n && v <= 0x7fffffffn) return this.sleb32(Number(v));
    this.room(10);
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
        this.buf[this.length++] = b;
        return this;
      }
      this.buf[this.length++] = b | 0x80;
    }
  }
  name(s: string): this {
    const b = UTF8.encode(s);
    return this.uleb(b.length).bytes(b);
  }
  /** A vector of bytes already encoded elsewhere, prefixed by its length. */
  sized(w: Writer): this {
    this.uleb(w.length);
    return this.bytes(w.out());
  }
  out(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** The opcodes the compiler emits (one byte each; prefixed ones below). */
export const Op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  i32Load: 0x28,
  i64Load: 0x29,
  i64Load8S: 0x30,
  i64Load8U: 0x31,
  i64Load16S: 0x32,
  i64Load16U: 0x33,
  i64Load32S: 0x34,
  i64Load32U: 0x35,
  i32Store: 0x36,
  i64Store: 0x37,
  i64Store8: 0x3c,
  i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GtU: 0x4b,
  i32LeS: 0x4c,
  i32LeU: 0x4d,
  i32GeS: 0x4e,
  i32GeU: 0x4f,
  i64Eqz: 0x50,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64LtS: 0x53,
  i64LtU: 0x54,
  i64GtS: 0x55,
  i64GtU: 0x56,
  i64LeS: 0x57,
  i64LeU: 0x58,
  i64GeS: 0x59,
  i64GeU: 0x5a,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32RemS: 0x6f,
  i32RemU: 0x70,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i32Rotl: 0x77,
  i32Rotr: 0x78,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64And: 0x83,
  i64Or: 0x84,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrS: 0x87,
  i64ShrU: 0x88,
  i64Rotl: 0x89,
  i64Rotr: 0x8a,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
  i32Extend8S: 0xc0,
  i32Extend16S: 0xc1,
  i64Extend8S: 0xc2,
  i64Extend16S: 0xc3,
  i64Extend32S: 0xc4,
  /** Prefix of the bulk-memory (and saturating) instructions. */
  prefixFC: 0xfc,
  /** Prefix of the atomics. */
  prefixFE: 0xfe,
} as const;

/** Second bytes after 0xFC. */
export const OpFC = { memoryCopy: 0x0a, memoryFill: 0x0b } as const;

/** Second bytes after 0xFE (threads proposal). */
export const OpFE = {
  notify: 0x00,
  i32AtomicLoad: 0x10,
  i64AtomicLoad: 0x11,
  i32AtomicStore: 0x17,
  i64AtomicStore: 0x18,
  i32RmwAdd: 0x1e,
  i64RmwAdd: 0x1f,
  i32RmwAnd: 0x2c,
  i64RmwAnd: 0x2d,
  i32RmwOr: 0x33,
  i64RmwOr: 0x34,
  i32RmwXor: 0x3a,
  i64RmwXor: 0x3b,
  i32RmwXchg: 0x41,
  i64RmwXchg: 0x42,
  i32RmwCmpxchg: 0x48,
  i64RmwCmpxchg: 0x49,
} as const;

/** One function's body: locals and the instruction stream. */
export class FuncBody {
  readonly code = new Writer();
  constructor(
    /** Extra locals after the parameters, in runs of one type. */
    readonly locals: readonly [count: number, type: ValType][],
  ) {}
  op(o: number): this {
    this.code.u8(o);
    return this;
  }
  i32(n: number): this {
    this.code.u8(Op.i32Const).sleb32(n);
    return this;
  }
  i64(n: bigint | number): this {
    this.code.u8(Op.i64Const);
    if (typeof n === "number") this.code.sleb32(n);
    else this.code.sleb64(n);
    return this;
  }
  get(l: number): this {
    this.code.u8(Op.localGet).uleb(l);
    return this;
  }
  set(l: number): this {
    this.code.u8(Op.localSet).uleb(l);
    return this;
  }
  tee(l: number): this {
    this.code.u8(Op.localTee).uleb(l);
    return this;
  }
  gget(g: number): this {
    this.code.u8(Op.globalGet).uleb(g);
    return this;
  }
  gset(g: number): this {
    this.code.u8(Op.globalSet).uleb(g);
    return this;
  }
  /** A load or store with memarg (align as log2, offset). */
  mem(o: number, align: number, offset = 0): this {
    this.code.u8(o).uleb(align).uleb(offset);
    return this;
  }
  /** An atomic (0xFE) memory instruction; align must be the natural one. */
  atomic(o: number, align: number, offset = 0): this {
    this.code.u8(Op.prefixFE).uleb(o).uleb(align).uleb(offset);
    return this;
  }
  /** memory.fill (dest, value, length on the stack). */
  fill(): this {
    this.code.u8(Op.prefixFC).uleb(OpFC.memoryFill).u8(0);
    return this;
  }
  /** memory.copy (dest, src, length on the stack). */
  copy(): this {
    this.code.u8(Op.prefixFC).uleb(OpFC.memoryCopy).u8(0).u8(0);
    return this;
  }
  block(type: number = VOID): this {
    this.code.u8(Op.block).u8(type);
    return this;
  }
  loop(type: number = VOID): this {
    this.code.u8(Op.loop).u8(type);
    return this;
  }
  if(type: number = VOID): this {
    this.code.u8(Op.if).u8(type);
    return this;
  }
  else(): this {
    this.code.u8(Op.else);
    return this;
  }
  end(): this {
    this.code.u8(Op.end);
    return this;
  }
  br(depth: number): this {
    this.code.u8(Op.br).uleb(depth);
    return this;
  }
  brIf(depth: number): this {
    this.code.u8(Op.brIf).uleb(depth);
    return this;
  }
  brTable(depths: readonly number[], dflt: number): this {
    this.code.u8(Op.brTable).uleb(depths.length);
    for (const d of depths) this.code.uleb(d);
    this.code.uleb(dflt);
    return this;
  }
  call(f: number): this {
    this.code.u8(Op.call).uleb(f);
    return this;
  }
}

export interface FuncType {
  params: readonly ValType[];
  results: readonly ValType[];
}

/** A function of the module: its type index and body. */
interface FuncDef {
  type: number;
  body: FuncBody;
  export?: string;
}

/**
 * A module: imported functions first (their indices are 0..), then the
 * defined ones, in the order added.
 */
export class ModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly typeKeys = new Map<string, number>();
  private readonly importFuncs: { module: string; name: string; type: number }[] = [];
  private memoryImport: { module: string; name: string; min: number; max: number; shared: boolean } | null =
    null;
  private readonly globals: { type: ValType; init: bigint; export?: string }[] = [];
  private readonly funcs: FuncDef[] = [];

  type(t: FuncType): number {
    const key = `${t.params.join(",")}:${t.results.join(",")}`;
    let i = this.typeKeys.get(key);
    if (i === undefined) {
      i = this.types.length;
      this.types.push(t);
      this.typeKeys.set(key, i);
    }
    return i;
  }
  /** Import a function; must come before any defined function is added. */
  importFunc(module: string, name: string, t: FuncType): number {
    if (this.funcs.length > 0) throw new Error("wasm encoder: imports come before functions");
    this.importFuncs.push({ module, name, type: this.type(t) });
    return this.importFuncs.length - 1;
  }
  importMemory(module: string, name: string, min: number, max: number, shared: boolean): void {
    this.memoryImport = { module, name, min, max, shared };
  }
  /** A mutable global, optionally exported. Returns its index. */
  global(type: ValType, init: bigint, exportName?: string): number {
    this.globals.push({ type, init, export: exportName });
    return this.globals.length - 1;
  }
  /** The index the next defined function will get. */
  nextFunc(): number {
    return this.importFuncs.length + this.funcs.length;
  }
  func(t: FuncType, body: FuncBody, exportName?: string): number {
    this.funcs.push({ type: this.type(t), body, export: exportName });
    return this.nextFunc() - 1;
  }
  /** Replace the body of defined function `index` (to define functions that call each other). */
  setBody(index: number, body: FuncBody): void {
    this.funcs[index - this.importFuncs.length].body = body;
  }

  encode(): Uint8Array {
    const out = new Writer();
    out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, fill: (w: Writer) => void) => {
      const w = new Writer();
      fill(w);
      out.u8(id).sized(w);
    };
    section(1, (w) => {
      w.uleb(this.types.length);
      for (const t of this.types) {
        w.u8(0x60).uleb(t.params.length).bytes(t.params).uleb(t.results.length).bytes(t.results);
      }
    });
    const mem = this.memoryImport;
    section(2, (w) => {
      w.uleb(this.importFuncs.length + (mem ? 1 : 0));
      for (const f of this.importFuncs) w.name(f.module).name(f.name).u8(0x00).uleb(f.type);
      if (mem)
        w.name(mem.module)
          .name(mem.name)
          .u8(0x02)
          .u8(mem.shared ? 0x03 : 0x01)
          .uleb(mem.min)
          .uleb(mem.max);
    });
    section(3, (w) => {
      w.uleb(this.funcs.length);
      for (const f of this.funcs) w.uleb(f.type);
    });
    if (this.globals.length > 0)
      section(6, (w) => {
        w.uleb(this.globals.length);
        for (const g of this.globals) {
          w.u8(g.type).u8(0x01);
          if (g.type === I32) w.u8(Op.i32Const).sleb32(Number(g.init));
          else w.u8(Op.i64Const).sleb64(g.init);
          w.u8(Op.end);
        }
      });
    const exports: [string, number, number][] = [];
    this.funcs.forEach((f, i) => {
      if (f.export !== undefined) exports.push([f.export, 0x00, this.importFuncs.length + i]);
    });
    this.globals.forEach((g, i) => {
      if (g.export !== undefined) exports.push([g.export, 0x03, i]);
    });
    section(7, (w) => {
      w.uleb(exports.length);
      for (const [name, kind, index] of exports) w.name(name).u8(kind).uleb(index);
    });
    section(10, (w) => {
      w.uleb(this.funcs.length);
      for (const f of this.funcs) {
        const b = new Writer();
        b.uleb(f.body.locals.length);
        for (const [count, type] of f.body.locals) b.uleb(count).u8(type);
        b.bytes(f.body.code.out()).u8(Op.end);
        w.sized(b);
      }
    });
    return out.out().slice();
  }
}
