import { describeWithMongo } from '@tollstream/testing';
import { MongoTrafficStores } from './mongo-traffic-store';
import { trafficStoreContract } from './testing/traffic-store-contract';

// Skipped, with the reason printed and reported, where no MongoDB can be had (MONGODB_URI or Docker).
describeWithMongo('MongoTrafficStores on a real MongoDB', (getUri) => {
  trafficStoreContract('MongoDB', async () => {
    const database = `tollstream_traffic_contract_${process.pid}_${Date.now()}`;
    const stores = await MongoTrafficStores.open({ uri: getUri(), database });
    return {
      references: stores.references,
      detection: stores.detection,
      cleanup: async () => {
        const { MongoClient } = await import('mongodb');
        const client = new MongoClient(getUri());
        await client.db(database).dropDatabase().finally(() => client.close());
        await stores.close();
      },
    };
  });
});
