#!/usr/bin/env node
// Writes the hostile-input corpus (issue 6): one folder per case, holding the input archive(s) in
// M-Lab's layout and a case.json with what must happen. Tar headers are crafted byte by byte (with
// valid checksums) where no tar writer would produce them. Deterministic: the same bytes on every
// run with the same zlib.
//
// Inputs that inflate to gigabytes (gzip bombs, a 1 GB line) are never stored: test/robustness/hostile.test.ts
// builds them as streams, and their folders hold only case.json. `--big DIR` writes into DIR (not
// here) the inputs of known gaps that are too large to store, to reproduce them by hand.
//
// Usage: node testdata/hostile/generate.mjs [--big DIR]
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const MTIME = Math.floor(Date.UTC(2021, 11, 14, 3, 0, 0) / 1000);
const GZIP = { level: 9 };

// Where each datatype's archives live, relative to a case folder.
const SWITCH_DIR = 'utilization/switch/2021/12/14';
const switchArchive = (hhmmss, suffix = '.tgz') =>
  `${SWITCH_DIR}/20211214T${hhmmss}.000000Z-switch-mlab2-dfw07-utilization${suffix}`;
const NDT7_ARCHIVE = 'ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz';
const ANNOTATION2_ARCHIVE = 'ndt/annotation2/2020/03/18/20200318T010000.000000Z-annotation2-mlab3-syd03-ndt.tgz';

/** One DISCO v2 line: one row (id mlab2-dfw07-<ts>) unless a field is made hostile. */
function disco(ts, sample = `"value":1,"counter":5`, metric = 'switch.octets.uplink.rx') {
  return (
    `{"experiment":"s1-dfw07.measurement-lab.org","hostname":"mlab2-dfw07","metric":"${metric}",` +
    `"sample":[{"timestamp":${ts},${sample}}]}\n`
  );
}
/** The good entry put next to the bad ones: its row must be written whatever the others do. */
const GOOD_ENTRY = '2021/12/14/20211214T023700-good-switch.jsonl';
const GOOD_TS = 1639449420;

// --- tar bytes -------------------------------------------------------------------------------

const TYPEFLAG = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
  pax: 'x',
  'gnu-long-path': 'L',
};

function octal(n, width) {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * A ustar header. `size` is a number, or raw bytes for the 12-byte size field (to craft sizes no
 * tar writer emits); `name` is written as given, NUL bytes included.
 */
function ustarHeader({ name, size = 0, type = 'file', linkname = '', devmajor = 0, devminor = 0 }) {
  const b = Buffer.alloc(512);
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > 100) throw new Error(`ustar name above 100 bytes: use a PAX path (${name.slice(0, 40)}...)`);
  nameBytes.copy(b, 0);
  b.write(octal(type === 'directory' ? 0o755 : 0o644, 8), 100, 'latin1');
  b.write(octal(0, 8), 108, 'latin1');
  b.write(octal(0, 8), 116, 'latin1');
  if (Buffer.isBuffer(size)) size.copy(b, 124, 0, 12);
  else b.write(octal(size, 12), 124, 'latin1');
  b.write(octal(MTIME, 12), 136, 'latin1');
  b.write(TYPEFLAG[type], 156, 'latin1');
  b.write(linkname, 157, 'utf8');
  b.write('ustar\x0000', 257, 'latin1');
  b.write(octal(devmajor, 8), 329, 'latin1');
  b.write(octal(devminor, 8), 337, 'latin1');
  // The checksum is computed with its own field as spaces.
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 7) + ' ', 148, 'latin1');
  return b;
}

function padded(body) {
  const rest = body.length % 512;
  return rest === 0 ? body : Buffer.concat([body, Buffer.alloc(512 - rest)]);
}

/** A regular file entry: header and body padded to 512. */
function file(name, content, extra = {}) {
  const body = Buffer.from(content);
  return Buffer.concat([ustarHeader({ name, size: body.length, ...extra }), padded(body)]);
}

/** A PAX extended header record `<len> key=value\n`, where len counts itself. */
function paxRecord(key, value) {
  const rest = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(rest);
  while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
  return `${len}${rest}`;
}

function paxHeader(records) {
  const body = Buffer.from(
    Object.entries(records)
      .map(([k, v]) => paxRecord(k, v))
      .join(''),
    'utf8',
  );
  return Buffer.concat([ustarHeader({ name: 'PaxHeaders/entry', size: body.length, type: 'pax' }), padded(body)]);
}

