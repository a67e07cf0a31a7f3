import fc from 'fast-check';
import { SortedIds } from './sorted-ids';

describe('SortedIds (a page’s account ids in the read-model writer)', () => {
  it('holds exactly the ids added, each once, in code-unit order, through merges at any point', () => {
    const step = fc.oneof(fc.record({ add: fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 3 })) }), fc.constant({ merge: true as const }));
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), fc.array(fc.string({ maxLength: 6 }), { maxLength: 20 }), (steps, probes) => {
        const ids = new SortedIds();
        const model = new Set<string>();
        for (const s of steps) {
          if ('add' in s) {
            ids.add(s.add);
            model.add(s.add);
          } else ids.merge();
          expect(ids.size).toBe(model.size);
          for (const probe of probes) expect(ids.has(probe)).toBe(model.has(probe));
          const added = 'add' in s ? s.add : '';
          expect(ids.has(added)).toBe(model.has(added));
        }
        const expected = [...model].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect([...ids]).toEqual(expected);
        // Iterating merged everything: adding a held id changes nothing.
        for (const id of expected) ids.add(id);
        expect([...ids]).toEqual(expected);
      }),
    );
  });
});
