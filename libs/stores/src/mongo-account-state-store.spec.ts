import { describeWithMongo } from '@tollstream/testing';
import { MongoAccountStateStore } from './mongo-account-state-store';
import { accountStateStoreContract } from './testing/account-state-store-contract';

// Skipped, with the reason printed and reported, where no MongoDB can be had (MONGODB_URI or Docker).
describeWithMongo('MongoAccountStateStore on a real MongoDB', (getUri) => {
  const database = `tollstream_state_contract_${process.pid}_${Date.now()}`;
  accountStateStoreContract('MongoDB', async () => {
    const store = await MongoAccountStateStore.open({ uri: getUri(), database, batchSize: 2 });
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(getUri());
    return {
      store,
      writeLegacyAccount: async () => {
        await client.db(database).collection<{ _id: string }>('billing_accounts').insertOne({ _id: 'acct-1' });
      },
      cleanup: async () => {
        await client.db(database).dropDatabase().finally(() => client.close());
        await store.close();
      },
    };
  });
});
