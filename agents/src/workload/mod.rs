//! The workloads. Each module holds one workload's sender side (its
//! schedule and data plane), turns its outcome into its section of a
//! [`TrialResult`], and holds its receiver side; `run_trial` and
//! `serve_trial` hand a trial to the right one.

pub mod bulk;
pub mod churn;
pub mod heartbeat;
pub mod load;
pub mod oneway;
pub mod records;
pub mod rr;

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use transbench_analysis::clock_offset::OffsetEstimate;
use transbench_reports::{
    human_ns, ClockComparison, Counters, LatencyKind, LatencySummary, TrialParams, TrialResult,
};
use transbench_wire::auth::Secret;
use transbench_wire::{ReceiverReport, TrialSetup, TrialToken, WorkloadSetup};

use crate::clock::thread_cpu_ns;
use crate::dataplane::listen::ServerTls;
use crate::dataplane::{ServeCounters, TrialPeer};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use transbench_wire::ControlMsg;

use crate::dataplane::ErrorLog;
use crate::session;
use crate::spec::{LoadSpec, TrialSpec, WorkloadSpec};
use records::TrialRecords;

/// Runs one trial against the receiver at `addr`.
pub async fn run_trial(
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    spec.validate()?;
    // Two trials of its own, each on a session of its own.
    if let WorkloadSpec::Load(l) = &spec.workload {
        return load::run_trial(addr, secret, spec, l, id).await;
    }
    let (mut ctl, boot_id) = session::connect(addr, secret).await?;
    // One-way delays need one clock: the same kernel (boot id) on both
    // ends.
    let shared_clock = boot_id.is_some() && boot_id == crate::host::boot_id();
    let estimate = match shared_clock {
        true => None,
        false => Some(session::estimate_clock_offset(&mut ctl, session::CLOCK_PROBES).await),
    };
    let mut trial = match &spec.workload {
        WorkloadSpec::Rr(rr) => rr::run_trial(ctl, addr, secret, spec, rr, id).await,
        WorkloadSpec::Multistream(_) | WorkloadSpec::Stream(_) => {
            let before = estimate.as_ref().and_then(|e| e.as_ref().ok());
            oneway::run_trial(ctl, shared_clock, before, addr, spec, id).await
        }
        WorkloadSpec::Churn(churn) | WorkloadSpec::Handshake(churn) => {
            churn::run_trial(ctl, boot_id, addr, spec, churn, id).await
        }
        WorkloadSpec::Bulk(b) => bulk::run_trial(ctl, addr, spec, b, id).await,
        WorkloadSpec::Heartbeat(hb) => heartbeat::run_trial(ctl, shared_clock, addr, spec, hb, id).await,
        WorkloadSpec::Load(_) => unreachable!("a load trial runs its own sessions"),
    }?;
    // A one-way trial says itself what it made of the clocks.
    if trial.clock.is_none() {
        trial.clock = estimate.map(|e| clock_comparison(e, trial.lat.p50));
    }
    Ok(trial)
}

/// Across hosts: the clocks' offset, and why latency stays round trip
/// (whose median is `rtt_p50_ns`).
fn clock_comparison(estimate: anyhow::Result<OffsetEstimate>, rtt_p50_ns: u64) -> ClockComparison {
    match estimate {
        Err(e) => ClockComparison {
            estimate: None,
            latency: format!("round trip: the clocks' offset could not be estimated ({e:#})"),
        },
        Ok(e) => {
            // A one-way delay is about half the round trip on a path
            // that is the same both ways.
            let half = (rtt_p50_ns / 2) as i64;
            let latency = if e.one_way_reportable(&[half]) {
                format!(
                    "round trip: the clocks' offset is known to +-{}, small against a one-way delay of about {}, \
                     but this version reports round trips across hosts",
                    human_ns(e.bound_ns),
                    human_ns(half as u64)
                )
            } else {
                format!(
                    "round trip: the clocks' offset is known to +-{} (half the least control round trip), too \
                     wide against a one-way delay of about {} to split the round trip",
                    human_ns(e.bound_ns),
                    human_ns(half as u64)
                )
            };
            ClockComparison {
                estimate: Some(e),
                latency,
            }
        }
    }
}

