// Times shown in the tenant's time zone, with UTC always one hover away.

/** The browser's zone, when the embedding page names none. */
export function localZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** Whether `tz` is an IANA zone this browser knows. */
export function validZone(tz) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formats = new Map();
function fmt(tz, opts) {
  const key = tz + JSON.stringify(opts);
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(undefined, { timeZone: tz, ...opts }));
  return formats.get(key);
}

/** `Nov 5, 2026, 23:25:20` in `tz`. */
export function zoned(iso, tz) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return fmt(tz, { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

/** The stored UTC time, microseconds and all: `2026-11-05 22:25:20.138832 UTC`. */
export function utc(iso) {
  return `${String(iso).replace('T', ' ').replace(/Z$/, '')} UTC`;
}

/** The zone's short name at a moment (`CET`, `GMT+1`). */
export function zoneName(tz, at = new Date()) {
  const part = fmt(tz, { timeZoneName: 'short' }).formatToParts(at).find((p) => p.type === 'timeZoneName');
  return part ? part.value : tz;
}

/** Offset of `tz` from UTC at instant `ms`, in ms. */
function offset(tz, ms) {
  const parts = Object.fromEntries(
    fmt(tz, { hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

/** The instant at which `date` (`YYYY-MM-DD`) begins in `tz`, as RFC 3339 UTC. */
export function startOfDay(date, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3]);
  let ms = wall - offset(tz, wall);
  ms = wall - offset(tz, ms);
  return new Date(ms).toISOString();
}

/** The calendar date (`YYYY-MM-DD`) of an instant in `tz`. */
export function dateIn(iso, tz) {
  const parts = Object.fromEntries(
    fmt(tz, { year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** The day after `date`. */
export function nextDay(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** `1,234`. */
export function count(n) {
  return new Intl.NumberFormat().format(n);
}

/** `3.4 MB`. */
export function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** `in 59 min`, `in 23 h`, `2 min ago`. */
export function relative(iso, now = Date.now()) {
  const s = Math.round((new Date(iso).getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  const a = Math.abs(s);
  if (a < 60) return rtf.format(s, 'second');
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}
