//! The heartbeat workload, both sides. The sender sends small numbered
//! heartbeats at a fixed interval, open-loop, over one UDP flow, TCP
//! connection or QUIC stream; with `--fail-at` it falls silent there but
//! keeps its socket open, as a frozen process or a crashed host would.
//! The receiver is the monitor: it records when each heartbeat reached
//! it (the one-way receiver, one stream) and hands the arrivals back;
//! replaying both failure detectors over them
//! ([`transbench_analysis::heartbeat`]) is what it would have computed
//! online.

use anyhow::bail;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use transbench_analysis::heartbeat::{monitor, MonitorSettings, Silence};
use transbench_reports::{HeartbeatMetrics, LatencyKind, LatencySummary, TrialResult};
use transbench_wire::delivery::Delivery;
use transbench_wire::{ControlMsg, ReceiverReport, TrialSetup};

use super::oneway::{self, Paced};
use super::TrialServer;
use crate::clock::{mono_now_ns, thread_cpu_ns, wall_at};
use crate::control_io::ControlChannel;
use crate::dataplane::listen::ServerTls;
use crate::dataplane::{ErrorLog, TrialPeer};
use crate::measure::oneway::match_deliveries;
use crate::schedule;
use crate::session;
use crate::spec::{HeartbeatSpec, TrialSpec};
use crate::transport;

/// The monitor: the one-way receiver of one stream, which records every
/// heartbeat's arrival.
pub async fn serve(
    setup: &TrialSetup,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
) -> anyhow::Result<TrialServer> {
    oneway::serve(setup, 1, false, ctx, local_ip, peer).await
}

/// Runs a heartbeat trial on an authenticated control session.
pub async fn run_trial(
    mut ctl: ControlChannel,
    shared_clock: bool,
    addr: SocketAddr,
    spec: &TrialSpec,
    hb: &HeartbeatSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    if !shared_clock {
        bail!(
            "the heartbeat workload times detection from the sender's last heartbeat and its failure on the \
             monitor's clock, so it needs both agents on one host (one CLOCK_MONOTONIC), but the receiver at \
             {addr} runs on another kernel (or did not say); run both on one machine, e.g. `transbench run \
             --workload heartbeat --impair ...` across namespaces"
        );
    }
    let local_ip = ctl.stream().local_addr()?.ip();
    let admitted = session::setup(&mut ctl, spec.setup()).await?;
    let token = admitted.token;
    let cpu_start = thread_cpu_ns();
    let peer = SocketAddr::new(addr.ip(), admitted.data_port);
    let open = oneway::open_writers(spec, 1, peer, local_ip, admitted, None).await?;
    ctl.send(&ControlMsg::Start).await?;
    let limit = schedule::data_plane_limit(spec.warmup, spec.duration, spec.loss_timeout);
    let pacing = oneway::pace(spec, hb.rate(), 1, token, &open.writers, hb.fail_at);
    let paced = session::while_receiver_quiet(&mut ctl, limit, pacing).await?;
    let errors = open.writers.finish(spec.loss_timeout).await;
    let wait_ns = spec.loss_timeout.as_nanos() as u64;
    let remaining = (paced.last_intended_ns + wait_ns).saturating_sub(mono_now_ns());
    session::wait_while_rejecting(spec).await;
    ctl.send(&ControlMsg::Stop {
        expect: Some(paced.sent.len() as u64),
        wait_ns: remaining,
    })
    .await?;
    let collected = session::collect(&mut ctl, Duration::from_nanos(remaining)).await?;
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    if let Some((endpoint, conn)) = open.quic {
        transport::quic_close(&endpoint, Some(&conn)).await;
    }
    let measured = Measured {
        paced,
        deliveries: collected.deliveries,
        receiver: collected.report,
        errors,
        cpu_ns,
        tcp_congestion: open.tcp_congestion,
    };
    build_result(spec, hb, addr, id, measured)
}

