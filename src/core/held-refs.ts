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

  /** Record element `e` (a word index > 0). */
  add(e: number): void {
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
    return this.overflow ? HELD_MAX : this.n;
  }

  /** Forget every element (the section ended: its references are dead). */
  clear(): void {
    if (this.n === HELD_MAX) this.table.fill(0);
    else for (let k = 0; k < this.n; k++) this.unset(this.list[k]);
    this.n = 0;
    this.overflow = false;
    this.external = null;
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