const END = Buffer.alloc(1024);
const tar = (...parts) => Buffer.concat([...parts, END]);
const tgz = (...parts) => gzipSync(tar(...parts), GZIP);
const good = () => file(GOOD_ENTRY, disco(GOOD_TS));

// --- the cases -------------------------------------------------------------------------------

/** Deterministic filler that compresses poorly, so a cut lands inside the deflate data. */
function noise(n, seed = 7) {
  let x = seed;
  let s = '';
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    s += 'abcdefghijklmnopqrstuvwxyz0123456789'[(x >>> 16) % 36];
  }
  return s;
}

const FAIL = (code, rejects = [], extra = {}) => ({
  exit: 1,
  ledger_status: 'failed',
  error_code: code,
  rejects,
  ...extra,
});
const OK = (rejects = [], extra = {}) => ({ exit: 0, ledger_status: 'ok', error_code: null, rejects, ...extra });
const PARTIAL = (code, rejects, extra = {}) => ({
  exit: 1,
  ledger_status: 'partial',
  error_code: code,
  rejects,
  ...extra,
});

/** Where the entry names of the traversal cases would land if anything extracted them. */
const ESCAPE = '/tmp/mlab-etl-hostile';

function twoEntryTgz() {
  return tgz(
    good(),
    file('2021/12/14/20211214T023710-noise-switch.jsonl', disco(GOOD_TS + 10, '"value":1', noise(20000))),
  );
}

function base256(bytes) {
  const b = Buffer.alloc(12);
  Buffer.from(bytes).copy(b, 0);
  return b;
}

