import { ConfigError } from './config';
import { createLogger } from './logger';

// A pino destination is anything with write(); collect the JSON lines it receives.
function captureLines(): { lines: Array<Record<string, unknown>>; stream: { write(line: string): void } } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, stream: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) } };
}

describe('createLogger', () => {
  it('writes JSON with the service name and an ISO time', () => {
    const { lines, stream } = captureLines();
    createLogger({ service: 'ingestor' }, stream).info({ batch: 3 }, 'accepted');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, service: 'ingestor', batch: 3, msg: 'accepted' });
    expect(String(lines[0]['time'])).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('redacts credentials at the top level and one level down', () => {
    const { lines, stream } = captureLines();
    createLogger({ service: 'ingestor' }, stream).info(
      {
        authorization: 'Bearer top-secret-1',
        metadata: { authorization: 'Bearer top-secret-2', 'station-id': 'S1' },
        headers: { authorization: 'Bearer top-secret-3' },
        request: { token: 'top-secret-4' },
        password: 'top-secret-5',
      },
      'call',
    );
    const text = JSON.stringify(lines[0]);
    expect(text).not.toContain('top-secret');
    expect(lines[0]).toMatchObject({
      authorization: '[redacted]',
      metadata: { authorization: '[redacted]', 'station-id': 'S1' },
      headers: { authorization: '[redacted]' },
      request: { token: '[redacted]' },
      password: '[redacted]',
    });
  });

  it('takes the level from the option, then LOG_LEVEL, and rejects unknown levels', () => {
    const saved = process.env['LOG_LEVEL'];
    try {
      process.env['LOG_LEVEL'] = 'warn';
      expect(createLogger({ service: 's' }, captureLines().stream).level).toBe('warn');
      expect(createLogger({ service: 's', level: 'debug' }, captureLines().stream).level).toBe('debug');
      delete process.env['LOG_LEVEL'];
      expect(createLogger({ service: 's' }, captureLines().stream).level).toBe('info');
      expect(() => createLogger({ service: 's', level: 'loud' })).toThrow(ConfigError);
    } finally {
      if (saved === undefined) delete process.env['LOG_LEVEL'];
      else process.env['LOG_LEVEL'] = saved;
    }
  });
});
