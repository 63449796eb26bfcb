/** Pure helpers of db/: cursors, limits, URL redaction, error translation. */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { redactUrl } from '../../db/connect';
import { conflict, isUniqueViolation, translateDbError } from '../../db/errors';
import { isUuid, newId } from '../../db/ids';
import { checkLimit, decodeCursor, encodeCursor, MAX_PAGE_SIZE } from '../../db/pagination';

const pgError = (fields: Record<string, string>) => Object.assign(new Error('db error'), fields);

describe('cursors', () => {
  test('round-trip and are opaque url-safe strings', () => {
    const values = ['2026-11-27 15:50:39.767267+00', 'a/b+c=d'];
    const cursor = encodeCursor(values);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, 2)).toEqual(values);
  });

  test.each(['', 'garbage', encodeCursor(['one']), Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1,2]').toString('base64url')])(
    'bad marker %p → InvalidInput',
    (marker) => {
      expect(() => decodeCursor(marker, 2)).toThrow(InvalidInput);
    },
  );

  test('limits', () => {
    expect(checkLimit(1)).toBe(1);
    expect(checkLimit(MAX_PAGE_SIZE)).toBe(MAX_PAGE_SIZE);
    for (const bad of [0, -1, 1.5, MAX_PAGE_SIZE + 1, Number.NaN]) expect(() => checkLimit(bad)).toThrow(InvalidInput);
  });
});

describe('redactUrl', () => {
  test.each([
    ['postgres://user:secret@db.example:6543/stratus?sslmode=require', 'postgres://db.example:6543/stratus'],
    ['postgresql://user@localhost/stratus', 'postgresql://localhost:5432/stratus'],
    ['not a url', 'postgres://(unparsable URL)'],
  ])('%s → %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });
});

describe('translateDbError', () => {
  test('a mapped constraint becomes the given error', () => {
    const err = translateDbError(pgError({ code: '23505', constraint: 'projects_name_key' }), {
      projects_name_key: conflict('name', "a project named 'x' already exists"),
    });
    expect(err).toBeInstanceOf(Conflict);
    expect(err).toMatchObject({ message: "a project named 'x' already exists", fields: [{ field: 'name' }] });
  });

  test('an unmapped unique violation names the key from the detail', () => {
    const err = translateDbError(pgError({ code: '23505', constraint: 'x_key', detail: 'Key (slug)=(abc) already exists.' }));
    expect(err).toBeInstanceOf(Conflict);
    expect(err).toMatchObject({ message: "slug 'abc' already exists", fields: [{ field: 'slug' }] });
  });

  test('foreign key → Conflict, check → InvalidInput, anything else untouched', () => {
    expect(translateDbError(pgError({ code: '23503', detail: 'Key (x)=(1) is still referenced' }))).toBeInstanceOf(Conflict);
    expect(translateDbError(pgError({ code: '23514', constraint: 'c' }))).toBeInstanceOf(InvalidInput);
    const other = pgError({ code: '40001' });
    expect(translateDbError(other)).toBe(other);
    const socket = Object.assign(new Error('boom'), { code: 'ECONNRESET' });
    expect(translateDbError(socket)).toBe(socket);
    expect(translateDbError('text')).toBe('text');
  });

  test('isUniqueViolation accepts errors from another realm (plain objects with a code)', () => {
    expect(isUniqueViolation({ code: '23505' })).toBe(true);
    expect(isUniqueViolation({ code: 'ECONNREFUSED' })).toBe(false);
  });

  test('a mapped constraint only applies to constraint violations', () => {
    const err = translateDbError(pgError({ code: '23503', constraint: 'fk' }), { fk: () => new NotFound('gone') });
    expect(err).toBeInstanceOf(NotFound);
  });
});

describe('ids', () => {
  test('newId is a uuid; isUuid rejects other strings', () => {
    expect(isUuid(newId())).toBe(true);
    expect(isUuid('not-a-uuid')).toBe(false);
    expect(isUuid(`${newId()}x`)).toBe(false);
  });
});
