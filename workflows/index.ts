/** Every workflow the conductor runs; this file is the entry point of the workflow bundle. */
export { hostMonitor } from './host-monitor';
