/**
 * The `stratus` client commands (the same executable also runs the cloud: `stratus up|api|conductor|agent`).
 * It speaks only the public /v1 API. Every command takes --json; errors are one readable line and exit 1.
 *
 *   stratus login --url URL --username U --project P     (password from STRATUS_PASSWORD or a prompt)
 *   stratus server create NAME --flavor F --image I [--network N]… [--volume-size GB]… [--wait]
 *   stratus server list|show|delete|start|stop|reboot|console …
 *   stratus batch create NAME --count N --flavor F --image I [--wait]    (a live bar of members by state)
 *   stratus batch list|show|retry|cancel …
 *   stratus image upload NAME --file F [--disk-format raw|qcow2]   (a byte progress bar)
 *   stratus network|subnet|volume|flavor …
 *   stratus usage [--project ID|all] [--from T] [--to T] | stratus usage cost …
 *   stratus completion bash|zsh
 */
import fs from 'node:fs';
import { Command, Option } from 'commander';
import { SingleBar } from 'cli-progress';
import { ApiClient, CliError, findByNameOrId } from './api-client';
import { completionScript } from './completion';
import { Output, type Column } from './output';
import { readPassword } from './prompt';
import { currentSession, forgetLogin, saveLogin } from './session';
import { waitForOperation, type Operation } from './wait';

/* Shapes of the public API the CLI prints (the fields it uses). */
interface Server {
  id: string;
  name: string;
  status: string;
  task_state: string | null;
  power_state: string;
  host?: string | null;
  flavor: { id: string; name: string };
  image_id: string;
  addresses: Array<{ network_id: string; ip: string; mac_address: string }>;
  volumes_attached: Array<{ id: string; device: string | null }>;
  fault: { step: string; code: string; message: string } | null;
  links: { temporal_ui?: string };
  [key: string]: unknown;
}
type Named = { id: string; name: string; [key: string]: unknown };

interface Globals {
  json?: boolean;
  url?: string;
}

function output(cmd: Command): Output {
  return new Output(Boolean(cmd.optsWithGlobals<Globals>().json));
}

function client(cmd: Command): ApiClient {
  const session = currentSession();
  const url = cmd.optsWithGlobals<Globals>().url ?? session.url;
  if (!url) throw new CliError('not logged in: run `stratus login --url URL --username U --project P` (or set STRATUS_URL and STRATUS_TOKEN)');
  if (!session.token) throw new CliError('no token: run `stratus login` (or set STRATUS_TOKEN)');
  return new ApiClient(url, session.token);
}

/** Runs a command's action; its errors reach the top-level handler (one line, exit 1). */
function action<A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<void>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, cmd.registeredArguments.length) as A;
    await fn(cmd, ...positional);
  };
}

const serverColumns: Column<Server>[] = [
  { header: 'ID', value: (s) => s.id },
  { header: 'Name', value: (s) => s.name },
  { header: 'Status', value: (s) => s.status },
  { header: 'Task', value: (s) => s.task_state },
  { header: 'Power', value: (s) => s.power_state },
  { header: 'Flavor', value: (s) => s.flavor.name },
  { header: 'Addresses', value: (s) => s.addresses.map((a) => a.ip) },
];

function presentServer(s: Server): Record<string, unknown> {
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    task_state: s.task_state,
    power_state: s.power_state,
    ...(s.host !== undefined ? { host: s.host } : {}),
    flavor: s.flavor.name,
    image_id: s.image_id,
    addresses: s.addresses.map((a) => `${a.ip} (${a.mac_address})`),
    volumes: s.volumes_attached.map((v) => `${v.id}${v.device ? ` on ${v.device}` : ''}`),
    fault: s.fault ? `${s.fault.step}: ${s.fault.code}: ${s.fault.message}` : null,
    temporal_ui: s.links.temporal_ui ?? null,
  };
}

/** The answer of a delete: a sentence, or `{ deleted: id }` with --json. */
function deleted(out: Output, kind: string, r: { id: string; name: string }): void {
  if (out.json) out.raw({ deleted: r.id });
  else out.say(`${kind} ${r.name} (${r.id}) deleted`);
}

