/**
 * Rows a parser must group over a whole entry before it can emit any (switch groups every
 * metric's sample by timestamp), in bounded memory: past `maxInMemory` rows, the rows held are
 * sorted and written to a temporary file, and the end merges those files with what is still held,
 * combining the parts of a row that were written at different times. The rows come out exactly
 * as if every one had been held: sorted, each combined in input order.
 *
 * The files hold parsed values (v8 serialisation keeps bigints) in deflated blocks, never entry
 * bytes, live in the process's scratch directory (src/scratch.ts) and are removed when the rows
 * have been read or the reading stops.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { EtlError, isNoSpace, storageError } from '../errors.js';
import { scratchSubdir } from '../scratch.js';

export interface GroupedRowsOptions<R> {
  /** Rows held in memory; more are written to a temporary file. */
  maxInMemory: number;
  /** Rows started in all (too_many_rows beyond). */
  maxRows: number;
  /** The output order; rows with the same key compare equal. */
  compare: (a: R, b: R) => number;
  /** Adds a later part of a row (from later input) to an earlier part. */
  combine: (earlier: R, later: R) => void;
}

/** Raw bytes of a spilled block: one is held inflated per run while runs are merged (hundreds on a 1 GB entry). */
const BLOCK_BYTES = 32 * 1024;

/** FNV-1a of the key's UTF-16 code units, in 31 bits (a small integer for V8). */
function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h & 0x7fffffff;
}

/**
 * A set of 31-bit key hashes in one typed array (open addressing, linear probing): a few bytes
 * a key off the JS heap, where a Set of numbers takes about 20 on it (the 1 GB bench entry has
 * half a million keys).
 */
class HashSet31 {
  private slots = new Uint32Array(1 << 12);
  size = 0;

  add(hash: number): void {
    if (2 * (this.size + 1) > this.slots.length) this.grow();
    if (this.insert(this.slots, hash)) this.size++;
  }

  /** Stores hash + 1 (0 marks an empty slot); false when it was there already. */
  private insert(slots: Uint32Array, hash: number): boolean {
    const mask = slots.length - 1;
    const stored = hash + 1;
    for (let i = Math.imul(hash, 0x9e3779b1) & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at === 0) {
        slots[i] = stored;
        return true;
      }
      if (at === stored) return false;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (const stored of old) if (stored !== 0) this.insert(this.slots, stored - 1);
  }
}

/** Where spilled rows go: the process's scratch directory unless set (worker threads use their pool's). */
let spillRoot: string | null = null;

/**
 * Puts spilled rows under this directory from now on. A pool of worker threads gives its threads
 * a directory of its own and removes it when it closes, since a thread ended by terminate() runs
 * no cleanup of its own.
 */
export function setSpillRoot(dir: string | null): void {
  spillRoot = dir;
}

/**
 * A spilled run read back one record at a time. A run is a sequence of blocks, each a deflated
 * batch of records (4-byte length, then a v8-serialised row): [compressed length][raw length][data].
 * One inflated block is held per run, at most BLOCK_BYTES plus its last record.
 */
class RunReader<R> {
  private block = Buffer.alloc(0);
  private at = 0;
  private readonly head = Buffer.alloc(8);

  constructor(private readonly fd: number) {}

  private readFully(buf: Buffer, length: number): number {
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, null);
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  private nextBlock(): boolean {
    const n = this.readFully(this.head, 8);
    if (n === 0) return false;
    const size = this.head.readUInt32LE(0);
    const data = Buffer.allocUnsafe(size);
    if (n < 8 || this.readFully(data, size) < size) throw new Error('a spilled run ends inside a block');
    this.block = inflateRawSync(data);
    this.at = 0;
    return true;
  }

  next(): R | null {
    while (this.at >= this.block.length) if (!this.nextBlock()) return null;
    const len = this.block.readUInt32LE(this.at);
    if (this.at + 4 + len > this.block.length) throw new Error('a spilled block ends inside a record');
    const row = deserialize(this.block.subarray(this.at + 4, this.at + 4 + len)) as R;
    this.at += 4 + len;
    return row;
  }
}

/** Writes a run: records gathered into blocks of about BLOCK_BYTES, each deflated (rows repeat their field names and hosts). */
function writeRun<R>(fd: number, rows: R[]): void {
  let parts: Buffer[] = [];
  let bytes = 0;
  const flush = (): void => {
    const data = deflateRawSync(Buffer.concat(parts, bytes), { level: 1 });
    const head = Buffer.alloc(8);
    head.writeUInt32LE(data.length, 0);
    head.writeUInt32LE(bytes, 4);
    writeSync(fd, head);
    writeSync(fd, data);
    parts = [];
    bytes = 0;
  };
  for (const row of rows) {
    const body = serialize(row);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length);
    parts.push(len, body);
    bytes += 4 + body.length;
    if (bytes >= BLOCK_BYTES) flush();
  }
  if (bytes > 0) flush();
}

