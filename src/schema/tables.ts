/**
 * Where a datatype's rows live, named once for every sink: `raw_<experiment>.<datatype>` for the
 * rows, `<experiment>.<datatype>` for the deduplicated view.
 */
export interface TableRef {
  /** `raw_<experiment>` */
  dataset: string;
  /** the datatype */
  table: string;
  /** `<experiment>`: where the deduplicated view lives */
  viewDataset: string;
}

/**
 * The table of a datatype. Experiment names may hold `-` (the archive grammar allows it) but
 * BigQuery dataset names may not: `-` becomes `_` in every sink, so names agree everywhere.
 */
export function tableFor(experiment: string, datatype: string): TableRef {
  const dataset = experiment.replace(/-/g, '_');
  return { dataset: `raw_${dataset}`, table: datatype, viewDataset: dataset };
}

export function tableName(ref: TableRef): string {
  return `${ref.dataset}.${ref.table}`;
}
