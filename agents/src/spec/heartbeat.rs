//! The heartbeat workload's options: how often heartbeats go, when the
//! monitored peer falls silent, and the detector settings the monitor
//! replays.

use anyhow::bail;
use std::fmt;
use std::time::Duration;
use transbench_analysis::failure_detector::{PhiAccrualConfig, DEFAULT_MIN_INTERVALS};

use super::{TrialArgs, TrialSpec, MAX_MESSAGES};

pub const FLAGS: &[&str] = &[
    "--heartbeat-interval",
    "--fail-at",
    "--phi-thresholds",
    "--timeouts",
];
/// One heartbeat every 100 ms unless --heartbeat-interval says: Akka's
/// cluster sends one a second, Cassandra's gossip one a second, etcd's
/// leader one every 100 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// A heartbeat is a header and little else.
pub const DEFAULT_SIZE: usize = 64;
/// φ thresholds unless --phi-thresholds says: from a suspicion a tenth of
/// live intervals earn (1) to far past Akka's default (8) and
/// Cassandra's (8), so the trade-off curve shows both ends.
pub const PHI_THRESHOLDS: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0];
/// Fixed timeouts unless --timeouts says, in heartbeat intervals: from
/// suspecting every lost heartbeat (1.5) to tolerating nine in a row
/// (10).
pub const TIMEOUT_INTERVALS: [f64; 5] = [1.5, 2.0, 3.0, 5.0, 10.0];
/// The shortest interval: a thousand heartbeats a second is already far
/// more often than any failure detector sends them.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Most settings of each detector: a chart's points, a table's rows.
pub const MAX_SETTINGS: usize = 32;

/// A fixed timeout as given: a number of heartbeat intervals (`3x`) or a
/// time (`250ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeoutSetting {
    Intervals(f64),
    Fixed(Duration),
}

impl TimeoutSetting {
    pub fn ns(self, interval: Duration) -> u64 {
        match self {
            TimeoutSetting::Intervals(n) => (n * interval.as_nanos() as f64).round() as u64,
            TimeoutSetting::Fixed(d) => d.as_nanos().min(u64::MAX as u128) as u64,
        }
    }
}

impl fmt::Display for TimeoutSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutSetting::Intervals(n) => write!(f, "{n}x"),
            TimeoutSetting::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// One entry of --timeouts: `3x` (intervals) or a duration (`250ms`).
pub fn parse_timeout(s: &str) -> Result<TimeoutSetting, String> {
    let t = s.trim();
    if let Some(n) = t.strip_suffix('x') {
        return match n.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => Ok(TimeoutSetting::Intervals(n)),
            _ => Err(format!(
                "{s:?} is not a timeout: a positive number of heartbeat intervals ends in x (e.g. 2.5x)"
            )),
        };
    }
    humantime::parse_duration(t)
        .map(TimeoutSetting::Fixed)
        .map_err(|e| {
            format!("{s:?} is not a timeout ({e}): give intervals (3x) or a time with its unit (250ms)")
        })
}

#[derive(Debug, Clone)]
pub struct HeartbeatSpec {
    pub interval: Duration,
    /// When, into the measured window, the peer falls silent: no more
    /// heartbeats, its connection left open.
    pub fail_at: Option<Duration>,
    pub phi_thresholds: Vec<f64>,
    pub timeouts: Vec<TimeoutSetting>,
}

