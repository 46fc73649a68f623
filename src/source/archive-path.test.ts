import { describe, expect, it } from 'vitest';
import { identifyLocalArchive, parseArchiveUrl } from './archive-path.js';
import { EtlError } from '../errors.js';

describe('parseArchiveUrl: the examples of mlab-data.md §1', () => {
  it('accepts a current ndt7 archive', () => {
    const id = parseArchiveUrl(
      'gs://archive-measurement-lab/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
    );
    expect(id).toMatchObject({
      bucket: 'archive-measurement-lab',
      experiment: 'ndt',
      datatype: 'ndt7',
      date: '2020-03-18',
      uploadTime: '2020-03-18T00:38:53.425987Z',
      host: 'mlab3',
      site: 'syd03',
      fileNumber: null,
      embargoed: false,
      suffix: '.tgz',
    });
  });

  it('accepts a file number', () => {
    const id = parseArchiveUrl(
      'gs://pusher-mlab-staging/ndt/tcpinfo/2019/05/25/20190525T020001.697396Z-tcpinfo-mlab4-ord01-ndt-0001.tgz',
    );
    expect(id).toMatchObject({ datatype: 'tcpinfo', experiment: 'ndt', fileNumber: 1, site: 'ord01' });
  });

  it('accepts third-party and a date directory that differs from the upload date', () => {
    const id = parseArchiveUrl(
      'gs://archive-mlab-sandbox/ndt/annotation2/2019/08/14/20211107T143735.458956Z-annotation2-third-party-ndt.tgz',
    );
    expect(id).toMatchObject({
      datatype: 'annotation2',
      date: '2019-08-14',
      uploadTime: '2021-11-07T14:37:35.458956Z',
      host: 'third',
      site: 'party',
    });
  });

  it('accepts the old form without experiment directory, with file number and embargo', () => {
    const id = parseArchiveUrl(
      'gs://embargo-mlab-oti/sidestream/2018/02/27/20180227T000010Z-mlab1-dfw02-sidestream-0000-e.tgz',
    );
    expect(id).toMatchObject({
      bucket: 'embargo-mlab-oti',
      experiment: 'sidestream',
      datatype: 'sidestream',
      date: '2018-02-27',
      uploadTime: '2018-02-27T00:00:10Z',
      host: 'mlab1',
      site: 'dfw02',
      fileNumber: 0,
      embargoed: true,
    });
  });

  it('accepts .tar.gz and .tar suffixes and a test site (lga0t)', () => {
    expect(parseArchiveUrl('gs://b-1/ndt/ndt7/2020/03/18/20200318T003853Z-ndt7-mlab1-lga0t-ndt.tar.gz').suffix).toBe(
      '.tar.gz',
    );
    expect(parseArchiveUrl('gs://b-1/ndt/ndt7/2020/03/18/20200318T003853Z-ndt7-mlab1-lga03-ndt.tar').site).toBe(
      'lga03',
    );
  });

  it.each([
    [
      'scheme xgs://',
      'xgs://archive-measurement-lab/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz',
    ],
    [
      'suffix .gz.baz',
      'gs://archive-measurement-lab/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.gz.baz',
    ],
    ['site prg1', 'gs://archive-measurement-lab/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-prg1-ndt.tgz'],
    ['date dir 2016/0126', 'gs://archive-measurement-lab/ndt/ndt7/2016/0126/20160126T000000Z-ndt7-mlab3-syd03-ndt.tgz'],
    ['month 13 is not a date', 'gs://b-1/ndt/ndt7/2020/13/18/20200318T003853Z-ndt7-mlab3-syd03-ndt.tgz'],
    ['February 30 is not a date', 'gs://b-1/ndt/ndt7/2020/02/30/20200318T003853Z-ndt7-mlab3-syd03-ndt.tgz'],
    ['more than 6 fraction digits', 'gs://b-1/ndt/ndt7/2020/03/18/20200318T003853.1234567Z-ndt7-mlab3-syd03-ndt.tgz'],
  ])('rejects %s with bad_archive_path', (_why, url) => {
    expect(() => parseArchiveUrl(url)).toThrow(EtlError);
    try {
      parseArchiveUrl(url);
    } catch (err) {
      expect((err as EtlError).code).toBe('bad_archive_path');
    }
  });
});

describe('identifyLocalArchive', () => {
  it('reads a local path that mirrors the GCS layout, keeping the local URL', () => {
    const id = identifyLocalArchive(
      '/data/archives/b/utilization/switch/2021/12/14/20211214T024000.000000Z-switch-mlab2-dfw07-utilization.tgz',
    );
    expect(id).toMatchObject({ experiment: 'utilization', datatype: 'switch', date: '2021-12-14', site: 'dfw07' });
    expect(id.url).toBe(
      'file:///data/archives/b/utilization/switch/2021/12/14/20211214T024000.000000Z-switch-mlab2-dfw07-utilization.tgz',
    );
  });

  it('asks for the missing overrides by name when the path does not follow the layout', () => {
    expect(() => identifyLocalArchive('/tmp/mine.tgz', { datatype: 'switch' })).toThrow(/--experiment, --date/);
  });

  it('accepts any path with all three overrides, and validates the date', () => {
    expect(
      identifyLocalArchive('/tmp/mine.tgz', { datatype: 'switch', experiment: 'utilization', date: '2021-12-14' }),
    ).toMatchObject({ datatype: 'switch', experiment: 'utilization', date: '2021-12-14', uploadTime: null });
    expect(() =>
      identifyLocalArchive('/tmp/mine.tgz', { datatype: 'switch', experiment: 'utilization', date: '2021-12-32' }),
    ).toThrow(/expected YYYY-MM-DD/);
  });

  it('lets overrides win over the directories', () => {
    const id = identifyLocalArchive('/x/ndt/ndt7/2020/03/18/20200318T003853.425987Z-ndt7-mlab3-syd03-ndt.tgz', {
      date: '2020-03-19',
    });
    expect(id.date).toBe('2020-03-19');
  });
});
