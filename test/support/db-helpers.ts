/** Small helpers the repository tests share. */

/** A valid uuid no row has. */
export const MISSING_ID = '00000000-0000-4000-8000-000000000000';

let seq = 0;
/** A name unique within the run, so tests sharing one database do not collide. */
export const unique = (prefix: string): string => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

/** What `promise` rejected with; fails the test if it resolved. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Every page of a keyset-paginated list, following `next` until it is null. */
export async function allPages<T>(list: (marker: string | undefined) => Promise<{ items: T[]; next: string | null }>): Promise<T[][]> {
  const pages: T[][] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await list(marker);
    pages.push(page.items);
    if (page.next === null) return pages;
    marker = page.next;
  }
}

/** Every item of a paginated list, in order. */
export async function allItems<T>(list: (marker: string | undefined) => Promise<{ items: T[]; next: string | null }>): Promise<T[]> {
  return (await allPages(list)).flat();
}
