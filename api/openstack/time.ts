/**
 * Timestamps as each OpenStack service writes them. Clients parse them with fixed layouts
 * (gophercloud rejects the wrong one), so the format is per service and field:
 *   Nova created/updated, Glance, Neutron   2026-12-01T00:00:00Z
 *   Keystone expires_at/issued_at           2026-12-01T00:00:00.000000Z
 *   Nova launched_at, Cinder created_at     2026-12-01T00:00:00.000000   (no zone)
 */
type When = Date | string;

const iso = (d: When) => new Date(d).toISOString(); // 2026-12-01T00:00:00.123Z

/** Seconds, with Z. */
export function isoSecondsZ(d: When): string {
  return `${iso(d).slice(0, 19)}Z`;
}

/** Microseconds, with Z. */
export function isoMicrosZ(d: When): string {
  return `${iso(d).slice(0, 23)}000Z`;
}

/** Microseconds, no zone (UTC implied). */
export function isoMicros(d: When): string {
  return `${iso(d).slice(0, 23)}000`;
}

/** `isoSecondsZ`/`isoMicros` of a nullable date. */
export function maybe<T>(d: When | null | undefined, format: (d: When) => T): T | null {
  return d === null || d === undefined ? null : format(d);
}
