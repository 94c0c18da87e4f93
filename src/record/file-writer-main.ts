// Entry of the file-writer process (src/spool/file-writer-process.ts), started by the recorder's
// Spooler:  node file-writer-main.js '<FileWriterConfig as JSON>'  with the spool key in its
// environment. It wires the real I/O: the spool and its cipher, record decoding, the record
// stage's Reconstructor, the test-set files, stdin/stdout/stderr and the command's cgroup.
//
// It shares tlsrec's terminal, so before anything else is loaded it ignores the Ctrl-C and hangup
// meant for tlsrec: the files must still be written.
import type { Exchange } from '../model/exchange.js';

process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);

const [
  { causeText },
  { Cgroup },
  { decodeRecords },
  { TestSetWriter },
  { BodyGarbageCollector },
  { SpoolCipher },
  { FileWriterProcess, systemClock },
  { SPOOL_KEY_ENV },
  { SpoolReader },
  { Reconstructor },
  { appPortOf },
  { exchangeDocs },
] = await Promise.all([
  import('../errors.js'),
  import('../native/cgroup.js'),
  import('../capture/decode.js'),
  import('../format/test-set-writer.js'),
  import('../spool/body-gc.js'),
  import('../spool/cipher.js'),
  import('../spool/file-writer-process.js'),
  import('../spool/file-writer-protocol.js'),
  import('../spool/segments.js'),
  import('./reconstruct.js'),
  import('./app-port.js'),
  import('../protocols/files.js'),
]);
type Config = import('../spool/file-writer-protocol.js').FileWriterConfig;

/** One line, no stack: the recorder then says the process stopped early and where the spool is. */
const fail = (err: unknown): void => {
  process.stderr.write(`tlsrec: file-writer process: ${causeText(err)}\n`);
  process.exitCode = 1;
};

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as Config;
  const cipher = SpoolCipher.fromHex(process.env[SPOOL_KEY_ENV] ?? '');
  delete process.env[SPOOL_KEY_ENV];
  process.stdout.on('error', () => undefined); // the recorder is gone: write the files anyway

  const files = await TestSetWriter.create(
    { ...config.files, monoToWallNs: BigInt(config.monoToWallNs) },
    exchangeDocs(),
  );
  const collector = new BodyGarbageCollector(1024 * 1024);
  const { commandCgroup } = config;
  const writer = new FileWriterProcess({
    clock: systemClock,
    openSpool: (onFrame) => new SpoolReader(config.setDir, config.prefix, onFrame),
    openFrame: (frame) => {
      const plain = cipher.open(frame);
      return { events: decodeRecords(plain), bytes: plain.length };
    },
    files,
    reconstruct: (onExchange) => new Reconstructor({ onExchange }),
    report: (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    parentPid: () => process.ppid,
    ...(commandCgroup === undefined ? {} : { releaseCommand: () => Cgroup.at(commandCgroup).release() }),
    warn: (message) => process.stderr.write(`tlsrec: file-writer process: ${message}\n`),
    appPortOf,
    // The exchange and its renderings are garbage now.
    exchangeDone: (ex) => collector.note(exchangeBytes(ex)),
  });

  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (text: string) => writer.input(text));
  process.stdin.on('end', () => writer.inputEnded());
  process.stdin.on('error', () => writer.inputEnded());
  process.stdin.resume();
  writer.start();
  await writer.done;
}

await main().catch(fail);

/** Bytes of an exchange's bodies (gRPC: its messages), for the collector's pacing. */
function exchangeBytes(ex: Exchange): number {
  if (ex.protocol === 'grpc')
    return [...ex.request.messages, ...ex.response.messages].reduce((n, m) => n + m.data.length, 0);
  if (ex.protocol === 'postgres') return 0; // rows are small values, not bodies
  if (ex.protocol === 'redis') return ex.command.reduce((n, a) => n + a.length, 0);
  return ex.request.body.length + ex.response.body.length;
}
