/**
 * The contract every InboxStore adapter must meet; run by each adapter's spec against the real
 * backend (nats-server for KV, MongoDB when one is available).
 */
import type { InboxStore, NewNotification } from '../inbox-store';

export interface InboxStoreUnderTest {
  store: InboxStore;
  cleanup(): Promise<void>;
}

function aNotification(accountId: string, alertId: string, createdAtMs = 1_000): NewNotification {
  return { accountId, alertId, title: `title ${alertId}`, body: 'body', payload: 'AAEC', createdAtMs };
}

export function inboxStoreContract(name: string, open: () => Promise<InboxStoreUnderTest>): void {
  describe(`InboxStore contract: ${name}`, () => {
    let underTest: InboxStoreUnderTest;
    let store: InboxStore;
    beforeAll(async () => {
      underTest = await open();
      store = underTest.store;
    }, 60_000);
    afterAll(async () => underTest?.cleanup());

    it('numbers notifications of an account from 1 and returns the existing one for a repeated alert', async () => {
      const first = await store.append(aNotification('acct-a', 'alert-1'));
      expect(first.created).toBe(true);
      expect(first.notification).toMatchObject({ accountId: 'acct-a', alertId: 'alert-1', sequence: 1, payload: 'AAEC' });
      expect((await store.append(aNotification('acct-a', 'alert-2'))).notification.sequence).toBe(2);
      const again = await store.append({ ...aNotification('acct-a', 'alert-1'), title: 'changed' });
      expect(again.created).toBe(false);
      expect(again.notification).toMatchObject({ sequence: 1, title: 'title alert-1' });
      // Sequences are per account.
      expect((await store.append(aNotification('acct-b', 'alert-1'))).notification.sequence).toBe(1);
    });

    it('lists newest first, paged by sequence, with the unread count', async () => {
      for (let i = 1; i <= 5; i++) await store.append(aNotification('acct-list', `l-${i}`));
      const page1 = await store.list('acct-list', { limit: 2 });
      expect(page1.notifications.map((n) => n.sequence)).toEqual([5, 4]);
      expect(page1.unreadCount).toBe(5);
      const page2 = await store.list('acct-list', { limit: 2, beforeSequence: 4 });
      expect(page2.notifications.map((n) => n.sequence)).toEqual([3, 2]);
      const page3 = await store.list('acct-list', { limit: 2, beforeSequence: 2 });
      expect(page3.notifications.map((n) => n.sequence)).toEqual([1]);
      expect(await store.list('acct-none', { limit: 2 })).toEqual({ notifications: [], unreadCount: 0 });
    });

    it('marks read idempotently, ignoring unknown ids', async () => {
      for (let i = 1; i <= 3; i++) await store.append(aNotification('acct-read', `r-${i}`));
      expect(await store.markRead('acct-read', [1, 3, 99], 5_000)).toBe(2);
      expect(await store.markRead('acct-read', [1, 3], 6_000)).toBe(0);
      const page = await store.list('acct-read', { limit: 10 });
      expect(page.unreadCount).toBe(1);
      expect(page.notifications.map((n) => [n.sequence, n.readAtMs])).toEqual([
        [3, 5_000],
        [2, undefined],
        [1, 5_000],
      ]);
    });

    it('reads after a sequence, oldest first, limited', async () => {
      for (let i = 1; i <= 6; i++) await store.append(aNotification('acct-after', `a-${i}`));
      expect((await store.readAfter('acct-after', 2, 3)).map((n) => n.sequence)).toEqual([3, 4, 5]);
      expect((await store.readAfter('acct-after', 0, 100)).map((n) => n.sequence)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(await store.readAfter('acct-after', 6, 10)).toEqual([]);
    });

    it('under concurrency: distinct alerts get gap-free sequences, a repeated alert is stored once', async () => {
      const distinct = await Promise.all(Array.from({ length: 30 }, (_, i) => store.append(aNotification('acct-conc', `c-${i}`))));
      expect(distinct.every((r) => r.created)).toBe(true);
      expect(distinct.map((r) => r.notification.sequence).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const same = await Promise.all(Array.from({ length: 10 }, () => store.append(aNotification('acct-conc', 'same-alert'))));
      expect(same.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(same.map((r) => r.notification.sequence))).toEqual(new Set([31]));
      expect((await store.readAfter('acct-conc', 0, 100)).map((n) => n.sequence)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
    }, 30_000);
  });
}