/// Serves the receiver's side of the trial `setup` asks for, to the
/// sender at `peer_ip` alone: its traffic shows a token made here, which
/// the sender gets in `Ready` ([`TrialServer::token`]).
pub async fn serve_trial(
    setup: &TrialSetup,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> anyhow::Result<TrialServer> {
    let peer = TrialPeer {
        ip: peer_ip,
        token: TrialToken::random(),
        most_open: crate::admission::most_open(setup),
    };
    match setup.workload {
        WorkloadSetup::Rr { udp_peer_port, .. } => rr::serve(setup, udp_peer_port, ctx, local_ip, peer).await,
        WorkloadSetup::Multistream { streams, echo } => {
            oneway::serve(setup, streams, echo, ctx, local_ip, peer).await
        }
        WorkloadSetup::Stream {} => oneway::serve(setup, 1, false, ctx, local_ip, peer).await,
        WorkloadSetup::Churn { close, .. } | WorkloadSetup::Handshake { close, .. } => {
            churn::serve(setup, close, ctx, local_ip, peer).await
        }
        WorkloadSetup::Bulk { flows, direction, .. } => {
            bulk::serve(setup, flows, direction, ctx, local_ip, peer).await
        }
        WorkloadSetup::Heartbeat {} => heartbeat::serve(setup, ctx, local_ip, peer).await,
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
    /// Messages of the measured window the pacer never sent: it fell so
    /// far behind that the window was over.
    pub unsent: u64,
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
    let verdict = session::verdict(
        spec,
        &m.send_lag,
        m.measured_ns,
        &m.counters,
        m.unsent,
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
        workload: spec.workload(),
        params: params(spec, m.peer, m.tcp_congestion),
        start_time: humantime::format_rfc3339_millis(m.start).to_string(),
        duration_ns: m.measured_ns,
        valid: verdict.reasons.is_empty(),
        invalid_reasons: verdict.reasons,
        missed_schedule: verdict.missed_schedule,
        attempt: 1,
        superseded_by: None,
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
        bulk: None,
        load: None,
        delivery: None,
        heartbeat: None,
        outages: Vec::new(),
        receiver_fault: None,
        reconnects: None,
        receiver_report_missing: false,
        schedule_timeline: None,
        quic_datagrams: None,
        cell: None,
        repetition: None,
        baseline: false,
        sender_netns: testbed::netns::current().ok(),
        sender_host: Some(crate::host::host_info_toward(m.peer.ip())),
        clock: None,
    }
}

/// A trial's parameters as recorded: what the spec asked for.
fn params(spec: &TrialSpec, peer: SocketAddr, tcp_congestion: Option<String>) -> TrialParams {
    let rate = spec.workload.rate();
    let (quic_stream, streams, bitrate, gso) = match &spec.workload {
        WorkloadSpec::Rr(rr) => (
            (spec.transport.is_quic() && !spec.transport.is_quic_datagram())
                .then(|| rr.quic_stream.name().to_string()),
            None,
            None,
            None,
        ),
        WorkloadSpec::Multistream(m) => (None, Some(m.streams), None, None),
        WorkloadSpec::Stream(s) => (None, None, Some(s.bitrate(spec.size)), Some(s.gso)),
        WorkloadSpec::Churn(_) | WorkloadSpec::Handshake(_) | WorkloadSpec::Heartbeat(_) => {
            (None, None, None, None)
        }
        WorkloadSpec::Bulk(b) | WorkloadSpec::Load(LoadSpec { bulk: b, .. }) => {
            (None, Some(b.flows), None, None)
        }
    };
    TrialParams {
        rate,
        size: spec.size as u32,
        duration_ns: spec.duration.as_nanos() as u64,
        warmup_ns: spec.warmup.as_nanos() as u64,
        // Bulk is paced by its transport: neither open- nor closed-loop.
        closed_loop: rate.is_none()
            && !matches!(spec.workload, WorkloadSpec::Bulk(_) | WorkloadSpec::Load(_)),
        loss_timeout_ns: spec.loss_timeout.as_nanos() as u64,
        quic_stream,
        peer: peer.to_string(),
        tcp_congestion,
        quic_congestion: spec.quic_congestion(),
        streams,
        bitrate,
        gso,
        // Closed-loop has no schedule to lag behind.
        max_send_lag_ns: rate.map(|_| spec.send_lag_bound_ns()),
    }
}

/// One trial's data plane; dropping it stops every task it started.
pub struct TrialServer {
    pub(crate) tasks: JoinSet<()>,
    pub(crate) counters: Arc<ServeCounters>,
    pub(crate) cpu_start: u64,
    pub(crate) quic: Option<quinn::Endpoint>,
    /// What the workload records beside the counters.
    pub(crate) records: Box<dyn TrialRecords>,
    /// Where the sender sends its data.
    pub(crate) data_port: u16,
    /// What the sender's data-plane traffic shows.
    pub(crate) token: TrialToken,
}

impl TrialServer {
    /// The trial starts: CPU time counts from here, and the records.
    pub fn start(&mut self) {
        self.cpu_start = thread_cpu_ns();
        self.records.start();
    }

    /// Waits until `expect` distinct messages have arrived (bulk: every
    /// flow has ended), at most `wait`.
    pub async fn await_done(&self, expect: u64, wait: Duration) {
        self.records.await_done(expect, wait).await;
    }

    pub async fn stop(mut self) -> Served {
        let cpu = thread_cpu_ns().saturating_sub(self.cpu_start);
        // Before the teardown, which would show in the namespace's
        // TIME_WAIT and close the connections datagrams are counted on.
        self.records.stop();
        if let Some(endpoint) = self.quic.take() {
            endpoint.close(0u32.into(), b"trial over");
        }
        self.tasks.shutdown().await;
        let mut report = self.counters.report(cpu);
        // After it: no task is left to add a record.
        let records = self.records.finish(&mut report);
        Served { report, records }
    }
}

/// What a trial's receiver hands back at its end: the frames of the
/// workload's records (deliveries, TIME_WAIT samples, flows' bins), to
/// send before its report.
pub struct Served {
    pub records: Vec<ControlMsg>,
    pub report: transbench_wire::ReceiverReport,
}

#[cfg(test)]
mod tests {
    use super::*;
    use transbench_analysis::clock_offset::Exchange;

    /// Exchanges whose round trips are `rtt` (symmetric), the receiver's
    /// clock 5 ms ahead.
    fn estimate(rtt: u64) -> OffsetEstimate {
        let batch: Vec<Exchange> = (0..8u64)
            .map(|i| {
                let t1 = 1_000_000_000 + i * 1_000_000;
                Exchange {
                    t1,
                    t2: t1 + rtt / 2 + 5_000_000,
                    t3: t1 + rtt / 2 + 5_000_000 + 10_000,
                    t4: t1 + rtt + 10_000,
                }
            })
            .collect();
        OffsetEstimate::from_exchanges(&batch).unwrap()
    }

    #[test]
    fn across_hosts_latency_stays_round_trip_and_says_why() {
        // Control round trips as long as the data's: the bound is half of
        // one, far more than a tenth of a one-way delay.
        let wide = clock_comparison(Ok(estimate(20_000_000)), 20_000_000);
        assert!(wide.latency.contains("too wide"), "{}", wide.latency);
        let e = wide.estimate.unwrap();
        assert!((e.offset_ns - 5_000_000).unsigned_abs() <= e.bound_ns, "{e:?}");
        // A data path queued far beyond the control's least round trip.
        let narrow = clock_comparison(Ok(estimate(100_000)), 20_000_000);
        assert!(narrow.latency.contains("small against"), "{}", narrow.latency);
        let failed = clock_comparison(Err(anyhow::anyhow!("no echo")), 20_000_000);
        assert!(failed.estimate.is_none() && failed.latency.contains("no echo"));
    }
}
