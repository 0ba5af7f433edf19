//! The results document, schema `transbench/1.6`. `SCHEMA.md` documents
//! every key; change both together, and bump [`SCHEMA`] on incompatible
//! changes.

use linkemu::LinkCounters;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use transbench_wire::{BulkDirection, CloseMode, DatagramCounts, ReceiverReport, Transport, Workload};
/// The machine an agent ran on: what a comparison must hold equal.
pub use transbench_wire::{HostInfo, InterfaceInfo};

use crate::hist::LatencySummary;
pub use transbench_analysis::failure_detector::PhiAccrualConfig;
pub use transbench_analysis::heartbeat::{Detector, MonitorOutcome, SettingOutcome};

/// The schema this build writes. 1.1 added retried trials: a reader of
/// 1 would take a superseded attempt for a trial of its own. 1.2 added the
/// `bulk` workload, which a reader of 1.1 does not know. 1.3 added bulk
/// flows that run down or both ways: a reader of 1.2 would take them for
/// up flows, and compare them with up flows' cells. 1.4 added runs
/// against a receiver on another host: a reader of 1.3 would compare them
/// with loopback runs. 1.5 added impairment schedules (a profile that
/// changes during the trial), the `heartbeat` workload and request
/// retries: a reader of 1.4 would take a scheduled trial's first profile
/// for the whole trial's. 1.6 adds faults that are no loss profile (a
/// path that rejects, a receiver that freezes) and the outages' timeline:
/// a reader of 1.5 would take a rejecting or frozen stretch for a
/// healthy one.
pub const SCHEMA: &str = "transbench/1.6";
/// The schemas this build reads: 1 is 1.1 without retries (every trial
/// its only attempt), 1.1 is 1.2 without bulk trials, 1.2 is 1.3 with
/// every bulk flow up, 1.3 is 1.4 with every receiver on the sender's
/// host, 1.4 is 1.5 without schedules, heartbeats or retries, 1.5 is 1.6
/// without rejecting paths or frozen receivers.
pub const READABLE_SCHEMAS: [&str; 7] = [
    "transbench/1",
    "transbench/1.1",
    "transbench/1.2",
    "transbench/1.3",
    "transbench/1.4",
    "transbench/1.5",
    SCHEMA,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub schema: String,
    /// When the run started, RFC 3339 UTC.
    pub created: String,
    pub host: HostInfo,
    /// The emulated link as measured by a probe before the trials, next to
    /// its configuration; absent without impairment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_impairment: Option<DeliveredLink>,
    pub trials: Vec<TrialResult>,
    /// `run --sweep`: each transport's steps up the offered rate, and its
    /// knee.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<Sweep>,
    /// `run SCENARIO`: the scenario the trials come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioInfo>,
    /// `transbench ab`: this run is one side of two builds' trials run
    /// alternately, so each trial has a partner run next to it in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interleaved: Option<Interleaved>,
    /// `run --receiver`: the receiver on another host, its control
    /// address as given; absent when `run` started its own receiver here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_receiver: Option<String>,
}

/// One side of an interleaved A/B run (`transbench ab`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interleaved {
    /// The A/B run's id, shared by both sides' results.
    pub run: String,
    pub side: Side,
    /// The two builds, as given to `ab` (path and `--version`).
    pub base: String,
    pub cand: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Base,
    Cand,
}

/// The scenario of a run: enough to resume it and to group its trials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    /// The scenario file, as given.
    pub file: String,
    pub seed: u64,
    /// `random` (seeded) or `as-written`.
    pub order: String,
    /// Cell ids, in the file's order.
    pub cells: Vec<String>,
    pub trials_per_cell: u32,
    /// More attempts a trial gets when the sender missed its schedule
    /// (`retry_invalid`; 0 in files of schema 1).
    #[serde(default)]
    pub retry_invalid: u32,
}

/// A transport's rate sweep (churn, handshake): trials at rising offered
/// connection rates until one no longer keeps up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub transport: Transport,
    pub workload: Workload,
    /// A step whose TTFB p99 exceeds this is past the knee.
    pub ttfb_p99_bound_ns: u64,
    /// Where the bound came from: `--knee-p99`, or `10 x the first step's
    /// TTFB p50`.
    pub bound_source: String,
    pub steps: Vec<SweepStep>,
    /// The highest offered rate that kept up; absent when the first step
    /// did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee_rate: Option<f64>,
    /// Why the step after the knee did not keep up; absent when every step
    /// did (the knee lies beyond the sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    pub rate: f64,
    /// The trial's id.
    pub trial: String,
    pub achieved_rate: f64,
    pub failed_frac: f64,
    pub ttfb_p99_ns: u64,
    pub kept_up: bool,
}