impl HeartbeatSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        HeartbeatSpec {
            interval: args.heartbeat_interval.unwrap_or(DEFAULT_INTERVAL),
            fail_at: args.fail_at,
            phi_thresholds: args
                .phi_thresholds
                .clone()
                .unwrap_or_else(|| PHI_THRESHOLDS.to_vec()),
            timeouts: args
                .timeouts
                .clone()
                .unwrap_or_else(|| TIMEOUT_INTERVALS.map(TimeoutSetting::Intervals).to_vec()),
        }
    }

    /// Heartbeats a second.
    pub fn rate(&self) -> f64 {
        1e9 / self.interval.as_nanos() as f64
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval.as_nanos() as u64
    }

    pub fn timeouts_ns(&self) -> Vec<u64> {
        self.timeouts.iter().map(|t| t.ns(self.interval)).collect()
    }

    /// The φ detector the monitor replays.
    pub fn phi_config(&self) -> PhiAccrualConfig {
        PhiAccrualConfig::for_interval(self.interval_ns())
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            bail!(
                "--heartbeat-interval {} is out of range: {} to {}",
                show(self.interval),
                show(MIN_INTERVAL),
                show(MAX_INTERVAL)
            );
        }
        if self.phi_thresholds.is_empty() || self.phi_thresholds.len() > MAX_SETTINGS {
            bail!("--phi-thresholds takes 1 to {MAX_SETTINGS} thresholds, comma-separated (e.g. 1,3,8)");
        }
        if let Some(bad) = self
            .phi_thresholds
            .iter()
            .find(|t| !(t.is_finite() && **t > 0.0 && **t <= 300.0))
        {
            bail!("--phi-thresholds {bad}: a threshold is a φ above 0 and at most 300 (a chance of 10^-300)");
        }
        if self.timeouts.is_empty() || self.timeouts.len() > MAX_SETTINGS {
            bail!("--timeouts takes 1 to {MAX_SETTINGS} timeouts, comma-separated (e.g. 2x,5x,1s)");
        }
        let longest = self.timeouts_ns().into_iter().max().unwrap_or(0);
        if let Some(bad) = self.timeouts.iter().find(|t| t.ns(self.interval) == 0) {
            bail!("--timeouts {bad}: a timeout must be longer than zero");
        }
        let window = trial.warmup + trial.duration;
        let scheduled = window.as_nanos() / self.interval.as_nanos();
        if scheduled > u128::from(MAX_MESSAGES) {
            bail!(
                "--heartbeat-interval {} over --warmup + --duration ({}) schedules {scheduled} heartbeats, more \
                 than the {MAX_MESSAGES} one trial records: give a longer --heartbeat-interval or a shorter \
                 --duration",
                show(self.interval),
                show(window)
            );
        }
        let alive = self.fail_at.unwrap_or(trial.duration);
        // φ models from DEFAULT_MIN_INTERVALS intervals: fewer heartbeats
        // than that before the failure leave it nothing to report.
        let needed = self.interval * (DEFAULT_MIN_INTERVALS as u32 + 1);
        if alive < needed {
            let what = match self.fail_at {
                Some(_) => "--fail-at",
                None => "--duration",
            };
            bail!(
                "{what} {} holds {} heartbeats at --heartbeat-interval {}, and the φ detector models from \
                 {DEFAULT_MIN_INTERVALS} intervals: give {what} {} or more, or a shorter --heartbeat-interval",
                show(alive),
                alive.as_nanos() / self.interval.as_nanos(),
                show(self.interval),
                show(needed)
            );
        }
        if let Some(fail_at) = self.fail_at {
            let left = trial.duration.saturating_sub(fail_at);
            if Duration::from_nanos(longest) >= left {
                bail!(
                    "--fail-at {} leaves {} of the {} --duration to watch the silence in, no longer than the \
                     longest of --timeouts ({}): give a longer --duration or an earlier --fail-at",
                    show(fail_at),
                    show(left),
                    show(trial.duration),
                    show(Duration::from_nanos(longest))
                );
            }
        }
        super::oneway::check_wait(trial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use transbench_wire::Transport;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        trial: TrialArgs,
    }

    fn checked(flags: &[&str], transport: Transport) -> anyhow::Result<TrialSpec> {
        let args = Flags::try_parse_from(["transbench", "--workload", "heartbeat"].iter().chain(flags))
            .unwrap()
            .trial;
        let spec = args.spec(transport, &[transport])?;
        spec.validate()?;
        Ok(spec)
    }

    fn refused(flags: &[&str], transport: Transport) -> String {
        checked(flags, transport).unwrap_err().to_string()
    }

    #[test]
    fn heartbeats_run_on_udp_tcp_and_quic_and_refuse_the_rest_naming_those() {
        for t in [Transport::Udp, Transport::Tcp, Transport::Quic] {
            checked(&["--duration", "20s"], t).unwrap();
        }
        assert_eq!(
            refused(&["--duration", "20s"], Transport::TcpTls),
            "transport tcp+tls does not run workload heartbeat: it runs on udp, tcp, quic"
        );
        assert!(refused(&["--rate", "5"], Transport::Udp).contains("paced by --heartbeat-interval"));
    }

    #[test]
    fn the_defaults_and_the_flags_reach_the_spec() {
        let spec = checked(
            &[
                "--heartbeat-interval",
                "20ms",
                "--duration",
                "5s",
                "--fail-at",
                "4s",
            ],
            Transport::Udp,
        )
        .unwrap();
        let crate::spec::WorkloadSpec::Heartbeat(hb) = &spec.workload else {
            panic!("{:?}", spec.workload)
        };
        assert_eq!(hb.rate(), 50.0);
        assert_eq!(hb.phi_thresholds, PHI_THRESHOLDS);
        assert_eq!(hb.timeouts_ns()[0], 30_000_000);
        assert_eq!(spec.size, DEFAULT_SIZE);
        assert_eq!(spec.setup().plan.messages, Some(300));
        let spec = checked(
            &[
                "--duration",
                "20s",
                "--phi-thresholds",
                "2,9",
                "--timeouts",
                "3x,1s",
            ],
            Transport::Quic,
        )
        .unwrap();
        let crate::spec::WorkloadSpec::Heartbeat(hb) = &spec.workload else {
            panic!()
        };
        assert_eq!(hb.phi_thresholds, [2.0, 9.0]);
        assert_eq!(hb.timeouts_ns(), [300_000_000, 1_000_000_000]);
    }

    #[test]
    fn a_window_too_short_for_the_detectors_says_what_would_do() {
        assert_eq!(
            refused(&[], Transport::Udp),
            "--duration 3s holds 30 heartbeats at --heartbeat-interval 100ms, and the φ detector models from \
             100 intervals: give --duration 10s 100ms or more, or a shorter --heartbeat-interval"
        );
        assert!(refused(&["--duration", "20s", "--fail-at", "5s"], Transport::Udp)
            .contains("--fail-at 5s holds 50"));
        let e = refused(&["--duration", "20s", "--fail-at", "19s 500ms"], Transport::Udp);
        assert!(
            e.contains("leaves 500ms of the 20s --duration") && e.contains("(1s)"),
            "{e}"
        );
        assert!(refused(
            &["--duration", "20s", "--heartbeat-interval", "1us"],
            Transport::Udp
        )
        .contains("1ms to 1h"));
        assert!(refused(&["--duration", "20s", "--phi-thresholds", "0"], Transport::Udp).contains("above 0"));
        assert!(
            refused(&["--duration", "20s", "--timeouts", "0s"], Transport::Udp).contains("longer than zero")
        );
    }

    #[test]
    fn timeouts_are_intervals_or_times() {
        let interval = Duration::from_millis(100);
        assert_eq!(parse_timeout("2.5x").unwrap().ns(interval), 250_000_000);
        assert_eq!(parse_timeout(" 1s").unwrap().ns(interval), 1_000_000_000);
        assert!(parse_timeout("0x").unwrap_err().contains("intervals ends in x"));
        assert!(parse_timeout("5").unwrap_err().contains("250ms"));
        assert_eq!(TimeoutSetting::Intervals(1.5).to_string(), "1.5x");
        assert_eq!(TimeoutSetting::Fixed(interval).to_string(), "100ms");
    }
}
