// The writer process of background-writer.ts: reads the captured events from the spool,
// reconstructs the exchanges and writes them with TestSetWriter (tests/test-N.yaml, mocks.yaml),
// in order.
//   node writer-process-main.js '<WriterProcessConfig as JSON>'  (that entry ignores SIGINT/SIGHUP first)
// Runs in the idle CPU class, paced (see PACED_SLICE_MS) or, under load, waiting
// (writer-pacing.ts), while the recording goes on; a line on
// stdin means the recorded command has ended (full speed from then on); ends when its stdin closes
// (tlsrec finished, or died) and the spool holds nothing more. A stdin that closes without the line
// RECORDER_DONE means tlsrec died with its capture running: the writer then continues whatever of
// the command it had stopped (releaseCommandOnceRecorderIsGone). Reports on stdout (WriterReport,
// one JSON a line).

import { RECORDER_DONE, type WriterProcessConfig, type WriterReport } from './background-writer.js';
import { Cgroup } from '../native/cgroup.js';
import { decodeRecords } from '../native/decode.js';
import type { Exchange } from '../model/exchange.js';
import { Reconstructor } from './reconstruct.js';
import { SPOOL_KEY_ENV, SpoolCipher } from './spool-cipher.js';
import { SpoolReader } from '../format/spool.js';
import { TestSetWriter } from '../format/writer.js';
import { exchangeDocs } from '../protocols/files.js';
import { firstHeader } from '../model/headers.js';
import { BodyGarbageCollector } from './body-gc.js';
import { causeText, TlsrecError } from '../errors.js';
import type { CaptureEvent } from '../model/events.js';
import { WriterPacing } from './writer-pacing.js';

const config = JSON.parse(process.argv[2] ?? '{}') as WriterProcessConfig;
let cipher: SpoolCipher;
try {
  cipher = SpoolCipher.fromHex(process.env[SPOOL_KEY_ENV] ?? '');
} catch (err) {
  process.stderr.write(`tlsrec: writer process: ${causeText(err)}\n`);
  process.exit(1);
}
delete process.env[SPOOL_KEY_ENV];

process.stdout.on('error', () => undefined); // tlsrec is gone: write the files anyway

const report = (r: WriterReport): void => {
  process.stdout.write(JSON.stringify(r) + '\n');
};

let writer: TestSetWriter;
try {
  writer = await TestSetWriter.create({ ...config.writer, monoToWallNs: BigInt(config.monoToWallNs) }, exchangeDocs());
} catch (err) {
  // One line, no stack: tlsrec then says the writer stopped early and where the spool is.
  process.stderr.write(`tlsrec: writer process: ${causeText(err)}\n`);
  process.exit(1);
}
const progress = { tests: 0, mocks: 0, bytes: 0 };
/**
 * After the first write failure (a full disk, mostly) nothing more is written, so the files hold
 * a prefix of the recording without holes; the rest is counted as not written.
 */
let failed = false;
const notTried = { tests: 0, mocks: 0 };
let appPort: number | undefined;
const collector = new BodyGarbageCollector(1024 * 1024);
const reconstructor = new Reconstructor({ onExchange: write });

/**
 * Events decoded from the spool, not yet reconstructed. The spool is read a megabyte at a time, but
 * the events are handed on one by one between clock checks: a whole read at once (hundreds of
 * exchanges, each a file) kept the writer busy for seconds after a load test had begun.
 */
let queued: CaptureEvent[] = [];
let next = 0;

const reader = new SpoolReader(config.setDir, config.prefix, (frame) => {
  let plain: Buffer;
  let events;
  try {
    plain = cipher.open(frame);
    events = decodeRecords(plain);
  } catch (err) {
    report({ failure: { message: `a spooled batch of events could not be read: ${causeText(err)}` } });
    return;
  }
  if (next === queued.length) {
    queued = events;
    next = 0;
  } else {
    for (const ev of events) queued.push(ev);
  }
  progress.bytes += plain.length; // as the recorder counts what it spooled
});

/** Hands the next queued event on, reading the spool when none are queued. False when nothing was there. */
function stepOne(): boolean {
  if (next === queued.length && !reader.step()) return false;
  if (next < queued.length) reconstructor.push(queued[next++]!);
  return true;
}

function write(ex: Exchange): void {
  if (ex.role === 'incoming') appPort ??= appPortOf(ex);
  if (failed) {
    if (ex.role === 'incoming') notTried.tests++;
    else notTried.mocks++;
    return;
  }
  try {
    writer.writeExchange(ex);
    if (ex.role === 'incoming') progress.tests++;
    else progress.mocks++;
  } catch (err) {
    failed = true;
    const code = ((err as { cause?: NodeJS.ErrnoException }).cause)?.code;
    const hint = err instanceof TlsrecError ? err.hint : undefined;
    report({ failure: { message: causeText(err), ...(code ? { code } : {}), ...(hint ? { hint } : {}) } });
  }
  collector.note(ex.protocol === 'http1' ? ex.request.body.length + ex.response.body.length : 0); // the exchange and its renderings are garbage now
}

/** The port the app served on, from a request it received. */
function appPortOf(ex: Exchange): number | undefined {
  if (ex.localPort) return ex.localPort;
  if (ex.protocol !== 'http1') return undefined;
  const host = firstHeader(ex.request.headers, 'host');
  const m = host ? /:(\d+)$/.exec(host) : null;
  if (m) return Number(m[1]);
  return host ? (ex.tls ? 443 : 80) : undefined;
}

