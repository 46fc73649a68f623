/** Sink settings' defaults, apart from the sinks so that the CLI shows them without loading a sink. */

/** DuckDB's own memory limit. Rows go to Parquet files a load at a time; only the small ledger tables are DuckDB tables. */
export const DEFAULT_DUCKDB_MEMORY = '256MB';

/** insertAll requests a BigQuery sink keeps in flight; each holds up to 10 MB of rows until BigQuery answers. */
export const DEFAULT_BIGQUERY_INSERTS_IN_FLIGHT = 8;
