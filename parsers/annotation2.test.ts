import { describe, expect, it } from 'vitest';
import { goldenCases, runGoldenCase } from '../test/support/golden.js';
import annotation2 from './annotation2.js';

async function outcome(caseName: string) {
  const c = goldenCases('annotation2').find((x) => x.name === caseName);
  return runGoldenCase(annotation2, c!);
}

describe('annotation2 parser', () => {
  it('keys the row by UUID, blanks Geo.Region and drops Timestamp', async () => {
    const { objects } = await outcome('full-geo');
    expect(objects).toHaveLength(1);
    const row = objects[0] as {
      id: string;
      server: { Geo: Record<string, unknown> };
      client: { Geo: Record<string, unknown> };
    };
    expect(row.id).toBe('ndt-njp6l_1585004303_00000000000170FA');
    expect(row.server.Geo.Region).toBe('');
    expect(row.client.Geo.Region).toBe('');
    expect(row.client.Geo.Subdivision1ISOCode).toBe('VA');
    expect(Object.keys(row)).toEqual(['id', 'date', 'server', 'client']);
  });

  it('keeps an annotation without Geo', async () => {
    const { objects } = await outcome('empty-geo');
    expect(objects).toHaveLength(1);
    expect((objects[0] as { client: Record<string, unknown> }).client).toEqual({
      Network: { CIDR: '35.184.0.0/13', ASNumber: 15169, Systems: [{ ASNs: [15169] }] },
    });
  });

  it('fails the corrupt real file with invalid_json and no row', async () => {
    const { objects, errors } = await outcome('corrupt-file');
    expect(objects).toEqual([]);
    expect(JSON.parse(errors[0] ?? '{}')).toMatchObject({ code: 'invalid_json', failed: true });
  });
});
