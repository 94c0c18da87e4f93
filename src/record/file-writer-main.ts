// Entry of the writer process (see background-writer.ts). It shares tlsrec's terminal, so before
// anything else is loaded it ignores the Ctrl-C and hangup meant for tlsrec: the files must
// still be written. Then the writer itself.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
await import('../spool/file-writer-process.js');