const cases = [
  // gzip layer
  {
    name: 'gzip-corrupt-header',
    description: 'gzip magic followed by an unknown compression method (byte 2 is 7, not 8)',
    expect: FAIL('corrupt_archive'),
    files: () => {
      const bytes = Buffer.from(tgz(good()));
      bytes[2] = 7;
      return { [switchArchive('030000')]: bytes };
    },
  },
  {
    name: 'gzip-header-endless-name',
    description: 'a gzip header whose FNAME field never ends (4 KiB without its NUL), then nothing',
    expect: FAIL('truncated_archive'),
    files: () => ({
      [switchArchive('030000')]: Buffer.concat([
        Buffer.from([0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 2, 0xff]),
        Buffer.alloc(4096, 0x61),
      ]),
    }),
  },
  {
    name: 'gzip-truncated-in-header',
    description: 'a .tgz cut after 5 bytes, inside the 10-byte gzip header',
    expect: FAIL('truncated_archive'),
    files: () => ({ [switchArchive('030000')]: twoEntryTgz().subarray(0, 5) }),
  },
  {
    name: 'gzip-truncated-in-deflate',
    description: 'a .tgz cut in the middle of its deflate data (after the first entry, inside the second)',
    expect: FAIL('truncated_archive', ['truncated_archive']),
    files: () => {
      const bytes = twoEntryTgz();
      return { [switchArchive('030000')]: bytes.subarray(0, Math.floor(bytes.length / 2)) };
    },
  },
  {
    name: 'gzip-truncated-in-trailer',
    description: 'a .tgz missing the last 4 bytes of its trailer (ISIZE): every tar byte is there',
    expect: FAIL('truncated_archive'),
    files: () => {
      const bytes = twoEntryTgz();
      return { [switchArchive('030000')]: bytes.subarray(0, bytes.length - 4) };
    },
  },
  // tar layer
  {
    name: 'tar-truncated-in-header',
    description: 'a complete gzip of a tar that ends 100 bytes into the second entry header',
    expect: FAIL('truncated_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: gzipSync(
        Buffer.concat([good(), file('2021/12/14/second-switch.jsonl', disco(GOOD_TS + 10)).subarray(0, 100)]),
        GZIP,
      ),
    }),
  },
  {
    name: 'tar-truncated-in-body',
    description: 'a complete gzip of a tar that ends in the middle of the second entry body',
    expect: FAIL('truncated_archive', ['truncated_archive'], { good_entries: [GOOD_ENTRY] }),
    files: () => {
      const second = file('2021/12/14/second-switch.jsonl', disco(GOOD_TS + 10).repeat(40));
      return { [switchArchive('030000')]: gzipSync(Buffer.concat([good(), second.subarray(0, 512 + 700)]), GZIP) };
    },
  },
  {
    name: 'tar-negative-size',
    description: 'an entry whose size field is base-256 -1 (0xff...fe), valid checksum, after a good entry',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: '2021/12/14/negative-switch.jsonl', size: base256([...Array(11).fill(0xff), 0xfe]) }),
        padded(Buffer.from(disco(GOOD_TS + 10))),
        file('2021/12/14/after-switch.jsonl', disco(GOOD_TS + 20)),
      ),
    }),
  },
  {
    name: 'tar-absurd-size',
    description: 'an entry whose size field is base-256 2^80 bytes, followed by 512 bytes and the end blocks',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: '2021/12/14/absurd-switch.jsonl', size: base256([0x80, 1]) }),
        padded(Buffer.from(disco(GOOD_TS + 10))),
      ),
    }),
  },
  {
    name: 'tar-size-not-octal',
    description: 'an entry whose size field is "99999999999" (9 is not an octal digit), valid checksum',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: '2021/12/14/nan-switch.jsonl', size: Buffer.from('99999999999\0', 'latin1') }),
        padded(Buffer.from(disco(GOOD_TS + 10))),
      ),
    }),
  },
  {
    name: 'tar-size-invalid-base256',
    description:
      'an entry whose size field starts with 0x81: the base-256 marker bit is set but the value is neither ' +
      'positive (0x80) nor negative (0xff), so tar-stream decodes the size as null',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: '2021/12/14/null-size-switch.jsonl', size: base256([0x81]) }),
        padded(Buffer.from(disco(GOOD_TS + 10))),
      ),
    }),
  },
  {
    name: 'tar-directory-with-size',
    description:
      'a directory entry whose size field says 7 bytes (valid octal, valid checksum), followed directly by the next ' +
      'header, as a tar writer that never writes directory data would leave it',
    expect: OK([], { good_entries: [GOOD_ENTRY], directories: 1 }),
    files: () => ({
      [switchArchive('030000')]: tgz(ustarHeader({ name: '2021/12/14/', size: 7, type: 'directory' }), good()),
    }),
  },
  {
    name: 'tar-bad-checksum',
    description: 'a second entry header with one name byte changed after its checksum was computed',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => {
      const bad = file('2021/12/14/checksum-switch.jsonl', disco(GOOD_TS + 10));
      bad[0] ^= 1;
      return { [switchArchive('030000')]: tgz(good(), bad) };
    },
  },
  {
    name: 'tar-missing-end-marker',
    description: 'a plain .tar that ends right after an entry, without the two zero blocks that end a tar',
    expect: FAIL('truncated_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({ [switchArchive('030000', '.tar')]: Buffer.concat([good()]) }),
  },
  {
    name: 'pax-header-too-large',
    description: 'a PAX extended header that claims 5 MiB (tar-stream buffers at most 4 MiB of header)',
    expect: FAIL('corrupt_archive', [], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: 'PaxHeaders/huge', size: 5 * 1024 * 1024, type: 'pax' }),
        Buffer.alloc(512, 0x61),
      ),
    }),
  },
  // entry names: nothing is ever extracted, so a name is only a label
  {
    name: 'names-dot-dot',
    description: 'entry names climbing out with ../ (relative to any directory up to 12 levels deep)',
    expect: OK([], {
      good_entries: [
        GOOD_ENTRY,
        `${'../'.repeat(12)}tmp/mlab-etl-hostile-dotdot-switch.jsonl`,
        '../mlab-etl-hostile-parent-switch.jsonl',
        '2021/../../../mlab-etl-hostile-inner-switch.jsonl',
      ],
      must_not_exist: [`${ESCAPE}-dotdot-switch.jsonl`],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        file(`${'../'.repeat(12)}tmp/mlab-etl-hostile-dotdot-switch.jsonl`, disco(GOOD_TS + 10)),
        file('../mlab-etl-hostile-parent-switch.jsonl', disco(GOOD_TS + 20)),
        file('2021/../../../mlab-etl-hostile-inner-switch.jsonl', disco(GOOD_TS + 30)),
      ),
    }),
  },
  {
    name: 'names-absolute',
    description: 'absolute entry names, in the ustar name field and in a PAX path',
    expect: OK([], {
      good_entries: [GOOD_ENTRY, `${ESCAPE}-absolute-switch.jsonl`, `${ESCAPE}-absolute-pax-switch.jsonl`],
      must_not_exist: [`${ESCAPE}-absolute-switch.jsonl`, `${ESCAPE}-absolute-pax-switch.jsonl`],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        file(`${ESCAPE}-absolute-switch.jsonl`, disco(GOOD_TS + 10)),
        paxHeader({ path: `${ESCAPE}-absolute-pax-switch.jsonl` }),
        file('placeholder', disco(GOOD_TS + 20)),
      ),
    }),
  },
  {
    name: 'names-nul',
    description:
      'a NUL byte inside a PAX path (kept: the name is a label), and inside a ustar name field (the name ends there)',
    expect: OK([], {
      good_entries: [
        GOOD_ENTRY,
        `2021/12/14/nul\u0000/../../../../../../../../../../../../tmp/mlab-etl-hostile-nul-switch.jsonl`,
        '2021/12/14/cut-switch.jsonl',
      ],
      must_not_exist: [`${ESCAPE}-nul-switch.jsonl`, `${ESCAPE}-nul-ustar`],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        paxHeader({ path: `2021/12/14/nul\u0000/${'../'.repeat(12)}tmp/mlab-etl-hostile-nul-switch.jsonl` }),
        file('placeholder', disco(GOOD_TS + 10)),
        file('2021/12/14/cut-switch.jsonl\u0000/../../tmp/mlab-etl-hostile-nul-ustar', disco(GOOD_TS + 20)),
      ),
    }),
  },
  {
    name: 'names-long',
    description: 'a 4,214-character PAX path and a 4,313-character GNU long name (././@LongLink), both above PATH_MAX',
    expect: OK([], {
      good_entries: [GOOD_ENTRY, `${'d/'.repeat(2100)}x-switch.jsonl`, `${'g'.repeat(4300)}-switch.jsonl`],
    }),
    files: () => {
      const gnu = Buffer.from(`${'g'.repeat(4300)}-switch.jsonl\0`);
      return {
        [switchArchive('030000')]: tgz(
          good(),
          paxHeader({ path: `${'d/'.repeat(2100)}x-switch.jsonl` }),
          file('placeholder', disco(GOOD_TS + 10)),
          Buffer.concat([ustarHeader({ name: '././@LongLink', size: gnu.length, type: 'gnu-long-path' }), padded(gnu)]),
          file('placeholder2', disco(GOOD_TS + 20)),
        ),
      };
    },
  },
  {
    name: 'non-regular-entries',
    description:
      'a symlink (to /tmp), a hard link, a character device, a block device and a FIFO, then a regular entry ' +
      'named through the symlink: none is followed, created or opened',
    expect: OK(Array(5).fill('unsupported_entry'), {
      good_entries: [GOOD_ENTRY, '2021/12/14/link-to-tmp/mlab-etl-hostile-through-link-switch.jsonl'],
      must_not_exist: [`${ESCAPE}-through-link-switch.jsonl`, `${ESCAPE}-fifo-switch.jsonl`],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        ustarHeader({ name: '2021/12/14/link-to-tmp', type: 'symlink', linkname: '/tmp' }),
        ustarHeader({ name: '2021/12/14/hard-switch.jsonl', type: 'link', linkname: '/etc/passwd' }),
        ustarHeader({ name: '2021/12/14/tty-switch.jsonl', type: 'character-device', devmajor: 5, devminor: 0 }),
        ustarHeader({ name: '2021/12/14/disk-switch.jsonl', type: 'block-device', devmajor: 8, devminor: 0 }),
        ustarHeader({ name: `${ESCAPE}-fifo-switch.jsonl`, type: 'fifo' }),
        file('2021/12/14/link-to-tmp/mlab-etl-hostile-through-link-switch.jsonl', disco(GOOD_TS + 10)),
      ),
    }),
  },
  // empty things
  {
    name: 'empty-file',
    description: 'a .tgz of 0 bytes: neither a gzip stream nor a tar (no end-of-archive blocks)',
    expect: FAIL('corrupt_archive'),
    files: () => ({ [switchArchive('030000')]: Buffer.alloc(0) }),
  },
  {
    name: 'empty-tar',
    description: 'a .tgz holding only the two zero blocks that end a tar: a valid archive of nothing',
    expect: OK([], { entries_seen: 0 }),
    files: () => ({ [switchArchive('030000')]: tgz() }),
  },
  {
    name: 'only-directories',
    description: 'an archive of directory entries only',
    expect: OK([], { entries_seen: 3, directories: 3 }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        ustarHeader({ name: '2021/', type: 'directory' }),
        ustarHeader({ name: '2021/12/', type: 'directory' }),
        ustarHeader({ name: '2021/12/14/', type: 'directory' }),
      ),
    }),
  },
  {
    name: 'zero-byte-entry',
    description:
      'a 0-byte .jsonl entry (parsed, no rows), a 0-byte .json.gz entry (not gzip) and a gzip of nothing (parsed, no rows)',
    expect: PARTIAL('corrupt_entry', ['corrupt_entry'], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        file('2021/12/14/empty-switch.jsonl', ''),
        file('2021/12/14/empty-switch.json.gz', ''),
        file('2021/12/14/nothing-switch.json.gz', gzipSync(Buffer.alloc(0), GZIP)),
        good(),
      ),
    }),
  },
  // text and JSON
  {
    name: 'invalid-utf8',
    description:
      'invalid UTF-8 inside a JSON string (0xff 0xfe, an overlong "/" 0xc0 0xaf: read as U+FFFD, the row is kept) ' +
      'and between JSON tokens (invalid_json for that entry)',
    expect: PARTIAL('invalid_json', ['invalid_json'], {
      good_entries: [GOOD_ENTRY, '2021/12/14/in-string-switch.jsonl'],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        file(
          '2021/12/14/in-string-switch.jsonl',
          Buffer.concat([
            Buffer.from(disco(GOOD_TS + 10, '"value":1,"counter":5', 'switch.x-MARK').split('MARK')[0]),
            Buffer.from([0xff, 0xfe, 0xc0, 0xaf]),
            Buffer.from(disco(GOOD_TS + 10, '"value":1,"counter":5', 'switch.x-MARK').split('MARK')[1]),
          ]),
        ),
        file(
          '2021/12/14/between-tokens-switch.jsonl',
          Buffer.concat([
            Buffer.from('{"metric":"switch.octets.uplink.rx",'),
            Buffer.from([0xff]),
            Buffer.from('"sample":[]}\n'),
          ]),
        ),
        good(),
      ),
    }),
  },
  {
    name: 'utf8-bom',
    description: 'a UTF-8 byte order mark before the first JSON value of an entry',
    expect: OK([], { good_entries: [GOOD_ENTRY, '2021/12/14/bom-switch.jsonl'] }),
    files: () => ({
      [switchArchive('030000')]: tgz(good(), file('2021/12/14/bom-switch.jsonl', `\ufeff${disco(GOOD_TS + 10)}`)),
    }),
  },
  {
    name: 'json-nested-100k',
    description: 'JSON arrays nested 100,000 deep, and objects nested 100,000 deep',
    expect: PARTIAL('json_too_deep', ['json_too_deep', 'json_too_deep'], { good_entries: [GOOD_ENTRY] }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        file('2021/12/14/arrays-switch.jsonl', `${'['.repeat(100000)}${']'.repeat(100000)}\n`),
        file('2021/12/14/objects-switch.jsonl', `${'{"a":'.repeat(100000)}1${'}'.repeat(100000)}\n`),
        good(),
      ),
    }),
  },
  {
    name: 'numbers-extreme',
    description:
      'switch samples with value 1e400 and timestamp 1e400 (Infinity: the sample is skipped) and a counter of ' +
      '2^64+1 (kept exact, then refused by the schema as above int64)',
    expect: PARTIAL('schema_violation', ['invalid_record', 'invalid_record', 'schema_violation'], {
      good_entries: [GOOD_ENTRY],
    }),
    files: () => ({
      [switchArchive('030000')]: tgz(
        good(),
        file(
          '2021/12/14/numbers-switch.jsonl',
          disco(GOOD_TS + 10, '"value":1e400,"counter":5') +
            disco(GOOD_TS + 20, '"value":1,"counter":18446744073709551617') +
            disco('1e400', '"value":1,"counter":5'),
        ),
      ),
    }),
  },
  {
    name: 'numbers-extreme-ndt7',
    description:
      'an ndt7 result whose TCPInfo holds 1e400 and 2^64+1: the computed summary is not finite and the row is ' +
      'refused by the schema; the good test next to it is written',
    expect: PARTIAL('schema_violation', ['schema_violation'], {
      good_entries: ['2020/03/18/ndt7-download-20200318T000000.000000000Z.ndt-good.json'],
    }),
    files: () => {
      const result = (uuid, tcp) =>
        JSON.stringify({
          Download: {
            UUID: uuid,
            StartTime: '2020-03-18T00:00:00Z',
            EndTime: '2020-03-18T00:00:10Z',
            ServerMeasurements: [{ TCPInfo: tcp }],
          },
        });
      return {
        [NDT7_ARCHIVE]: tgz(
          file(
            '2020/03/18/ndt7-download-20200318T000000.000000000Z.ndt-huge.json',
            result('ndt-huge', { ElapsedTime: 1, BytesAcked: 1, BytesSent: 1 }).replace(
              '"BytesAcked":1,"BytesSent":1',
              '"BytesAcked":1e400,"BytesSent":18446744073709551617',
            ),
          ),
          file(
            '2020/03/18/ndt7-download-20200318T000000.000000000Z.ndt-good.json',
            result('ndt-good', { ElapsedTime: 10000000, BytesAcked: 12500000, BytesSent: 12500000 }),
          ),
        ),
      };
    },
  },
  {
    name: 'duplicate-keys',
    description:
      'annotation2 documents with repeated keys (UUID, Server.Site: the last one wins, as in Go and JSON.parse) ' +
      'and a "__proto__" key, which stays an ordinary key',
    expect: OK([], {
      good_entries: ['2020/03/18/ndt-dup.json', '2020/03/18/ndt-good.json'],
      ids: ['ndt-dup-second', 'ndt-good'],
    }),
    files: () => ({
      [ANNOTATION2_ARCHIVE]: tgz(
        file(
          '2020/03/18/ndt-dup.json',
          '{"UUID":"ndt-dup-first","UUID":"ndt-dup-second","__proto__":{"polluted":true},' +
            '"Server":{"Site":"syd01","Site":"syd03","Machine":"mlab3"}}',
        ),
        file('2020/03/18/ndt-good.json', '{"UUID":"ndt-good","Server":{"Site":"syd03","Machine":"mlab3"}}'),
      ),
    }),
  },
  {
    name: 'json-value-amplification',
    description:
      'one 63 MiB JSON value of empty objects ([{},{},...]) in a 63 KB archive (not stored: --big writes it): below every limit, ' +
      'but JSON.parse turns it into ~16 million objects',
    generated: true,
    expect: PARTIAL('record_too_large', ['record_too_large'], { good_entries: [GOOD_ENTRY] }),
  },
  {
    name: 'switch-many-timestamps',
    description:
      'a switch entry with 1,500,000 distinct sample timestamps (3.3 MB .tgz, not stored: --big writes it): ' +
      'the parser groups every sample by timestamp before it yields a row',
    expect: PARTIAL('too_many_rows', ['too_many_rows'], { good_entries: [GOOD_ENTRY] }),
    generated: true,
  },
  // identity
  {
    name: 'bad-archive-path',
    description: 'an archive whose name is outside the M-Lab grammar, and one dated 2021/02/30',
    expect: FAIL('bad_archive_path'),
    files: () => ({
      'not-an-mlab-archive.tgz': tgz(good()),
      'utilization/switch/2021/02/30/20210230T030000.000000Z-switch-mlab2-dfw07-utilization.tgz': tgz(good()),
    }),
  },
  {
    name: 'unknown-datatype',
    description: 'an archive in M-Lab layout for a datatype without a parser (scamper9)',
    expect: FAIL('unknown_datatype'),
    files: () => ({
      'ndt/scamper9/2020/03/18/20200318T003853.425987Z-scamper9-mlab3-syd03-ndt.tgz': tgz(good()),
    }),
  },
  // built by the test as streams, never stored
  {
    name: 'gzip-bomb-entry',
    description: 'a .json.gz entry of 4 MB that inflates to 4 GiB of zeros, then a good entry; default limits',
    expect: PARTIAL('decompression_bomb', ['decompression_bomb'], { good_entries: [GOOD_ENTRY] }),
    generated: true,
  },
  {
    name: 'gzip-bomb-archive',
    description:
      'a 4 MB .tgz whose tar (one entry header claiming 4 GiB, then zeros) inflates to 4 GiB; default limits',
    expect: FAIL('decompression_bomb', ['entry_too_large']),
    generated: true,
  },
  {
    name: 'inflated-too-large-entry',
    description:
      'the entry bomb with --limit maxEntryInflatedBytes=33554432 (32 MiB, below ratioFloorBytes so the size limit fires first)',
    expect: PARTIAL('inflated_too_large', ['inflated_too_large'], {
      good_entries: [GOOD_ENTRY],
      limits: ['maxEntryInflatedBytes=33554432'],
    }),
    generated: true,
  },
  {
    name: 'inflated-too-large-archive',
    description: 'the archive bomb with --limit maxArchiveInflatedBytes=33554432',
    expect: FAIL('inflated_too_large', ['entry_too_large'], { limits: ['maxArchiveInflatedBytes=33554432'] }),
    generated: true,
  },
  {
    name: 'one-gigabyte-line',
    description:
      'a .jsonl.gz entry (14 MB, inflating 76 times) holding one JSON string value of 1 GiB on one line; ' +
      'default limits stop it at maxValueChars (64 MiB), --limit maxValueChars=1048576 at 1 MiB',
    expect: PARTIAL('record_too_large', ['record_too_large'], { good_entries: [GOOD_ENTRY] }),
    generated: true,
  },
  // triggers: Pub/Sub push bodies
  {
    name: 'message-missing-attributes',
    description: 'an OBJECT_FINALIZE notification without objectId',
    trigger: 'push',
    expect: { exit: null, ledger_status: null, error_code: 'bad_message', rejects: [], http_status: 200 },
    files: () => ({
      'push.json': json({
        message: {
          attributes: {
            eventType: 'OBJECT_FINALIZE',
            bucketId: 'archive-measurement-lab',
            payloadFormat: 'JSON_API_V1',
          },
          data: '',
          messageId: '1',
        },
        subscription: 'projects/p/subscriptions/s',
      }),
    }),
  },
  {
    name: 'message-bad-base64',
    description: 'a push message whose data is not base64',
    trigger: 'push',
    expect: { exit: null, ledger_status: null, error_code: 'bad_message', rejects: [], http_status: 200 },
    files: () => ({ 'push.json': json({ message: { data: '{"filename": "gs://b/o.tgz"}!', messageId: '2' } }) }),
  },
  {
    name: 'message-not-json',
    description: 'a push message without attributes whose data (valid base64) is not JSON',
    trigger: 'push',
    expect: { exit: null, ledger_status: null, error_code: 'bad_message', rejects: [], http_status: 200 },
    files: () => ({
      'push.json': json({
        message: { data: Buffer.from('gs://b/o.tgz, not JSON').toString('base64'), messageId: '3' },
      }),
    }),
  },
  {
    name: 'message-bucket-not-allowed',
    description: 'a well-formed OBJECT_FINALIZE notification for a bucket not given with --allow-bucket: refused from its name, acked, no ledger record',
    trigger: 'push',
    expect: { exit: null, ledger_status: null, error_code: 'bucket_not_allowed', rejects: [], http_status: 200 },
    files: () => ({
      'push.json': json({
        message: {
          attributes: {
            eventType: 'OBJECT_FINALIZE',
            bucketId: 'someone-elses-bucket',
            objectId: 'ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
            objectGeneration: '1584492000000000',
          },
          data: '',
          messageId: '4',
        },
      }),
    }),
  },
];

