/** Liveness (`/healthz`: the process answers) and readiness (`/readyz`: every dependency answers). */
import { Router } from 'express';
import type { components } from '../../openapi/types';

type Check = components['schemas']['Check'];

/** Each probe resolves when its dependency is fine and throws (with a readable message) when not. */
export interface ReadinessProbes {
  database(): Promise<void>;
  temporal(): Promise<void>;
  hosts(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 3000;

async function run(probe: () => Promise<void>): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return { status: 'ok' };
  } catch (err) {
    return { status: 'failing', detail: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(probes: ReadinessProbes): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const [database, temporal, hosts] = await Promise.all([run(probes.database), run(probes.temporal), run(probes.hosts)]);
    const ok = [database, temporal, hosts].every((c) => c.status === 'ok');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: { database, temporal, hosts } });
  });
  return router;
}
