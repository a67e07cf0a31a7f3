/** Min-heap of distinct deadlines (ms) in a growable Float64Array: no objects for the GC. */
export class DeadlineHeap {
  private items = new Float64Array(64);
  private length = 0;

  get size(): number {
    return this.length;
  }

  /** Smallest deadline; +Infinity when empty. */
  peek(): number {
    return this.length === 0 ? Number.POSITIVE_INFINITY : this.items[0];
  }

  push(deadline: number): void {
    if (this.length === this.items.length) {
      const grown = new Float64Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    const items = this.items;
    let i = this.length++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent] <= deadline) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = deadline;
  }

  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items[--this.length];
    const n = this.length;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && items[child + 1] < items[child]) child++;
      if (items[child] >= last) break;
      items[i] = items[child];
      i = child;
    }
    if (n > 0) items[i] = last;
    return top;
  }
}
