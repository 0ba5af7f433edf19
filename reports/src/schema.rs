//! The results document, schema `transbench/1`. `SCHEMA.md` documents every
//! key; change both together, and bump [`SCHEMA`] on incompatible changes.

use linkemu::LinkCounters;
use serde::{Deserialize, Serialize};
use transbench_wire::{ReceiverReport, Transport};

use crate::hist::LatencySummary;

pub const SCHEMA: &str = "transbench/1";

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
}

impl RunResults {
    pub fn new(created: String, host: HostInfo) -> Self {
        RunResults {
            schema: SCHEMA.to_string(),
            created,
            host,
            delivered_impairment: None,
            trials: Vec::new(),
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

/// The machine the sender ran on: what a comparison must hold equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: u32,
    pub tool_version: String,
    pub git_sha: Option<String>,
    /// `net.ipv4.tcp_congestion_control` of the sender's network namespace.
    pub congestion_control: Option<String>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub id: String,
    pub transport: Transport,
    pub workload: String,
    pub params: TrialParams,
    /// Start of the measured window, RFC 3339 UTC.
    pub start_time: String,
    /// Length of the measured window, ns.
    pub duration_ns: u64,
    pub valid: bool,
    /// Why the trial is not valid; empty when it is.
    pub invalid_reasons: Vec<String>,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impairment {
    /// `linkemu` (userspace emulator over TUN devices) or `netem` (tc).
    pub backend: String,
    /// The netem profile sender -> receiver, in canonical form.
    pub forward: String,
    /// The netem profile receiver -> sender.
    pub reverse: String,
    /// What the link did to packets during this trial (linkemu only).
    pub events: Option<LinkEvents>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEvents {
    pub forward: LinkCounters,
    pub reverse: LinkCounters,
}
