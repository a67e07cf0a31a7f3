import { trafficConfigSchema } from './config';

describe('traffic-anomaly configuration', () => {
  it('has defaults and requires the API credential', () => {
    const config = trafficConfigSchema.parse({ TRAFFIC_API_TOKEN: 'a-token-of-16-chars' });
    expect(config).toMatchObject({ TRAFFIC_GRPC_PORT: 50054, TRAFFIC_HTTP_PORT: 9468, TRAFFIC_WINDOW: 30 * 60_000, TRAFFIC_ALERT_GRACE: 0, TRAFFIC_ALLOWED_LATENESS: 3_600_000, TRAFFIC_STORE: 'nats-kv' });
    expect(trafficConfigSchema.safeParse({}).error?.issues.map((issue) => issue.path.join('.'))).toEqual(['TRAFFIC_API_TOKEN_FILE']);
  });

  it('accepts tumbling slots dividing a day only, and needs MONGODB_URI for mongodb', () => {
    const base = { TRAFFIC_API_TOKEN: 'a-token-of-16-chars' };
    expect(trafficConfigSchema.parse({ ...base, TRAFFIC_WINDOW: 'tumbling:15m' }).TRAFFIC_WINDOW).toBe(15 * 60_000);
    expect(trafficConfigSchema.safeParse({ ...base, TRAFFIC_WINDOW: 'sliding:30m' }).success).toBe(false);
    expect(trafficConfigSchema.safeParse({ ...base, TRAFFIC_WINDOW: 'tumbling:7m' }).success).toBe(false);
    expect(trafficConfigSchema.safeParse({ ...base, TRAFFIC_STORE: 'mongodb' }).error?.issues[0].path).toEqual(['MONGODB_URI']);
  });
});