/** A server: the API's object with --json, a readable field table otherwise. */
function showServer(out: Output, s: Server): void {
  if (out.json) out.raw(s);
  else out.show(presentServer(s));
}

/** Waits for an operation when --wait was given; prints the operation otherwise. */
async function finish(cmd: Command, api: ApiClient, op: Operation, done: () => Promise<void>): Promise<void> {
  const out = output(cmd);
  if (cmd.opts<{ wait?: boolean }>().wait) {
    await waitForOperation(api, op.id, { quiet: out.json });
    await done();
  } else if (out.json) {
    out.raw({ operation: op });
  } else {
    out.say(`accepted: ${op.kind} (operation ${op.id}); follow with --wait or at ${op.links.temporal_ui}`);
  }
}

function serverCommands(program: Command): void {
  const server = program.command('server').description('servers (Nova)');

  server
    .command('create')
    .description('create a server; --wait follows its steps until ACTIVE')
    .argument('<name>')
    .requiredOption('--flavor <flavor>', 'flavor name or id')
    .requiredOption('--image <image>', 'image name or id')
    .option('--network <network>', 'network name or id (repeatable)', collect, [])
    .option('--volume-size <gb>', 'a new volume of this size, deleted with the server (repeatable)', collect, [])
    .option('--volume <volume>', 'an existing volume, name or id (repeatable)', collect, [])
    .option('--idempotency-key <key>', 'retrying with the same key never creates a second server')
    .option('--wait', 'wait until the server is ACTIVE (or failed)')
    .action(
      action(async (cmd, name: string) => {
        const o = cmd.opts<{ flavor: string; image: string; network: string[]; volumeSize: string[]; volume: string[]; idempotencyKey?: string }>();
        const api = client(cmd);
        const [flavor, image] = await Promise.all([findByNameOrId<Named>(api, 'flavors', 'flavors', o.flavor), findByNameOrId<Named>(api, 'images', 'images', o.image)]);
        const networks = await Promise.all(o.network.map((n) => findByNameOrId<Named>(api, 'networks', 'networks', n)));
        const existing = await Promise.all(o.volume.map((v) => findByNameOrId<Named>(api, 'volumes', 'volumes', v)));
        const body = {
          name,
          flavor_id: flavor.id,
          image_id: image.id,
          networks: networks.map((n) => ({ network_id: n.id })),
          volumes: [...existing.map((v) => ({ volume_id: v.id })), ...o.volumeSize.map((gb) => ({ size_gb: positiveInt(gb, '--volume-size'), delete_on_termination: true }))],
        };
        const res = await api.post<{ server: Server; operation: Operation }>('/v1/servers', body, o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : undefined);
        await finish(cmd, api, res.operation, async () => showServer(output(cmd), await api.get<Server>(`/v1/servers/${res.server.id}`)));
        if (!cmd.opts<{ wait?: boolean }>().wait && !output(cmd).json) showServer(output(cmd), res.server);
      }),
    );

  server
    .command('list')
    .description('list servers')
    .action(action(async (cmd) => output(cmd).list(await client(cmd).listAll<Server>('/v1/servers', 'servers'), serverColumns)));

  server
    .command('show')
    .argument('<server>', 'name or id')
    .description('show a server, with its fault and Temporal UI link')
    .action(
      action(async (cmd, ref: string) => {
        showServer(output(cmd), await findByNameOrId<Server>(client(cmd), 'servers', 'servers', ref));
      }),
    );

  server
    .command('delete')
    .argument('<server>', 'name or id')
    .option('--wait', 'wait until it is gone')
    .description('delete a server (also cancels a create in progress)')
    .action(
      action(async (cmd, ref: string) => {
        const api = client(cmd);
        const s = await findByNameOrId<Server>(api, 'servers', 'servers', ref);
        const res = await api.delete<{ operation: Operation }>(`/v1/servers/${s.id}`);
        await finish(cmd, api, res.operation, async () => deleted(output(cmd), 'server', s));
      }),
    );

  for (const verb of ['start', 'stop', 'reboot'] as const) {
    server
      .command(verb)
      .argument('<server>', 'name or id')
      .option('--wait', 'wait until done')
      .description(`${verb} a server`)
      .action(
        action(async (cmd, ref: string) => {
          const api = client(cmd);
          const s = await findByNameOrId<Server>(api, 'servers', 'servers', ref);
          const res = await api.post<{ operation: Operation }>(`/v1/servers/${s.id}/action`, { action: verb });
          await finish(cmd, api, res.operation, async () => {
            const after = await api.get<Server>(`/v1/servers/${s.id}`);
            const out = output(cmd);
            if (out.json) out.raw(after);
            else out.say(`server ${after.name}: ${after.status}`);
          });
        }),
      );
  }

  server
    .command('console')
    .argument('<server>', 'name or id')
    .option('--lines <n>', 'only the last n lines')
    .description('print the serial console log')
    .action(
      action(async (cmd, ref: string) => {
        const api = client(cmd);
        const s = await findByNameOrId<Server>(api, 'servers', 'servers', ref);
        const { output: text } = await api.get<{ output: string }>(`/v1/servers/${s.id}/console`);
        const lines = cmd.opts<{ lines?: string }>().lines;
        const shown = lines ? text.split('\n').slice(-positiveInt(lines, '--lines') - 1).join('\n') : text;
        const out = output(cmd);
        if (out.json) out.raw({ output: shown });
        else process.stdout.write(shown.endsWith('\n') || shown === '' ? shown : `${shown}\n`);
      }),
    );
}