impl RunResults {
    pub fn new(created: String, host: HostInfo) -> Self {
        RunResults {
            schema: SCHEMA.to_string(),
            created,
            host,
            delivered_impairment: None,
            trials: Vec::new(),
            sweeps: Vec::new(),
            scenario: None,
            interleaved: None,
            remote_receiver: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredLink {
    pub forward: DeliveredDirection,
    pub reverse: DeliveredDirection,
}

/// What a probe of sequenced, timestamped UDP datagrams saw in one
/// direction, next to the profile configured for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredDirection {
    pub configured: String,
    #[serde(flatten)]
    pub measured: DeliveredImpairment,
}

/// A link direction as measured: what the testbed's probe returns.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DeliveredImpairment {
    pub sent: u64,
    pub received: u64,
    pub loss_ratio: f64,
    pub dup_ratio: f64,
    /// RFC 4737: arrived after a higher-numbered packet.
    pub reorder_ratio: f64,
    /// Arrived ahead of a lower-numbered packet (what netem's `reorder`
    /// sets; one early packet makes several reordered ones).
    pub early_ratio: f64,
    /// One-way delay, ns (sender and receiver share a clock on one host).
    pub delay_min_ns: u64,
    pub delay_p50_ns: u64,
    pub delay_mean_ns: u64,
    pub delay_max_ns: u64,
}

/// What `lat` measures: round trip at the sender (request/response), or
/// one-way delivery on one host (shared CLOCK_MONOTONIC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    Rtt,
    OneWay,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialParams {
    /// Offered requests per second; `null` when closed-loop.
    pub rate: Option<f64>,
    /// Bytes per request and per response, header included.
    pub size: u32,
    pub duration_ns: u64,
    pub warmup_ns: u64,
    pub closed_loop: bool,
    /// A request without a response this long after its intended send time
    /// is lost; it is recorded in `lat` at this value.
    pub loss_timeout_ns: u64,
    /// QUIC only: `per-request` or `single`.
    pub quic_stream: Option<String>,
    /// The receiver's control address.
    pub peer: String,
    /// TCP congestion control of the sender's data connection (tcp,
    /// tcp+tls), as the kernel reports it after pinning.
    #[serde(default)]
    pub tcp_congestion: Option<String>,
    /// QUIC: quinn's congestion controller on both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_congestion: Option<String>,
    /// Multistream: logical streams (`rate` is then per stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<u32>,
    /// Stream workload: offered bit rate, bits/s (`rate` is then datagrams/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<f64>,
    /// Stream workload: whether datagrams went out in GSO batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gso: Option<bool>,
    /// The send lag p99 past which the trial is invalid (`--max-send-lag`,
    /// or its default); absent in files of schema 1 (1 ms there, or one
    /// period for churn and handshake if longer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_send_lag_ns: Option<u64>,
}

impl TrialParams {
    /// The congestion controller the trial ran: the kernel's for TCP,
    /// quinn's for QUIC.
    pub fn congestion(&self) -> Option<&str> {
        self.tcp_congestion.as_deref().or(self.quic_congestion.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests sent in the measured window (after warm-up).
    pub sent: u64,
    /// Of those, answered within the loss timeout.
    pub received: u64,
    /// Of those, not answered within the loss timeout.
    pub lost: u64,
    /// Responses that arrived after their request was declared lost.
    pub late: u64,
    /// Second answers to one request, or answers to no request sent.
    pub duplicates: u64,
    /// Send or receive errors on the data plane.
    pub errors: u64,
    /// rr over UDP: ICMP errors the client's socket reported (EHOSTUNREACH,
    /// ENETUNREACH, ECONNREFUSED) and worked on after: the path's answer,
    /// not data-plane errors. Schema 1.6; absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub icmp_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub id: String,
    pub transport: Transport,
    pub workload: Workload,
    pub params: TrialParams,
    /// Start of the measured window, RFC 3339 UTC.
    pub start_time: String,
    /// Length of the measured window, ns.
    pub duration_ns: u64,
    pub valid: bool,
    /// Why the trial is not valid; empty when it is.
    pub invalid_reasons: Vec<String>,
    /// Invalid only because the sender missed its schedule (send lag p99
    /// over `params.max_send_lag_ns`, or sends of the measured window
    /// never made): the host was busy, not the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missed_schedule: bool,
    /// `run SCENARIO` with `retry_invalid`: which attempt at its cell's
    /// repetition this is, from 1.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u32,
    /// The id of the attempt that replaced this one (it missed its
    /// schedule and was run again); statistics, charts and exports use
    /// only trials without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    pub counters: Counters,
    pub latency_kind: LatencyKind,
    pub lat: LatencySummary,
    pub send_lag: LatencySummary,
    /// CPU time (user + system) of the sender's trial thread per request,
    /// warm-up included; open-loop, this includes the pacer's busy-wait.
    pub cpu_ns_per_msg: f64,
    /// Wall time per request the open-loop pacer spent busy-waiting for
    /// intended send times (responses are handled in it too): an upper
    /// bound on the pacing share of `cpu_ns_per_msg`.
    pub pacer_busy_ns_per_msg: f64,
    pub receiver: ReceiverReport,
    /// The emulated link the trial ran over; absent on a plain path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impairment: Option<Impairment>,
    /// Multistream: head-of-line blocking, measured per message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hol: Option<HolMetrics>,
    /// UDP: what happened to each numbered datagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpMetrics>,
    /// Churn and handshake: a connection per transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnMetrics>,
    /// Bulk transfer: goodput per flow, fairness, TCP_INFO, quinn's stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkMetrics>,
    /// quic-dgram: the sender's DATAGRAM frames (the receiver's are in
    /// `receiver.quic_datagrams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_datagrams: Option<DatagramCounts>,
    /// Latency under load: the probe before, during and after the bulk
    /// flows (whose own section is `bulk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadMetrics>,
    /// rr with `--retry` or `--idempotency-keys`: what reached the
    /// receiver and what it processed, per request id, against what the
    /// sender sent and heard back; absent before schema 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryMetrics>,
    /// Heartbeat: what the monitor's detectors made of the heartbeats'
    /// arrivals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatMetrics>,
    /// Open-loop rr (1.5), multistream and stream (1.6) under an impairment
    /// schedule or a receiver fault: each stretch in which the path dropped
    /// everything or the receiver was frozen, what the requests (messages)
    /// around it saw, and (rr) what the transport's timer predicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<OutageMetrics>,
    /// `run --receiver-fault`: what was done to the receiver process in
    /// the measured window; absent before schema 1.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_fault: Option<ReceiverFaultRecord>,
    /// Rr `--reconnect`: the connections the client lost and set up again
    /// on new sessions; absent before schema 1.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<ReconnectRecord>,
    /// The trial's session was lost (its receiver crashed) and no other
    /// was left to ask for the receiver's records: `receiver` is all
    /// zeros. (After a reconnect it is the last session's: what the
    /// receiver saw of the trial from then.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub receiver_report_missing: bool,

    /// Open-loop rr under an impairment schedule that changes: the
    /// requests, their answers and latency in bins of schedule time;
    /// absent before schema 1.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeline: Option<ScheduleTimeline>,
    /// `run SCENARIO`: the trial's cell (its id in `scenario.cells`) and
    /// which repetition of it this is (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<u32>,
    /// A no-loss baseline, measured only to give other trials their
    /// reference (multistream's HOL excess); no cell of the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
    /// The network namespace the sender's trial thread ran in
    /// (`net:[INODE]`; the receiver's is `receiver.netns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_netns: Option<String>,
    /// The sender's host, with the interface its traffic to the receiver
    /// left by (the receiver's is `receiver.host`); absent before schema
    /// 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_host: Option<HostInfo>,
    /// Across hosts (the two agents' kernels differ): the receiver's clock
    /// against the sender's, and why latency stays round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockComparison>,
}

fn first_attempt() -> u32 {
    1
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == 1
}

impl RunResults {
    /// The run as it stands: each trial's final attempt only, what
    /// statistics, charts and exports use.
    pub fn final_attempts(&self) -> RunResults {
        let mut run = self.clone();
        run.trials.retain(TrialResult::is_final);
        run
    }
}

impl TrialResult {
    /// Whether this is its trial's final attempt (no retry replaced it):
    /// what statistics, charts, exports and counts of finished trials use.
    pub fn is_final(&self) -> bool {
        self.superseded_by.is_none()
    }

    /// Whether this attempt is to be run again with `retries` allowed: it
    /// missed its schedule, and retries are left (attempt 1 is no retry).
    pub fn retry_due(&self, retries: u32) -> bool {
        self.missed_schedule && self.attempt <= retries
    }

    /// Payload delivered per second of the measured window, bits/s: UDP's
    /// own figure, else messages received x their size; `None` without a
    /// measured window.
    pub fn goodput_bps(&self) -> Option<f64> {
        if let Some(b) = &self.bulk {
            return Some(b.goodput_bps);
        }
        match &self.udp {
            Some(u) => Some(u.goodput_bps),
            None if self.duration_ns > 0 => Some(
                self.counters.received as f64 * self.params.size as f64 * 8.0
                    / (self.duration_ns as f64 / 1e9),
            ),
            None => None,
        }
    }
}

/// Bulk transfer (workload `bulk`; see `SCHEMA.md`): flows that write as
/// fast as their transport takes the bytes, measured by what the
/// receiver's application read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkMetrics {
    /// Which way the flows ran (absent before schema 1.3: up).
    #[serde(default)]
    pub direction: BulkDirection,
    /// Length of a bin of every series, ns.
    pub bin_ns: u64,
    /// The measured window in bins, `[from, to)`: warm-up excluded.
    pub window: [u32; 2],
    /// Application bytes read at the far end in the window, all flows of
    /// every direction, bits/s.
    pub goodput_bps: f64,
    /// All flows' goodput per bin, over the whole trial, bits/s.
    pub series_bps: Vec<f64>,
    /// Jain's fairness index of the flows' goodput in the window; absent
    /// when no flow delivered anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jain: Option<f64>,
    /// Bytes the sender's application wrote, and the receiver's read,
    /// over the whole trial.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// CPU time per byte read by the receiver's application, ns: the
    /// sender's trial (every thread of its process) and the receiver's.
    pub sender_cpu_ns_per_byte: f64,
    pub receiver_cpu_ns_per_byte: f64,
    /// QUIC: connections the flows were spread over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_connections: Option<u32>,
    /// What a rate-limited emulated link leaves the transport once its
    /// headers are paid, and how it was reckoned; absent without a rate,
    /// and when the flows ran both ways (each way's is in `directions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedGoodput>,
    /// Both ways: each direction's own goodput, fairness and expectation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<DirectionGoodput>,
    pub flows: Vec<FlowMetrics>,
    /// QUIC: each connection's `quinn::Connection::stats()` over the trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quic: Vec<QuicConnectionStats>,
}

/// Delivery semantics of an rr trial's measured requests (see
/// `SCHEMA.md`): the client's retries joined, id by id, with how often
/// each request reached the receiver and was processed there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMetrics {
    /// The client's retry policy: `none`, or `timeout:DUR,max:N`.
    pub retry: String,
    /// Whether the receiver answered repeats of an id from its stored
    /// response instead of processing them again.
    pub idempotency_keys: bool,
    /// Measured requests sent (distinct ids; `counters.sent`).
    pub requests: u64,
    /// Retries the sender sent (the same id again, after the policy's
    /// timeout without a response).
    pub retries_sent: u64,
    /// Retries that reached the receiver.
    pub retries_arrived: u64,
    /// Responses the sender received to retries (a response carries the
    /// attempt it answers).
    pub responses_to_retries: u64,
    /// Requests the sender got a response to, from any of its sends, at
    /// any time before the trial ended.
    pub answered: u64,
    /// Requests never answered.
    pub unanswered: u64,
    /// At-most-once losses: requests the receiver never processed (no
    /// send of them arrived).
    pub never_processed: u64,
    /// At-least-once duplicates: arrivals of a request beyond its first,
    /// at the receiver (retries that arrived, and copies the path made).
    pub duplicates: u64,
    /// Requests the receiver processed more than once.
    pub processed_more_than_once: u64,
    /// Processings beyond each request's first, summed.
    pub extra_processings: u64,
    /// The first ids (at most 20) of `processed_more_than_once`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_than_once_ids: Vec<u64>,
    /// Arrivals answered from the stored response (idempotency keys)
    /// instead of processed.
    pub answered_from_store: u64,
    /// Effectively-once results: requests answered and processed exactly
    /// once (repeats deduplicated by key included).
    pub effectively_once: u64,
    /// Requests that arrived at the receiver with an id beyond those it
    /// counts one by one (the trial's scheduled ids), warm-up included:
    /// not in the counts above; non-zero only from a sender that broke
    /// its schedule.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub beyond_ids: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One outage of a trial and the recovery from it (see `SCHEMA.md`).
/// Times after the heal count from `end_ns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutageMetrics {
    /// Schedule time: 0 is the start of the measured window.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Which way the path was dark: `both`, `requests` or `responses`.
    pub dark: String,
    /// How the path answered what it dropped: `icmp` (ICMP unreachable)
    /// or `tcp-reset`; absent for a blackhole. Schema 1.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<String>,
    /// The first error or timeout the application saw from the start on:
    /// how long after the start, and what: `application timeout` (a
    /// request unanswered for the loss timeout), an errno's name
    /// (`ECONNRESET`, `EPIPE`, `EHOSTUNREACH`, `ENETUNREACH`,
    /// `ECONNREFUSED`, `ETIMEDOUT`), `QUIC idle timeout`, `QUIC closed`
    /// or `other`.
    pub detected_after_start_ns: Option<u64>,
    pub detected_as: Option<String>,
    pub first_answer_after_heal_ns: Option<u64>,
    /// From the heal to the first 100 ms bin from which 3 bins in a row
    /// delivered at least 90 % of what was offered.
    pub rate_restored_after_heal_ns: Option<u64>,
    /// The latency above which an answered request counts as delayed: the
    /// p99 of those answered before the outage.
    pub delay_threshold_ns: Option<u64>,
    /// Requests the outage could touch, by fate (absent without a
    /// threshold).
    pub fates: Option<OutageFates>,
    /// What the transport's retransmission timer predicts (TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedRecovery>,
}

/// A fault of the receiver process in a trial's measured window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverFaultRecord {
    /// `freeze`: SIGSTOP, then SIGCONT. `crash`: SIGKILL, then started
    /// again on the same address.
    pub kind: String,
    /// As configured, schedule time (0: the measured window's start).
    pub at_ns: u64,
    pub for_ns: u64,
    /// Schedule time: when it was stopped (killed), and when it went on
    /// (listened again); absent if not (the trial ended first, or the
    /// fault could not be made).
    pub stopped_ns: Option<u64>,
    pub continued_ns: Option<u64>,
    /// Why the fault could not be made or undone; the trial is then invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Rr `--reconnect`: what the client did after losing its connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectRecord {
    /// Between attempts, as configured.
    pub every_ns: u64,
    /// Connections lost (closed, reset, timed out, or refused), each
    /// redialed.
    pub lost: u64,
    /// Attempts that failed: nobody listening yet, or a session refused.
    pub failed_attempts: u64,
    /// Measured requests due while the connection was down, which the
    /// client could not send: in `counters.sent` and `counters.lost`.
    pub unsendable: u64,
    /// When each new session's data plane took over, schedule time (0:
    /// the measured window's start; negative in warm-up).
    pub up_ns: Vec<i64>,
}

