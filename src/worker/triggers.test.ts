import { describe, expect, it } from 'vitest';
import { manualStatus, pushStatus } from './dispositions.js';
import { EtlError } from '../errors.js';
import { pushMessage, triggerOf } from './triggers.js';

const NAME = 'ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz';

function finalize(extra: Record<string, string> = {}, data: unknown = { name: NAME, bucket: 'b-1', size: '522713' }) {
  return {
    attributes: {
      bucketId: 'b-1',
      objectId: NAME,
      objectGeneration: '1584492000000001',
      eventType: 'OBJECT_FINALIZE',
      payloadFormat: 'JSON_API_V1',
      ...extra,
    },
    data: Buffer.from(JSON.stringify(data)),
  };
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof EtlError ? err.code : 'not an EtlError';
  }
  return undefined;
}

describe('triggerOf', () => {
  it('turns an OBJECT_FINALIZE notification into a task pinned to the generation, with the size', () => {
    expect(triggerOf(finalize())).toEqual({
      kind: 'task',
      object: { bucket: 'b-1', name: NAME, generation: '1584492000000001', size: 522713 },
    });
  });

  it('accepts {"filename": "gs://..."} for reprocessing, without a generation', () => {
    expect(triggerOf({ attributes: {}, data: Buffer.from(JSON.stringify({ filename: `gs://b-1/${NAME}` })) })).toEqual({
      kind: 'task',
      object: { bucket: 'b-1', name: NAME, generation: null, size: null },
    });
  });

  it('ignores other events and objects that are not archives', () => {
    expect(triggerOf(finalize({ eventType: 'OBJECT_DELETE' }))).toMatchObject({
      kind: 'ignored',
      reason: 'event_type',
    });
    expect(triggerOf(finalize({ objectId: 'ndt/ndt7/x.json' }))).toMatchObject({
      kind: 'ignored',
      reason: 'not_an_archive',
    });
  });

  it('calls everything else a bad_message', () => {
    expect(code(() => triggerOf(finalize({ bucketId: '' })))).toBe('bad_message');
    expect(code(() => triggerOf(finalize({ objectGeneration: 'abc' })))).toBe('bad_message');
    expect(code(() => triggerOf({ attributes: {}, data: Buffer.from('not json') }))).toBe('bad_message');
    expect(code(() => triggerOf({ attributes: {}, data: Buffer.from('{"filename": "http://x/y.tgz"}') }))).toBe(
      'bad_message',
    );
    expect(code(() => triggerOf({ attributes: {}, data: Buffer.from('{}') }))).toBe('bad_message');
  });
});

describe('pushMessage', () => {
  it('decodes the push envelope', () => {
    const m = pushMessage({
      message: { attributes: { a: 'b' }, data: Buffer.from('{"x":1}').toString('base64'), messageId: '7' },
      subscription: 's',
    });
    expect(m).toEqual({ attributes: { a: 'b' }, data: Buffer.from('{"x":1}'), messageId: '7' });
  });

  it('refuses bad base64 and a missing message', () => {
    expect(code(() => pushMessage({ message: { data: '!!!' } }))).toBe('bad_message');
    expect(code(() => pushMessage({}))).toBe('bad_message');
    expect(code(() => pushMessage({ message: { attributes: 'x' } }))).toBe('bad_message');
  });
});

describe('dispositions', () => {
  it('push: 200 acks, 503 asks for redelivery', () => {
    expect(pushStatus({ disposition: 'ack', status: 'failed', code: 'corrupt_archive' })).toBe(200);
    expect(pushStatus({ disposition: 'nack', status: 'failed', code: 'sink_error' })).toBe(503);
  });

  it('manual endpoint: an error status for every failure', () => {
    expect(manualStatus({ disposition: 'ack', status: 'ok' })).toBe(200);
    expect(manualStatus({ disposition: 'ack', status: 'partial' })).toBe(207);
    expect(manualStatus({ disposition: 'ack', status: 'failed', code: 'corrupt_archive' })).toBe(422);
    expect(manualStatus({ disposition: 'ack', status: 'failed', code: 'bucket_not_allowed' })).toBe(403);
    expect(manualStatus({ disposition: 'ack', status: 'failed', code: 'object_not_found' })).toBe(404);
    expect(manualStatus({ disposition: 'nack', status: 'failed', code: 'sink_error' })).toBe(503);
  });
});
