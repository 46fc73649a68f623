#!/usr/bin/env node
// The floor: what any Node program reading these archives must pay, and nothing else. gunzip
// (64 KiB chunks, as mlab-etl uses), tar-stream, gunzip of `.gz` entries, then JSON.parse of every
// line of `.jsonl` entries or of the whole document of other entries. No rows, no validation, no
// output, no lossless integers. Prints {"entries","values","bytes"} on stdout.
//
// Usage: node bench/floor.mjs ARCHIVE.tgz
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { pipeline } from 'node:stream';
import zlib from 'node:zlib';
import tar from 'tar-stream';

const CHUNK = 64 * 1024;
const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/floor.mjs ARCHIVE.tgz');
  process.exit(2);
}

let entries = 0;
let values = 0;
let bytes = 0;

const extract = tar.extract();
pipeline(createReadStream(file, { highWaterMark: CHUNK }), zlib.createGunzip({ chunkSize: CHUNK }), extract, (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
});

for await (const entry of extract) {
  const { name, type } = entry.header;
  if (type !== 'file') {
    entry.resume();
    continue;
  }
  entries++;
  const gz = name.endsWith('.gz');
  const body = gz ? entry.pipe(zlib.createGunzip({ chunkSize: CHUNK })) : entry;
  const decoder = new StringDecoder('utf8');
  if (name.replace(/\.gz$/, '').endsWith('.jsonl')) {
    let pending = '';
    for await (const chunk of body) {
      bytes += chunk.length;
      const text = pending + decoder.write(chunk);
      let start = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
        if (nl > start) {
          JSON.parse(text.slice(start, nl));
          values++;
        }
        start = nl + 1;
      }
      pending = text.slice(start);
    }
    pending += decoder.end();
    if (pending.trim() !== '') {
      JSON.parse(pending);
      values++;
    }
  } else {
    const parts = [];
    for await (const chunk of body) {
      bytes += chunk.length;
      parts.push(chunk);
    }
    JSON.parse(Buffer.concat(parts).toString('utf8'));
    values++;
  }
}

process.stdout.write(`${JSON.stringify({ entries, values, bytes })}\n`);
