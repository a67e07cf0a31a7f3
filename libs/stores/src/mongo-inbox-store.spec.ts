import { describeWithMongo } from '@tollstream/testing';
import { MongoInboxStore } from './mongo-inbox-store';
import { inboxStoreContract } from './testing/inbox-store-contract';

// Skipped, with the reason printed and reported, where no MongoDB can be had (MONGODB_URI or Docker).
describeWithMongo('MongoInboxStore on a real MongoDB', (getUri) => {
  inboxStoreContract('MongoDB', async () => {
    const database = `tollstream_inbox_contract_${process.pid}_${Date.now()}`;
    const store = await MongoInboxStore.open({ uri: getUri(), database });
    return {
      store,
      cleanup: async () => {
        const { MongoClient } = await import('mongodb');
        const client = new MongoClient(getUri());
        await client.db(database).dropDatabase().finally(() => client.close());
        await store.close();
      },
    };
  });
});
