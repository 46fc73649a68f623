/**
 * Archive identity: what an archive's path says about it (M-Lab's pusher naming).
 *
 * gs://<bucket>/[<experiment>/]<datatype>/YYYY/MM/DD/<upload time>[-<datatype>]-<host>-<site>-<experiment>[-NNNN][-e]<suffix>
 *
 * The datatype comes from the directory, and the `YYYY/MM/DD` directory is the rows' partition
 * date, even where it differs from the upload time in the name.
 */
import path from 'node:path';
import { EtlError } from '../errors.js';

export interface ArchiveIdentity {
  /** Where the bytes come from: a gs:// URL, or file:// for a local archive. Stored as parser.ArchiveURL. */
  url: string;
  bucket: string | null;
  experiment: string;
  datatype: string;
  /** YYYY-MM-DD: the date directory, the partition of every row of the archive. */
  date: string;
  /** RFC 3339 upload time from the name, or null when the name does not say. */
  uploadTime: string | null;
  host: string | null;
  site: string | null;
  fileNumber: number | null;
  embargoed: boolean;
  suffix: '.tgz' | '.tar.gz' | '.tar' | null;
}

export interface IdentityOverrides {
  datatype?: string | undefined;
  experiment?: string | undefined;
  date?: string | undefined;
}

const EXPERIMENT = '[a-z][a-z-]*';
const DATATYPE = '[a-z0-9][a-z0-9-]*';
/** A whole experiment name as the archive paths spell it (`ndt`, `msak`, `utilization`). */
export const EXPERIMENT_NAME = new RegExp(`^${EXPERIMENT}$`);
const DATE_DIRS = '(?<yyyy>\\d{4})/(?<mm>[01]\\d)/(?<dd>[0-3]\\d)';
const NAME =
  '(?<upload>(?<uy>\\d{4})(?<um>\\d{2})(?<ud>\\d{2})T(?<uH>\\d{2})(?<uM>\\d{2})(?<uS>\\d{2})(?:\\.(?<frac>\\d{0,6}))?Z)' +
  `(?:-(?<nameDatatype>${DATATYPE}?))?` +
  '-(?:(?<host>mlab\\d)-(?<site>[a-z]{3}\\d[\\dt])|(?<third>third)-(?<party>party))' +
  `-(?<nameExperiment>${EXPERIMENT}?)` +
  '(?:-(?<num>\\d{4}))?(?<embargo>-e)?(?<suffix>\\.tgz|\\.tar\\.gz|\\.tar)';

const GCS_URL = new RegExp(
  `^gs://(?<bucket>[a-z0-9][a-z0-9._-]{1,221}[a-z0-9])/(?:(?<experiment>${EXPERIMENT})/)?(?<datatype>${DATATYPE})/${DATE_DIRS}/${NAME}$`,
);
/** A local path is matched on its tail: `<experiment>/<datatype>/YYYY/MM/DD/<name>`. */
const LOCAL_TAIL = new RegExp(`(?:^|/)(?<experiment>${EXPERIMENT})/(?<datatype>${DATATYPE})/${DATE_DIRS}/${NAME}$`);
const NAME_ONLY = new RegExp(`^${NAME}$`);
export const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export const ARCHIVE_SUFFIXES = ['.tgz', '.tar.gz', '.tar'] as const;

export function hasArchiveSuffix(name: string): boolean {
  return ARCHIVE_SUFFIXES.some((s) => name.endsWith(s));
}

export function isRealDate(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

function fromGroups(
  g: Record<string, string | undefined>,
  url: string,
): Omit<ArchiveIdentity, 'experiment' | 'datatype' | 'date'> {
  const upload =
    g.uy === undefined ? null : `${g.uy}-${g.um}-${g.ud}T${g.uH}:${g.uM}:${g.uS}${g.frac ? `.${g.frac}` : ''}Z`;
  return {
    url,
    bucket: g.bucket ?? null,
    uploadTime: upload,
    host: g.host ?? g.third ?? null,
    site: g.site ?? g.party ?? null,
    fileNumber: g.num === undefined ? null : Number(g.num),
    embargoed: g.embargo !== undefined,
    suffix: (g.suffix as ArchiveIdentity['suffix']) ?? null,
  };
}

function dateFromDirs(g: Record<string, string | undefined>, p: string): string {
  const y = Number(g.yyyy);
  const m = Number(g.mm);
  const d = Number(g.dd);
  if (!isRealDate(y, m, d)) {
    throw new EtlError('bad_archive_path', `${p}: ${g.yyyy}/${g.mm}/${g.dd} is not a calendar date`, {
      stage: 'identity',
    });
  }
  return `${g.yyyy}-${g.mm}-${g.dd}`;
}

/** Parses a gs:// URL in M-Lab's layout; throws EtlError('bad_archive_path') otherwise. */
export function parseArchiveUrl(url: string): ArchiveIdentity {
  const g = GCS_URL.exec(url)?.groups;
  if (!g) {
    throw new EtlError(
      'bad_archive_path',
      `${url}: not an M-Lab archive URL (gs://<bucket>/[<experiment>/]<datatype>/YYYY/MM/DD/<time>[-<datatype>]-<host>-<site>-<experiment>[-NNNN][-e].tgz)`,
      { stage: 'identity' },
    );
  }
  const experiment = g.experiment ?? g.nameExperiment;
  return {
    ...fromGroups(g, url),
    experiment: experiment as string,
    datatype: g.datatype as string,
    date: dateFromDirs(g, url),
  };
}

/**
 * Identity of a local archive. A path that mirrors the GCS layout needs nothing else; any other
 * path needs all three overrides. Overrides given for a conforming path take precedence.
 */
export function identifyLocalArchive(file: string, overrides: IdentityOverrides = {}): ArchiveIdentity {
  const abs = path.resolve(file);
  const url = `file://${abs}`;
  const posix = abs.split(path.sep).join('/');
  const g = LOCAL_TAIL.exec(posix)?.groups;
  if (overrides.date !== undefined) {
    const m = ISO_DATE.exec(overrides.date);
    if (!m || !isRealDate(Number(m[1]), Number(m[2]), Number(m[3]))) {
      throw new EtlError('bad_archive_path', `--date ${overrides.date}: expected YYYY-MM-DD`, {
        stage: 'identity',
      });
    }
  }
  if (g) {
    return {
      ...fromGroups(g, url),
      experiment: overrides.experiment ?? (g.experiment as string),
      datatype: overrides.datatype ?? (g.datatype as string),
      date: overrides.date ?? dateFromDirs(g, file),
    };
  }
  const missing = (['datatype', 'experiment', 'date'] as const).filter((k) => overrides[k] === undefined);
  if (missing.length > 0) {
    throw new EtlError(
      'bad_archive_path',
      `${file}: the path does not follow <experiment>/<datatype>/YYYY/MM/DD/<name>.tgz; ` +
        `give ${missing.map((k) => `--${k}`).join(', ')}`,
      { stage: 'identity' },
    );
  }
  const name = NAME_ONLY.exec(path.basename(abs))?.groups ?? {};
  return {
    ...fromGroups(name, url),
    experiment: overrides.experiment as string,
    datatype: overrides.datatype as string,
    date: overrides.date as string,
  };
}