let recorderDone = false;
/** The recorded command has ended: nothing to yield to any more. */
let commandEnded = false;
/** What tlsrec wrote on stdin; RECORDER_DONE in it means tlsrec stopped its capture itself. */
let said = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  commandEnded = true;
  said = (said + text).slice(-64);
  schedule(0); // full speed from now on, not after an idle wait
});
const onStdinEnd = (): void => {
  if (recorderDone) return;
  recorderDone = true;
  if (!said.includes(RECORDER_DONE) && config.commandCgroup) releaseCommandOnceRecorderIsGone(config.commandCgroup);
  schedule(0); // tlsrec waits for the end report
};
process.stdin.on('end', onStdinEnd);
process.stdin.on('error', onStdinEnd);
process.stdin.resume();

/**
 * tlsrec died (SIGKILL) without stopping its capture: a process of the command it had stopped
 * while it looked at a file, or a cgroup it had frozen for backpressure, would wait forever. Once
 * tlsrec has really exited (its BPF links closed with its files, so nothing stops them again),
 * they go on. Its exit is seen as this process being handed to another parent, which the kernel
 * does after closing the dying process's files.
 */
function releaseCommandOnceRecorderIsGone(cgroupPath: string): void {
  const recorder = process.ppid;
  const deadline = Date.now() + 5000;
  const check = (): void => {
    if (process.ppid === recorder && Date.now() < deadline) {
      setTimeout(check, 10);
      return;
    }
    try {
      const continued = Cgroup.at(cgroupPath).release();
      if (continued > 0) process.stderr.write(`tlsrec: writer process: tlsrec ended without stopping its capture; continued ${continued} stopped process(es) of the recorded command\n`);
    } catch {
      // the cgroup is gone: nothing of the command is left to continue
    }
  };
  check();
}

/**
 * With nothing in the spool the writer looks again after IDLE_MIN_MS, doubling up to IDLE_MAX_MS
 * while nothing comes: an idle recording woke it ~95 times a second at a steady 10 ms (3 % of a
 * CPU, session 9). The end of stdin wakes it at once, so the backoff never delays tlsrec's stop.
 */
const IDLE_MIN_MS = 10;
const IDLE_MAX_MS = 200;
/** Under load (mode 'wait') the writer only re-reads the arrival rate, this often. */
const WAIT_CHECK_MS = 100;
/**
 * When paced (light traffic while the command runs), the writer works PACED_SLICE_MS at a time
 * with PACED_GAP_MS between slices (at most a fifth of a CPU). The idle CPU class alone did not
 * keep it out of the app's way: a writer that is always runnable, even at idle class, left the app
 * sharing a CPU with the load generator more often. Measured with a 200 µs handler under wrk, 10
 * paired rounds: p99 lower in 8, median 21.3 -> 20.1 ms, throughput higher in 5 of 6
 * (bench/README.md, session 6). Under load it waits altogether (writer-pacing.ts).
 */
const PACED_SLICE_MS = 5;
const PACED_GAP_MS = 20;
const pacing = new WriterPacing();
const REPORT_MS = 250;
let lastReport = 0;
let reported = -1;
let idleMs = IDLE_MIN_MS;
let timer: NodeJS.Timeout | undefined;
let finishing = false;

/** The next tick in `ms`, replacing any tick already planned. */
function schedule(ms: number): void {
  if (finishing) return;
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

async function finish(): Promise<void> {
  // tlsrec closed stdin after its last append: everything is in the spool.
  const leftover = reader.finish();
  while (next < queued.length) reconstructor.push(queued[next++]!);
  const stats = reconstructor.finish(); // completes what ends with the stream (close-delimited bodies)
  const summary = await writer.close();
  report({
    end: {
      tests: summary.tests,
      mocks: summary.mocks,
      failedTests: summary.failedTests + notTried.tests,
      failedMocks: summary.failedMocks + notTried.mocks,
    },
    leftover,
    stats,
    ...(appPort === undefined ? {} : { appPort }),
  });
}

function tick(): void {
  try {
    // Work in slices so stdin's end and the reports get their turn.
    const backlog = reader.backlogBytes();
    const mode = pacing.mode(Date.now(), reader.handledBytes() + backlog, backlog, !commandEnded && !recorderDone);
    if (mode === 'wait') {
      schedule(WAIT_CHECK_MS);
      return;
    }
    const paced = mode === 'paced';
    const until = Date.now() + (paced ? PACED_SLICE_MS : 50);
    let progressed = false;
    while (Date.now() < until && stepOne()) progressed = true;
    if (Date.now() - lastReport >= REPORT_MS && progress.bytes !== reported) {
      report({ progress: { ...progress } });
      reported = progress.bytes;
      lastReport = Date.now();
    }
    if (!progressed && recorderDone) {
      finishing = true;
      finish().catch(fail);
      return;
    }
    idleMs = progressed ? IDLE_MIN_MS : Math.min(idleMs * 2, IDLE_MAX_MS);
    schedule(!progressed ? idleMs : paced ? PACED_GAP_MS : 0);
  } catch (err) {
    fail(err);
  }
}

function fail(err: unknown): void {
  // No end report: tlsrec says the writer stopped early and where the spool is.
  process.stderr.write(`tlsrec: writer process: ${causeText(err)}\n`);
  process.exitCode = 1;
}

schedule(0);
