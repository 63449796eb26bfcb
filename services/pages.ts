/**
 * The list-page contract every service's lists speak (keyset pages: `{ limit, marker }` in,
 * `{ items, next }` out, at most MAX_PAGE_SIZE items), re-exported for the API so that no router
 * imports the data layer.
 */
export { MAX_PAGE_SIZE } from '../db/pagination';
export type { Page, PageRequest } from '../db/types';