function json(v) {
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** Inputs of known gaps too large to store. */
function bigInputs() {
  const lines = [];
  const perLine = 100_000;
  for (let l = 0; l < 15; l++) {
    const samples = [];
    for (let i = 0; i < perLine; i++) samples.push(`{"timestamp":${1_000_000_000 + (l * perLine + i) * 10},"value":1}`);
    lines.push(
      `{"experiment":"s1-dfw07.measurement-lab.org","hostname":"mlab2-dfw07","metric":"switch.octets.uplink.rx","sample":[${samples.join(',')}]}\n`,
    );
  }
  return {
    [`switch-many-timestamps/${switchArchive('030000')}`]: tgz(
      good(),
      file('2021/12/14/many-switch.jsonl', lines.join('')),
    ),
    [`json-value-amplification/${switchArchive('030000')}`]: tgz(
      good(),
      file('2021/12/14/amplify-switch.jsonl', `[${'{},'.repeat(Math.floor((63 * 2 ** 20) / 3))}{}]\n`),
    ),
  };
}

function verified(c) {
  const e = c.expect;
  if (c.trigger === 'push') {
    return (
      (e.error_code === 'bad_message' ? 'pushMessage + triggerOf throw it' : 'pushMessage + triggerOf yield a task') +
      '; POST /push answers ' +
      `${e.http_status} with it; ${e.ledger_status ? `one ledger record ${e.ledger_status}` : 'no ledger record'}` +
      (e.error_code === 'bucket_not_allowed' ? '; the real gcsArchive refuses before open()' : '')
    );
  }
  if (c.known_gap && !c.known_gap.runnable) return `**known gap** (it.todo, not run): now ${c.known_gap.seen}`;
  const parts = [];
  if (c.known_gap) parts.push(`**known gap** (code in it.todo; survival run): now ${c.known_gap.seen}`);
  else {
    parts.push('exit, ledger, reject codes');
    if (e.good_entries)
      parts.push(`rows of ${e.good_entries.length} good entr${e.good_entries.length === 1 ? 'y' : 'ies'}`);
    if (e.must_not_exist) parts.push('named paths not created');
    if (e.ids) parts.push('row ids');
    if (e.entries_seen !== undefined) parts.push('entry counts');
    if (e.limits) parts.push(`--limit ${e.limits.join(' ')}`);
  }
  if (c.generated && !c.known_gap) parts.push('built as a stream by the test; bytes read and peak RSS checked');
  return parts.join('; ');
}

/** A Markdown table with padded columns, as prettier writes it. */
function table(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function readme() {
  // Markdown would read __proto__ as bold: show such words as code.
  const cell = (s) =>
    String(s)
      .replaceAll('|', '\\|')
      .replaceAll('\n', ' ')
      .replace(/"?(__\w+__)"?/g, '`$1`');
  const rows = cases.map((c) => {
    const e = c.expect;
    const outcome = c.trigger
      ? e.error_code
      : `exit ${e.exit}, ${e.ledger_status}${e.error_code ? ` \`${e.error_code}\`` : ''}`;
    const rejects = e.rejects.length ? e.rejects.map((r) => `\`${r}\``).join(', ') : '';
    return [`\`${c.name}\``, cell(c.description), outcome, rejects, cell(verified(c))];
  });
  return `<!-- Generated by generate.mjs from its case list: edit that, then run it. -->

# Hostile inputs

Inputs built to break an archive reader or a parser (issue 6). Each folder holds the input in
M-Lab's layout (\`<experiment>/<datatype>/YYYY/MM/DD/<name>.tgz\`, as the identity comes from the
path) and \`case.json\`: what it is and what must happen (\`expect\`: exit code of \`mlab-etl parse\`,
the archive's ledger status and error code, the codes of its rejects). \`known_gap\` marks a case
where mlab-etl does not do that yet: what happens now, and the proposed fix.

\`test/robustness/hostile.test.ts\` runs every case through \`mlab-etl parse\` in-process into a JSONL sink, next
to a good archive, and checks for every archive case: the expected exit code, ledger record and
rejects; that the ledger's row count matches the rows written and its entry counts add up; that
the good archive is written whole; that the peak RSS of the test process stays below 1 GiB; and
that nothing appears on disk outside the sink (the case folder is unchanged too). Cases marked
_generated_ are gigabytes once inflated and are built by the test as streams: their folders hold
only \`case.json\`. \`test/robustness/fuzz.test.ts\` mutates the real archives of \`testdata/archives/\` on top.

Regenerate with \`node testdata/hostile/generate.mjs\` (same bytes with the same zlib);
\`--big DIR\` writes the inputs of known gaps too large to store into DIR.

${table(['case', 'what', 'expected', 'rejects', 'verified'], rows)}
`;
}

