/**
 * The child process of workers/workflow-bundle.ts: bundles the workflows with webpack (through the
 * Temporal SDK) into the file named by its argument, then exits, so webpack's memory goes with it.
 *
 *   node --import tsx workers/build-workflow-bundle.ts <out file>
 */
import fs from 'node:fs';

/** Bundle, then write atomically (a concurrent reader sees the whole file or none). */
async function buildInto(out: string): Promise<void> {
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const quiet = () => undefined;
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: (m: string) => process.stderr.write(`${m}\n`), error: (m: string) => process.stderr.write(`${m}\n`) },
  });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, code);
  fs.renameSync(tmp, out);
}

buildInto(process.argv[2]!).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