interface Batch {
  id: string;
  name: string;
  status: string;
  count: number;
  min_count: number;
  counts: { pending: number; building: number; active: number; shutoff: number; error: number; deleted: number };
  fault: { code: string; message: string } | null;
  members?: { items: Array<{ index: number; server_id: string; name: string; status: string; task_state: string | null; fault: Server['fault'] }>; next: string | null };
  links: { temporal_ui?: string };
}

const BATCH_DONE = new Set(['succeeded', 'failed', 'cancelled', 'deleted']);

/** Follows a batch until it ends, with a live bar of members by state (on a terminal). */
async function followBatch(api: ApiClient, out: Output, id: string): Promise<Batch> {
  const tty = !out.json && process.stderr.isTTY;
  const bar = tty
    ? new SingleBar({ format: 'batch [{bar}] {value}/{total} settled | active {active} building {building} error {error} pending {pending}', stream: process.stderr })
    : null;
  let batch = await api.get<Batch>(`/v1/server-batches/${id}?limit=1`);
  bar?.start(batch.count, 0, batch.counts);
  let last = '';
  for (;;) {
    const c = batch.counts;
    const settled = c.active + c.error + c.shutoff + c.deleted;
    if (bar) bar.update(settled, c);
    else if (!out.json) {
      const line = `batch ${batch.name}: ${batch.status} — active ${c.active}, building ${c.building}, error ${c.error}, pending ${c.pending}`;
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
    }
    if (BATCH_DONE.has(batch.status)) break;
    await new Promise((r) => setTimeout(r, 500));
    batch = await api.get<Batch>(`/v1/server-batches/${id}?limit=1`);
  }
  bar?.stop();
  return batch;
}

function presentBatch(b: Batch): Record<string, unknown> {
  const c = b.counts;
  return {
    id: b.id,
    name: b.name,
    status: b.status,
    count: b.count,
    min_count: b.min_count,
    members: `active ${c.active}, building ${c.building}, error ${c.error}, shutoff ${c.shutoff}, deleted ${c.deleted}, pending ${c.pending}`,
    fault: b.fault ? `${b.fault.code}: ${b.fault.message}` : null,
    temporal_ui: b.links.temporal_ui ?? null,
  };
}

/** Shows a batch (with its members' failures), and makes a failed or cancelled batch exit 1 under --wait. */
async function showBatch(cmd: Command, api: ApiClient, b: Batch, waited: boolean): Promise<void> {
  const out = output(cmd);
  if (out.json) out.raw(b);
  else {
    out.show(presentBatch(b));
    const failed = (await api.listAll<Server>(`/v1/servers?batch_id=${b.id}`, 'servers')).filter((s) => s.status === 'ERROR');
    if (failed.length > 0) out.list(failed, [{ header: 'Failed member', value: (s) => s.name }, { header: 'Server', value: (s) => s.id }, { header: 'Fault', value: (s) => (s.fault ? `${s.fault.step}: ${s.fault.message}` : '') }]);
  }
  if (waited && b.status !== 'succeeded') throw new CliError(`batch ${b.name} ${b.status}${b.fault ? `: ${b.fault.message}` : ''}`);
}