/** A binary min-heap under `less`. */
class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const h = this.items;
    h.push(item);
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as T, h[p] as T)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): T | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    h[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && this.less(h[l] as T, h[min] as T)) min = l;
      if (r < h.length && this.less(h[r] as T, h[min] as T)) min = r;
      if (min === i) break;
      this.swap(i, min);
      i = min;
    }
    return top;
  }

  private swap(i: number, j: number): void {
    const h = this.items;
    [h[i], h[j]] = [h[j] as T, h[i] as T];
  }
}

export class GroupedRows<R> {
  private readonly held = new Map<string, R>();
  private readonly runs: string[] = [];
  private dir: string | null = null;
  private started = 0;

  constructor(private readonly options: GroupedRowsOptions<R>) {}

  get(key: string): R | undefined {
    return this.held.get(key);
  }

  /** Starts a row (or the part of a row that comes after a spill). */
  add(key: string, row: R): void {
    if (this.held.size >= this.options.maxInMemory) this.spill();
    this.held.set(key, row);
    // Rows, not parts: once rows have been spilled, a key may come back, so keys are remembered
    // (as 31-bit hashes: small integers cost no allocation; a collision undercounts by one).
    if (this.spilledKeys) this.spilledKeys.add(keyHash(key));
    const rows = this.spilledKeys ? this.spilledKeys.size : this.held.size;
    if (rows > this.options.maxRows) {
      throw new EtlError('too_many_rows', `more than ${this.options.maxRows} grouped rows in one file`, {
        stage: 'parser',
      });
    }
  }

  /** Every key seen, hashed, from the first spill on (before it, the held rows are all there is). */
  private spilledKeys: HashSet31 | null = null;

  private sortedHeld(): R[] {
    const rows = [...this.held.values()].sort(this.options.compare);
    this.held.clear();
    return rows;
  }

  private spill(): void {
    if (!this.spilledKeys) {
      this.spilledKeys = new HashSet31();
      for (const key of this.held.keys()) this.spilledKeys.add(keyHash(key));
    }
    this.dir ??= spillRoot === null ? scratchSubdir('rows-') : mkdtempSync(path.join(spillRoot, 'rows-'));
    const file = path.join(this.dir, `${this.runs.length}.run`);
    try {
      const fd = openSync(file, 'w');
      try {
        writeRun(fd, this.sortedHeld());
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      // A full disk passes: the entry fails as disk_full, which is retried, not as a parser error.
      if (isNoSpace(err)) throw storageError(err, `spilling grouped rows to ${this.dir}`, 'parser');
      throw err;
    }
    this.runs.push(file);
  }

  /** Every row, sorted, parts combined. Call once, when the input has ended. */
  *sorted(): Generator<R, void, undefined> {
    if (this.runs.length === 0) {
      yield* this.sortedHeld();
      return;
    }
    const { compare, combine } = this.options;
    const fds: number[] = [];
    try {
      for (const f of this.runs) fds.push(openSync(f, 'r'));
      const memory = this.sortedHeld();
      let m = 0;
      // Sources in input order: the runs, then what is held. A min-heap of their heads, ties to the earlier source.
      const readers = fds.map((fd) => new RunReader<R>(fd));
      const nextOf = (s: number): R | null =>
        s < readers.length ? (readers[s] as RunReader<R>).next() : m < memory.length ? (memory[m++] as R) : null;
      const heap = new MinHeap<{ row: R; source: number }>((a, b) => {
        const c = compare(a.row, b.row);
        return c < 0 || (c === 0 && a.source < b.source);
      });
      const refill = (source: number): void => {
        const row = nextOf(source);
        if (row !== null) heap.push({ row, source });
      };
      for (let source = 0; source <= readers.length; source++) refill(source);
      for (let item = heap.pop(); item; item = heap.pop()) {
        const row = item.row;
        refill(item.source);
        // The same row's later parts, from later sources, in their order.
        for (let part = heap.peek(); part && compare(part.row, row) === 0; part = heap.peek()) {
          heap.pop();
          combine(row, part.row);
          refill(part.source);
        }
        yield row;
      }
    } finally {
      for (const fd of fds) closeSync(fd);
      this.dispose();
    }
  }

  /** Removes the temporary files. */
  dispose(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
    this.runs.length = 0;
  }
}
