// The terminal side of `record` (src/cli/record-terminal.ts): what the observer writes for each
// thing the engine reports, with --quiet and --verbose, and the summary's lines.

import { describe, expect, it } from 'vitest';
import { recordTerminal, summaryText } from '../src/cli/record-terminal.js';
import type { RecordSummary } from '../src/record/record-command.js';

/** A stream that keeps what is written; a terminal or not. */
function stream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = {
    text: '',
    isTTY,
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

const summary = (over: Partial<RecordSummary> = {}): RecordSummary => ({
  testSetDir: 'tlsrec/test-set-0',
  files: {
    tests: 3,
    mocks: 2,
    failedTests: 0,
    failedMocks: 0,
    notWritten: 0,
    notWrittenBytes: 0,
    lateErrors: [],
    stats: {
      exchanges: 5,
      incoming: 3,
      outgoing: 2,
      skipped: [{ reason: 'not-http', detail: 'SSH-2.0 banner on 10.0.0.1:22', bytes: 2048, conn: 'c1' }],
      bytesIn: 4096,
      bytesOut: 1024,
      connections: 4,
    },
  },
  loss: { ringbufFull: 0, readFault: 0, bytesLost: 0 },
  pressure: { pauses: 0, pausedMs: 0, peakBacklogBytes: 0 },
  ...over,
});

describe('record on the terminal', () => {
  it('the summary: counts, traffic, what was skipped and lost', () => {
    expect(summaryText(summary())).toBe(
      'tlsrec: recorded 3 test(s) and 2 mock(s) in tlsrec/test-set-0\n' +
        '  traffic: 4.0 KiB in, 1.0 KiB out on 4 connection(s)\n' +
        '  skipped: 1 stream(s) or message(s) (1 not-http)\n' +
        '    - not-http: SSH-2.0 banner on 10.0.0.1:22 (2.0 KiB)\n' +
        '  lost: 0 bytes\n',
    );
    const bad = summaryText(
      summary({
        loss: { ringbufFull: 2, readFault: 1, bytesLost: 3 * 1024 * 1024 },
        pressure: { pauses: 4, pausedMs: 1500, peakBacklogBytes: 16 * 1024 * 1024 },
        files: { ...summary().files, stats: undefined, notWritten: 2, notWrittenBytes: 1024 },
      }),
    );
    expect(bad).toContain('  traffic: unknown (the file-writer process stopped before it could say)\n');
    expect(bad).toContain('  WARNING: LOST 3.0 MiB in 3 kernel event(s) (ring buffer full: 2, read faults: 1).\n');
    expect(bad).toContain(
      '  paused the command 4 time(s), 1.5 s in all, so that nothing was lost (backlog peaked at 16.0 MiB; --max-backlog sets the limit)\n',
    );
    expect(bad).toContain('  WARNING: 2 exchange(s) and 1.0 KiB of captured traffic could not be written\n');
  });

  it('quiet: no status line, no summary, no "writing the rest"; leaving the files to finish and warnings are still said', () => {
    const out = stream(true);
    const o = recordTerminal(out, { quiet: true, verbose: false });
    o.started?.('tlsrec/test-set-0', () => ({ tests: 1, mocks: 0, capturedBytes: 10 }));
    o.commandEnded?.();
    o.captureWarning?.('a detail');
    o.captureStopped?.({ filesAttached: 2, onMap: true, stops: 3, stoppedMs: 40 });
    o.waitingForFiles?.(5000);
    o.finished?.(summary());
    expect(out.text).toBe('');
    o.leftRunning?.(1234, 2048, 'tlsrec/test-set-0');
    o.warning?.('cannot write tlsrec.yaml: EACCES');
    expect(out.text).toBe(
      'tlsrec: not waiting: the file-writer process (pid 1234) goes on writing the rest (2.0 KiB of captured traffic) to tlsrec/test-set-0\n' +
        'tlsrec: warning: cannot write tlsrec.yaml: EACCES\n',
    );
  });

  it('on a terminal the status line is drawn and cleared; verbose adds the capture details', () => {
    const out = stream(true);
    const o = recordTerminal(out, { quiet: false, verbose: true });
    o.started?.('tlsrec/test-set-0', () => ({ tests: 1, mocks: 2, capturedBytes: 3 * 1024 }));
    o.commandEnded?.();
    o.captureWarning?.('attached to /usr/lib/libssl.so.3');
    o.captureStopped?.({ filesAttached: 2, onMap: true, stops: 3, stoppedMs: 40 });
    o.waitingForFiles?.(5 * 1024 * 1024);
    expect(out.text).toBe(
      '\x1b[2K\r● tlsrec recording to tlsrec/test-set-0: 3.0 KiB captured, 1 tests and 2 mocks written\r' +
        '\x1b[2K\r' +
        'tlsrec: attached to /usr/lib/libssl.so.3\n' +
        'tlsrec: OpenSSL probes on 2 file(s); processes waited 3 time(s), 40 ms in all, while tlsrec looked at files they mapped\n' +
        'tlsrec: writing the rest of the recording (5.0 MiB of captured traffic) to files... (Ctrl-C: leave it to finish in the background)\n',
    );
  });

  it('no status line when the output is not a terminal', () => {
    const out = stream(false);
    const o = recordTerminal(out, { quiet: false, verbose: false });
    o.started?.('d', () => ({ tests: 0, mocks: 0, capturedBytes: 0 }));
    o.commandEnded?.();
    expect(out.text).toBe('');
  });
});
