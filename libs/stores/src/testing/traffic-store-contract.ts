import { TrafficStateConflictError, type StationReferenceRecord, type TrafficDetectionStore, type TrafficReferenceStore } from '../traffic-store';

export interface TrafficStoresUnderTest {
  references: TrafficReferenceStore;
  detection: TrafficDetectionStore;
  cleanup(): Promise<void>;
}

const version = (stationId: string, effectiveFromMs: number, min: number): StationReferenceRecord => ({
  stationId,
  versions: [{ version: `${new Date(effectiveFromMs).toISOString()}#x`, effectiveFromMs, timeZone: 'UTC', slotMinutes: 30, bands: { '1/0': { min, max: min * 10 } } }],
});

/** The behaviour every TrafficReferenceStore / TrafficDetectionStore adapter must have. */
export function trafficStoreContract(name: string, open: () => Promise<TrafficStoresUnderTest>): void {
  describe(`traffic stores contract: ${name}`, () => {
    let stores: TrafficStoresUnderTest;
    beforeAll(async () => {
      stores = await open();
    }, 30_000);
    afterAll(async () => {
      await stores?.cleanup();
    });

    it('creates, reads, lists and updates references per station', async () => {
      expect(await stores.references.get('st.a')).toBeUndefined();
      await stores.references.update('st.a', () => version('st.a', 0, 5));
      await stores.references.update('st-b', () => version('st-b', 0, 7));
      expect((await stores.references.get('st.a'))?.versions[0].bands['1/0']).toEqual({ min: 5, max: 50 });
      const unchanged = await stores.references.update('st.a', () => undefined);
      expect(unchanged?.stationId).toBe('st.a');
      await stores.references.update('st.a', (current) => ({ stationId: 'st.a', versions: [...(current?.versions ?? []), ...version('st.a', 1000, 9).versions] }));
      const listed = await stores.references.list();
      expect(listed.map((record) => record.stationId)).toEqual(['st-b', 'st.a']);
      expect(listed[1].versions).toHaveLength(2);
    });

    it('serialises concurrent reference updates (no lost update)', async () => {
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          stores.references.update('st-c', (current) => ({
            stationId: 'st-c',
            versions: [...(current?.versions ?? []), ...version('st-c', i * 1000, i + 1).versions],
          })),
        ),
      );
      expect((await stores.references.get('st-c'))?.versions).toHaveLength(8);
    });

    it('writes partition state with compare-and-set', async () => {
      expect(await stores.detection.read(3)).toBeUndefined();
      const first = await stores.detection.write({ partition: 3, watermarkMs: 10, slots: {} }, undefined);
      await expect(stores.detection.write({ partition: 3, slots: {} }, undefined)).rejects.toBeInstanceOf(TrafficStateConflictError);
      const second = await stores.detection.write({ partition: 3, watermarkMs: 20, evaluatedUpToMs: 20, slots: {} }, first);
      await expect(stores.detection.write({ partition: 3, slots: {} }, first)).rejects.toBeInstanceOf(TrafficStateConflictError);
      const read = await stores.detection.read(3);
      expect(read?.revision).toBe(second);
      expect(read?.state).toEqual({ partition: 3, watermarkMs: 20, evaluatedUpToMs: 20, slots: {} });
    });
  });
}
