//! Latency under load (the idea of Flent's RRUL test): an open-loop
//! request/response probe runs alone for `--idle`, then beside `--flows`
//! bulk flows for their warm-up and duration, then alone again; its round
//! trips, split at the moments the flows started and stopped writing, say
//! what the load added. The probe and the load are two trials of their own
//! on two control sessions (rr and bulk, which any receiver serves); the
//! load runs on a thread and runtime of its own, so its writes never delay
//! the probe's schedule on this one.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;
use transbench_reports::{LatencySummary, LoadMetrics, LoadPhase, TrialResult};
use transbench_wire::auth::Secret;

use super::{bulk, rr};
use crate::clock::mono_now_ns;
use crate::measure::load as analysis;
use crate::session;
use crate::spec::{LoadSpec, TrialSpec, WorkloadSpec};

/// Runs one latency-under-load trial against the receiver at `addr`.
pub async fn run_trial(
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    load: &LoadSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    let probe_spec = load.probe_trial(spec);
    let WorkloadSpec::Rr(probe_rr) = &probe_spec.workload else {
        unreachable!("the probe is request/response")
    };
    let load_spec = load.load_trial(spec);
    let (ctl, _) = session::connect(addr, secret).await?;
    let probe_from_ns = mono_now_ns();
    let load_thread = {
        let (secret, load_spec, bulk, idle) =
            (secret.cloned(), load_spec.clone(), load.bulk.clone(), load.idle);
        let id = format!("{id}-load");
        std::thread::Builder::new()
            .name("load".into())
            .spawn(move || -> anyhow::Result<(TrialResult, bulk::Writing)> {
                yield_to_probe();
                crate::single_thread_runtime()?.block_on(async {
                    // The probe's first request is due its start lead after its Start.
                    tokio::time::sleep(idle + Duration::from_nanos(crate::schedule::START_LEAD_NS)).await;
                    let (ctl, _) = session::connect(addr, secret.as_ref()).await?;
                    bulk::run_timed(ctl, addr, &load_spec, &bulk, id).await
                })
            })
            .context("starting the load's thread")?
    };
    let probed = rr::run_keeping_samples(
        ctl,
        addr,
        None,
        &probe_spec,
        probe_rr,
        format!("{id}-probe"),
        true,
    )
    .await;
    let loaded = load_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the load's thread panicked"))?
        .context("the load's bulk trial")?;
    let (probe, samples) = probed.context("the probe's trial")?;
    build_result(
        spec,
        load,
        id,
        probe,
        &samples,
        probe_from_ns,
        probe_spec.duration,
        loaded,
    )
}

/// The load's thread takes what the probe leaves of the CPU: a normal
/// thread at nice 10, even when `run` has real-time priority, so the
/// probe keeps its schedule on a machine the load keeps busy (on loopback
/// the flows are CPU-bound). Best effort: a refusal leaves it as it was.
fn yield_to_probe() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on the calling thread, with a valid struct.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

#[allow(clippy::too_many_arguments)]
fn build_result(
    spec: &TrialSpec,
    load: &LoadSpec,
    id: String,
    probe: TrialResult,
    samples: &[crate::measure::tracker::Sample],
    probe_from_ns: u64,
    probe_length: Duration,
    (flows, writing): (TrialResult, bulk::Writing),
) -> anyhow::Result<TrialResult> {
    // Times count from the probe's first request, when it has one; the
    // last phase ends with the probe's schedule.
    let t0 = samples
        .iter()
        .map(|s| s.intended_ns)
        .min()
        .unwrap_or(probe_from_ns);
    let probe_to_ns = t0 + probe_length.as_nanos() as u64;
    let phases = analysis::phases(samples, t0, probe_to_ns, writing.from_ns, writing.to_ns);
    let mut summaries = Vec::with_capacity(3);
    for p in &phases {
        summaries.push(LoadPhase {
            phase: p.name.to_string(),
            from_ns: p.from_ns,
            to_ns: p.to_ns,
            sent: p.sent,
            lost: p.lost,
            lat: LatencySummary::from_histogram(&p.lat)?,
        });
    }
    let [before, during, _] = &phases;
    let added = |q: f64| {
        (!before.lat.is_empty() && !during.lat.is_empty())
            .then(|| during.lat.value_at_quantile(q) as i64 - before.lat.value_at_quantile(q) as i64)
    };
    // The probe's round trip crosses the queue of each direction loaded.
    let drains: Vec<Option<u64>> = load
        .bulk
        .ways()
        .into_iter()
        .map(|way| {
            let link = load.bulk.link(way)?;
            let rate = link.rate?;
            let packet = f64::from(testbed::MTU)
                + transbench_analysis::bulk::L2_HEADER
                + f64::from(rate.packet_overhead);
            Some(transbench_analysis::bulk::queue_drain_ns(
                link.limit,
                packet,
                rate.bytes_per_sec as f64 * 8.0,
            ))
        })
        .collect();
    let queue_drain_ns = drains.into_iter().sum::<Option<u64>>();
    let metrics = LoadMetrics {
        probe: load.probe,
        probe_rate: load.probe_rate,
        load_from_ns: writing.from_ns.saturating_sub(t0),
        load_to_ns: writing.to_ns.saturating_sub(t0),
        added_p50_ns: added(0.5),
        added_p99_ns: added(0.99),
        queue_drain_ns,
        probe_samples: analysis::series(samples, t0),
        phases: summaries,
    };
    // The trial is the load's (transport, flows, goodput), its latency the
    // probe's while the load ran.
    let mut result = flows;
    result.id = id;
    result.workload = spec.workload();
    result.latency_kind = probe.latency_kind;
    result.lat = metrics.phases[1].lat.clone();
    result.send_lag = probe.send_lag;
    result.counters = transbench_reports::Counters {
        sent: during.sent,
        received: during.sent - during.lost,
        lost: during.lost,
        ..probe.counters
    };
    result.udp = probe.udp;
    // Only the probe's schedule missed: the host was busy, and the trial may run again.
    result.missed_schedule = result.invalid_reasons.is_empty() && probe.missed_schedule;
    result.valid = result.valid && probe.valid;
    result
        .invalid_reasons
        .extend(probe.invalid_reasons.iter().map(|r| format!("probe: {r}")));
    result.load = Some(metrics);
    Ok(result)
}