/// An open-loop rr trial through its impairment schedule (see
/// `SCHEMA.md`): bin `i` covers schedule time `[i * bin_ns, (i + 1) *
/// bin_ns)`, from the measured window's start to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTimeline {
    pub bin_ns: u64,
    pub bins: Vec<TimelineBin>,
}

/// One bin of a [`ScheduleTimeline`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineBin {
    /// Requests whose intended send time falls in the bin.
    pub offered: u64,
    /// Of those, the ones answered within the loss timeout.
    pub answered: u64,
    /// Answers that arrived in the bin (intended time plus round trip),
    /// whenever their requests were sent.
    pub delivered: u64,
    /// Round trips of the bin's answered requests; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageFates {
    pub on_time: u64,
    pub delayed: u64,
    pub lost: u64,
}

/// The recovery a transport's timer predicts for one outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedRecovery {
    /// How the timer was read (e.g. `tcpi_rto` of the connection just
    /// before the outage).
    pub timer: String,
    /// The first wait, before any doubling.
    pub first_interval_ns: u64,
    /// The timer's start, after the outage's start.
    pub timer_start_after_start_ns: u64,
    /// From the retransmission that gets through to the answer: a round
    /// trip, half of one with only the responses dark.
    pub answer_delay_ns: u64,
    /// Which retransmission gets through (1: the first); absent when the
    /// connection is given up first.
    pub retransmission: Option<u64>,
    pub first_answer_after_heal_ns: Option<u64>,
    /// QUIC: the first packet heard after the heal acknowledged new
    /// packets before the client's next probe, which reset its backoff and
    /// gave its RTT estimate a sample as long as the outage; how long after
    /// the heal that was (the expected answer then follows the restarted
    /// timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_after_heal_ns: Option<u64>,
    /// When the connection would be given up, after the outage's start,
    /// and as what, if before it recovers.
    pub gives_up_after_start_ns: Option<u64>,
    pub gives_up_as: Option<String>,
}

