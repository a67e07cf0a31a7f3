const offsetFormatters = new Map<string, Intl.DateTimeFormat>();
const offsetCache = new Map<string, number>();
const quarterHourMs = 15 * 60_000;
const dayMs = 86_400_000;

/** UTC offset of `zone` at instant t, in minutes (e.g. -300 for New York in winter). */
export function utcOffsetMinutes(zone: string, t: number): number {
  // Offsets change at most on quarter hours: one Intl call per zone and quarter hour keeps generation cheap.
  const key = `${zone}|${Math.floor(t / quarterHourMs)}`;
  const cached = offsetCache.get(key);
  if (cached !== undefined) return cached;
  let formatter = offsetFormatters.get(zone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
    offsetFormatters.set(zone, formatter);
  }
  const name = formatter.formatToParts(new Date(t)).find((part) => part.type === 'timeZoneName')?.value ?? 'GMT';
  const match = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  const offset = match ? (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) : 0;
  if (offsetCache.size > 200_000) offsetCache.clear();
  offsetCache.set(key, offset);
  return offset;
}

/** Local weekday (0 = Monday … 6 = Sunday) and minute of the day of instant t in zone. */
export function localWeekdayMinute(zone: string, t: number): { weekday: number; minute: number } {
  const local = t + utcOffsetMinutes(zone, t) * 60_000;
  const day = Math.floor(local / dayMs);
  // 1970-01-01 was a Thursday (index 3 when Monday is 0).
  const weekday = (((day + 3) % 7) + 7) % 7;
  return { weekday, minute: Math.floor((local - day * dayMs) / 60_000) };
}

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
