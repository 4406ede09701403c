/**
 * A cache of full-unit buffers (gathered parameters, gradients, reduce-scatter
 * temporaries), like PyTorch's caching allocator: a released buffer is kept for
 * the next unit of the same length instead of being freed and allocated again
 * (each host allocation is a memfd mapping; each device one a cudaMalloc).
 * `liveBytes` counts what is in use, `cachedBytes` what waits for reuse.
 */
export class BufferPool<B> {
  private readonly free = new Map<number, B[]>();
  private live = 0;
  private cached = 0;
  private peak = 0;

  constructor(
    private readonly allocate: (length: number) => B,
    private readonly bytesPerElement: number,
    private readonly lengthOf: (buffer: B) => number,
  ) {}

  /** A buffer of `length` elements; its contents are whatever the last user left. */
  take(length: number): B {
    const bytes = length * this.bytesPerElement;
    const list = this.free.get(length);
    let buffer: B;
    if (list !== undefined && list.length > 0) {
      buffer = list.pop() as B;
      if (list.length === 0) this.free.delete(length);
      this.cached -= bytes;
    } else {
      buffer = this.allocate(length);
    }
    this.live += bytes;
    this.peak = Math.max(this.peak, this.live);
    return buffer;
  }

  /** Returns a buffer taken from this pool. */
  give(buffer: B): void {
    const length = this.lengthOf(buffer);
    const bytes = length * this.bytesPerElement;
    this.live -= bytes;
    this.cached += bytes;
    const list = this.free.get(length);
    if (list) list.push(buffer);
    else this.free.set(length, [buffer]);
  }

  /** Drops every cached buffer (the memory goes when nothing else refers to it). */
  clear(): void {
    this.free.clear();
    this.cached = 0;
  }

  get liveBytes(): number {
    return this.live;
  }
  get cachedBytes(): number {
    return this.cached;
  }
  get peakBytes(): number {
    return this.peak;
  }
}
