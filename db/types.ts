/** Types shared by every repository. */
import type { Knex } from 'knex';

/** What a repository function runs in: the database itself or a transaction the caller opened. */
export type Queryable = Knex | Knex.Transaction;

/** Keyset pagination input. `marker` is the opaque `next` of the previous page. */
export interface PageRequest {
  /** 1..MAX_PAGE_SIZE */
  limit: number;
  marker?: string | null | undefined;
  /**
   * OpenStack's marker instead of `marker`: the id of the last item seen. The page starts after that
   * item (InvalidInput naming `marker` when the list, with its filters, does not hold it).
   */
  afterId?: string | undefined;
}

/** One page of a list. `next` is an opaque cursor for the following page, or null on the last one. */
export interface Page<T> {
  items: T[];
  next: string | null;
}