function write(root, rel, bytes) {
  const out = path.join(root, rel);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, bytes);
}

const bigAt = process.argv.indexOf('--big');
if (bigAt !== -1) {
  const dir = process.argv[bigAt + 1];
  if (!dir) throw new Error('--big needs a directory');
  for (const [rel, bytes] of Object.entries(bigInputs())) write(path.resolve(dir), rel, bytes);
} else {
  const names = new Set(cases.map((c) => c.name));
  // Folders of cases that no longer exist would linger as stale inputs.
  for (const entry of readdirSync(here)) {
    if (statSync(path.join(here, entry)).isDirectory() && !names.has(entry))
      rmSync(path.join(here, entry), { recursive: true });
  }
  for (const c of cases) {
    const dir = path.join(here, c.name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const meta = {
      description: c.description,
      ...(c.trigger ? { trigger: c.trigger } : {}),
      ...(c.generated ? { generated: true } : {}),
      expect: c.expect,
      ...(c.known_gap ? { known_gap: c.known_gap } : {}),
    };
    writeFileSync(path.join(dir, 'case.json'), json(meta));
    for (const [rel, bytes] of Object.entries(c.files?.() ?? {})) write(dir, rel, bytes);
  }
  writeFileSync(path.join(here, 'README.md'), readme());
}
