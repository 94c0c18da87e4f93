// Whole files or nothing: a file is written under a temporary name in its own directory and
// renamed into place, so a reader (or a crash) never sees half of it.

import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/** Writes a whole file under a temporary name and renames it into place. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
    throw err;
  }
}

/** Makes a directory's new entries durable. Best effort: some file systems refuse fsync on directories. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch {
    // nothing more to do
  }
}