/// What the trial gave, for its result.
struct Measured {
    paced: Paced,
    deliveries: Vec<Delivery>,
    receiver: ReceiverReport,
    errors: ErrorLog,
    cpu_ns: u64,
    tcp_congestion: Option<String>,
}

fn build_result(
    spec: &TrialSpec,
    hb: &HeartbeatSpec,
    addr: SocketAddr,
    id: String,
    m: Measured,
) -> anyhow::Result<TrialResult> {
    let wait_ns = spec.loss_timeout.as_nanos() as u64;
    let matched = match_deliveries(1, &m.paced.sent, &m.deliveries, wait_ns);
    let mut counters = matched.counters.clone();
    counters.errors = m.errors.count;
    let heartbeat = heartbeat_metrics(spec, hb, &m.paced, &m.deliveries)?;
    let mut result = super::trial_result(
        spec,
        id,
        super::Measured {
            peer: addr,
            start: wall_at(m.paced.measured_start_ns),
            measured_ns: m.paced.measured_ns,
            counters,
            unsent: m.paced.unsent,
            latency_kind: LatencyKind::OneWay,
            lat: LatencySummary::from_histogram(&matched.lat)?,
            send_lag: LatencySummary::from_histogram(&m.paced.send_lag)?,
            cpu_ns: m.cpu_ns,
            pacer_busy_ns: m.paced.pacer_busy_ns,
            messages: m.paced.sent.len() as u64,
            errors: m.errors,
            receiver: m.receiver,
            tcp_congestion: m.tcp_congestion,
        },
    );
    result.heartbeat = Some(heartbeat);
    Ok(result)
}

/// The monitor's view: the measured heartbeats' first arrivals in the
/// order they came, both detectors replayed over them.
fn heartbeat_metrics(
    spec: &TrialSpec,
    hb: &HeartbeatSpec,
    paced: &Paced,
    deliveries: &[Delivery],
) -> anyhow::Result<HeartbeatMetrics> {
    let first_measured = paced.sent.iter().find(|s| s.measured).map(|s| s.seq);
    let mut first_arrival: BTreeMap<u64, u64> = BTreeMap::new();
    for d in deliveries.iter().filter(|d| d.stream == 0) {
        if first_measured.is_some_and(|first| d.seq >= first)
            && d.seq <= paced.sent.last().map_or(0, |s| s.seq)
        {
            let at = first_arrival.entry(d.seq).or_insert(d.delivered_ns);
            *at = (*at).min(d.delivered_ns);
        }
    }
    let mut arrivals: Vec<(u64, u64)> = first_arrival.into_iter().collect();
    arrivals.sort_by_key(|&(seq, at)| (at, seq));
    let times: Vec<u64> = arrivals.iter().map(|a| a.1).collect();
    let settings = MonitorSettings {
        interval_ns: hb.interval_ns(),
        phi: hb.phi_config(),
        phi_thresholds: hb.phi_thresholds.clone(),
        timeouts_ns: hb.timeouts_ns(),
    };
    let window_end_ns = paced.measured_start_ns + spec.duration.as_nanos() as u64;
    let silence = paced
        .silent_from_ns
        .zip(paced.last_sent_ns)
        .map(|(from_ns, last_sent_ns)| Silence {
            from_ns,
            last_sent_ns,
            watched_until_ns: window_end_ns,
        });
    let outcome = monitor(&times, &settings, silence)?;
    let start = paced.measured_start_ns;
    Ok(HeartbeatMetrics {
        interval_ns: hb.interval_ns(),
        fail_at_ns: hb.fail_at.map(|d| d.as_nanos() as u64),
        phi_config: settings.phi,
        monitor: outcome,
        arrival_times: arrivals
            .into_iter()
            .map(|(seq, at)| (seq - first_measured.unwrap_or(0), at.saturating_sub(start)))
            .collect(),
    })
}
