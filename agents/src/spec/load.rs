//! The latency-under-load workload's options: the bulk flows that make
//! the load, and the request/response probe that measures what it does to
//! latency before, during and after it.

use anyhow::bail;
use std::time::Duration;
use transbench_wire::{Transport, Workload};

use super::{positive_rate, BulkSpec, RrSpec, TrialArgs, TrialSpec, WorkloadSpec};

pub const FLAGS: &[&str] = &[
    "--flows",
    "--quic-connections",
    "--direction",
    "--probe",
    "--probe-rate",
    "--idle",
];
/// Probe requests per second unless --probe-rate says: one every 10 ms,
/// fine enough to see a queue fill within a few round trips.
pub const PROBE_RATE: f64 = 100.0;
/// The probe's requests and responses, header included.
pub const PROBE_SIZE: usize = 64;
/// The probe alone before the load and after it, unless --idle says.
pub const IDLE: Duration = Duration::from_secs(2);
/// The most --idle: each side of the load.
pub const MAX_IDLE: Duration = Duration::from_secs(60);
/// Time the load's own set-up (connections, handshakes) may take after
/// the idle phase, added to the probe's length so that the phase after
/// the load still lasts about --idle.
pub const SETUP_ALLOWANCE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub bulk: BulkSpec,
    /// The probe's transport: its own flow, beside the load's.
    pub probe: Transport,
    pub probe_rate: f64,
    /// The probe alone before the load, and after it.
    pub idle: Duration,
}

impl LoadSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        LoadSpec {
            bulk: BulkSpec::from_args(args),
            probe: args.probe.unwrap_or(Transport::Udp),
            probe_rate: args.probe_rate.unwrap_or(PROBE_RATE),
            idle: args.idle.unwrap_or(IDLE),
        }
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        self.bulk.check(trial)?;
        if !Workload::Rr.runs_on(self.probe.capabilities()) {
            let names: Vec<&str> = Workload::Rr.transports().iter().map(|t| t.name()).collect();
            bail!(
                "--probe {}: the probe is a request/response flow, on {}",
                self.probe,
                names.join(", ")
            );
        }
        positive_rate(self.probe_rate, "--probe-rate", "requests")?;
        if self.idle.is_zero() || self.idle > MAX_IDLE {
            bail!(
                "--idle {} is out of range: longer than zero, at most {}",
                humantime::format_duration(self.idle),
                humantime::format_duration(MAX_IDLE)
            );
        }
        self.probe_trial(trial).validate()
    }

    /// The probe's trial: open-loop requests from before the load to after
    /// it, measured throughout (no warm-up of its own).
    pub fn probe_trial(&self, trial: &TrialSpec) -> TrialSpec {
        let same_carrier = self.probe.capabilities().carrier == trial.transport.capabilities().carrier;
        TrialSpec {
            transport: self.probe,
            size: PROBE_SIZE,
            duration: self.idle + SETUP_ALLOWANCE + trial.warmup + trial.duration + self.idle,
            warmup: Duration::ZERO,
            loss_timeout: trial.loss_timeout,
            // Its latencies count from intended times whatever the lag; a
            // lag within one period still probes at the rate asked, and
            // the delays it measures are tens of ms.
            max_send_lag: trial
                .max_send_lag
                .or_else(|| Duration::try_from_secs_f64(1.0 / self.probe_rate).ok())
                .map(|d| d.max(Duration::from_millis(1))),
            congestion: trial.congestion.clone().filter(|_| same_carrier),
            path_rtt_ns: trial.path_rtt_ns,
            // The probe spans the load: its session holds the receiver's
            // egress impairment for both.
            reverse_impair: trial.reverse_impair.clone(),
            window_opens: Default::default(),
            link_changes: false,
            blackouts: Vec::new(),
            receiver_fault: None,
            rejecting: Vec::new(),
            workload: WorkloadSpec::Rr(RrSpec {
                rate: Some(self.probe_rate),
                quic_stream: Default::default(),
                retry: None,
                idempotency_keys: false,
                reconnect: None,
            }),
        }
    }

    /// The load's trial: the bulk flows, warm-up and duration as given.
    pub fn load_trial(&self, trial: &TrialSpec) -> TrialSpec {
        TrialSpec {
            workload: WorkloadSpec::Bulk(self.bulk.clone()),
            reverse_impair: None,
            ..trial.clone()
        }
    }
}
