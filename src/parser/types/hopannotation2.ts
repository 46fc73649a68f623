/**
 * Rows of the hopannotation2 table, generated from schemas/hopannotation2.json by `npm run types`
 * (test/support/row-types.ts). Do not edit: change the schema and run it again.
 */

/**
 * Traceroute hop annotations (uuid-annotator, experiment ndt): location and network of each router IP address seen by traceroute, one JSON record per hop and day. A schema-only datatype: the generic JSONL parser reads it, no parser module.
 */
export interface Hopannotation2Row {
  /**
   * The hop annotation's ID: <date>_<traceroute host>_<hop IP address>.
   */
  id: string;
  /**
   * The date of the archive's YYYY/MM/DD directory, as the experiment assigned it. Tables are partitioned by day on it.
   */
  date: string;
  /**
   * Provenance: which archive and entry the row came from, and which parser release made it.
   */
  parser: {
    /**
     * mlab-etl release that parsed the row.
     */
    Version: string;
    /**
     * When the archive was parsed (UTC). Among rows with the same id and date, the newest wins.
     */
    Time: string;
    /**
     * The archive the row came from: gs://<bucket>/<experiment>/<datatype>/YYYY/MM/DD/<name>.tgz, or file:// for a local archive.
     */
    ArchiveURL: string;
    /**
     * Name of the entry inside the archive.
     */
    Filename: string;
    /**
     * Processing priority of the task that parsed the archive, when a scheduler set one.
     */
    Priority?: number | bigint;
    /**
     * Source revision of the mlab-etl build, when known.
     */
    GitCommit?: string;
    /**
     * Size of the archive in bytes, as stored.
     */
    ArchiveSize?: number | bigint;
    /**
     * Size of the entry in bytes as stored in the archive (before gunzip for .gz entries).
     */
    FileSize?: number | bigint;
  };
  /**
   * The record as the annotator wrote it.
   */
  raw: {
    /**
     * <date>_<traceroute host>_<hop IP address>.
     */
    ID: string;
    /**
     * When the hop was annotated (UTC).
     */
    Timestamp?: string;
    /**
     * What is known of the hop's IP address.
     */
    Annotations?: {
      /**
       * Geolocation (from MaxMind GeoLite2 at annotation time).
       */
      Geo?: {
        /**
         * Continent code, e.g. NA.
         */
        ContinentCode?: string;
        /**
         * ISO 3166-1 alpha-2 country code.
         */
        CountryCode?: string;
        /**
         * ISO 3166-1 alpha-3 country code.
         */
        CountryCode3?: string;
        /**
         * Country name.
         */
        CountryName?: string;
        /**
         * Blanked (empty) by the parser, as M-Lab does: the field is deprecated.
         */
        Region?: string;
        /**
         * ISO 3166-2 code of the first-level subdivision (state, province).
         */
        Subdivision1ISOCode?: string;
        /**
         * Name of the first-level subdivision.
         */
        Subdivision1Name?: string;
        /**
         * ISO 3166-2 code of the second-level subdivision.
         */
        Subdivision2ISOCode?: string;
        /**
         * Name of the second-level subdivision.
         */
        Subdivision2Name?: string;
        /**
         * Metro code (US only).
         */
        MetroCode?: number | bigint;
        /**
         * City name.
         */
        City?: string;
        /**
         * Postal code.
         */
        PostalCode?: string;
        /**
         * Telephone area code (deprecated).
         */
        AreaCode?: number | bigint;
        /**
         * Latitude, degrees.
         */
        Latitude?: number | bigint;
        /**
         * Longitude, degrees.
         */
        Longitude?: number | bigint;
        /**
         * Radius of the location's uncertainty, km.
         */
        AccuracyRadiusKm?: number | bigint;
        /**
         * True when the address had no geolocation.
         */
        Missing?: boolean;
      };
      /**
       * The network that announces the address (from RouteViews prefix-to-AS data).
       */
      Network?: {
        /**
         * The announced prefix holding the address.
         */
        CIDR?: string;
        /**
         * The origin autonomous system number.
         */
        ASNumber?: number | bigint;
        /**
         * The origin AS's name.
         */
        ASName?: string;
        /**
         * True when no announced prefix holds the address.
         */
        Missing?: boolean;
        /**
         * The autonomous systems announcing the prefix (several for multi-origin or AS sets).
         *
         * Items: One announcing system.
         */
        Systems?: {
          /**
           * AS numbers of the system.
           *
           * Items: An AS number.
           */
          ASNs?: number | bigint[];
        }[];
      };
    };
  };
}
