/**
 * The process's temporary files, all under one directory of its own: rows buffered for DuckDB,
 * rows a parser spilled, the worker threads' spills. They hold parsed rows (client addresses
 * among them), so none may outlive the process:
 * - the directory is removed when the process exits, and on SIGINT or SIGTERM by the commands
 *   that handle them (`removeScratch`);
 * - a process killed outright (kill -9, out of memory) cannot clean up: the next mlab-etl process
 *   on the same host removes the directories of processes that are no longer alive (`sweepStale`).
 * The directory's name says whose it is: `mlab-etl-<host>-<pid>-<random>`.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'mlab-etl-';
let dir: string | null = null;
/** Files outside the directory that are only temporary (a Parquet file being written). */
const tracked = new Set<string>();

function host(): string {
  return os.hostname().replace(/[^A-Za-z0-9.]/g, '_');
}

/** The process's temporary directory, made on first use under the OS temporary directory. */
export function scratchDir(): string {
  if (dir === null) {
    const root = os.tmpdir();
    mkdirSync(root, { recursive: true });
    sweepStale(root);
    dir = mkdtempSync(path.join(root, `${PREFIX}${host()}-${process.pid}-`));
    process.once('exit', removeScratch);
  }
  return dir;
}

/** A new directory inside the process's temporary directory. */
export function scratchSubdir(prefix: string): string {
  return mkdtempSync(path.join(scratchDir(), prefix));
}

/** Marks a file as temporary until the returned function is called: removed with the scratch directory. */
export function trackTemporary(file: string): () => void {
  tracked.add(file);
  return () => tracked.delete(file);
}

/** Removes every temporary file of the process now (synchronous: it runs on exit and in signal handlers). */
export function removeScratch(): void {
  for (const f of tracked) rmSync(f, { force: true });
  tracked.clear();
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists, under another user.
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/**
 * Removes the temporary directories that processes of this host left when they died without
 * cleaning up; returns them. Directories of live processes, of other hosts (a shared temporary
 * directory) or not named by this module are left alone.
 */
export function sweepStale(root: string = os.tmpdir()): string[] {
  const mine = new RegExp(`^${PREFIX}${host().replace(/[.]/g, '[.]')}-(\\d+)-`);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(mine.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    const stale = path.join(root, name);
    rmSync(stale, { recursive: true, force: true });
    removed.push(stale);
  }
  return removed;
}