/// Latency under load (workload `load`; see `SCHEMA.md`). Times count
/// from the probe's first intended request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMetrics {
    /// The probe's transport and its requests per second.
    pub probe: Transport,
    pub probe_rate: f64,
    /// While the load's flows wrote, ns.
    pub load_from_ns: u64,
    pub load_to_ns: u64,
    /// `before`, `during` and `after` the load, in that order.
    pub phases: Vec<LoadPhase>,
    /// The probe's p50 and p99 during the load less before it, ns
    /// (negative when it fell); absent when a phase has no answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_p50_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_p99_ns: Option<i64>,
    /// Behind an emulated rate and queue limit: how long a full queue of
    /// full-size packets takes to drain, the most a queue can add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_drain_ns: Option<u64>,
    /// Every probe request: `[t_ns, rtt_ns]` by its intended time, the
    /// round trip `null` when it was lost.
    pub probe_samples: Vec<(u64, Option<u64>)>,
}

/// Failure detection (workload `heartbeat`; see `SCHEMA.md`): both
/// detectors replayed over the heartbeats' arrivals at the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatMetrics {
    /// How often the sender sent a heartbeat, ns.
    pub interval_ns: u64,
    /// When, from the measured window's start, the sender fell silent;
    /// absent when it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_at_ns: Option<u64>,
    /// The φ detector's window, the intervals it models from, its floor on
    /// the standard deviation and its acceptable pause.
    pub phi_config: PhiAccrualConfig,
    #[serde(flatten)]
    pub monitor: MonitorOutcome,
    /// Every measured heartbeat that arrived, `[seq, t_ns]`, in arrival
    /// order: its number from the window's first, and when it arrived,
    /// from the window's start.
    pub arrival_times: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPhase {
    /// `before`, `during` or `after`.
    pub phase: String,
    pub from_ns: u64,
    pub to_ns: u64,
    /// Probe requests due in the phase, and of those lost.
    pub sent: u64,
    pub lost: u64,
    /// Round trips of the answered ones.
    pub lat: LatencySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedGoodput {
    /// The link's rate, bits/s.
    pub rate_bps: f64,
    /// Application bytes per full packet, and the bytes the rate limiter
    /// counts for it (IP packet and Ethernet header).
    pub payload_bytes: f64,
    pub wire_bytes: f64,
    /// rate x payload / wire, bits/s.
    pub goodput_bps: f64,
    /// The packet sizes it assumed, in words.
    pub basis: String,
}

/// One direction of a bulk trial that ran both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionGoodput {
    /// `up` or `down`.
    pub direction: BulkDirection,
    pub flows: u32,
    pub goodput_bps: f64,
    pub series_bps: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jain: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedGoodput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowMetrics {
    pub flow: u32,
    /// `up` (sender to receiver) or `down` (absent before schema 1.3: up).
    #[serde(default)]
    pub direction: BulkDirection,
    /// Bytes the writing side's application wrote, and the reading side's read.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Goodput in the measured window, bits/s.
    pub goodput_bps: f64,
    /// Per bin over the whole trial, bits/s.
    pub series_bps: Vec<f64>,
    /// TCP, up flows: the sender's TCP_INFO every bin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_info: Vec<TcpInfoSample>,
}

/// The kernel's `struct tcp_info` of a sender's socket, the fields a
/// throughput question needs (`ss -ti` shows the same).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TcpInfoSample {
    /// Since the flow's first byte, ns.
    pub t_ns: u64,
    /// Smoothed RTT and its variation, µs.
    pub rtt_us: u32,
    pub rttvar_us: u32,
    /// Congestion window, segments, and the segment size, bytes.
    pub snd_cwnd: u32,
    pub snd_mss: u32,
    pub total_retrans: u32,
    /// The kernel's delivery rate estimate and pacing rate, bytes/s.
    pub delivery_rate: u64,
    pub pacing_rate: u64,
    /// Time with data in flight, and the parts of it limited by the
    /// receiver's window and by the send buffer, µs.
    pub busy_time_us: u64,
    pub rwnd_limited_us: u64,
    pub sndbuf_limited_us: u64,
    pub bytes_acked: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuicConnectionStats {
    pub connection: u32,
    pub samples: Vec<QuicStatsSample>,
}

/// `quinn::Connection::stats()`, the path's part.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct QuicStatsSample {
    /// Since the first flow's first byte, ns.
    pub t_ns: u64,
    pub rtt_ns: u64,
    pub cwnd: u64,
    pub congestion_events: u64,
    pub lost_packets: u64,
    pub lost_bytes: u64,
    pub sent_packets: u64,
    /// The UDP payload size quinn sends in now (PLPMTUD).
    pub current_mtu: u16,
}

