import { describeWithMongo } from '@tollstream/testing';
import { MongoAccountSpendStore } from './mongo-account-spend-store';
import { accountSpendStoreContract } from './testing/account-spend-store-contract';

// Skipped, with the reason printed and reported, where no MongoDB can be had (MONGODB_URI or Docker).
describeWithMongo('MongoAccountSpendStore on a real MongoDB', (getUri) => {
  accountSpendStoreContract('MongoDB', async () => {
    const database = `tollstream_contract_${process.pid}_${Date.now()}`;
    const store = await MongoAccountSpendStore.open({ uri: getUri(), database });
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
