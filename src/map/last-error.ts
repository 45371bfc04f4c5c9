/**
 * Why the last call of a map object failed: the `lastError` of every
 * backend (the SAB map, the map-in-map types, the kernel map).
 *
 * Failing calls on hot paths (a full map under load, bad flags in a loop)
 * must not allocate, so a failure records either a ready string or a kind
 * and a number, formatted only when `message` is read.
 */
export class LastError {
  private text = "";
  private kind = 0;
  private arg = 0;

  /**
   * @param format turns a recorded kind (> 0) and its number into the
   * message; called only when the message is read, so it may look at live
   * state (the count of a full map, another object's last error)
   */
  constructor(private readonly format: (kind: number, arg: number) => string = () => "") {}

  /** Record `text` as the reason. @returns `err`, so that `return e.fail(-EINVAL, "...")` reads as one step */
  fail(err: number, text: string): number {
    this.kind = 0;
    this.text = text;
    return err;
  }

  /** Record a reason to be formatted later (kind > 0; see the constructor). @returns `err` */
  failWith(err: number, kind: number, arg: number): number {
    this.kind = kind;
    this.arg = arg;
    return err;
  }

  /** The reason, formatted now. */
  get message(): string {
    return this.kind === 0 ? this.text : this.format(this.kind, this.arg);
  }
}
