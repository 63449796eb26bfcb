/**
 * A host's tick served in pages (activities/metering/host.ts TickSnapshots): domain-name order, the
 * `next` cursor and the last page, one reading per tick shared by its pages, a fresh reading on a new
 * tick or on an agent that has no reading of the tick; and the size of a page as a Temporal payload.
 */
import { randomUUID } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { MAX_PAGE_SIZE, TickSnapshots } from '../../activities/metering/host';
import { fromReadingRow, toReadingRow, type ReadingRow } from '../../activities/metering/reading-rows';
import type { DomainReading, HostPage, HostPageRequest } from '../../activities/metering/types';
import { DEFAULT_PAGE_SIZE } from '../../workflows/meter-host';

/** Counters of a guest that has run for a long time (large numbers are the long JSON). */
function realisticReading(i: number): DomainReading {
  return {
    powerState: 'running',
    cpuTimeNs: 987_654_321_012_345 + i,
    memoryKiB: 16_777_216,
    blockReadBytes: 123_456_789_012 + i,
    blockWriteBytes: 98_765_432_109 + i,
    netRxBytes: 1_234_567_890_123 + i,
    netTxBytes: 987_654_321_098 + i,
  };
}

const row = (name: string, i = 0): ReadingRow => toReadingRow(name, realisticReading(i));

/** A host whose domains are `names` (in no order); counts the bulk readings taken. */
function fakeHost(names: string[]) {
  const host = {
    reads: 0,
    snapshots: new TickSnapshots(async () => {
      host.reads++;
      return names.map((n, i) => row(n, i));
    }),
  };
  return host;
}

async function allPages(snapshots: TickSnapshots, req: Omit<HostPageRequest, 'after'>): Promise<HostPage[]> {
  const pages: HostPage[] = [];
  let after: string | undefined;
  do {
    const page = await snapshots.page(after === undefined ? req : { ...req, after });
    pages.push(page);
    after = page.next;
  } while (after !== undefined);
  return pages;
}

const names = ['stratus-g', 'stratus-c', 'stratus-a', 'stratus-f', 'stratus-b', 'stratus-e', 'stratus-d'];

test('pages hold the domains in name order, each once; `next` is on every page but the last', async () => {
  const host = fakeHost(names);
  const pages = await allPages(host.snapshots, { tickMs: 1000, limit: 3 });
  expect(pages.map((p) => p.readings.map(([name]) => name))).toEqual([
    ['stratus-a', 'stratus-b', 'stratus-c'],
    ['stratus-d', 'stratus-e', 'stratus-f'],
    ['stratus-g'],
  ]);
  expect(pages.map((p) => p.next)).toEqual(['stratus-c', 'stratus-f', undefined]);
  expect(host.reads).toBe(1); // one bulk reading serves every page of the tick
  // A host that fills its last page exactly: no `next` on it, no empty page after it.
  expect((await allPages(fakeHost(names.slice(0, 6)).snapshots, { tickMs: 1000, limit: 3 })).map((p) => p.readings.length)).toEqual([3, 3]);
  // A host without Stratus domains: one empty page.
  expect(await allPages(fakeHost([]).snapshots, { tickMs: 1000, limit: 3 })).toEqual([{ readings: [] }]);
});

test('a new tick takes a fresh reading; an agent without the tick (restarted) takes one and serves the rest after the cursor', async () => {
  const host = fakeHost(names);
  await host.snapshots.page({ tickMs: 1000, limit: 3 });
  await host.snapshots.page({ tickMs: 1000, after: 'stratus-c', limit: 3 });
  expect(host.reads).toBe(1);
  await host.snapshots.page({ tickMs: 2000, limit: 3 });
  expect(host.reads).toBe(2);
  // Only the newest ticks are kept: a page of a tick long gone is read again.
  await host.snapshots.page({ tickMs: 3000, limit: 3 });
  await host.snapshots.page({ tickMs: 1000, after: 'stratus-c', limit: 3 });
  expect(host.reads).toBe(4);

  const restarted = fakeHost([...names, 'stratus-bb']); // a domain came while the agent was down
  const page = await restarted.snapshots.page({ tickMs: 2000, after: 'stratus-c', limit: 3 });
  expect(restarted.reads).toBe(1);
  expect(page).toEqual({ readings: [row('stratus-d', 6), row('stratus-e', 5), row('stratus-f', 3)], next: 'stratus-f' });
});

test('a failed reading is not kept; concurrent pages of a tick share one reading', async () => {
  let reads = 0;
  const snapshots = new TickSnapshots(async () => {
    reads++;
    if (reads === 1) throw new Error('libvirt: connection reset');
    return names.map((n) => row(n));
  });
  await expect(snapshots.page({ tickMs: 1000, limit: 3 })).rejects.toThrow('connection reset');
  const [a, b] = await Promise.all([snapshots.page({ tickMs: 1000, limit: 3 }), snapshots.page({ tickMs: 1000, after: 'stratus-c', limit: 3 })]);
  expect(reads).toBe(2);
  expect([a.next, b.next]).toEqual(['stratus-c', 'stratus-f']);
});

test('a page is clamped to 1..MAX_PAGE_SIZE readings', async () => {
  const many = Array.from({ length: MAX_PAGE_SIZE + 5 }, (_, i) => `stratus-${String(i).padStart(5, '0')}`);
  const { snapshots } = fakeHost(many);
  expect((await snapshots.page({ tickMs: 1, limit: 10 * MAX_PAGE_SIZE })).readings).toHaveLength(MAX_PAGE_SIZE);
  expect((await snapshots.page({ tickMs: 1, limit: 0 })).readings).toHaveLength(1);
});

test('a page of the default size, and of the largest, stays well under the 512 KB Temporal warns at', () => {
  const page = (size: number): HostPage => {
    const readings = Array.from({ length: size }, (_, i) => row(`stratus-${randomUUID()}`, i));
    return { readings, next: readings.at(-1)![0] };
  };
  const bytes = (value: unknown) => defaultPayloadConverter.toPayload(value)!.data!.length;
  const perReading = bytes(page(DEFAULT_PAGE_SIZE)) / DEFAULT_PAGE_SIZE;
  expect(bytes(page(DEFAULT_PAGE_SIZE))).toBeLessThan(512 * 1024 * 0.5);
  expect(bytes(page(MAX_PAGE_SIZE))).toBeLessThan(512 * 1024 * 0.75);
  // The row encoding is what keeps it small: the same readings as objects keyed by domain take ~70% more.
  const asObjects = Object.fromEntries(page(DEFAULT_PAGE_SIZE).readings.map((r) => [r[0], fromReadingRow(r)]));
  expect(bytes(asObjects) / DEFAULT_PAGE_SIZE).toBeGreaterThan(1.5 * perReading);
  expect(perReading).toBeLessThan(150);
});

test('a row decodes to the reading it was made of', () => {
  const reading = { ...realisticReading(1), netTxBytes: null };
  expect(fromReadingRow(toReadingRow('stratus-x', reading))).toEqual(reading);
});
