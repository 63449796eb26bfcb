/**
 * Server creation (DESIGN.md §4): authenticate → select image → schedule → allocate port →
 * attach volume → boot → start metering, as a saga. Each step that can half-succeed registers its
 * undo before it runs; a failure undoes everything in reverse and leaves the server ERROR with a
 * fault naming the step. Host-side failures (attach volume on the host, boot) reschedule to another
 * host, up to a bound; conductor-side failures abort at once.
 *
 * Cancelled (DELETE of a BUILD server, or Cancel in Temporal UI): the same undos run, in a
 * non-cancellable scope, and the server ends DELETED. An undo that fails (a host that is down) never
 * holds the server in BUILD: it goes to the ledger of leftovers and the rollback goes on.
 */
import { ActivityFailure, ApplicationFailure, isCancellation, patched, uuid4 } from '@temporalio/workflow';
import type { Flavor, PortOnHost, VolumeOnHost } from '../activities/compute/types';
import type { SelectedImage } from '../activities/image/control';
import { domainNameFor } from '../activities/compute/types';
import type { NetworkRequest } from '../activities/network/types';
import type { ServerVolumeRequest } from '../activities/storage/control';
import { onHost } from './activity-proxies';
import { faultCode, faultMessage, finishing, hostDidNotAnswer, operationFailure, OperationTracker, serverFailed, StepFailed } from './progress';

export const CREATE_STEPS = ['authenticate', 'select_image', 'schedule', 'allocate_port', 'attach_volume', 'boot', 'start_metering'] as const;

export interface CreateServerInput {
  serverId: string;
  projectId: string;
  userId: string;
  operationId: string;
  flavor: Flavor;
  imageId: string;
  networks: NetworkRequest[];
  /** Existing volumes by id, or new ones by size. */
  volumes: Array<{ volumeId: string } | { sizeGb: number; deleteOnTermination?: boolean }>;
  /** Hosts to try at most (the first pick plus reschedules). */
  maxHostAttempts?: number;
}

export interface CreateServerResult {
  serverId: string;
  host: string;
}

export function createServerWorkflowId(serverId: string): string {
  return `server:${serverId}:create`;
}