/// A connection per transaction (workloads `churn` and `handshake`; see
/// `SCHEMA.md`). Times in `time_wait` and `first_eaddrnotavail_ns` count
/// from the first transaction's intended start (warm-up included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnMetrics {
    /// The receiver's data port: this trial's sockets are those to or from
    /// it (`ss -tan state time-wait '( dport = :PORT )'`).
    pub data_port: u16,
    /// Who closed first.
    pub close: CloseMode,
    pub port_choice: PortChoice,
    /// The ephemeral ports the client used, and who set them; absent for
    /// QUIC (one UDP socket carries every connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRange>,
    /// Most transactions in flight at once; the schedule waits for a slot.
    pub max_inflight: u32,
    /// Transactions scheduled in the measured window.
    pub offered: u64,
    /// Of those, started before the window closed (the rest waited for a
    /// slot too long).
    pub started: u64,
    /// Of those, with the whole response received.
    pub completed: u64,
    /// Of those, failed (see `errors`).
    pub failed: u64,
    /// Transactions per second offered and completed in the window.
    pub offered_rate: f64,
    pub achieved_rate: f64,
    /// Failed transactions by cause: the errno name (`EADDRNOTAVAIL`,
    /// `ECONNRESET`, ...), or `timeout`, `tls`, `quic`, `eof`, `other`.
    pub errors: BTreeMap<String, u64>,
    /// When connect() first failed with EADDRNOTAVAIL (ports exhausted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_eaddrnotavail_ns: Option<u64>,
    /// When bind() first failed with EADDRINUSE (`cycle`: a port still
    /// held, e.g. by a TIME_WAIT socket of a connect() without
    /// SO_REUSEADDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_eaddrinuse_ns: Option<u64>,
    /// Start of connect() to the transport connected (TCP: SYN-ACK seen;
    /// QUIC: handshake done).
    pub connect_lat: LatencySummary,
    /// Start of connect() to the secure channel ready (TLS or QUIC
    /// handshake done; TCP: as `connect_lat`).
    pub handshake_lat: LatencySummary,
    /// Start of connect() to the first byte of the response.
    pub ttfb: LatencySummary,
    /// Intended start to the whole response received (open-loop: waiting
    /// for a slot counts). `lat` holds the same histogram.
    pub txn_lat: LatencySummary,
    /// quic-0rtt: how many resumed connections sent 0-RTT data, and how
    /// many the receiver accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_rtt: Option<ZeroRtt>,
    pub time_wait: TimeWaitSeries,
    /// `TcpExt` counters before and after, per agent (`sender`, `receiver`).
    pub tcp_ext: BTreeMap<String, CounterDelta>,
    /// The sysctls in force, per agent (`sender`, `receiver`).
    pub sysctls: BTreeMap<String, BTreeMap<String, String>>,
    pub expectation: ChurnExpectation,
}

