/**
 * Rows of the ndt7 table, generated from schemas/ndt7.json by `npm run types`
 * (test/support/row-types.ts). Do not edit: change the schema and run it again.
 */

/**
 * NDT7 speed tests (ndt-server, experiment ndt): one row per download or upload test, keyed by the connection UUID, with a summary of the test's last server measurement. A row is a download when raw.Download is set and an upload when raw.Upload is set: filter on one (WHERE raw.Download IS NOT NULL) before aggregating a.MeanThroughputMbps, since the two directions differ several times over.
 */
export interface Ndt7Row {
  /**
   * The connection UUID of the test (Download.UUID or Upload.UUID) without _unsafe: the key shared with annotation2 and tcpinfo rows.
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
   * Summary of the test, computed from its last server measurement.
   */
  a: {
    /**
     * The connection UUID (same as id).
     */
    UUID: string;
    /**
     * When the test started (the StartTime of the download or upload, UTC).
     */
    TestTime?: string;
    /**
     * Congestion control of the server socket: bbr.
     */
    CongestionControl: string;
    /**
     * Mean throughput, Mbit/s: 8 x BytesAcked (download) or BytesReceived (upload) / ElapsedTime (microseconds) of the last server TCPInfo; 0 without measurements.
     */
    MeanThroughputMbps: number | bigint;
    /**
     * Minimum round-trip time, milliseconds: the last server TCPInfo.MinRTT / 1000; 0 without measurements.
     */
    MinRTT: number | bigint;
    /**
     * Download: BytesRetrans / BytesSent of the last server TCPInfo; upload: 0.
     */
    LossRate: number | bigint;
  };
  /**
   * The ndt-server result document.
   */
  raw: {
    /**
     * ndt-server source revision.
     */
    GitShortCommit?: string;
    /**
     * ndt-server release.
     */
    Version?: string;
    /**
     * Server IP address.
     */
    ServerIP?: string;
    /**
     * Server TCP port.
     */
    ServerPort?: number | bigint;
    /**
     * Client IP address (personal data).
     */
    ClientIP?: string;
    /**
     * Client TCP port.
     */
    ClientPort?: number | bigint;
    /**
     * When the connection started (UTC).
     */
    StartTime?: string;
    /**
     * When the connection ended (UTC).
     */
    EndTime?: string;
    /**
     * The download test.
     */
    Download?: {
      /**
       * The connection UUID as the server recorded it (with _unsafe when the server could not guarantee uniqueness).
       */
      UUID: string;
      /**
       * When the test started (UTC).
       */
      StartTime?: string;
      /**
       * When the test ended (UTC).
       */
      EndTime?: string;
      /**
       * Measurements taken by the server, in order; ConnectionInfo (client address and port) removed.
       */
      ServerMeasurements?: Ndt7Measurement[];
      /**
       * Measurements the client reported, in order.
       */
      ClientMeasurements?: Ndt7Measurement[];
      /**
       * Metadata the client sent (client name, library, OS...).
       *
       * Items: A name/value pair.
       */
      ClientMetadata?: {
        /**
         * Name.
         */
        Name: string;
        /**
         * Value.
         */
        Value?: string;
      }[];
      /**
       * Metadata the server added (deployment, ...).
       *
       * Items: A name/value pair.
       */
      ServerMetadata?: {
        /**
         * Name.
         */
        Name: string;
        /**
         * Value.
         */
        Value?: string;
      }[];
    };
    /**
     * The upload test.
     */
    Upload?: {
      /**
       * The connection UUID as the server recorded it (with _unsafe when the server could not guarantee uniqueness).
       */
      UUID: string;
      /**
       * When the test started (UTC).
       */
      StartTime?: string;
      /**
       * When the test ended (UTC).
       */
      EndTime?: string;
      /**
       * Measurements taken by the server, in order; ConnectionInfo (client address and port) removed.
       */
      ServerMeasurements?: Ndt7Measurement[];
      /**
       * Measurements the client reported, in order.
       */
      ClientMeasurements?: Ndt7Measurement[];
      /**
       * Metadata the client sent (client name, library, OS...).
       *
       * Items: A name/value pair.
       */
      ClientMetadata?: {
        /**
         * Name.
         */
        Name: string;
        /**
         * Value.
         */
        Value?: string;
      }[];
      /**
       * Metadata the server added (deployment, ...).
       *
       * Items: A name/value pair.
       */
      ServerMetadata?: {
        /**
         * Name.
         */
        Name: string;
        /**
         * Value.
         */
        Value?: string;
      }[];
    };
  };
}
/**
 * One measurement snapshot taken during the test.
 */
