/** Free ports for test servers (the helper lives in core/ports.ts; benchmarks use it too). */
export { freePort } from '../../core/ports';
