/**
 * One-way layers in the API (DESIGN.md §3): a router parses, calls a component service
 * (services/), and presents. So no file under api/routes/ or api/openstack/ imports:
 * - db/ at all: no repository, no db/ids, no db/index, and not even a type of db/types. What a
 *   router needs of the data layer's shapes, the service that owns them re-exports
 *   (`export type Network = networks.Network` in services/networks.ts; the page contract
 *   `Page`, `PageRequest`, `MAX_PAGE_SIZE` in services/pages.ts; `ROLES` in services/identity.ts),
 *   so a router never learns which table a rule reads.
 * - activities/ (conductor or host steps: a rule both the API and an activity apply lives in
 *   services/ and both import it, e.g. `toHostState` in services/hosts.ts);
 * - workers/ (process entry points: what the API and a worker share lives in services/ or core/);
 * - libvirt/ (the API never touches a hypervisor).
 * workflows/ contracts (catalog, batch-contract) stay allowed: they are what the API starts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const ROUTER_DIRS = ['api/routes', 'api/openstack'];
/** Top-level folders a router may not import from (a folder itself, or anything below it). */
const FORBIDDEN = ['db', 'activities', 'workers', 'libvirt'];

/** Every module specifier a TypeScript source names: static imports and re-exports (also multi-line and type-only), import() and require(). */
function specifiers(source: string): string[] {
  const found: Array<{ at: number; specifier: string }> = [];
  const patterns = [/\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push({ at: m.index, specifier: m[1]! });
  return found.sort((a, b) => a.at - b.at).map((f) => f.specifier);
}

/** The forbidden layer a specifier of `file` (repository-relative) reaches, or null. */
function forbiddenLayer(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return FORBIDDEN.find((layer) => target === layer || target.startsWith(`${layer}/`)) ?? null;
}

function routerFiles(): string[] {
  return ROUTER_DIRS.flatMap((dir) =>
    readdirSync(path.join(ROOT, dir))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `${dir}/${f}`),
  );
}

describe('one-way layers: routers import services, never the data layer, activities or workers', () => {
  it('finds what it checks (the check cannot pass by reading nothing)', () => {
    const files = routerFiles();
    expect(files).toEqual(expect.arrayContaining(['api/routes/servers.ts', 'api/routes/batches.ts', 'api/openstack/keystone.ts']));
    const all = files.flatMap((f) => specifiers(readFileSync(path.join(ROOT, f), 'utf8')));
    expect(all).toContain('../../services/compute');
  });

  it('recognizes every form of import', () => {
    const source = [
      "import * as hosts from '../../db/repositories/hosts';",
      'import {',
      '  a,',
      '  type B,',
      "} from '../../activities/compute/placement';",
      "import type { Page } from '../../db/types';",
      "export { x } from '../../workers/metrics';",
      "import '../../libvirt/connect';",
      "const m = await import('../../db');",
      "import { ok } from '../../services/hosts';",
    ].join('\n');
    const layers = specifiers(source).map((s) => forbiddenLayer('api/routes/x.ts', s));
    expect(layers).toEqual(['db', 'activities', 'db', 'workers', 'libvirt', 'db', null]);
    expect(forbiddenLayer('api/routes/x.ts', '../../dbx/thing')).toBeNull();
    expect(forbiddenLayer('api/routes/x.ts', '../pagination')).toBeNull();
  });

  it.each(routerFiles())('%s imports nothing of db/, activities/, workers/ or libvirt/', (file) => {
    const offending = specifiers(readFileSync(path.join(ROOT, file), 'utf8'))
      .map((s) => ({ s, layer: forbiddenLayer(file, s) }))
      .filter((x) => x.layer !== null)
      .map(({ s, layer }) => `${file} imports '${s}' (${layer}/): call a service (services/) that owns it instead`);
    expect(offending).toEqual([]);
  });
});
