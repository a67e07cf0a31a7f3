import { isValidTimeZone } from '@tollstream/windowing';
import { alignedIn, windowSpecSchema } from './window-config';

describe('window configuration', () => {
  it('reads tumbling, sliding and session windows written as text', () => {
    expect(windowSpecSchema.parse('tumbling:10m')).toEqual({ kind: 'tumbling', sizeMs: 600_000 });
    expect(windowSpecSchema.parse(' Sliding : 1h / 5m ')).toEqual({ kind: 'sliding', sizeMs: 3_600_000, slideMs: 300_000 });
    expect(windowSpecSchema.parse('session:30s')).toEqual({ kind: 'session', gapMs: 30_000 });
    expect(windowSpecSchema.parse('tumbling:1d')).toEqual({ kind: 'tumbling', sizeMs: 86_400_000 });
  });

  it('says what is wrong with a bad window', () => {
    const problem = (text: string) => {
      const result = windowSpecSchema.safeParse(text);
      return result.success ? 'accepted' : result.error.issues[0].message;
    };
    expect(problem('hopping:5m')).toMatch(/expected tumbling:<size>, sliding:<size>\/<slide> or session:<gap>/);
    expect(problem('tumbling:0s')).toMatch(/size "0s" is not a positive duration/);
    expect(problem('sliding:1h')).toMatch(/needs a slide/);
    expect(problem('sliding:1h/7m')).toMatch(/whole multiple of the slide/);
    expect(problem('tumbling:1h/5m')).toMatch(/only sliding windows/);
  });

  it('aligns tumbling and sliding windows in a zone, not session windows', () => {
    expect(alignedIn({ kind: 'tumbling', sizeMs: 1_000 }, 'Europe/Paris')).toEqual({ kind: 'tumbling', sizeMs: 1_000, timeZone: 'Europe/Paris' });
    expect(alignedIn({ kind: 'session', gapMs: 1_000 }, 'Europe/Paris')).toEqual({ kind: 'session', gapMs: 1_000 });
  });

  it('knows IANA time zones', () => {
    expect(isValidTimeZone('America/New_York')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus_Mons')).toBe(false);
  });
});