function batchCommands(program: Command): void {
  const batch = program.command('batch').description('server batches: many servers from one request, retryable');
  batch
    .command('create')
    .argument('<name>', 'members are named <name>-1, <name>-2, … (see --name-pattern)')
    .requiredOption('--count <n>', 'how many servers')
    .requiredOption('--flavor <flavor>', 'flavor name or id')
    .requiredOption('--image <image>', 'image name or id')
    .option('--network <network>', 'network name or id (repeatable)', collect, [])
    .option('--volume-size <gb>', 'a new volume per member, deleted with it (repeatable)', collect, [])
    .option('--name-pattern <pattern>', '{n} is the member number, e.g. "web-{n}"')
    .option('--min-count <n>', 'fewer ACTIVE members than this and the batch fails (default: count)')
    .option('--max-parallel <n>', 'members built at once (default 20)')
    .option('--rollback-on-failure', 'when it fails, delete the members that succeeded')
    .option('--idempotency-key <key>', 'retrying with the same key never creates a second batch')
    .option('--wait', 'follow the batch with a live progress bar until it ends')
    .description('create a batch of servers')
    .action(
      action(async (cmd, name: string) => {
        const o = cmd.opts<{ count: string; flavor: string; image: string; network: string[]; volumeSize: string[]; namePattern?: string; minCount?: string; maxParallel?: string; rollbackOnFailure?: boolean; idempotencyKey?: string; wait?: boolean }>();
        const api = client(cmd);
        const [flavor, image] = await Promise.all([findByNameOrId<Named>(api, 'flavors', 'flavors', o.flavor), findByNameOrId<Named>(api, 'images', 'images', o.image)]);
        const networks = await Promise.all(o.network.map((n) => findByNameOrId<Named>(api, 'networks', 'networks', n)));
        const body = {
          template: {
            name,
            flavor_id: flavor.id,
            image_id: image.id,
            networks: networks.map((n) => ({ network_id: n.id })),
            volumes: o.volumeSize.map((gb) => ({ size_gb: positiveInt(gb, '--volume-size'), delete_on_termination: true })),
          },
          count: positiveInt(o.count, '--count'),
          ...(o.namePattern ? { name_pattern: o.namePattern } : {}),
          ...(o.minCount !== undefined ? { min_count: Number(o.minCount) } : {}),
          ...(o.maxParallel ? { max_parallel: positiveInt(o.maxParallel, '--max-parallel') } : {}),
          ...(o.rollbackOnFailure ? { rollback_on_failure: true } : {}),
        };
        const res = await api.post<{ batch: Batch; operation: Operation }>('/v1/server-batches', body, o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : undefined);
        const out = output(cmd);
        if (!o.wait) return showBatch(cmd, api, res.batch, false);
        await showBatch(cmd, api, await followBatch(api, out, res.batch.id), true);
      }),
    );
  batch
    .command('list')
    .description('list batches')
    .action(
      action(async (cmd) =>
        output(cmd).list(await client(cmd).listAll<Batch>('/v1/server-batches', 'server_batches'), [
          { header: 'ID', value: (b) => b.id },
          { header: 'Name', value: (b) => b.name },
          { header: 'Status', value: (b) => b.status },
          { header: 'Count', value: (b) => b.count },
          { header: 'Active', value: (b) => b.counts.active },
          { header: 'Error', value: (b) => b.counts.error },
        ]),
      ),
    );
  batch
    .command('show')
    .argument('<batch>', 'batch id')
    .option('--wait', 'follow it until it ends')
    .description('show a batch: counts by state, and its failed members with their faults')
    .action(
      action(async (cmd, id: string) => {
        const api = client(cmd);
        const wait = Boolean(cmd.opts<{ wait?: boolean }>().wait);
        const b = wait ? await followBatch(api, output(cmd), id) : await api.get<Batch>(`/v1/server-batches/${id}?limit=1`);
        await showBatch(cmd, api, b, wait);
      }),
    );
  batch
    .command('delete')
    .argument('<batch>', 'batch id')
    .option('--wait', 'follow it until every member is gone')
    .description('delete every member of a batch that has ended')
    .action(
      action(async (cmd, id: string) => {
        const api = client(cmd);
        const res = await api.delete<{ batch: Batch }>(`/v1/server-batches/${id}`);
        const wait = Boolean(cmd.opts<{ wait?: boolean }>().wait);
        const b = wait ? await followBatch(api, output(cmd), id) : res.batch;
        const out = output(cmd);
        if (out.json) out.raw(b);
        else out.show(presentBatch(b));
        if (wait && b.status !== 'deleted') throw new CliError(`batch ${b.name} ${b.status}`);
      }),
    );
  for (const verb of ['retry', 'cancel'] as const) {
    batch
      .command(verb)
      .argument('<batch>', 'batch id')
      .option('--wait', 'follow it until it ends')
      .description(verb === 'retry' ? 're-run only the failed members' : 'stop the batch and delete its members')
      .action(
        action(async (cmd, id: string) => {
          const api = client(cmd);
          const res = await api.post<{ batch: Batch }>(`/v1/server-batches/${id}/${verb}`);
          const wait = Boolean(cmd.opts<{ wait?: boolean }>().wait);
          const b = wait ? await followBatch(api, output(cmd), id) : res.batch;
          if (verb === 'cancel' && wait && b.status === 'cancelled') return showBatch(cmd, api, b, false);
          await showBatch(cmd, api, b, wait);
        }),
      );
  }
}

