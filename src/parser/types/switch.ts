/**
 * Rows of the switch table, generated from schemas/switch.json by `npm run types`
 * (test/support/row-types.ts). Do not edit: change the schema and run it again.
 */

/**
 * Switch port utilization collected by DISCO (experiment utilization) every 10 seconds on the switch of each M-Lab site: one row per machine, site and sample timestamp, with every metric's sample for that moment.
 */
export interface SwitchRow {
  /**
   * The row's identity. For connection data, the socket UUID (m-lab/uuid) shared by every table about that connection; for switch data, <machine>-<site>-<unix seconds>. With date, the key that deduplicates reprocessed rows.
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
   * Summary: one value and counter per metric of the sample, named after the metric in CamelCase (switch.octets.uplink.rx -> SwitchOctetsUplinkRx). Multicast metrics have no summary field.
   */
  a: {
    /**
     * The measurement server: the first mlab[0-9] in the sample's hostname.
     */
    Machine: string;
    /**
     * The M-Lab site (e.g. dfw07), from the switch name s1-<site> in the sample's experiment field.
     */
    Site: string;
    /**
     * End of the 10-second sample window (UTC). DISCOv1 stamped the window's start; 10 s are added to its timestamps.
     */
    CollectionTime: string;
    /**
     * Bytes received on the switch's uplink port during the sample window (switch.octets.uplink.rx value).
     */
    SwitchOctetsUplinkRx?: number | bigint;
    /**
     * The switch's cumulative counter of bytes received on the switch's uplink port at the end of the window (switch.octets.uplink.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchOctetsUplinkRxCounter?: number | bigint;
    /**
     * Bytes transmitted on the switch's uplink port during the sample window (switch.octets.uplink.tx value).
     */
    SwitchOctetsUplinkTx?: number | bigint;
    /**
     * The switch's cumulative counter of bytes transmitted on the switch's uplink port at the end of the window (switch.octets.uplink.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchOctetsUplinkTxCounter?: number | bigint;
    /**
     * Bytes received on the machine's switch port during the sample window (switch.octets.local.rx value). Set to 0 for archives dated after 2020-09-09 and before 2022-01-19, when DISCOv2 collected it wrongly.
     */
    SwitchOctetsLocalRx?: number | bigint;
    /**
     * The switch's cumulative counter of bytes received on the machine's switch port at the end of the window (switch.octets.local.rx counter; DISCOv2 only, 0 for DISCOv1). Set to 0 for archives dated after 2020-09-09 and before 2022-01-19, when DISCOv2 collected it wrongly.
     */
    SwitchOctetsLocalRxCounter?: number | bigint;
    /**
     * Bytes transmitted on the machine's switch port during the sample window (switch.octets.local.tx value). Set to 0 for archives dated after 2020-09-09 and before 2022-01-19, when DISCOv2 collected it wrongly.
     */
    SwitchOctetsLocalTx?: number | bigint;
    /**
     * The switch's cumulative counter of bytes transmitted on the machine's switch port at the end of the window (switch.octets.local.tx counter; DISCOv2 only, 0 for DISCOv1). Set to 0 for archives dated after 2020-09-09 and before 2022-01-19, when DISCOv2 collected it wrongly.
     */
    SwitchOctetsLocalTxCounter?: number | bigint;
    /**
     * Unicast packets received on the switch's uplink port during the sample window (switch.unicast.uplink.rx value).
     */
    SwitchUnicastUplinkRx?: number | bigint;
    /**
     * The switch's cumulative counter of unicast packets received on the switch's uplink port at the end of the window (switch.unicast.uplink.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchUnicastUplinkRxCounter?: number | bigint;
    /**
     * Unicast packets transmitted on the switch's uplink port during the sample window (switch.unicast.uplink.tx value).
     */
    SwitchUnicastUplinkTx?: number | bigint;
    /**
     * The switch's cumulative counter of unicast packets transmitted on the switch's uplink port at the end of the window (switch.unicast.uplink.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchUnicastUplinkTxCounter?: number | bigint;
    /**
     * Unicast packets received on the machine's switch port during the sample window (switch.unicast.local.rx value).
     */
    SwitchUnicastLocalRx?: number | bigint;
    /**
     * The switch's cumulative counter of unicast packets received on the machine's switch port at the end of the window (switch.unicast.local.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchUnicastLocalRxCounter?: number | bigint;
    /**
     * Unicast packets transmitted on the machine's switch port during the sample window (switch.unicast.local.tx value).
     */
    SwitchUnicastLocalTx?: number | bigint;
    /**
     * The switch's cumulative counter of unicast packets transmitted on the machine's switch port at the end of the window (switch.unicast.local.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchUnicastLocalTxCounter?: number | bigint;
    /**
     * Broadcast packets received on the switch's uplink port during the sample window (switch.broadcast.uplink.rx value).
     */
    SwitchBroadcastUplinkRx?: number | bigint;
    /**
     * The switch's cumulative counter of broadcast packets received on the switch's uplink port at the end of the window (switch.broadcast.uplink.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchBroadcastUplinkRxCounter?: number | bigint;
    /**
     * Broadcast packets transmitted on the switch's uplink port during the sample window (switch.broadcast.uplink.tx value).
     */
    SwitchBroadcastUplinkTx?: number | bigint;
    /**
     * The switch's cumulative counter of broadcast packets transmitted on the switch's uplink port at the end of the window (switch.broadcast.uplink.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchBroadcastUplinkTxCounter?: number | bigint;
    /**
     * Broadcast packets received on the machine's switch port during the sample window (switch.broadcast.local.rx value).
     */
    SwitchBroadcastLocalRx?: number | bigint;
    /**
     * The switch's cumulative counter of broadcast packets received on the machine's switch port at the end of the window (switch.broadcast.local.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchBroadcastLocalRxCounter?: number | bigint;
    /**
     * Broadcast packets transmitted on the machine's switch port during the sample window (switch.broadcast.local.tx value).
     */
    SwitchBroadcastLocalTx?: number | bigint;
    /**
     * The switch's cumulative counter of broadcast packets transmitted on the machine's switch port at the end of the window (switch.broadcast.local.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchBroadcastLocalTxCounter?: number | bigint;
    /**
     * Errors received on the switch's uplink port during the sample window (switch.errors.uplink.rx value).
     */
    SwitchErrorsUplinkRx?: number | bigint;
    /**
     * The switch's cumulative counter of errors received on the switch's uplink port at the end of the window (switch.errors.uplink.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchErrorsUplinkRxCounter?: number | bigint;
    /**
     * Errors transmitted on the switch's uplink port during the sample window (switch.errors.uplink.tx value).
     */
    SwitchErrorsUplinkTx?: number | bigint;
    /**
     * The switch's cumulative counter of errors transmitted on the switch's uplink port at the end of the window (switch.errors.uplink.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchErrorsUplinkTxCounter?: number | bigint;
    /**
     * Errors received on the machine's switch port during the sample window (switch.errors.local.rx value).
     */
    SwitchErrorsLocalRx?: number | bigint;
    /**
     * The switch's cumulative counter of errors received on the machine's switch port at the end of the window (switch.errors.local.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchErrorsLocalRxCounter?: number | bigint;
    /**
     * Errors transmitted on the machine's switch port during the sample window (switch.errors.local.tx value).
     */
    SwitchErrorsLocalTx?: number | bigint;
    /**
     * The switch's cumulative counter of errors transmitted on the machine's switch port at the end of the window (switch.errors.local.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchErrorsLocalTxCounter?: number | bigint;
    /**
     * Discarded packets received on the switch's uplink port during the sample window (switch.discards.uplink.rx value).
     */
    SwitchDiscardsUplinkRx?: number | bigint;
    /**
     * The switch's cumulative counter of discarded packets received on the switch's uplink port at the end of the window (switch.discards.uplink.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchDiscardsUplinkRxCounter?: number | bigint;
    /**
     * Discarded packets transmitted on the switch's uplink port during the sample window (switch.discards.uplink.tx value).
     */
    SwitchDiscardsUplinkTx?: number | bigint;
    /**
     * The switch's cumulative counter of discarded packets transmitted on the switch's uplink port at the end of the window (switch.discards.uplink.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchDiscardsUplinkTxCounter?: number | bigint;
    /**
     * Discarded packets received on the machine's switch port during the sample window (switch.discards.local.rx value).
     */
    SwitchDiscardsLocalRx?: number | bigint;
    /**
     * The switch's cumulative counter of discarded packets received on the machine's switch port at the end of the window (switch.discards.local.rx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchDiscardsLocalRxCounter?: number | bigint;
    /**
     * Discarded packets transmitted on the machine's switch port during the sample window (switch.discards.local.tx value).
     */
    SwitchDiscardsLocalTx?: number | bigint;
    /**
     * The switch's cumulative counter of discarded packets transmitted on the machine's switch port at the end of the window (switch.discards.local.tx counter; DISCOv2 only, 0 for DISCOv1).
     */
    SwitchDiscardsLocalTxCounter?: number | bigint;
  };
  /**
   * The source data of this row.
   */
  raw: {
    /**
     * One entry per metric object of the source file that has a sample at this timestamp, in file order.
     *
     * Items: A DISCO metric object, holding only this row's sample.
     */
    Metrics: {
      /**
       * DISCO metric name, e.g. switch.octets.uplink.rx.
       */
      metric: string;
      /**
       * The machine's hostname as DISCO recorded it.
       */
      hostname: string;
      /**
       * The switch's name as DISCO recorded it (s1-<site>.measurement-lab.org).
       */
      experiment: string;
      /**
       * The sample at this row's timestamp (one element).
       *
       * Items: One DISCO sample.
       */
      sample: {
        /**
         * Unix seconds at the end of the window (DISCOv1: +10 s).
         */
        timestamp: number | bigint;
        /**
         * Unix nanoseconds when DISCOv2 started reading the switch (DISCOv2 only).
         */
        collectstart?: number | bigint;
        /**
         * Unix nanoseconds when DISCOv2 finished reading the switch (DISCOv2 only).
         */
        collectend?: number | bigint;
        /**
         * Change of the counter during the window (DISCOv1 wrote it as a float). Integers are kept exact by mlab-etl; the FLOAT64 column type rounds above 2^53.
         */
        value: number | bigint;
        /**
         * The switch's cumulative counter at the end of the window (DISCOv2 only).
         */
        counter?: number | bigint;
      }[];
    }[];
  };
}