export interface Ndt7Measurement {
  /**
   * Who took the measurement: server or client.
   */
  Origin?: string;
  /**
   * Which test the measurement belongs to: download or upload.
   */
  Test?: string;
  /**
   * Application-level progress.
   */
  AppInfo?: {
    /**
     * Bytes transferred by the application so far.
     */
    NumBytes?: number | bigint;
    /**
     * Microseconds since the start of the test.
     */
    ElapsedTime?: number | bigint;
  };
  /**
   * BBR congestion control state (Linux tcp_bbr_info), when BBR is in use.
   */
  BBRInfo?: {
    /**
     * BBR's bottleneck bandwidth estimate, bytes per second.
     */
    BW?: number | bigint;
    /**
     * BBR's minimum round-trip time estimate, microseconds.
     */
    MinRTT?: number | bigint;
    /**
     * Pacing gain, fixed point (256 = 1.0).
     */
    PacingGain?: number | bigint;
    /**
     * Congestion window gain, fixed point (256 = 1.0).
     */
    CwndGain?: number | bigint;
    /**
     * BBR's bandwidth estimate, bytes per second (older ndt-server releases' name for BW).
     */
    MaxBandwidth?: number | bigint;
    /**
     * Microseconds since the start of the test.
     */
    ElapsedTime?: number | bigint;
  };
  /**
   * The kernel's TCP_INFO for the connection at this moment.
   */
  TCPInfo?: {
    /**
     * TCP state of the socket (Linux tcp_info.tcpi_state; 1 = established).
     */
    State?: number | bigint;
    /**
     * Congestion avoidance state (tcpi_ca_state: 0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss).
     */
    CAState?: number | bigint;
    /**
     * Consecutive retransmission timeouts without an ACK (tcpi_retransmits).
     */
    Retransmits?: number | bigint;
    /**
     * Unanswered zero-window probes (tcpi_probes).
     */
    Probes?: number | bigint;
    /**
     * Exponential backoff count of the retransmission timer (tcpi_backoff).
     */
    Backoff?: number | bigint;
    /**
     * TCP options negotiated, as a bit mask (tcpi_options: timestamps, SACK, window scaling, ECN).
     */
    Options?: number | bigint;
    /**
     * Send (high 4 bits) and receive (low 4 bits) window scale (tcpi_snd_wscale, tcpi_rcv_wscale).
     */
    WScale?: number | bigint;
    /**
     * 1 when the sender was limited by the application rather than the network (tcpi_delivery_rate_app_limited).
     */
    AppLimited?: number | bigint;
    /**
     * Retransmission timeout, microseconds (tcpi_rto).
     */
    RTO?: number | bigint;
    /**
     * Delayed-ACK timeout, microseconds (tcpi_ato).
     */
    ATO?: number | bigint;
    /**
     * Sender maximum segment size, bytes (tcpi_snd_mss).
     */
    SndMSS?: number | bigint;
    /**
     * Receiver maximum segment size estimate, bytes (tcpi_rcv_mss).
     */
    RcvMSS?: number | bigint;
    /**
     * Segments sent and not yet acknowledged (tcpi_unacked).
     */
    Unacked?: number | bigint;
    /**
     * Segments selectively acknowledged (tcpi_sacked).
     */
    Sacked?: number | bigint;
    /**
     * Segments considered lost (tcpi_lost).
     */
    Lost?: number | bigint;
    /**
     * Segments retransmitted and not yet acknowledged (tcpi_retrans).
     */
    Retrans?: number | bigint;
    /**
     * Forward-acknowledged segments (tcpi_fackets; unused by recent kernels).
     */
    Fackets?: number | bigint;
    /**
     * Milliseconds since data was last sent (tcpi_last_data_sent).
     */
    LastDataSent?: number | bigint;
    /**
     * Milliseconds since an ACK was last sent (tcpi_last_ack_sent; not maintained by Linux).
     */
    LastAckSent?: number | bigint;
    /**
     * Milliseconds since data was last received (tcpi_last_data_recv).
     */
    LastDataRecv?: number | bigint;
    /**
     * Milliseconds since an ACK was last received (tcpi_last_ack_recv).
     */
    LastAckRecv?: number | bigint;
    /**
     * Path MTU, bytes (tcpi_pmtu).
     */
    PMTU?: number | bigint;
    /**
     * Receive slow-start threshold, bytes (tcpi_rcv_ssthresh).
     */
    RcvSsThresh?: number | bigint;
    /**
     * Smoothed round-trip time, microseconds (tcpi_rtt).
     */
    RTT?: number | bigint;
    /**
     * Round-trip time variation, microseconds (tcpi_rttvar).
     */
    RTTVar?: number | bigint;
    /**
     * Send slow-start threshold, segments (tcpi_snd_ssthresh).
     */
    SndSsThresh?: number | bigint;
    /**
     * Congestion window, segments (tcpi_snd_cwnd).
     */
    SndCwnd?: number | bigint;
    /**
     * Advertised maximum segment size, bytes (tcpi_advmss).
     */
    AdvMSS?: number | bigint;
    /**
     * Reordering metric, segments (tcpi_reordering).
     */
    Reordering?: number | bigint;
    /**
     * Receiver-side round-trip time estimate, microseconds (tcpi_rcv_rtt).
     */
    RcvRTT?: number | bigint;
    /**
     * Receive buffer space for auto-tuning, bytes (tcpi_rcv_space).
     */
    RcvSpace?: number | bigint;
    /**
     * Segments retransmitted over the connection's life (tcpi_total_retrans).
     */
    TotalRetrans?: number | bigint;
    /**
     * Current pacing rate, bytes per second (tcpi_pacing_rate).
     */
    PacingRate?: number | bigint;
    /**
     * Maximum pacing rate, bytes per second; -1 when unlimited (tcpi_max_pacing_rate).
     */
    MaxPacingRate?: number | bigint;
    /**
     * Bytes acknowledged by the peer (tcpi_bytes_acked).
     */
    BytesAcked?: number | bigint;
    /**
     * Bytes received from the peer (tcpi_bytes_received).
     */
    BytesReceived?: number | bigint;
    /**
     * Segments sent (tcpi_segs_out).
     */
    SegsOut?: number | bigint;
    /**
     * Segments received (tcpi_segs_in).
     */
    SegsIn?: number | bigint;
    /**
     * Bytes queued and not yet sent (tcpi_notsent_bytes).
     */
    NotsentBytes?: number | bigint;
    /**
     * Minimum round-trip time seen, microseconds (tcpi_min_rtt).
     */
    MinRTT?: number | bigint;
    /**
     * Segments received carrying data (tcpi_data_segs_in).
     */
    DataSegsIn?: number | bigint;
    /**
     * Segments sent carrying data (tcpi_data_segs_out).
     */
    DataSegsOut?: number | bigint;
    /**
     * Most recent delivery rate, bytes per second (tcpi_delivery_rate).
     */
    DeliveryRate?: number | bigint;
    /**
     * Microseconds with data in flight (tcpi_busy_time).
     */
    BusyTime?: number | bigint;
    /**
     * Microseconds limited by the receive window (tcpi_rwnd_limited).
     */
    RWndLimited?: number | bigint;
    /**
     * Microseconds limited by the send buffer (tcpi_sndbuf_limited).
     */
    SndBufLimited?: number | bigint;
    /**
     * Segments delivered, retransmissions included (tcpi_delivered).
     */
    Delivered?: number | bigint;
    /**
     * Segments delivered with an ECN congestion mark (tcpi_delivered_ce).
     */
    DeliveredCE?: number | bigint;
    /**
     * Bytes sent, retransmissions included (tcpi_bytes_sent).
     */
    BytesSent?: number | bigint;
    /**
     * Bytes retransmitted (tcpi_bytes_retrans).
     */
    BytesRetrans?: number | bigint;
    /**
     * Duplicate segments reported by DSACK (tcpi_dsack_dups).
     */
    DSackDups?: number | bigint;
    /**
     * Reordering events seen (tcpi_reord_seen).
     */
    ReordSeen?: number | bigint;
    /**
     * Out-of-order packets received (tcpi_rcv_ooopack).
     */
    RcvOooPack?: number | bigint;
    /**
     * Peer's advertised receive window, bytes (tcpi_snd_wnd).
     */
    SndWnd?: number | bigint;
    /**
     * Microseconds since the start of the test when this snapshot was taken.
     */
    ElapsedTime?: number | bigint;
  };
}