function imageCommands(program: Command): void {
  const image = program.command('image').description('images (Glance)');
  image
    .command('upload')
    .argument('<name>')
    .requiredOption('--file <path>', 'the disk image file')
    .addOption(new Option('--disk-format <format>', 'format of the file').choices(['raw', 'qcow2']).default('raw'))
    .option('--property <key=value>', 'an image property (repeatable), e.g. kernel_id=…', collect, [])
    .option('--min-disk <gb>', 'minimum root disk')
    .option('--min-ram <mb>', 'minimum RAM')
    .description('register an image and upload its bytes, with a progress bar')
    .action(
      action(async (cmd, name: string) => {
        const o = cmd.opts<{ file: string; diskFormat: string; property: string[]; minDisk?: string; minRam?: string }>();
        if (!fs.existsSync(o.file)) throw new CliError(`--file: ${o.file} does not exist`);
        const api = client(cmd);
        const out = output(cmd);
        const properties = Object.fromEntries(
          o.property.map((p) => {
            const i = p.indexOf('=');
            if (i < 1) throw new CliError(`--property ${p}: expected key=value`);
            return [p.slice(0, i), p.slice(i + 1)];
          }),
        );
        const created = await api.post<Named>('/v1/images', {
          name,
          disk_format: o.diskFormat,
          ...(o.property.length ? { properties } : {}),
          ...(o.minDisk ? { min_disk_gb: positiveInt(o.minDisk, '--min-disk') } : {}),
          ...(o.minRam ? { min_ram_mb: positiveInt(o.minRam, '--min-ram') } : {}),
        });
        const size = fs.statSync(o.file).size;
        const bar = !out.json && process.stderr.isTTY ? new SingleBar({ format: 'upload [{bar}] {percentage}% {value}/{total} bytes', stream: process.stderr }) : null;
        bar?.start(size, 0);
        try {
          await api.request('PUT', `/v1/images/${created.id}/file`, { file: { path: o.file, onProgress: (sent) => bar?.update(sent) } });
        } catch (err) {
          bar?.stop();
          // The image was registered but got no bytes: remove it so nothing half-created stays behind.
          await api.delete(`/v1/images/${created.id}`).catch(() => undefined);
          throw err;
        }
        bar?.stop();
        const done = await api.get<Named>(`/v1/images/${created.id}`);
        if (out.json) out.raw(done);
        else out.show(done, ['id', 'name', 'status', 'disk_format', 'size_bytes', 'checksum_sha256', 'visibility']);
      }),
    );
  crud(image, {
    collection: 'images',
    columns: [
      { header: 'ID', value: (r) => r.id },
      { header: 'Name', value: (r) => r.name },
      { header: 'Status', value: (r) => r.status },
      { header: 'Format', value: (r) => r.disk_format },
      { header: 'Size', value: (r) => r.size_bytes },
    ],
    deleteIsOperation: false,
  });
}