export async function createServer(input: CreateServerInput): Promise<CreateServerResult> {
  const { serverId, projectId } = input;
  const t = new OperationTracker(CREATE_STEPS, { operationId: input.operationId, resourceType: 'server', resourceId: serverId }, { carryProgress: true });
  // Every conductor call of the create goes through the tracker: each carries the step progress saved
  // since the one before, so progress costs no local activity of its own (workflows/carried-progress.ts).
  const conductor = t.conductor;
  // New volumes get their ids here (uuid4 is deterministic in a workflow), so every retry names the same rows.
  const volumeRequests: ServerVolumeRequest[] = input.volumes.map((v) => ('volumeId' in v ? v : { ...v, newVolumeId: uuid4() }));
  const newVolumeIds = volumeRequests.flatMap((v) => ('newVolumeId' in v ? [v.newVolumeId] : []));
  /**
   * Nova's task_state, for GET /v1/servers/{id}: set before the steps that take time (each write is a
   * local activity, so the quick database steps share the 'scheduling' the API set at creation).
   */
  const state = (taskState: string) => conductor.setServerState({ serverId, taskState });
  // Runs that have this patch make one conductor call where older ones made two: authenticate reserves
  // the quota, and the host claim writes the host and task state (each call is a workflow round trip).
  const merged = patched('merged-conductor-steps');

  try {
    await t.run('authenticate', async () => {
      // --- quota (issue 11): the API reserved the server's share when it accepted the request, so this is
      // a no-op then; otherwise it reserves, and a lost race fails the step with QuotaExceeded. The
      // reservation is committed (ACTIVE) or released (ERROR, DELETED) by finishServerOperation.
      const quota = { serverId, flavor: input.flavor, networks: input.networks, volumes: input.volumes };
      if (merged) {
        await conductor.authenticateRequest({ userId: input.userId, projectId, reserveQuota: quota });
        return;
      }
      await conductor.authenticateRequest({ userId: input.userId, projectId });
      if (patched('quota-reservation')) {
        await conductor.reserveServerQuota({ projectId, ...quota });
      }
      // --- end quota
    });

    const image: SelectedImage = await t.run('select_image', async () => {
      return conductor.selectImage({ imageId: input.imageId, projectId, flavor: input.flavor });
    });

    // Existing volumes pin the server to their host.
    const existingVolumes = volumeIdsOf(volumeRequests);
    const pinnedHost = existingVolumes.length > 0 ? await conductor.hostOfVolumes({ volumeIds: existingVolumes }) : null;
    const maxAttempts = pinnedHost ? 1 : (input.maxHostAttempts ?? 3);
    const excluded: string[] = [];
    let ports: PortOnHost[] | undefined;
    let lastHostFailure: StepFailed | undefined;
    /** `<host>: <what failed there>`, one per host tried: the fault names every host's failure. */
    const hostFailures: string[] = [];

    for (let attempt = 1; ; attempt += 1) {
      let host: string;
      const taskState = ports ? 'block_device_mapping' : 'networking';
      try {
        host = await t.run('schedule', async () => {
          t.undoWith('schedule', { activity: 'releaseClaim', host: null, args: [{ serverId }] });
          const claim = { serverId, flavor: input.flavor, excludeHosts: excluded, requiredHost: pinnedHost, lastFailure: lastHostFailure?.message };
          return conductor.claimHost(merged ? { ...claim, taskState } : claim);
        });
      } catch (err) {
        // No other host to reschedule to: the failure to report is the host-side one that sent us here.
        if (lastHostFailure) throw onEveryHost(lastHostFailure, hostFailures);
        throw err;
      }
      t.progress.hosts.push(host);
      if (!merged) await conductor.setServerState({ serverId, host, taskState });

      if (!ports) {
        ports = await t.run('allocate_port', async () => {
          t.undoWith('allocate_port', { activity: 'releasePorts', host: null, args: [{ serverId }] });
          return conductor.allocatePorts({ serverId, projectId, requests: input.networks });
        });
      }

      const hostMark = t.mark; // undos from here on belong to this host: a reschedule runs them
      try {
        const volumes: VolumeOnHost[] = await t.run('attach_volume', async () => {
          if (volumeRequests.length === 0) return [];
          t.onFailureUndo('attach_volume', () => releaseVolumes(host), {
            activity: 'releaseServerVolumes',
            host: null,
            args: [{ serverId, deleteVolumeIds: newVolumeIds }],
          });
          const prepared = await conductor.prepareServerVolumes({ serverId, projectId, host, requests: volumeRequests });
          const hostActs = onHost(host);
          for (const v of prepared.toCreate) await hostActs.createVolume(v);
          return prepared.volumes;
        }, host);

        await t.run('boot', async () => {
          await state('spawning');
          t.undoWith('boot', { activity: 'destroyServer', host, args: [{ serverId, domainName: domainNameFor(serverId), ports: ports ?? [] }] });
          const flavor = input.flavor;
          await onHost(host).bootServer({
            serverId,
            domainName: domainNameFor(serverId),
            vcpus: flavor.vcpus,
            ramMb: flavor.ramMb,
            rootDiskGb: flavor.diskGb,
            image: { id: image.id, checksum: image.checksum, sizeBytes: image.sizeBytes, diskFormat: image.diskFormat, downloadUrl: image.downloadUrl },
            ...(image.kernel ? { kernel: image.kernel } : {}),
            ...(image.initrd ? { initrd: image.initrd } : {}),
            ...(image.cmdline ? { cmdline: image.cmdline } : {}),
            ports: ports ?? [],
            volumes,
          });
          if (volumeRequests.length > 0) await conductor.markServerVolumesInUse({ serverId });
        }, host);
        break;
      } catch (err) {
        // Only a failure on the host reschedules; a conductor-side one (the database) or a cancel aborts.
        if (!(err instanceof StepFailed) || !failedOnHost(err) || cancelled(err)) throw err;
        hostFailures.push(`${host}: ${faultMessage(err.failure)}`);
        if (attempt >= maxAttempts) throw onEveryHost(err, hostFailures);
        // Reschedule: undo this host's part (domain, disks, new volumes, claim) and try another host.
        // A dead host's share of the cleanup goes to the ledger after a short bound: the next host waits for nothing more.
        lastHostFailure = err;
        if (hostDidNotAnswer(err)) t.hostSilent(host);
        await t.compensateSince(hostMark);
        await t.attempt('schedule', { activity: 'releaseClaim', host: null, args: [{ serverId }] });
        excluded.push(host);
      }
    }

    await t.run('start_metering', async () => {
      t.undoWith('start_metering', { activity: 'stopMetering', host: null, args: [{ serverId }] });
      await conductor.startMetering({ serverId, projectId, host: t.progress.hosts[t.progress.hosts.length - 1]!, flavor: input.flavor });
    });

    const host = t.progress.hosts[t.progress.hosts.length - 1]!;
    await conductor.finishServerOperation({
      server: { serverId, status: 'ACTIVE', taskState: null, powerState: 'running', fault: null },
      operationId: input.operationId,
      status: 'succeeded',
    });
    t.succeed();
    return { serverId, host };
  } catch (err) {
    const fault = t.failed(err);
    await t.compensateAll();
    if (!cancelled(err)) throw await serverFailed(serverId, input.operationId, fault);
    // Cancelled: nothing is left, and the server is gone (as a DELETE would leave it).
    await finishing(() =>
      conductor.finishServerOperation({ server: { serverId, status: 'DELETED', taskState: null }, operationId: input.operationId, status: 'failed', error: fault }),
    );
    throw operationFailure(fault);
  }

  /**
   * Undo of attach_volume on one host: delete the volumes this request created there, free the
   * others. A pool volume the host cannot delete now goes to the ledger; its row is forgotten.
   */
  async function releaseVolumes(host: string): Promise<void> {
    const released = await conductor.releaseServerVolumes({ serverId, deleteVolumeIds: newVolumeIds });
    for (const poolVolume of released.deletePoolVolumes) await t.attempt('attach_volume', { activity: 'deleteVolume', host, args: [{ poolVolume }] });
    await conductor.forgetDeletedVolumes({ volumeIds: released.deletedVolumeIds });
  }
}

/** The operation was cancelled (the failure, or the step failure's cause). */
function cancelled(err: unknown): boolean {
  return isCancellation(err instanceof StepFailed ? err.failure : err);
}

/** Host-side activities of the create flow: their failure is a reason to try another host. */
const HOST_SIDE = new Set(['createVolume', 'bootServer']);

function failedOnHost(err: StepFailed): boolean {
  return err.failure instanceof ActivityFailure && HOST_SIDE.has(err.failure.activityType);
}

/** The last host's failure (its step and code), with a message naming each host tried and what failed there. */
function onEveryHost(last: StepFailed, hostFailures: string[]): StepFailed {
  const message = hostFailures.length > 1 ? `every host failed: ${hostFailures.join('; ')}` : `host ${hostFailures.join('')}`;
  return new StepFailed(last.step, ApplicationFailure.nonRetryable(message, faultCode(last.failure)));
}

function volumeIdsOf(requests: ServerVolumeRequest[]): string[] {
  return requests.flatMap((r) => ('volumeId' in r ? [r.volumeId] : []));
}
