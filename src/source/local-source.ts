/** Archives on the local disk: a file, or a directory searched for archives. */
import { createReadStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream';
import tar from 'tar-stream';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { hasArchiveSuffix, identifyLocalArchive, type IdentityOverrides } from './archive-path.js';
import { EtlError } from '../errors.js';
import type { ArchiveSource } from './archive-source.js';

/** Large reads: the archive is read once, front to back. */
const READ_CHUNK = 1024 * 1024;

export interface FoundInputs {
  files: string[];
  /** Paths that could not be used, with the reason. */
  missing: { path: string; error: EtlError }[];
}

/** Expands the inputs: files as given, directories searched (recursively, sorted) for .tgz/.tar.gz/.tar files. */
export async function findArchives(inputs: string[]): Promise<FoundInputs> {
  const files: string[] = [];
  const missing: FoundInputs['missing'] = [];
  for (const input of inputs) {
    let isDir: boolean;
    try {
      isDir = statSync(input).isDirectory();
    } catch (err) {
      missing.push({
        path: input,
        error: new EtlError('input_not_found', `${input}: ${(err as Error).message}`, { stage: 'input', cause: err }),
      });
      continue;
    }
    if (!isDir) {
      files.push(input);
      continue;
    }
    const entries = await readdir(input, { recursive: true, withFileTypes: true });
    const found = entries
      .filter((e) => e.isFile() && hasArchiveSuffix(e.name))
      .map((e) => path.join(e.parentPath, e.name))
      .sort();
    files.push(...found);
  }
  return { files, missing };
}

/**
 * A file that is not an archive (no .tgz/.tar.gz/.tar suffix), seen as an archive of one entry
 * named after it: how a contributor tries a parser on one data file. Streamed, not read whole.
 */
function singleEntryTar(file: string, size: number): AsyncIterable<Buffer> {
  const pack = tar.pack();
  const sink = pack.entry({ name: path.basename(file), size, mtime: new Date(0) }, (err) => {
    if (err) pack.destroy(err);
    else pack.finalize();
  });
  pipeline(createReadStream(file, { highWaterMark: READ_CHUNK }), sink as unknown as NodeJS.WritableStream, (err) => {
    if (err) pack.destroy(err);
  });
  return pack as unknown as AsyncIterable<Buffer>;
}

export function localArchive(file: string, overrides: IdentityOverrides = {}): ArchiveSource {
  let size: number | null;
  try {
    size = statSync(file).size;
  } catch {
    size = null; // unreadable: open() fails and the archive is recorded as failed
  }
  return {
    url: `file://${path.resolve(file)}`,
    size,
    generation: null,
    identify: () => identifyLocalArchive(file, overrides),
    open: () =>
      hasArchiveSuffix(file) || size === null
        ? (createReadStream(file, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>)
        : singleEntryTar(file, size),
  };
}