impl ChurnMetrics {
    /// When the client's ports first ran out, from the start of the trial:
    /// EADDRNOTAVAIL (connect) or, binding them, EADDRINUSE.
    pub fn ports_ran_out_ns(&self) -> Option<u64> {
        match (self.first_eaddrnotavail_ns, self.first_eaddrinuse_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
    pub ports: u32,
    pub set_by: PortRangeSource,
}

/// How a churn client's local ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortChoice {
    /// connect() picks the port.
    Kernel,
    /// The client binds each port of the range in turn, with SO_REUSEADDR.
    Cycle,
}

/// Who set a churn client's port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortRangeSource {
    /// net.ipv4.ip_local_port_range of the sender's namespace, set by
    /// --port-range (testbed only).
    Sysctl,
    /// IP_LOCAL_PORT_RANGE on each socket: its part inside the
    /// namespace's range.
    Socket,
    /// The client binds each port itself (`--client-port cycle`).
    Bind,
    /// The namespace's own range.
    System,
}

/// The name as the results file has it, for each of these enums.
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named!(PortChoice { Kernel => "kernel", Cycle => "cycle" });
named!(PortRangeSource { Sysctl => "sysctl", Socket => "socket", Bind => "bind", System => "system" });
named!(TimeWaitSide { Sender => "sender", Receiver => "receiver", None => "none" });

/// Where a churn trial's TIME_WAIT sockets land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeWaitSide {
    /// The client closes first.
    Sender,
    /// The server closes first.
    Receiver,
    /// Nowhere: RST, or QUIC.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZeroRtt {
    /// Measured connections that completed.
    pub connections: u64,
    /// Of those, connections that resumed a session and sent the request
    /// as 0-RTT data (the rest had no session ticket yet, and ran 1-RTT).
    pub attempted: u64,
    /// Of the attempts, those whose 0-RTT data the receiver accepted.
    pub accepted: u64,
    /// accepted / attempted.
    pub ratio: f64,
}

/// TIME_WAIT sockets over the trial, sampled every `interval_ns` on both
/// agents.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeWaitSeries {
    pub interval_ns: u64,
    pub samples: Vec<TimeWaitPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeWaitPoint {
    pub t_ns: u64,
    /// TIME_WAIT sockets of the sender's network namespace (all of them,
    /// as `/proc/net/sockstat` and `ss` count them).
    pub sender: u64,
    /// The receiver's namespace, at its sample nearest in time; absent
    /// when the receiver sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<u64>,
    /// Of `sender`, this trial's sockets (the client's, to the data port);
    /// of `receiver`, the receiver's (on the data port). On loopback both
    /// agents share a namespace, and these still tell the sides apart.
    /// Counted within a CPU budget (the first and last samples always):
    /// absent when not counted that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_trial: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_trial: Option<u64>,
    /// Transactions completed and failed so far.
    pub completed: u64,
    pub failed: u64,
    /// p99 connect time of the connections completed since the previous
    /// sample; absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_p99_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CounterDelta {
    pub before: BTreeMap<String, u64>,
    pub after: BTreeMap<String, u64>,
}