interface CrudSpec {
  collection: string;
  columns: Column<Named>[];
  deleteIsOperation: boolean;
  listQuery?: (cmd: Command) => string;
}

/** list / show / delete, which every resource has in the same shape. */
function crud(group: Command, spec: CrudSpec): Command {
  const { collection } = spec;
  const kind = collection.replace(/s$/, '');
  const list = group
    .command('list')
    .description(`list ${collection}`)
    .action(action(async (cmd) => output(cmd).list(await client(cmd).listAll<Named>(`/v1/${collection}${spec.listQuery?.(cmd) ?? ''}`, collection), spec.columns)));
  group
    .command('show')
    .argument(`<${kind}>`, 'name or id')
    .description(`show a ${kind}`)
    .action(action(async (cmd, ref: string) => output(cmd).show(await findByNameOrId<Named>(client(cmd), collection, collection, ref))));
  const del = group
    .command('delete')
    .argument(`<${kind}>`, 'name or id')
    .description(`delete a ${kind}`)
    .action(
      action(async (cmd, ref: string) => {
        const api = client(cmd);
        const r = await findByNameOrId<Named>(api, collection, collection, ref);
        const res = await api.delete<{ operation?: Operation } | undefined>(`/v1/${collection}/${r.id}`);
        if (res?.operation) return finish(cmd, api, res.operation, async () => deleted(output(cmd), kind, r));
        deleted(output(cmd), kind, r);
      }),
    );
  if (spec.deleteIsOperation) del.option('--wait', 'wait until it is gone');
  return list;
}

function networkCommands(program: Command): void {
  const network = program.command('network').description('networks (Neutron)');
  network
    .command('create')
    .argument('<name>')
    .description('create a network')
    .action(action(async (cmd, name: string) => output(cmd).show(await client(cmd).post<Named>('/v1/networks', { name }))));
  crud(network, { collection: 'networks', deleteIsOperation: false, columns: [{ header: 'ID', value: (r) => r.id }, { header: 'Name', value: (r) => r.name }, { header: 'Subnets', value: (r) => r.subnets }] });

  const subnet = program.command('subnet').description('IPv4 subnets');
  subnet
    .command('create')
    .requiredOption('--network <network>', 'network name or id')
    .requiredOption('--cidr <cidr>', 'e.g. 10.0.0.0/24')
    .option('--gateway <ip>', 'gateway address (default: the first host address)')
    .description('create a subnet on a network')
    .action(
      action(async (cmd) => {
        const o = cmd.opts<{ network: string; cidr: string; gateway?: string }>();
        const api = client(cmd);
        const net = await findByNameOrId<Named>(api, 'networks', 'networks', o.network);
        output(cmd).show(await api.post<Named>('/v1/subnets', { network_id: net.id, cidr: o.cidr, ...(o.gateway ? { gateway_ip: o.gateway } : {}) }));
      }),
    );
  crud(subnet, {
    collection: 'subnets',
    deleteIsOperation: false,
    columns: [
      { header: 'ID', value: (r) => r.id },
      { header: 'Network', value: (r) => r.network_id },
      { header: 'CIDR', value: (r) => r.cidr },
      { header: 'Gateway', value: (r) => r.gateway_ip },
    ],
  });
}

