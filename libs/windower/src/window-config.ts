import { durationMsSchema } from '@tollstream/service-kit';
import type { WindowSpec } from '@tollstream/windowing';
import { z } from 'zod';

const FORMS = 'expected tumbling:<size>, sliding:<size>/<slide> or session:<gap>, e.g. tumbling:10m, sliding:1h/5m, session:30m';

function duration(text: string, ctx: z.RefinementCtx, what: string): number | undefined {
  const parsed = durationMsSchema.safeParse(text);
  if (!parsed.success || parsed.data <= 0) {
    ctx.addIssue({ code: 'custom', message: `${what} "${text}" is not a positive duration (500ms, 30s, 5m, 1h, 1d)` });
    return undefined;
  }
  return parsed.data;
}

/**
 * A window shape written as text in configuration: "tumbling:10m" (the reference design's spend
 * window), "sliding:1h/5m", "session:30m". Alignment zone comes from elsewhere (operator or station).
 */
export const windowSpecSchema = z.string().transform((text, ctx): WindowSpec => {
  const match = /^\s*(tumbling|sliding|session)\s*:\s*([^/\s]+)\s*(?:\/\s*(\S+))?\s*$/i.exec(text);
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${text}": ${FORMS}` });
    return z.NEVER;
  }
  const kind = match[1].toLowerCase();
  const first = duration(match[2], ctx, kind === 'session' ? 'gap' : 'size');
  if (first === undefined) return z.NEVER;
  if (kind === 'sliding') {
    if (!match[3]) {
      ctx.addIssue({ code: 'custom', message: `"${text}": a sliding window needs a slide, e.g. sliding:1h/5m` });
      return z.NEVER;
    }
    const slide = duration(match[3], ctx, 'slide');
    if (slide === undefined) return z.NEVER;
    if (first % slide !== 0) {
      ctx.addIssue({ code: 'custom', message: `"${text}": the size must be a whole multiple of the slide` });
      return z.NEVER;
    }
    return { kind: 'sliding', sizeMs: first, slideMs: slide };
  }
  if (match[3]) {
    ctx.addIssue({ code: 'custom', message: `"${text}": only sliding windows take a /<slide>` });
    return z.NEVER;
  }
  return kind === 'session' ? { kind: 'session', gapMs: first } : { kind: 'tumbling', sizeMs: first };
});

/** Adds the alignment zone to aligned windows (session windows have none). */
export function alignedIn(spec: WindowSpec, timeZone: string): WindowSpec {
  return spec.kind === 'session' ? spec : { ...spec, timeZone };
}

/** Station -> IANA time zone, from a JSON file {"stations": {"st-001": "Europe/Paris"}}; others use the default. */
export const stationTimeZonesSchema = z.object({
  stations: z.record(z.string().min(1).max(64), z.string().min(1).max(64)),
});


