// What `tlsrec record` shows on the terminal: the live status line while the command runs, the
// messages of the end (waiting for the files, leaving them to finish), and the summary. The engine
// (src/record/record-command.ts) reports through the RecordObserver this builds and prints nothing.

import { relative } from 'node:path';
import { formatBytes } from '../format-bytes.js';
import type { InterruptSource, RecordObserver, RecordProgress, RecordSummary } from '../record/record-command.js';
import { notWrittenText } from '../spool/spooler.js';

export interface RecordTerminalOptions {
  /** No status line and no summary (messages that need an answer still appear). */
  quiet: boolean;
  /** Capture details: warnings and where the OpenSSL probes went. */
  verbose: boolean;
}

/** The observer that draws `record`'s output on `out` (stderr, so the command's stdout stays clean). */
export function recordTerminal(out: NodeJS.WriteStream, opts: RecordTerminalOptions): RecordObserver {
  let status: { stop(): void } | undefined;
  return {
    started(testSetDir, progress) {
      if (!opts.quiet && out.isTTY) status = startStatusLine(out, progress, testSetDir);
    },
    commandEnded() {
      status?.stop();
      status = undefined;
    },
    captureWarning(message) {
      if (opts.verbose) out.write(`tlsrec: ${message}\n`);
    },
    captureStopped(attach) {
      if (!opts.verbose) return;
      out.write(
        `tlsrec: OpenSSL probes on ${attach.filesAttached} file(s)` +
          (attach.onMap
            ? `; processes waited ${attach.stops} time(s), ${attach.stoppedMs} ms in all, while tlsrec looked at files they mapped\n`
            : ' (attached up front)\n'),
      );
    },
    waitingForFiles(remainingBytes) {
      if (!opts.quiet)
        out.write(
          `tlsrec: writing the rest of the recording (${formatBytes(remainingBytes)} of captured traffic) to files... (Ctrl-C: leave it to finish in the background)\n`,
        );
    },
    leftRunning(pid, remainingBytes, testSetDir) {
      out.write(
        `tlsrec: not waiting: the file-writer process (pid ${pid}) goes on writing the rest (${formatBytes(remainingBytes)} of captured traffic) to ${testSetDir}\n`,
      );
    },
    finished(summary) {
      if (!opts.quiet) out.write(summaryText(summary));
    },
    secretsKept(file) {
      if (!opts.quiet) {
        out.write(
          `tlsrec: secrets kept out of the files are in ${relative(process.cwd(), file) || file} (mode 0600, in .gitignore); ` +
            'tlsrec test reads them, or TLSREC_SECRET_<NAME>\n',
        );
      }
    },
    warning(message) {
      out.write(`tlsrec: warning: ${message}\n`);
    },
  };
}

/** Ctrl-C, SIGTERM and SIGHUP of this process, handled only while someone is subscribed. */
export function processSignals(): InterruptSource {
  return {
    subscribe(handler) {
      const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
      const listeners = signals.map((signal) => {
        const listener = (): void => handler(signal);
        process.on(signal, listener);
        return [signal, listener] as const;
      });
      return () => {
        for (const [signal, listener] of listeners) process.off(signal, listener);
      };
    },
  };
}

/** The live line on a terminal: files written so far (they lag under load: the file-writer process waits for idle CPU), bytes captured. */
function startStatusLine(out: NodeJS.WriteStream, progress: () => RecordProgress, dir: string): { stop(): void } {
  let last = '';
  const draw = (): void => {
    const now = progress();
    const line = `● tlsrec recording to ${dir}: ${formatBytes(now.capturedBytes)} captured, ${now.tests} tests and ${now.mocks} mocks written`;
    if (line === last) return;
    last = line;
    out.write(`\x1b[2K\r${line}\r`);
  };
  draw();
  const timer = setInterval(draw, 250);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      out.write('\x1b[2K\r');
    },
  };
}

/** The summary printed when a recording ends. */
export function summaryText({ testSetDir, files, loss, pressure }: RecordSummary): string {
  const lines: string[] = [];
  const stats = files.stats;
  lines.push(`tlsrec: recorded ${files.tests} test(s) and ${files.mocks} mock(s) in ${testSetDir}`);
  if (stats === undefined) {
    lines.push('  traffic: unknown (the file-writer process stopped before it could say)');
  } else {
    lines.push(
      `  traffic: ${formatBytes(stats.bytesIn)} in, ${formatBytes(stats.bytesOut)} out on ${stats.connections} connection(s)`,
    );
  }
  if (stats !== undefined && stats.skipped.length > 0) {
    const byReason = new Map<string, number>();
    for (const s of stats.skipped) byReason.set(s.reason, (byReason.get(s.reason) ?? 0) + 1);
    const parts = [...byReason].map(([r, n]) => `${n} ${r}`).join(', ');
    lines.push(`  skipped: ${stats.skipped.length} stream(s) or message(s) (${parts})`);
    for (const s of stats.skipped.slice(0, 5)) lines.push(`    - ${s.reason}: ${s.detail} (${formatBytes(s.bytes)})`);
    if (stats.skipped.length > 5) lines.push(`    … and ${stats.skipped.length - 5} more`);
  } else if (stats !== undefined) {
    lines.push('  skipped: 0 streams');
  }
  const lost = loss.ringbufFull + loss.readFault;
  if (lost > 0 || loss.bytesLost > 0) {
    lines.push(
      `  WARNING: LOST ${formatBytes(loss.bytesLost)} in ${lost} kernel event(s) ` +
        `(ring buffer full: ${loss.ringbufFull}, read faults: ${loss.readFault}).`,
      '  Exchanges touched by the loss were reported above as skipped, not written. Try a larger --ringbuf (e.g. --ringbuf 256M).',
    );
  } else {
    lines.push('  lost: 0 bytes');
  }
  if (pressure.pauses > 0) {
    lines.push(
      `  paused the command ${pressure.pauses} time(s), ${(pressure.pausedMs / 1000).toFixed(1)} s in all, so that nothing was lost ` +
        `(backlog peaked at ${formatBytes(pressure.peakBacklogBytes)}; --max-backlog sets the limit)`,
    );
  }
  const notWritten = notWrittenText(files);
  if (notWritten !== undefined) lines.push(`  WARNING: ${notWritten} could not be written`);
  return lines.join('\n') + '\n';
}