/// What theory predicts, printed beside the measurement, never in its
/// place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnExpectation {
    /// Linux keeps a socket in TIME_WAIT for a fixed 60 s.
    pub time_wait_s: f64,
    /// With client-side TIME_WAIT and no reuse: ports / 60 s to one
    /// destination; absent when TIME_WAIT does not limit the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustainable_rate: Option<f64>,
    /// When the offered rate exceeds it: ports / offered rate, the time
    /// until connect() runs out of ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhaustion_after_ns: Option<u64>,
    pub time_wait_side: TimeWaitSide,
    /// TIME_WAIT sockets of this trial expected on that side at its end:
    /// rate x min(trial, 60 s), at most the ports (client side) or
    /// `tcp_max_tw_buckets`.
    pub time_wait_expected: u64,
    /// Why TIME_WAIT does or does not limit this trial.
    pub port_note: String,
    /// Round trips from connect() to the first response byte: 2 for TCP,
    /// 3 for TCP+TLS 1.3, 2 for QUIC, 1 for QUIC 0-RTT.
    pub ttfb_rtts: f64,
    /// The path's round trip, where measured (the link probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ns: Option<u64>,
    /// `ttfb_rtts` x `rtt_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ns: Option<u64>,
    /// Median measured TTFB over `rtt_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_measured_rtts: Option<f64>,
}

/// Head-of-line blocking of a multistream trial (see `SCHEMA.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolMetrics {
    pub streams: u32,
    /// The no-loss latency a message's excess is counted from: p1 of `lat`
    /// of the same transport at 0 % loss, ns.
    pub base_ns: u64,
    /// Where `base_ns` came from: `trial ID` (the run's no-loss baseline),
    /// `this trial` (its own p1), or `--hol-base`.
    pub base_source: String,
    pub rtt_ns: u64,
    /// `probe` (the link as delivered), `base (round trip)` (the
    /// no-loss baseline of a round-trip run) or `2 x base` (no probe).
    pub rtt_source: String,
    /// max(2 ms, RTT/8): excess above this is late.
    pub late_threshold_ns: u64,
    pub late_frac: f64,
    pub episodes: u64,
    pub hol_fanout: Fanout,
    pub hol_frac: f64,
    /// Excess delay of collateral messages.
    pub hol_delay: LatencySummary,
    pub overtakes: u64,
    pub ambiguous_episodes: u64,
    pub ontime_ratio: Vec<OntimeRatio>,
    pub theory: HolExpectation,
    /// A reliable transport left messages undelivered at the loss timeout:
    /// it fell behind the offered load (or stalled that long), so the
    /// figures describe a growing queue, not isolated stalls.
    #[serde(default)]
    pub backlog: bool,
    /// Every measured message in send order, for charts and re-analysis:
    /// base64 of 12-byte big-endian records (stream u32, intended send
    /// time in µs since the first message u32, latency in µs u32, or
    /// 0xFFFFFFFF if lost). Omitted past [`MAX_TIMELINE`] messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
}

/// Most messages a trial's HOL timeline keeps (1.2 MB of records).
pub const MAX_TIMELINE: usize = 100_000;

/// Late streams per stall episode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fanout {
    pub median: f64,
    pub mean: f64,
    pub max: u32,
    /// Fan-out -> episodes.
    pub counts: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OntimeRatio {
    /// The deadline in base RTTs.
    pub rtts: f64,
    pub deadline_ns: u64,
    /// Messages delivered within the deadline over messages sent.
    pub ratio: f64,
}

/// The sparse-loss expectation, next to the measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolExpectation {
    /// Packet loss probability in the data direction.
    pub loss_p: f64,
    /// `link` (what the emulated link dropped in this trial),
    /// `configured` (the profile's random loss), or `none`.
    pub loss_source: String,
    /// Data packets per second on the path (all streams).
    pub packet_rate: f64,
    /// Recovery time R of a lost packet, ns.
    pub recovery_ns: u64,
    /// p L R over the whole connection.
    pub p_l_r: f64,
    pub late_frac: f64,
    pub hol_frac: f64,
    /// The approximation holds while p L R <= 0.1.
    pub valid: bool,
    /// Why the expectation does not apply, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The per-sequence UDP tracker's findings (RFC 7680, 4737, 3357, 3550,
