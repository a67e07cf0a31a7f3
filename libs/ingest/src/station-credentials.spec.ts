import { createHash } from 'node:crypto';
import { StationCredentials } from './station-credentials';

const token = 'north-plaza-secret-token-0001';

describe('StationCredentials', () => {
  it('authenticates clear and hashed tokens and binds them to their stations', () => {
    const other = 'south-plaza-secret-token-0002';
    const credentials = StationCredentials.parse(
      {
        stations: [
          { name: 'north', token, stationIds: ['st-001', 'st-002'] },
          { name: 'south', tokenSha256: createHash('sha256').update(other).digest('hex'), stationIds: ['st-003'] },
        ],
      },
      'test',
    );
    expect(credentials.authenticate(token)?.stationIds).toEqual(new Set(['st-001', 'st-002']));
    expect(credentials.authenticate(other)?.name).toBe('south');
    expect(credentials.authenticate('wrong-token-wrong-token')).toBeUndefined();
    expect(credentials.authenticate(undefined)).toBeUndefined();
  });

  it('explains what is wrong with a credentials file, without echoing tokens', () => {
    expect(() =>
      StationCredentials.parse({ stations: [{ name: 'x', token: 'short', stationIds: [] }] }, 'creds.json'),
    ).toThrow(/creds.json: .*stations.0.token: .*stations.0.stationIds/);
    let message = '';
    try {
      StationCredentials.parse({ stations: [{ name: 'x', token: 'short-secret', tokenSha256: 'bad', stationIds: ['a'] }] }, 'f');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('tokenSha256');
    expect(message).not.toContain('short-secret');
  });
});
