/**
 * What the pipeline reads an archive from: local files and Cloud Storage objects alike. A source
 * names the archive and streams its bytes; it knows nothing of what they hold.
 */
import type { ArchiveIdentity } from './archive-path.js';

export interface ArchiveSource {
  /** Where the archive is (gs:// or file:// URL), known even when its identity is not. */
  url: string;
  /** The archive's identity; throws EtlError bad_archive_path when the path does not say it. */
  identify(): ArchiveIdentity;
  /** Throws when the archive may not be read (a bucket not allowed); called before any byte is read. */
  authorize?(): void;
  /** Size as stored, when known. */
  size: number | null;
  /** The object generation (GCS), so a replaced object is a new archive; null for local files. */
  generation: string | null;
  open(): AsyncIterable<Buffer>;
}
