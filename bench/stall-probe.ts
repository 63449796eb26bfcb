/**
 * How much this machine itself delays a process that does nothing, measured beside a bench run: a
 * process of its own with a 1 ms timer, counting the gaps between its ticks (each gap over 10 ms is a
 * stall no server code caused: the cores busy with other processes, or time the hypervisor took,
 * which /proc/stat's steal counts). Forked by a bench; stops and reports on its first IPC message.
 */
import fs from 'node:fs';

export interface StallFigures {
  /** Gaps between ticks longer than 10 ms. */
  stalls: number;
  /** The longest gap, ms. */
  max: number;
  /** Share of the machine's CPU time the hypervisor took meanwhile (steal), in %. */
  stealPercent: number;
}

/** All CPU time and the stolen part of it, in ticks, from the first line of /proc/stat. */
function cpuTicks(): { total: number; steal: number } {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

const from = cpuTicks();
let last = performance.now();
let stalls = 0;
let max = 0;
const timer = setInterval(() => {
  const now = performance.now();
  const gap = now - last;
  if (gap > 10) stalls += 1;
  max = Math.max(max, gap);
  last = now;
}, 1);

process.once('message', () => {
  clearInterval(timer);
  const to = cpuTicks();
  const figures: StallFigures = { stalls, max: Math.round(max), stealPercent: Math.round((1000 * (to.steal - from.steal)) / Math.max(1, to.total - from.total)) / 10 };
  process.send!(figures, () => process.exit(0));
});
process.send!('ready');