/// 3393); over all flows of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpMetrics {
    /// A datagram not received this long after its send time is lost.
    pub wait_ns: u64,
    pub sent: u64,
    pub received: u64,
    pub loss_ratio: f64,
    pub dup_ratio: f64,
    pub reorder_ratio: f64,
    pub early_ratio: f64,
    /// Reordering extent -> datagrams.
    pub reorder_extent: BTreeMap<u64, u64>,
    /// Length of a run of consecutive losses -> runs.
    pub loss_burst_len: BTreeMap<u64, u64>,
    /// RFC 3550 interarrival jitter, ns (mean over flows).
    pub jitter_rfc3550_ns: f64,
    /// RFC 3393 IPDV magnitudes, ns.
    pub ipdv: LatencySummary,
    /// Of the IPDV samples, the share that were negative.
    pub ipdv_negative_frac: f64,
    /// Payload received in the measured window, bits/s.
    pub goodput_bps: f64,
    /// Payload offered in the measured window, bits/s.
    pub offered_bps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// `linkemu` (userspace emulator over TUN devices) or `netem` (tc).
    pub backend: String,
    /// The netem profile sender -> receiver, in canonical form.
    pub forward: String,
    /// The netem profile receiver -> sender.
    pub reverse: String,
    /// What the link did to packets during this trial (linkemu only).
    pub events: Option<LinkEvents>,
    /// The probe of this trial's path, run before its first trial (absent
    /// for baselines and with `--probe-packets 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<DeliveredLink>,
    /// Across hosts: the probe of this trial's path, run before its first
    /// trial (absent for baselines and with a probe of 0 packets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_round_trip: Option<RoundTripProbe>,
    /// The profiles changed during the trial (`--impair-schedule`):
    /// `forward` and `reverse` above are each schedule's first profile.
    /// Absent before schema 1.5 and for constant profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleRecord>,
}

/// An impairment schedule as it ran in one trial. Times are schedule
/// times, ns: 0 is the start of the trial's measured window (the warm-up
/// runs on each schedule's first profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The sender -> receiver schedule, in canonical form.
    pub forward: String,
    /// The receiver -> sender schedule.
    pub reverse: String,
    /// Each change the trial reached (warm-up to the end of the data
    /// plane), both directions, by time.
    pub changes: Vec<ScheduleChange>,
}

/// One change of a schedule, and when the backend made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleChange {
    /// `forward` or `reverse`.
    pub direction: String,
    /// When the schedule says.
    pub at_ns: u64,
    /// The profile from then on, in canonical form.
    pub profile: String,
    /// When the backend began the change: linkemu applies each change at
    /// its time exactly (`at_ns`); netem's is when `tc qdisc change` was
    /// started.
    pub issued_ns: u64,
    /// When the change was surely in force: linkemu `at_ns`; netem when
    /// `tc` returned. The change took effect between the two.
    pub applied_ns: u64,
    /// Why the backend could not make the change (the profile before
    /// stayed in force; the trial is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Two hosts' clocks, as the sender estimated them from control-channel
/// round trips just before the trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockComparison {
    /// The receiver's clock minus the sender's, within its bound; absent
    /// when the exchanges could not give one (`latency` says why).
    pub estimate: Option<transbench_analysis::clock_offset::OffsetEstimate>,
    /// Why `lat` is what it is across hosts.
    pub latency: String,
}

/// Across hosts (`run --receiver`), the probe of an impaired path:
/// request/response datagrams, each direction's loss counted where it was
/// received, and their round trip. The hosts' clocks differ, so one-way
/// delay is not measured.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RoundTripProbe {
    /// Requests the sender sent.
    pub sent: u64,
    /// Of those, what the receiver took.
    pub reached: u64,
    /// Responses the receiver sent.
    pub answered: u64,
    /// Of those, what came back to the sender.
    pub received: u64,
    /// (sent - reached) / sent.
    pub forward_loss_ratio: f64,
    /// (answered - received) / answered.
    pub reverse_loss_ratio: f64,
    pub rtt_min_ns: u64,
    pub rtt_p50_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEvents {
    pub forward: LinkCounters,
    pub reverse: LinkCounters,
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_missed_schedule_with_retries_left_is_run_again() {
        let mut t = crate::store::tests::sample().trials[0].clone();
        assert!(!t.retry_due(2), "a trial that kept its schedule");
        t.missed_schedule = true;
        assert!(t.retry_due(2) && !t.retry_due(0));
        t.attempt = 3;
        assert!(!t.retry_due(2), "the third attempt used both retries");
    }

    #[test]
    fn a_schedule_timeline_round_trips_and_a_bin_without_answers_has_no_latency() {
        use super::{ScheduleTimeline, TimelineBin, TrialResult};
        let mut t = crate::store::tests::sample().trials[0].clone();
        let plain = serde_json::to_value(&t).unwrap();
        assert!(
            plain.get("schedule_timeline").is_none(),
            "absent when there is none"
        );
        t.schedule_timeline = Some(ScheduleTimeline {
            bin_ns: 100_000_000,
            bins: vec![
                TimelineBin {
                    offered: 20,
                    answered: 19,
                    delivered: 18,
                    p50_ns: Some(10_000_000),
                    p99_ns: Some(12_000_000),
                    max_ns: Some(12_500_000),
                },
                TimelineBin {
                    offered: 20,
                    ..TimelineBin::default()
                },
            ],
        });
        let json = serde_json::to_value(&t).unwrap();
        let bins = &json["schedule_timeline"]["bins"];
        assert_eq!(json["schedule_timeline"]["bin_ns"], 100_000_000);
        assert_eq!(bins[0]["p99_ns"], 12_000_000);
        assert_eq!(
            bins[1],
            serde_json::json!({"offered": 20, "answered": 0, "delivered": 0}),
            "no latency keys for a bin nothing was answered in"
        );
        assert_eq!(serde_json::from_value::<TrialResult>(json).unwrap(), t);
        // A 1.5 trial has none.
        assert_eq!(
            serde_json::from_value::<TrialResult>(plain)
                .unwrap()
                .schedule_timeline,
            None
        );
    }
}
