import { Alert, TrafficCondition } from '@tollstream/contracts';
import { describeAlert, formatMoney, renderDashboard, serviceRows, type WatchSnapshot } from './dashboard';
import { parsePrometheusText } from '@tollstream/service-kit';

const ingestorMetrics = (accepted: number, cpuSeconds: number) => `# HELP tollstream_ingest_records_total Records received
# TYPE tollstream_ingest_records_total counter
tollstream_ingest_records_total{outcome="accepted",reason=""} ${accepted}
tollstream_ingest_records_total{outcome="duplicate",reason=""} 7
tollstream_ingest_records_total{outcome="rejected",reason="INVALID_FIELD"} 2
tollstream_ingest_records_total{outcome="rejected",reason="TOO_OLD"} 1
tollstream_dead_letters_total{reason="INVALID_FIELD"} 2
tollstream_dead_letters_total{reason="TOO_OLD"} 1
process_cpu_seconds_total ${cpuSeconds}
process_resident_memory_bytes 209715200
`;

describe('live view', () => {
  const reading = (takenAt: number, accepted: number, cpuSeconds: number, alerts: WatchSnapshot['alerts'] = []): WatchSnapshot => ({
    takenAt,
    services: [
      { name: 'ingestor', url: 'http://127.0.0.1:9464/metrics', samples: parsePrometheusText(ingestorMetrics(accepted, cpuSeconds)) },
      { name: 'windower', url: 'http://127.0.0.1:9465/metrics', error: 'http://127.0.0.1:9465/metrics: connect ECONNREFUSED' },
    ],
    streams: [
      {
        stream: 'TOLL_DLQ',
        exists: true,
        messages: 3,
        bytes: 1024,
        subjects: { 'tolls.dlq.ingestor': 3 },
        consumers: [],
      },
      { stream: 'TOLL_TX', exists: true, messages: 100, bytes: 2 ** 20, subjects: {}, consumers: [
        { name: 'warehouse-transactions', durable: true, pending: 12, ackPending: 3, redelivered: 0 },
        { name: 'P2MOgNCYfbq8FfdAfupINy_1', durable: false, pending: 7, ackPending: 0, redelivered: 0 },
        { name: 'P2MOgNCYfbq8FfdAfupIdD_1', durable: false, pending: 40, ackPending: 0, redelivered: 0 },
      ] },
    ],
    alerts,
  });

  it('turns two readings into rates, CPU and memory per service, and marks a service that does not answer', () => {
    const rows = serviceRows(reading(12_000, 25_000, 3.5), reading(10_000, 5_000, 2.5));
    const ingestor = rows.find((row) => row.name === 'ingestor');
    expect(ingestor).toMatchObject({ state: 'up', throughput: '10,000 accepted/s', cpu: '50%', rss: '200 MiB', deadLetters: '3', details: 'duplicates 7 · rejected 3' });
    expect(rows.find((row) => row.name === 'windower')).toMatchObject({ state: 'down', details: expect.stringContaining('ECONNREFUSED') });
    // The simulator is optional; a service missing from the readings is down.
    expect(rows.find((row) => row.name === 'simulator')?.state).toBe('not running');
    expect(rows.find((row) => row.name === 'notifier')?.state).toBe('down');
  });

  it('shows no rate after a restart reset the counters, and none from a single reading', () => {
    expect(serviceRows(reading(12_000, 100, 0.1), reading(10_000, 5_000, 2.5)).find((row) => row.name === 'ingestor')?.throughput).toBe('… accepted/s');
    expect(serviceRows(reading(12_000, 100, 0.1), undefined).find((row) => row.name === 'ingestor')?.throughput).toBe('… accepted/s');
  });

  it('describes spending and traffic alerts in the operator\'s words', () => {
    const spending = Alert.fromPartial({
      alertId: 'spending/acct-42/2026-11/v1',
      spendingThresholdBreached: { accountId: 'acct-42', month: '2026-11', thresholdMinor: 5000, totalMinor: 5125, currency: 'USD' },
    });
    expect(describeAlert(spending)).toBe('spending  acct-42 passed 50.00 USD in 2026-11 (total 51.25 USD)');
    const traffic = Alert.fromPartial({
      alertId: 'traffic/st-007/x',
      stationTraffic: {
        stationId: 'st-007',
        slotStart: new Date('2026-11-23T19:00:00Z'),
        slotEnd: new Date('2026-11-23T19:30:00Z'),
        timeZone: 'America/New_York',
        condition: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM,
        vehicleCount: 0,
        expectedMinimum: 120,
      },
    });
    expect(describeAlert(traffic)).toBe('traffic   st-007 below minimum 14:00-14:30 America/New_York: 0 vehicles (expected at least 120)');
    expect(formatMoney(-5, 'USD')).toBe('-0.05 USD');
    expect(formatMoney(1234, 'JPY')).toBe('1234 JPY');
  });

  it('renders services, consumer lag, dead letters by source and the newest alert first', () => {
    const alerts = [1, 2].map((n) => ({
      receivedAt: 0,
      alert: Alert.fromPartial({
        alertId: `spending/acct-${n}/2026-11/v1`,
        raisedAt: new Date(`2026-11-23T17:0${n}:00Z`),
        spendingThresholdBreached: { accountId: `acct-${n}`, month: '2026-11', thresholdMinor: 100, totalMinor: 100, currency: 'USD' },
      }),
    }));
    const screen = renderDashboard(reading(12_000, 25_000, 3.5, alerts), reading(10_000, 5_000, 2.5), { color: false, intervalSeconds: 2, maxAlerts: 8 });
    expect(screen).toMatch(/ingestor\s+up\s+10,000 accepted\/s\s+50%\s+200 MiB\s+3\s+duplicates 7/);
    expect(screen).toMatch(/windower\s+down/);
    expect(screen).toMatch(/warehouse-transactions\s+lag 12, awaiting ack 3/);
    expect(screen).toMatch(/2 ordered reader\(s\)\s+lag at most 40/);
    expect(screen).not.toContain('P2MOgNCYfbq8FfdAfupINy_1');
    expect(screen).toMatch(/tolls\.dlq\.ingestor\s+3/);
    expect(screen.indexOf('acct-2 passed')).toBeLessThan(screen.indexOf('acct-1 passed'));
    expect(screen).not.toContain('\u001b[');
  });
});
