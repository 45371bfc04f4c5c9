/**
 * The elements this thread handed out references to during its current
 * program section on one view (lookupRef(), lookupPercpuRef(), a BPF
 * program's bpf_map_lookup_elem(), forEachElem()'s callbacks): JS state of
 * this thread only, cleared when the outermost section ends (section.ts).
 *
 * An element unlinked while sections are open waits in limbo because some
 * section may still read it through a reference (alloc/epoch.ts). When the
 * only open section is this view's own, the thread knows exactly which
 * elements that section can reach: the ones recorded here. Any other element
 * it unlinks (or finds in limbo with no other section older than its
 * unlink) can be reused at once, as the kernel reuses an evicted LRU node
 * (grace.ts reusableNow(), epoch.ts limboReclaim()).
 *
 * Bounded: at most HELD_MAX distinct elements are recorded; past that the
 * set answers "held" for every element (limbo as before, never unsafe).
 * Recording does not allocate (a fixed open-addressing table).
 */

/** Distinct elements recorded per section before every element counts as held. */
export const HELD_MAX = 64;
const TABLE = 128; // a power of two, twice HELD_MAX: probes stay short
const MASK = TABLE - 1;

export class HeldRefs {
  /** Element word indices (never 0), 0 = empty slot. */
  private readonly table = new Int32Array(TABLE);
  /** The recorded elements in order, for clear(). */
  private readonly list = new Int32Array(HELD_MAX);
  private n = 0;
  /** More than HELD_MAX distinct elements were recorded: has() answers true for all. */
  overflow = false;
  /**
   * References handed out where this record cannot see them (a compiled program's lookups run in
   * wasm and leave the value in its region table): asked by has() too, until clear().
   */
  external: ((e: number) => boolean) | null = null;
  /**
   * A section that spans several program runs (a compiled batch: references die when their run
   * ends): `clock[clockAt]` names the current run, and what an earlier run recorded is forgotten
   * when it moves on. Null: the section's references live until it ends. Set with runs().
   */
  private clock: Int32Array | null = null;
  private clockAt = 0;
  private stamp = 0;

  /** References live for one run, the run `clock[at]` names (see `clock`), until clear(). */
  runs(clock: Int32Array, at: number): void {
    this.clock = clock;
    this.clockAt = at;
    this.stamp = Atomics.load(clock, at);
  }

  /** Forget what an earlier run recorded (its references are dead). */
  private fresh(): void {
    const clock = this.clock;
    if (clock === null) return;
    const now = Atomics.load(clock, this.clockAt);
    if (now === this.stamp) return;
    this.stamp = now;
    this.forget();
  }

  /** Record element `e` (a word index > 0). */
  add(e: number): void {
    this.fresh();
    if (this.overflow) return;
    let i = Math.imul(e, 0x9e3779b1) >>> 25; // 7 bits: TABLE 128
    for (;;) {
      const x = this.table[i];
      if (x === e) return;
      if (x === 0) break;
      i = (i + 1) & MASK;
    }
    if (this.n === HELD_MAX) {
      this.overflow = true;
      return;
    }
    this.table[i] = e;
    this.list[this.n++] = e;
  }

  /** Whether a reference to `e` may have been handed out in this section. */
  has(e: number): boolean {
    this.fresh();
    if (this.overflow) return true;
    if (this.external?.(e) === true) return true;
    if (this.n === 0) return false;
    let i = Math.imul(e, 0x9e3779b1) >>> 25;
    for (let k = 0; k < TABLE; k++) {
      const x = this.table[i];
      if (x === e) return true;
      if (x === 0) return false;
      i = (i + 1) & MASK;
    }
    return false;
  }

  /** How many distinct elements are recorded (HELD_MAX when overflowed). */
  get size(): number {
    this.fresh();
    return this.overflow ? HELD_MAX : this.n;
  }

  /** Forget every element (the section ended: its references are dead), and the section's run clock and external test. */
  clear(): void {
    this.forget();
    this.external = null;
    this.clock = null;
  }

  private forget(): void {
    if (this.n === HELD_MAX) this.table.fill(0);
    else for (let k = 0; k < this.n; k++) this.unset(this.list[k]);
    this.n = 0;
    this.overflow = false;
  }

  private unset(e: number): void {
    // Linear probing without deletions: clear() empties whole runs, so clearing each entry's slot suffices.
    let i = Math.imul(e, 0x9e3779b1) >>> 25;
    for (let k = 0; k < TABLE; k++) {
      if (this.table[i] === e) {
        this.table[i] = 0;
        return;
      }
      i = (i + 1) & MASK;
    }
  }
}
