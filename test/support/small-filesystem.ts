/**
 * A real filesystem that fills up: a tmpfs of a few hundred KiB mounted for one test, so sinks
 * meet the kernel's own ENOSPC, then grown (remount) to stand for "space was freed". Mounting
 * needs root (CI runs as root); elsewhere `available()` says why it cannot, and the test is skipped
 * with that reason, except under CI, where it must run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface SmallFilesystem {
  dir: string;
  /** Gives the filesystem this many bytes in all, keeping its files. */
  resize(bytes: number): void;
  remove(): void;
}

function mount(dir: string, bytes: number, remount = false): void {
  const options = `${remount ? 'remount,' : ''}size=${bytes},mode=0755`;
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
}

/** Null when a tmpfs can be mounted here; else the reason it cannot. */
export function smallFilesystemUnavailable(): string | null {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-fs-probe-'));
  try {
    mount(dir, 64 * 1024);
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs here (root needed): ${(err as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function smallFilesystem(bytes: number): SmallFilesystem {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mlab-etl-fs-'));
  mount(dir, bytes);
  return {
    dir,
    resize: (n) => mount(dir, n, true),
    remove: () => {
      execFileSync('umount', [dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