function volumeCommands(program: Command): void {
  const volume = program.command('volume').description('volumes (Cinder)');
  volume
    .command('create')
    .argument('<name>')
    .requiredOption('--size <gb>', 'size in GB')
    .option('--image <image>', 'fill it from an image (name or id)')
    .option('--wait', 'wait until it is available')
    .description('create a volume')
    .action(
      action(async (cmd, name: string) => {
        const o = cmd.opts<{ size: string; image?: string }>();
        const api = client(cmd);
        const image = o.image ? await findByNameOrId<Named>(api, 'images', 'images', o.image) : null;
        const res = await api.post<{ volume: Named; operation: Operation }>('/v1/volumes', { name, size_gb: positiveInt(o.size, '--size'), ...(image ? { image_id: image.id } : {}) });
        await finish(cmd, api, res.operation, async () => output(cmd).show(await api.get<Named>(`/v1/volumes/${res.volume.id}`)));
      }),
    );
  crud(volume, {
    collection: 'volumes',
    deleteIsOperation: true,
    columns: [
      { header: 'ID', value: (r) => r.id },
      { header: 'Name', value: (r) => r.name },
      { header: 'Size (GB)', value: (r) => r.size_gb },
      { header: 'Status', value: (r) => r.status },
      { header: 'Server', value: (r) => r.server_id },
      { header: 'Device', value: (r) => r.device },
    ],
  });
}

function flavorCommands(program: Command): void {
  const flavor = program.command('flavor').description('flavors');
  const columns: Column<Named>[] = [
    { header: 'ID', value: (r) => r.id },
    { header: 'Name', value: (r) => r.name },
    { header: 'vCPUs', value: (r) => r.vcpus },
    { header: 'RAM (MB)', value: (r) => r.ram_mb },
    { header: 'Disk (GB)', value: (r) => r.disk_gb },
  ];
  flavor
    .command('list')
    .description('list flavors')
    .action(action(async (cmd) => output(cmd).list(await client(cmd).listAll<Named>('/v1/flavors', 'flavors'), columns)));
  flavor
    .command('show')
    .argument('<flavor>', 'name or id')
    .description('show a flavor')
    .action(action(async (cmd, ref: string) => output(cmd).show(await findByNameOrId<Named>(client(cmd), 'flavors', 'flavors', ref))));
}

interface UsageLine {
  vcpu_hours: string;
  ram_gb_hours: string;
  disk_gb_hours: string;
  volume_gb_hours: string;
  cpu_seconds: string;
  samples: number;
  missed_samples: number;
}

/** `--from`/`--to` as the API wants them: ISO 8601; a bare date is that day's midnight UTC. */
function instant(value: string, flag: string): string {
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(t)) throw new CliError(`${flag}: expected a date or time such as 2026-12-01 or 2026-12-01T10:00:00Z, got "${value}"`);
  return new Date(t).toISOString();
}

function usageQuery(o: { project?: string; from?: string; to?: string }): string {
  const to = o.to ? instant(o.to, '--to') : new Date().toISOString();
  const from = o.from ? instant(o.from, '--from') : new Date(Date.parse(to) - 24 * 3600_000).toISOString();
  return new URLSearchParams({ from, to, ...(o.project ? { project_id: o.project } : {}) }).toString();
}

function usageCommands(program: Command): void {
  const usage = program
    .command('usage')
    .description('usage of a project per server and in total (default: the last 24 hours of your project)')
    .option('--project <id>', 'a project id, or "all" (admins)')
    .option('--from <time>', 'start (inclusive), e.g. 2026-12-01')
    .option('--to <time>', 'end (exclusive; default now)')
    .addOption(new Option('--granularity <g>', 'periods in the JSON answer').choices(['hour', 'day']).default('day'))
    .action(
      action(async (cmd) => {
        const o = cmd.opts<{ project?: string; from?: string; to?: string; granularity: string }>();
        const report = await client(cmd).get<{ servers: Array<{ server_id: string; name: string; usage: UsageLine }>; total: UsageLine; from: string; to: string }>(
          `/v1/usage?${usageQuery(o)}&granularity=${o.granularity}`,
        );
        const out = output(cmd);
        if (out.json) return out.raw(report);
        const columns: Column<{ name: string; usage: UsageLine }>[] = [
          { header: 'Server', value: (r) => r.name },
          { header: 'vCPU h', value: (r) => r.usage.vcpu_hours },
          { header: 'RAM GB h', value: (r) => r.usage.ram_gb_hours },
          { header: 'Disk GB h', value: (r) => r.usage.disk_gb_hours },
          { header: 'Volume GB h', value: (r) => r.usage.volume_gb_hours },
          { header: 'CPU s', value: (r) => r.usage.cpu_seconds },
          { header: 'Samples (missed)', value: (r) => `${r.usage.samples} (${r.usage.missed_samples})` },
        ];
        out.say(`usage from ${report.from} to ${report.to}`);
        out.list([...report.servers, { name: 'TOTAL', usage: report.total }], columns);
      }),
    );
  usage
    .command('cost')
    .description('price the period with the rates in force (exact, in minor units)')
    .action(
      action(async (cmd) => {
        const o = cmd.optsWithGlobals<{ project?: string; from?: string; to?: string }>();
        const report = await client(cmd).get<{ lines: Array<{ unit: string; currency: string; price: string; quantity: string; amount: string }>; totals: Array<{ currency: string; amount: string }> }>(
          `/v1/usage/cost?${usageQuery(o)}`,
        );
        const out = output(cmd);
        if (out.json) return out.raw(report);
        out.list(report.lines, [
          { header: 'Unit', value: (l) => l.unit },
          { header: 'Price', value: (l) => `${l.price} ${l.currency}` },
          { header: 'Quantity', value: (l) => l.quantity },
          { header: 'Amount', value: (l) => `${l.amount} ${l.currency}` },
        ]);
        for (const t of report.totals) out.say(`total: ${t.amount} ${t.currency}`);
      }),
    );
}

