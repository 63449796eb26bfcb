/** Every workflow the conductor runs; this file is the entry point of the workflow bundle. */
export { hostMonitor } from './host-monitor';
export { createServer } from './create-server';
export { deleteServer } from './delete-server';
export { serverAction } from './server-action';
export { meterServer } from './meter-server';
export { meterHost } from './meter-host';
export { createVolume, deleteVolume, attachVolume, detachVolume } from './volumes';
export { serverConsole } from './server-console';
export { serverConsoleSession } from './console-session';
export { serverBatch } from './server-batch';
export { reconciler } from './reconciler';
