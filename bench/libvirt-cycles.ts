/**
 * define+start+destroy+undefine cycles/s on libvirt's test driver, sequential and N in flight,
 * through the Hypervisor interface (libvirt/ via koffi). Also prints the worst event-loop lag.
 *
 * The "raw ffi" lines are the floor: the same domain XML through 4 bare libvirt calls on handles
 * (define, create, destroy, undefine; one connection per worker), without name lookups, idempotency
 * checks or error handling. The machine is shared: compare lines of one run, not runs.
 *
 *   npx tsx bench/libvirt-cycles.ts [cycles=2000] [inFlight=8] [uri=test:///default]
 */
import { openHypervisor, type DomainSpec, type Hypervisor } from '../libvirt';
import { loadLibvirt, type ConnectPtr } from '../libvirt/ffi';
import { buildDomainXml } from '../libvirt/xml';
import { withEventLoopLag } from '../test/support/event-loop-lag';

const cycles = Number(process.argv[2] ?? 2000);
const inFlight = Number(process.argv[3] ?? 8);
const uri = process.argv[4] ?? 'test:///default';

function spec(name: string): DomainSpec {
  return {
    name,
    vcpus: 1,
    memoryMb: 64,
    domainType: 'test',
    disks: [{ path: `/default-pool/${name}.qcow2`, format: 'qcow2', target: 'vda', serial: 'root' }],
    interfaces: [{ network: 'default', mac: '52:54:00:00:00:01' }],
  };
}

async function cycle(h: Hypervisor, name: string): Promise<void> {
  await h.defineDomain(spec(name));
  await h.startDomain(name);
  await h.destroyDomain(name);
  await h.undefineDomain(name);
}

async function rawCycle(conn: ConnectPtr, name: string): Promise<void> {
  const api = loadLibvirt();
  const dom = await api.domainDefineXml(conn, buildDomainXml(spec(name)));
  if (dom === null) throw api.connLastError(conn, 'virDomainDefineXML');
  try {
    if ((await api.domainCreate(dom)) < 0) throw api.connLastError(conn, 'virDomainCreate');
    if ((await api.domainDestroy(dom)) < 0) throw api.connLastError(conn, 'virDomainDestroy');
    if ((await api.domainUndefineFlags(dom, 0)) < 0) throw api.connLastError(conn, 'virDomainUndefineFlags');
  } finally {
    api.domainFree(dom);
  }
}

async function runRaw(label: string, parallel: number): Promise<void> {
  const api = loadLibvirt();
  const conns = await Promise.all(Array.from({ length: parallel }, () => api.connectOpen(uri)));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (conn) => {
      if (!conn) throw new Error(`cannot open ${uri}`);
      while (next < cycles) await rawCycle(conn, `bench-raw-${label}-${next++}`);
    }),
  );
  const s = (performance.now() - t0) / 1000;
  await Promise.all(conns.map((c) => (c ? api.connectClose(c) : 0)));
  console.log(`raw ffi, ${label.padEnd(12)} ${cycles} cycles in ${s.toFixed(2)} s = ${Math.round(cycles / s)} cycles/s`);
}

async function run(h: Hypervisor, label: string, parallel: number): Promise<void> {
  let next = 0;
  const t0 = performance.now();
  const { maxLagMs } = await withEventLoopLag(() =>
    Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < cycles) {
          const i = next++;
          await cycle(h, `bench-${label}-${i}`);
        }
      }),
    ),
  );
  const s = (performance.now() - t0) / 1000;
  console.log(
    `Hypervisor, ${label.padEnd(12)} ${cycles} cycles in ${s.toFixed(2)} s = ${Math.round(cycles / s)} cycles/s ` +
      `(${Math.round((cycles * 4) / s)} Hypervisor calls/s), max event-loop lag ${maxLagMs.toFixed(1)} ms`,
  );
}

async function main(): Promise<void> {
  const h = await openHypervisor(uri, { maxConcurrentCalls: Math.max(inFlight, 1) });
  console.log(`libvirt ${(await h.hostInfo('default-pool')).libvirtVersion}, ${uri}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`);
  await cycle(h, 'bench-warmup');
  await run(h, 'sequential', 1);
  await run(h, `${inFlight}-in-flight`, inFlight);
  await h.close();
  await runRaw('sequential', 1);
  await runRaw(`${inFlight}-in-flight`, inFlight);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
