/** The benches' JSON client of the API: `call(method, path, token?, body?)` → `{ status, body }`. */
export function jsonCaller(api: string) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of many shapes, read loosely by benches
  return async (method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${api}${url}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}
