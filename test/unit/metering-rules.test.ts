/** The exact arithmetic of usage and cost: decimals from BigInt ratios, prices, buckets, counter deltas. */
import { counterDelta } from '../../db/repositories/meters';
import { buckets, decimal, scaledInteger } from '../../services/metering';

test('decimal rounds half-up and never goes through a float', () => {
  expect(decimal(3000n, 3_600_000n, 6)).toBe('0.000833');
  expect(decimal(5n, 10n, 0)).toBe('1');
  expect(decimal(1n, 8n, 2)).toBe('0.13'); // 0.125 → half-up
  expect(decimal(0n, 7n, 3)).toBe('0.000');
  expect(decimal(10n ** 30n + 1n, 1n, 2)).toBe(`${10n ** 30n + 1n}.00`); // beyond any float's precision
});

test('scaledInteger reads a decimal string exactly', () => {
  expect(scaledInteger('3600.5', 9)).toBe(3_600_500_000_000n);
  expect(scaledInteger('0.000000001', 9)).toBe(1n);
  expect(scaledInteger('12', 2)).toBe(1200n);
  expect(scaledInteger('1.500000000', 2)).toBe(150n);
  expect(() => scaledInteger('1.234', 2)).toThrow('more than 2 decimals');
});

test('buckets cover [from, to) on UTC boundaries, first and last partial', () => {
  const b = buckets(new Date('2026-12-01T10:30:00Z'), new Date('2026-12-01T12:15:00Z'), 'hour');
  expect(b.map((x) => [x.start.toISOString(), x.end.toISOString()])).toEqual([
    ['2026-12-01T10:30:00.000Z', '2026-12-01T11:00:00.000Z'],
    ['2026-12-01T11:00:00.000Z', '2026-12-01T12:00:00.000Z'],
    ['2026-12-01T12:00:00.000Z', '2026-12-01T12:15:00.000Z'],
  ]);
  expect(buckets(new Date('2026-12-01T10:00:00Z'), new Date('2026-12-03T00:00:00Z'), 'day')).toHaveLength(2);
  expect(() => buckets(new Date('2020-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'), 'hour')).toThrow('more than 2000 hours');
});

test('a counter that went down (guest restarted) counts from zero; the first reading is the baseline', () => {
  expect(counterDelta(150n, 100n)).toBe(50n);
  expect(counterDelta(30n, 100n)).toBe(30n);
  expect(counterDelta(100n, null)).toBe(0n);
  expect(counterDelta(null, 100n)).toBe(0n);
});
