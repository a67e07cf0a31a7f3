/**
 * A set of ids as one sorted array (binary search; new ids merged in a batch).
 *
 * Why not a Set: the read-model writer keeps, per page, the accounts with a record in it, two
 * entries per account (its account page and its month's page). At a million accounts Sets took
 * ~40 MiB of heap (a hash table of three words an entry, doubled as it grows); an array takes one
 * word an entry, and the ids are the strings the records already hold.
 */
export class SortedIds implements Iterable<string> {
  private ids: string[] = [];
  /** Added since the last merge, not yet in `ids` (each once). */
  private pending: string[] = [];
  private readonly pendingSet = new Set<string>();

  get size(): number {
    return this.ids.length + this.pending.length;
  }

  has(id: string): boolean {
    return this.pendingSet.has(id) || this.indexOf(id) >= 0;
  }

  /** Adds `id`; added ids join the sorted array at the next `merge` (or iteration). */
  add(id: string): void {
    if (this.has(id)) return;
    this.pending.push(id);
    this.pendingSet.add(id);
  }

  /** Merges the ids added since the last merge into the sorted array: O(n + k log k). */
  merge(): void {
    if (this.pending.length === 0) return;
    const added = this.pending.sort(compare);
    const merged: string[] = new Array(this.ids.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < this.ids.length && j < added.length) merged[k++] = this.ids[i] < added[j] ? this.ids[i++] : added[j++];
    while (i < this.ids.length) merged[k++] = this.ids[i++];
    while (j < added.length) merged[k++] = added[j++];
    this.ids = merged;
    this.pending = [];
    this.pendingSet.clear();
  }

  [Symbol.iterator](): Iterator<string> {
    this.merge();
    return this.ids[Symbol.iterator]();
  }

  private indexOf(id: string): number {
    let low = 0;
    let high = this.ids.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const at = this.ids[middle];
      if (at === id) return middle;
      if (at < id) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
