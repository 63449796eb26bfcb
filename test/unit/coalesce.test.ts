import { Coalescer } from '../../core/coalesce';

/** A call that records when it started and ends when the test says so. */
function recorder() {
  const starts: number[] = [];
  const ends: Array<() => void> = [];
  let clock = 0;
  const call = () => {
    starts.push(clock);
    return new Promise<void>((resolve) => ends.push(resolve));
  };
  return { starts, ends, call, tick: () => (clock += 1) };
}

const flush = () => new Promise((r) => setImmediate(r));

test('50 concurrent callers cost 2 calls, and each is answered by a call that started after it asked', async () => {
  const c = new Coalescer();
  const r = recorder();
  const asked: number[] = [];
  const answered: number[] = [];
  const callers = Array.from({ length: 50 }, (_, i) => {
    asked[i] = r.tick();
    return c.run('host-a', r.call).then(() => (answered[i] = r.starts.length));
  });
  await flush();
  expect(r.starts).toHaveLength(1); // one running; the other 49 wait for the next call
  r.ends[0]!();
  await flush();
  expect(r.starts).toHaveLength(2);
  r.ends[1]!();
  await Promise.all(callers);
  expect(r.starts).toHaveLength(2);
  // The first caller got the first call; everyone else asked after it started, so the second call covers them.
  expect(answered[0]).toBe(1);
  for (let i = 1; i < 50; i += 1) {
    expect(answered[i]).toBe(2);
    expect(r.starts[1]!).toBeGreaterThanOrEqual(asked[i]!);
  }
});

test('keys are independent; a failed call fails its callers and the next call still runs', async () => {
  const c = new Coalescer();
  let calls = 0;
  const failing = () => {
    calls += 1;
    return Promise.reject(new Error('temporal unreachable'));
  };
  const a = c.run('a', failing);
  const b = c.run('b', async () => {
    calls += 1;
  });
  await expect(a).rejects.toThrow('temporal unreachable');
  await b;
  expect(calls).toBe(2);
  await c.run('a', async () => {
    calls += 1;
  });
  expect(calls).toBe(3);
});

test('a caller that arrives while a call runs never shares that call', async () => {
  const c = new Coalescer();
  const r = recorder();
  const first = c.run('k', r.call);
  await flush();
  let secondDone = false;
  const second = c.run('k', r.call).then(() => (secondDone = true));
  r.ends[0]!();
  await first;
  await flush();
  expect(secondDone).toBe(false); // it waits for a call of its own
  expect(r.starts).toHaveLength(2);
  r.ends[1]!();
  await second;
  expect(secondDone).toBe(true);
});
