#!/usr/bin/env node
// The overhead benchmark's floor (bench/overhead.mjs, config f): count-only programs on the OpenSSL
// functions tlsrec probes (OPENSSL_PROBES), in the given files, attached the way tlsrec attaches
// (uprobe_multi links where the kernel has them). bpftrace (configs d and e) makes perf-event
// uprobes, a costlier path per hit than tlsrec's links, so it is not quite tlsrec's floor.
//
//   node bench/floor/count-probes.mjs [--syscalls[=both]] FILE...
// prints "attached N probes (...)" once attached, and "entries E returns R" when stopped (SIGINT/SIGTERM).
// --syscalls also attaches a count-only program to the raw sys_exit tracepoint, as tlsrec's
// plain-socket capture does (config g): it runs on every system call on the machine.
// --syscalls=both attaches to sys_enter as well, to measure what the pair would cost.
import { fileURLToPath } from 'node:url';
import {
  BPF_TRACE_UPROBE_MULTI,
  BpfObject,
  destroyLinks,
  numPossibleCpus,
  uprobeMultiSupported,
} from '../../dist/native/libbpf.js';
import { opensslOffsets } from '../../dist/native/elf.js';
import { OPENSSL_PROBES } from '../../dist/capture/attach-policy.js';

const syscalls = process.argv[2]?.startsWith('--syscalls') ? process.argv[2] : undefined;
const files = process.argv.slice(syscalls ? 3 : 2);
if (files.length === 0) {
  console.error('usage: count-probes.mjs [--syscalls[=both]] FILE...');
  process.exit(2);
}
const multi = uprobeMultiSupported();
const obj = BpfObject.openAndLoad(fileURLToPath(new URL('count.bpf.o', import.meta.url)), (o) => {
  if (multi)
    for (const name of ['count_entry', 'count_return']) o.program(name).setExpectedAttachType(BPF_TRACE_UPROBE_MULTI);
});
const links = [];
if (syscalls)
  for (const name of syscalls === '--syscalls=both' ? ['count_sys_enter', 'count_sys_exit'] : ['count_sys_exit'])
    links.push(obj.program(name).attach());
for (const file of files) {
  const offsets = opensslOffsets(file);
  if (!offsets) throw new Error(`${file} does not define SSL_read and SSL_write`);
  for (const p of OPENSSL_PROBES) {
    const offset = offsets.get(p.fn);
    if (offset === undefined) continue;
    for (const [name, retprobe] of p.exit
      ? [
          ['count_entry', false],
          ['count_return', true],
        ]
      : [['count_entry', false]]) {
      const prog = obj.program(name);
      links.push(
        multi
          ? prog.attachUprobeMulti({ binaryPath: file, offset, retprobe })
          : prog.attachUprobe({ binaryPath: file, offset, retprobe }),
      );
    }
  }
}
console.log(`attached ${links.length} probes (${multi ? 'uprobe_multi' : 'perf-event'} links)`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  const ncpu = numPossibleCpus();
  const total = (k) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(k);
    const v = obj.map('counts').lookup(key, ncpu * 8);
    let n = 0n;
    for (let c = 0; v && c < ncpu; c++) n += v.readBigUInt64LE(c * 8);
    return n;
  };
  const [entries, returns, syscallCount] = [total(0), total(1), total(2) + total(3)];
  await destroyLinks(links);
  obj.close();
  console.log(`entries ${entries} returns ${returns}` + (syscalls ? ` syscalls ${syscallCount}` : ''));
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