function loginCommands(program: Command): void {
  program
    .command('login')
    .description('log in (stratus --url URL login …) and keep the token in the config file (0600); the password comes from STRATUS_PASSWORD or a prompt')
    .requiredOption('--username <user>', 'user name')
    .requiredOption('--project <project>', 'project name or id')
    .action(
      action(async (cmd) => {
        const o = cmd.opts<{ username: string; project: string }>();
        const url = cmd.optsWithGlobals<Globals>().url ?? currentSession().url;
        if (!url) throw new CliError('--url is required the first time (e.g. http://localhost:8080)');
        const password = process.env.STRATUS_PASSWORD ?? (await readPassword(`password for ${o.username}: `));
        const res = await new ApiClient(url, undefined).post<{ token: string; expires_at: string; project: { name: string } }>('/v1/auth/tokens', {
          username: o.username,
          password,
          project: o.project,
        });
        const file = saveLogin({ url, token: res.token, username: o.username, project: res.project.name, expiresAt: res.expires_at });
        const out = output(cmd);
        if (out.json) out.raw({ url, username: o.username, project: res.project.name, expires_at: res.expires_at, config: file });
        else out.say(`logged in to ${url} as ${o.username} in project ${res.project.name} until ${res.expires_at} (saved in ${file})`);
      }),
    );
  program
    .command('logout')
    .description('revoke the token and forget the saved login')
    .action(
      action(async (cmd) => {
        const session = currentSession();
        if (session.url && session.token) await new ApiClient(session.url, session.token).delete('/v1/auth/tokens/current').catch(() => undefined);
        forgetLogin();
        output(cmd).say('logged out');
      }),
    );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${flag}: expected a positive whole number, got "${value}"`);
  return n;
}

export function buildProgram(): Command {
  const program = new Command('stratus')
    .description('Stratus client: servers, images, networks and volumes through the public API.\nThe cloud itself: stratus up|api|conductor|agent')
    .option('--json', 'print JSON instead of tables')
    .option('--url <url>', 'API base URL (overrides STRATUS_URL and the saved login)')
    .showSuggestionAfterError()
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'stratus: ')) });
  loginCommands(program);
  serverCommands(program);
  batchCommands(program);
  imageCommands(program);
  networkCommands(program);
  volumeCommands(program);
  flavorCommands(program);
  usageCommands(program);
  program
    .command('completion')
    .argument('<shell>', 'bash or zsh')
    .description('print a shell completion script: eval "$(stratus completion bash)"')
    .action(
      action(async (_cmd, shell: string) => {
        if (shell !== 'bash' && shell !== 'zsh') throw new CliError(`completion: unknown shell "${shell}" (bash or zsh)`);
        process.stdout.write(completionScript(program, shell));
      }),
    );
  return program;
}

export async function runCli(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { code?: string; exitCode?: number }).code;
    if (code?.startsWith('commander.')) {
      // Help and version print and exit 0; usage errors were already printed by commander.
      process.exitCode = (err as { exitCode: number }).exitCode;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`stratus: ${message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  }
}
