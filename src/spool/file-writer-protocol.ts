// What the recorder (spooler.ts) and its file-writer process (file-writer-process.ts) say to each
// other. The recorder starts the process with a FileWriterConfig (JSON in argv) and the spool key
// (in the environment); it writes a line on the process's stdin when the recorded command has
// ended, RECORDER_DONE when its capture has stopped, then closes stdin. The process answers on
// stdout with FileWriterReports, one JSON object a line.

import type { TestSetSummary, TestSetWriterOptions } from '../format/test-set-writer.js';

/** The environment variable the file-writer process reads its spool key from (and deletes). */
export const SPOOL_KEY_ENV = 'TLSREC_SPOOL_KEY';

/**
 * The line the recorder writes on the file-writer process's stdin just before closing it, once its
 * capture has stopped. Any earlier line means the recorded command has ended: stop pacing.
 */
export const RECORDER_DONE = 'capture-stopped';

/** The file-writer process is started with this (JSON in argv[2]). */
export interface FileWriterConfig {
  setDir: string;
  prefix: string;
  files: Omit<TestSetWriterOptions, 'monoToWallNs'> & { testSet: string };
  /**
   * Kernel time → epoch offset (ns, decimal), measured once by the recorder so that the timestamps
   * in the files are what the recorder saw, whatever the file-writer process would measure itself.
   */
  monoToWallNs: string;
  /**
   * The recorded command's cgroup: if the recorder dies without saying it stopped the capture
   * (SIGKILL), the file-writer process lets the command's processes go on (Cgroup.release).
   */
  commandCgroup?: string;
}

/** A file the process could not write: its OutputError's message and hint, the errno code. */
export interface FileWriterFailure {
  message: string;
  code?: string;
  hint?: string;
}

/** Files written so far, and how many bytes of records (unencrypted) were read from the spool. */
export interface FileWriterProgress {
  tests: number;
  mocks: number;
  bytes: number;
}

/** The last report: what was written, an incomplete frame left in the spool, what reconstruction made of it. */
export interface FileWriterEnd<Stats> {
  end: TestSetSummary;
  leftover: number;
  stats: Stats;
  /** The port the app served on, from the first request it received. */
  appPort?: number;
}

export type FileWriterReport<Stats = unknown> =
  | { progress: FileWriterProgress }
  | { failure: FileWriterFailure }
  | FileWriterEnd<Stats>;
