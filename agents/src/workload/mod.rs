//! The workloads. Each module holds one workload's sender side (its
//! schedule and data plane), turns its outcome into its section of a
//! [`TrialResult`], and holds its receiver side; `run_trial` and
//! `serve_trial` hand a trial to the right one.

pub mod churn;
pub mod oneway;
pub mod rr;

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use transbench_reports::{Counters, LatencyKind, LatencySummary, TrialParams, TrialResult};
use transbench_wire::auth::Secret;
use transbench_wire::{ReceiverReport, TrialSetup, Workload};

use crate::receiver::{ReceiverState, TrialServer};

use crate::dataplane::ErrorLog;
use crate::session;
use crate::spec::TrialSpec;

/// Runs one trial against the receiver at `addr`.
pub async fn run_trial(
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    spec.validate()?;
    let (ctl, boot_id) = session::connect(addr, secret).await?;
    match spec.workload {
        Workload::Rr => rr::run_trial(ctl, addr, spec, id).await,
        Workload::Multistream | Workload::Stream => oneway::run_trial(ctl, boot_id, addr, spec, id).await,
        Workload::Churn | Workload::Handshake => churn::run_trial(ctl, boot_id, addr, spec, id).await,
    }
}

/// Serves the receiver's side of the trial `setup` asks for.
pub async fn serve_trial(
    setup: &TrialSetup,
    ctx: &ReceiverState,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> anyhow::Result<TrialServer> {
    match setup.workload {
        Workload::Rr => rr::serve(setup, ctx, local_ip, peer_ip).await,
        Workload::Multistream | Workload::Stream => oneway::serve(setup, ctx, local_ip, peer_ip).await,
        Workload::Churn | Workload::Handshake => churn::serve(setup, ctx, local_ip, peer_ip).await,
    }
}

/// What every workload measures, in the result's terms; its own section
/// (`hol`, `udp`, `churn`) it adds to the [`TrialResult`] this makes.
pub struct Measured {
    /// The receiver's control address.
    pub peer: SocketAddr,
    /// When the measured window began, and how long it ran.
    pub start: SystemTime,
    pub measured_ns: u64,
    pub counters: Counters,
    pub latency_kind: LatencyKind,
    pub lat: LatencySummary,
    pub send_lag: LatencySummary,
    /// The sender's CPU time and pacer busy-wait over the trial, and the
    /// messages (or transactions) they are shared by.
    pub cpu_ns: u64,
    pub pacer_busy_ns: u64,
    pub messages: u64,
    /// Data-plane errors that make the trial invalid.
    pub errors: ErrorLog,
    pub receiver: ReceiverReport,
    /// The sender's TCP congestion control as the kernel reports it.
    pub tcp_congestion: Option<String>,
}

/// The common part of a trial's result, and its verdict.
pub fn trial_result(spec: &TrialSpec, id: String, m: Measured) -> TrialResult {
    let invalid_reasons = session::invalid_reasons(
        spec,
        &m.send_lag,
        m.measured_ns,
        m.counters.sent,
        &m.errors,
        &m.receiver,
    );
    let per_message = |ns: u64| match m.messages {
        0 => 0.0,
        n => ns as f64 / n as f64,
    };
    TrialResult {
        id,
        transport: spec.transport,
        workload: spec.workload.name().into(),
        params: params(spec, m.peer, m.tcp_congestion),
        start_time: humantime::format_rfc3339_millis(m.start).to_string(),
        duration_ns: m.measured_ns,
        valid: invalid_reasons.is_empty(),
        invalid_reasons,
        counters: m.counters,
        latency_kind: m.latency_kind,
        lat: m.lat,
        send_lag: m.send_lag,
        cpu_ns_per_msg: per_message(m.cpu_ns),
        pacer_busy_ns_per_msg: per_message(m.pacer_busy_ns),
        receiver: m.receiver,
        impairment: None,
        hol: None,
        udp: None,
        churn: None,
        cell: None,
        repetition: None,
        baseline: false,
        sender_netns: testbed::netns::current().ok(),
    }
}

/// A trial's parameters as recorded: what the spec asked for.
fn params(spec: &TrialSpec, peer: SocketAddr, tcp_congestion: Option<String>) -> TrialParams {
    let stream = spec.workload == Workload::Stream;
    TrialParams {
        rate: spec.rate,
        size: spec.size as u32,
        duration_ns: spec.duration.as_nanos() as u64,
        warmup_ns: spec.warmup.as_nanos() as u64,
        closed_loop: spec.rate.is_none(),
        loss_timeout_ns: spec.loss_timeout.as_nanos() as u64,
        quic_stream: (spec.workload == Workload::Rr && spec.transport.is_quic())
            .then(|| spec.quic_stream.name().to_string()),
        peer: peer.to_string(),
        tcp_congestion,
        quic_congestion: spec.quic_congestion(),
        streams: (spec.workload == Workload::Multistream).then_some(spec.streams),
        bitrate: stream.then(|| spec.rate.unwrap_or(0.0) * spec.size as f64 * 8.0),
        gso: stream.then_some(spec.gso),
    }
}
