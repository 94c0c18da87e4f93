// What the two overhead-benchmark servers (https-server.mjs, proxy-app.mjs) share: their options,
// the busy work of a handler, and the count that bench/overhead.mjs reads back.
import { writeFileSync } from 'node:fs';

/** `--name value` pairs from the command line. */
export function options(argv = process.argv) {
  const opt = {};
  for (let i = 2; i < argv.length; i += 2) opt[argv[i].slice(2)] = argv[i + 1];
  return opt;
}

/** Spins for `ns` nanoseconds (a BigInt): the handler's simulated work. */
export function busyWork(ns) {
  if (ns <= 0n) return;
  const end = process.hrtime.bigint() + ns;
  while (process.hrtime.bigint() < end);
}

/**
 * Counts answered requests. On SIGTERM/SIGINT writes to `countFile` (if given)
 * "<requests answered> <CPU µs>" — the process's CPU time (user + system, all threads, so uprobe
 * and BPF time are included) from the first request on, start-up not counted — and exits.
 */
export function requestCounter(countFile) {
  let count = 0;
  let cpuAtFirst;
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      if (countFile) {
        const cpu = cpuAtFirst ? process.cpuUsage(cpuAtFirst) : { user: 0, system: 0 };
        writeFileSync(countFile, `${count} ${cpu.user + cpu.system}`);
      }
      process.exit(0);
    });
  }
  return {
    /** A request has arrived (the CPU time is counted from the first). */
    arrived() {
      cpuAtFirst ??= process.cpuUsage();
    },
    /** A request has been answered. */
    answered() {
      count++;
    },
  };
}
