/**
 * Host liveness as the scheduler and readiness see it: the monitor's mark ('down') decides; the age
 * of the heartbeat row is a wider backstop, so a database outage (no heartbeat written meanwhile)
 * does not make running hosts look dead.
 */
import { isAlive, MISSED_HEARTBEATS_ALLOWED } from '../../db/repositories/hosts';

const HEARTBEAT_SECONDS = 5;
const now = Date.parse('2026-12-01T12:00:00Z');
const seen = (secondsAgo: number) => new Date(now - secondsAgo * 1000);

test('a host marked up whose last heartbeat row is 20 s old (a 10 s database outage with 5 s heartbeats) is alive', () => {
  expect(isAlive({ status: 'up', lastSeenAt: seen(20) }, HEARTBEAT_SECONDS, now)).toBe(true);
});

test('a host its monitor marked down is not alive, however fresh its row', () => {
  expect(isAlive({ status: 'down', lastSeenAt: seen(0) }, HEARTBEAT_SECONDS, now)).toBe(false);
});

test('a host whose row is older than the backstop is not alive even if nobody marked it down', () => {
  const bound = HEARTBEAT_SECONDS * MISSED_HEARTBEATS_ALLOWED;
  expect(isAlive({ status: 'up', lastSeenAt: seen(bound - 1) }, HEARTBEAT_SECONDS, now)).toBe(true);
  expect(isAlive({ status: 'up', lastSeenAt: seen(bound + 1) }, HEARTBEAT_SECONDS, now)).toBe(false);
});
