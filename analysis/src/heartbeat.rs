//! What a heartbeat monitor finds over one run: both detectors of
//! [`failure_detector`](crate::failure_detector) replayed over the
//! heartbeats' arrival times, which is exactly what a monitor watching
//! them online computes, with the normal model's theory beside each
//! setting.
//!
//! For each φ threshold and each fixed timeout: the intervals between
//! heartbeats of the live peer during which the detector suspected it
//! (false suspicions: count, per interval, per hour), and, when the peer
//! fell silent, how long after its last heartbeat was sent, and after the
//! moment it fell silent, the detector suspected it. The monitor suspects
//! a silent peer at its last arrival plus the detection time of the model
//! then held ([`NormalModel::detection_ns`]); that instant is counted only
//! when it falls before the monitor stopped watching.

use serde::{Deserialize, Serialize};

use crate::failure_detector::{
    expected_false_suspicions_per_interval, fixed_timeout_trade_off, normal_tail, phi_trade_off,
    DetectorError, NormalModel, PhiAccrualConfig, TradeOffPoint,
};

/// The detectors a monitor runs, and what it knows of the heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    /// How often the peer sends a heartbeat, ns.
    pub interval_ns: u64,
    pub phi: PhiAccrualConfig,
    pub phi_thresholds: Vec<f64>,
    pub timeouts_ns: Vec<u64>,
}

/// A peer that fell silent, on the monitor's clock (which, for the
/// times after it to mean anything, is the peer's too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// When it fell silent: its next heartbeat was due at or after this.
    pub from_ns: u64,
    /// When it sent its last heartbeat.
    pub last_sent_ns: u64,
    /// The monitor watched until here: a suspicion later than this was
    /// never seen.
    pub watched_until_ns: u64,
}

/// Which detector, at which setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detector", rename_all = "snake_case")]
pub enum Detector {
    /// φ accrual: suspects once φ exceeds `threshold`.
    Phi { threshold: f64 },
    /// Suspects once more than `timeout_ns` has passed since the last
    /// heartbeat.
    FixedTimeout { timeout_ns: u64 },
}

/// One detector setting over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingOutcome {
    #[serde(flatten)]
    pub detector: Detector,
    /// Intervals between heartbeats it was checked over: all of them for
    /// a fixed timeout; for φ, those after it had its model.
    pub intervals_watched: u64,
    /// Of those, the ones during which it suspected the live peer.
    pub false_suspicions: u64,
    /// `false_suspicions` over `intervals_watched`; absent with none
    /// watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_suspicions_per_interval: Option<f64>,
    /// `false_suspicions` over the time from the first heartbeat to the
    /// last, per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_suspicions_per_hour: Option<f64>,
    /// The normal model's chance per interval. φ: what
    /// [`expected_false_suspicions_per_interval`] gives each watched
    /// interval for the window it was judged by, averaged (exact for
    /// independent normal intervals with the floor below their spread).
    /// Fixed timeout: Q((timeout − m)/s) for the mean m and standard
    /// deviation s of all the intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_per_interval: Option<f64>,
    /// How long after the last heartbeat's arrival the detector suspects
    /// a peer that sends no more: the timeout, or the detection time of
    /// φ's model at the end; absent for φ without a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_after_last_arrival_ns: Option<i64>,
    /// The same from the normal model of all the intervals (their mean
    /// with the acceptable pause added, their standard deviation with the
    /// floor applied) instead of the window's: what the detection time
    /// tends to as the window grows; the timeout itself for a fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_detection_ns: Option<i64>,
    /// A silent peer: whether the monitor suspected it before it stopped
    /// watching; absent when the peer never fell silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<bool>,
    /// A silent peer, detected: from its last heartbeat's sending, and
    /// from the moment it fell silent, to the suspicion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_after_last_sent_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_after_silence_ns: Option<i64>,
}

/// The monitor's findings over one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOutcome {
    /// Heartbeats that arrived, each counted once.
    pub arrivals: u64,
    /// First arrival to last, ns.
    pub alive_ns: u64,
    /// Mean and sample standard deviation of the intervals between
    /// arrivals; absent with fewer than two intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_mean_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_std_dev_ns: Option<f64>,
    /// φ's model at the last arrival (its window's mean and deviation,
    /// pause and floor applied); absent before it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi_model: Option<ModelSummary>,
    /// φ at each threshold, then each fixed timeout, in the order asked.
    pub settings: Vec<SettingOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub mean_ns: f64,
    pub std_dev_ns: f64,
}

/// Replays both detectors over `arrivals_ns` (the monitor's clock, in
/// order, each heartbeat once); `silence` when the peer fell silent
/// after the last of them.
pub fn monitor(
    arrivals_ns: &[u64],
    settings: &MonitorSettings,
    silence: Option<Silence>,
) -> Result<MonitorOutcome, DetectorError> {
    let intervals: Vec<f64> = arrivals_ns
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64)
        .collect();
    let (mean, std_dev) = mean_and_std_dev(&intervals).unzip();
    let last_arrival = arrivals_ns.last().copied();
    let phi_points = phi_trade_off(arrivals_ns, settings.phi, &settings.phi_thresholds)?;
    let phi_model = model_after(arrivals_ns, settings.phi)?;
    let run_model = mean.zip(std_dev).map(|(m, s)| NormalModel {
        mean_ns: m + settings.phi.acceptable_pause_ns as f64,
        std_dev_ns: s.max(settings.phi.min_std_dev_ns as f64),
    });
    let mut outcomes = Vec::new();
    for (point, &threshold) in phi_points.iter().zip(&settings.phi_thresholds) {
        let expected = expected_phi_rate(threshold, settings.phi, point.intervals_watched);
        let theory = run_model.map(|m| m.detection_ns(threshold));
        outcomes.push(outcome(
            Detector::Phi { threshold },
            point,
            expected,
            theory,
            last_arrival,
            silence,
        ));
    }
    let timeout_points = fixed_timeout_trade_off(arrivals_ns, &settings.timeouts_ns);
    for (point, &timeout_ns) in timeout_points.iter().zip(&settings.timeouts_ns) {
        let expected = mean
            .zip(std_dev)
            .filter(|(_, s)| *s > 0.0)
            .map(|(m, s)| normal_tail((timeout_ns as f64 - m) / s));
        outcomes.push(outcome(
            Detector::FixedTimeout { timeout_ns },
            point,
            expected,
            Some(timeout_ns as f64),
            last_arrival,
            silence,
        ));
    }
    Ok(MonitorOutcome {
        arrivals: arrivals_ns.len() as u64,
        alive_ns: phi_points
            .first()
            .or(timeout_points.first())
            .map_or(0, |p| p.alive_ns),
        interval_mean_ns: mean,
        interval_std_dev_ns: std_dev,
        phi_model: phi_model.map(|m| ModelSummary {
            mean_ns: m.mean_ns,
            std_dev_ns: m.std_dev_ns,
        }),
        settings: outcomes,
    })
}

fn outcome(
    detector: Detector,
    point: &TradeOffPoint,
    expected_per_interval: Option<f64>,
    expected_detection_ns: Option<f64>,
    last_arrival: Option<u64>,
    silence: Option<Silence>,
) -> SettingOutcome {
    // The instant the monitor suspects a peer that sent no more.
    let suspected_at = last_arrival
        .zip(point.detection_ns)
        .map(|(last, t_d)| last as f64 + t_d);
    let seen = silence
        .zip(suspected_at)
        .filter(|(s, at)| *at <= s.watched_until_ns as f64);
    SettingOutcome {
        detector,
        intervals_watched: point.intervals_watched,
        false_suspicions: point.false_suspicions,
        false_suspicions_per_interval: (point.intervals_watched > 0)
            .then(|| point.false_suspicions as f64 / point.intervals_watched as f64),
        false_suspicions_per_hour: point.false_suspicions_per_hour(),
        expected_per_interval,
        detection_after_last_arrival_ns: point.detection_ns.map(round),
        expected_detection_ns: expected_detection_ns.map(round),
        detected: silence.map(|_| seen.is_some()),
        detection_after_last_sent_ns: seen.map(|(s, at)| round(at - s.last_sent_ns as f64)),
        detection_after_silence_ns: seen.map(|(s, at)| round(at - s.from_ns as f64)),
    }
}

fn round(ns: f64) -> i64 {
    ns.round() as i64
}

/// The φ detector's model after every arrival.
fn model_after(arrivals_ns: &[u64], config: PhiAccrualConfig) -> Result<Option<NormalModel>, DetectorError> {
    let mut detector = crate::failure_detector::PhiAccrualDetector::new(config)?;
    for &now in arrivals_ns {
        detector.heartbeat(now);
    }
    Ok(detector.model())
}

/// The mean chance per interval of a false suspicion at `threshold` over
/// the first `watched` intervals φ judged: the j-th of them by a window of
/// min(`min_intervals` + j, `window`) intervals. `None` with none watched.
pub fn expected_phi_rate(threshold: f64, config: PhiAccrualConfig, watched: u64) -> Option<f64> {
    if watched == 0 {
        return None;
    }
    let filling = (config.window - config.min_intervals) as u64;
    let mut sum: f64 = (0..watched.min(filling))
        .map(|j| expected_false_suspicions_per_interval(threshold, config.min_intervals + j as usize))
        .sum();
    if watched > filling {
        sum += (watched - filling) as f64 * expected_false_suspicions_per_interval(threshold, config.window);
    }
    Some(sum / watched as f64)
}

fn mean_and_std_dev(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    Some((mean, (squares / (n - 1.0)).sqrt()))
}

/// The chance that at most `k` of `n` independent trials of chance `p`
/// succeed, and that at least `k` do: a binomial count's two tails, for
/// holding a count of false suspicions to its theory.
pub fn binomial_tails(n: u64, p: f64, k: u64) -> (f64, f64) {
    if p <= 0.0 {
        return (1.0, if k == 0 { 1.0 } else { 0.0 });
    }
    if p >= 1.0 {
        return (if k >= n { 1.0 } else { 0.0 }, 1.0);
    }
    // Term by term in logarithms: exact enough for any n a run has.
    let ln_p = p.ln();
    let ln_q = (1.0 - p).ln();
    let mut at_most = 0.0;
    let mut at_least = 0.0;
    let mut ln_choose = 0.0;
    for i in 0..=n {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        let term = (ln_choose + i as f64 * ln_p + (n - i) as f64 * ln_q).exp();
        if i <= k {
            at_most += term;
        }
        if i >= k {
            at_least += term;
        }
    }
    (at_most.min(1.0), at_least.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure_detector::{normal_tail_inverse, DEFAULT_MIN_INTERVALS, DEFAULT_WINDOW};
    use linkemu::rng::Prng;

    const MS: u64 = 1_000_000;
    const START: u64 = 7_000_000_000_000;

    fn uniform(rng: &mut Prng) -> f64 {
        let bits = u64::from(rng.next_u32()) << 21 | u64::from(rng.next_u32() >> 11);
        bits as f64 / (1u64 << 53) as f64
    }

    /// Heartbeats sent every `interval` from START, each delayed by an
    /// independent normal delay (`delay`, `jitter`), a share `loss` of
    /// them lost: what a monitor sees across a jittered, lossy path. The
    /// arrivals in order, and each one's send time.
    fn path(seed: u64, count: u64, interval: u64, delay: f64, jitter: f64, loss: f64) -> Vec<(u64, u64)> {
        let rng = &mut Prng::new(seed);
        let mut out: Vec<(u64, u64)> = (0..count)
            .filter_map(|i| {
                let sent = START + i * interval;
                let (u, v) = (1.0 - uniform(rng), uniform(rng));
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                let lost = uniform(rng) < loss;
                (!lost).then(|| ((sent as f64 + (delay + jitter * z).max(0.0)) as u64, sent))
            })
            .collect();
        out.sort();
        out
    }

    fn settings(interval: u64, floor: u64) -> MonitorSettings {
        MonitorSettings {
            interval_ns: interval,
            phi: PhiAccrualConfig {
                min_std_dev_ns: floor,
                ..PhiAccrualConfig::for_interval(interval)
            },
            phi_thresholds: vec![1.0, 2.0, 8.0],
            timeouts_ns: vec![interval * 3 / 2, 2 * interval, 5 * interval],
        }
    }

    /// The workload's end-to-end check in miniature: 20 ms heartbeats
    /// over a path whose delay is N(10 ms, 3 ms), so intervals are normal
    /// with σ = 3√2 ms (neighbours share a delay, which the rate per
    /// interval does not see). The count of false suspicions at φ = 1
    /// and 2 lies where its binomial count from the theory's rate puts
    /// it with chance 0.999 either way.
    #[test]
    fn on_a_normal_path_false_suspicions_match_the_theory() {
        let arrivals: Vec<u64> = path(3, 5_000, 20 * MS, 10e6, 3e6, 0.0)
            .into_iter()
            .map(|a| a.0)
            .collect();
        let outcome = monitor(&arrivals, &settings(20 * MS, MS), None).unwrap();
        for setting in &outcome.settings[..2] {
            let n = setting.intervals_watched;
            assert_eq!(n, arrivals.len() as u64 - 1 - DEFAULT_MIN_INTERVALS as u64);
            let p = setting.expected_per_interval.unwrap();
            let (low, high) = binomial_tails(n, p, setting.false_suspicions);
            assert!(
                low > 1e-3 && high > 1e-3,
                "{:?}: {} of {n}, theory {p}",
                setting.detector,
                setting.false_suspicions
            );
        }
        assert!(outcome.settings[2].false_suspicions <= 1);
        let sd = outcome.interval_std_dev_ns.unwrap();
        assert!((sd / (3e6 * 2f64.sqrt()) - 1.0).abs() < 0.05, "σ {sd}");
        assert!(outcome.settings.iter().all(|s| s.detected.is_none()));
    }

    #[test]
    fn the_expected_rate_follows_the_window_as_it_fills() {
        let config = PhiAccrualConfig::for_interval(100 * MS);
        let at = |w| expected_false_suspicions_per_interval(2.0, w);
        assert_eq!(expected_phi_rate(2.0, config, 0), None);
        assert_eq!(expected_phi_rate(2.0, config, 1), Some(at(DEFAULT_MIN_INTERVALS)));
        let two = expected_phi_rate(2.0, config, 2).unwrap();
        assert!((two - (at(100) + at(101)) / 2.0).abs() < 1e-15);
        // Long past the fill, the full window's rate.
        let long = expected_phi_rate(2.0, config, 1_000_000).unwrap();
        assert!((long / at(DEFAULT_WINDOW) - 1.0).abs() < 1e-3);
    }

    /// A peer silent from 10 s on, its last heartbeat sent 9.98 s in: the
    /// detectors suspect it at the last arrival plus the model's detection
    /// time, which lies near what the normal model of the path gives
    /// (within 4 of the window estimate's standard deviations, as in
    /// `failure_detector`'s crash test); one whose suspicion falls after
    /// the monitor stopped watching is not detected.
    #[test]
    fn a_silent_peer_is_detected_after_its_last_heartbeat_as_the_model_says() {
        let interval = 20 * MS;
        let all = path(5, 1_500, interval, 10e6, 3e6, 0.0);
        let kept: Vec<(u64, u64)> = all.into_iter().filter(|a| a.1 < START + 10_000 * MS).collect();
        let arrivals: Vec<u64> = kept.iter().map(|a| a.0).collect();
        let last_sent = kept.iter().map(|a| a.1).max().unwrap();
        let silence = Silence {
            from_ns: START + 10_000 * MS,
            last_sent_ns: last_sent,
            watched_until_ns: START + 10_150 * MS,
        };
        let outcome = monitor(&arrivals, &settings(interval, MS), Some(silence)).unwrap();
        let last = *arrivals.last().unwrap();
        for s in &outcome.settings {
            let t_d = s.detection_after_last_arrival_ns.unwrap();
            let at = last as i64 + t_d;
            assert_eq!(s.detected, Some(at <= silence.watched_until_ns as i64), "{s:?}");
            if s.detected == Some(true) {
                assert_eq!(s.detection_after_last_sent_ns, Some(at - last_sent as i64));
                assert_eq!(s.detection_after_silence_ns, Some(at - silence.from_ns as i64));
            } else {
                assert_eq!(s.detection_after_silence_ns, None);
            }
        }
        // φ = 8 from the path's own model: mean 20 ms, σ 3√2 ms.
        let sigma = 3e6 * 2f64.sqrt();
        let theory = NormalModel {
            mean_ns: 20e6,
            std_dev_ns: sigma,
        }
        .detection_ns(8.0);
        let z = normal_tail_inverse(1e-8);
        let w = DEFAULT_WINDOW as f64;
        let spread = sigma * (1.0 / w + z * z / (2.0 * (w - 1.0))).sqrt();
        let phi_8 = &outcome.settings[2];
        let t_d = phi_8.detection_after_last_arrival_ns.unwrap() as f64;
        assert!((t_d - theory).abs() < 4.0 * spread, "t_d {t_d}, theory {theory}");
        let expected = phi_8.expected_detection_ns.unwrap() as f64;
        assert!((expected - theory).abs() < 4.0 * spread, "{expected}");
        assert_eq!(phi_8.detected, Some(true));
        // 5 intervals, 100 ms, is past the watch for an arrival later than 50 ms before it.
        let five = outcome.settings.last().unwrap();
        assert_eq!(five.detection_after_last_arrival_ns, Some(100 * MS as i64));
        assert_eq!(five.expected_detection_ns, Some(100 * MS as i64));
    }

    /// Lost heartbeats are gaps of two intervals and more: a fixed
    /// timeout of 1.5 intervals suspects at each, some 5 % of intervals,
    /// where the normal model of the same intervals expects far fewer;
    /// φ's false suspicions fall as its threshold rises.
    #[test]
    fn loss_makes_gaps_the_normal_model_does_not_expect() {
        let arrivals: Vec<u64> = path(9, 4_000, 100 * MS, 5e6, 1e6, 0.05)
            .into_iter()
            .map(|a| a.0)
            .collect();
        let outcome = monitor(&arrivals, &settings(100 * MS, 10 * MS), None).unwrap();
        let timeout = &outcome.settings[3];
        assert_eq!(timeout.detector, Detector::FixedTimeout { timeout_ns: 150 * MS });
        let rate = timeout.false_suspicions_per_interval.unwrap();
        assert!((0.035..0.07).contains(&rate), "{rate}");
        assert!(timeout.expected_per_interval.unwrap() < rate);
        let phi: Vec<u64> = outcome.settings[..3].iter().map(|s| s.false_suspicions).collect();
        assert!(phi[0] >= phi[1] && phi[1] >= phi[2], "{phi:?}");
        let per_hour = timeout.false_suspicions_per_hour.unwrap();
        let alive_h = outcome.alive_ns as f64 / 3.6e12;
        assert!((per_hour * alive_h - timeout.false_suspicions as f64).abs() < 1e-6);
    }

    #[test]
    fn too_few_arrivals_leave_phi_without_a_model() {
        let arrivals: Vec<u64> = (0..10).map(|i| START + i * 100 * MS).collect();
        let silence = Silence {
            from_ns: START + 1_000 * MS,
            last_sent_ns: START + 900 * MS,
            watched_until_ns: START + 5_000 * MS,
        };
        let outcome = monitor(&arrivals, &settings(100 * MS, 10 * MS), Some(silence)).unwrap();
        assert_eq!(outcome.phi_model, None);
        let phi = &outcome.settings[0];
        assert_eq!(phi.intervals_watched, 0);
        assert_eq!(phi.expected_per_interval, None);
        assert_eq!(phi.detection_after_last_arrival_ns, None);
        assert_eq!(phi.detected, Some(false));
        // A fixed timeout needs none: 150 ms after the last at 900 ms.
        let timeout = &outcome.settings[3];
        assert_eq!(timeout.detection_after_silence_ns, Some(50 * MS as i64));
        assert_eq!(timeout.detection_after_last_sent_ns, Some(150 * MS as i64));
        let none = monitor(&[], &settings(100 * MS, 10 * MS), None).unwrap();
        assert_eq!(
            (none.arrivals, none.alive_ns, none.interval_mean_ns),
            (0, 0, None)
        );
    }

    #[test]
    fn binomial_tails_match_closed_forms() {
        let (low, high) = binomial_tails(10, 0.5, 5);
        // P(X <= 5) = P(X >= 5) = 638/1024.
        assert!((low - 638.0 / 1024.0).abs() < 1e-12 && (high - 638.0 / 1024.0).abs() < 1e-12);
        let (low, high) = binomial_tails(1000, 0.01, 0);
        assert!((low - 0.99f64.powi(1000)).abs() < 1e-12 && (high - 1.0).abs() < 1e-12);
    }

    #[test]
    fn settings_serialize_with_their_detector_named() {
        let outcome = monitor(&[START, START + 100 * MS], &settings(100 * MS, 10 * MS), None).unwrap();
        let json = serde_json::to_value(&outcome.settings[3]).unwrap();
        assert_eq!(json["detector"], "fixed_timeout");
        assert_eq!(json["timeout_ns"], 150 * MS);
        let json = serde_json::to_value(&outcome.settings[0]).unwrap();
        assert_eq!(json["detector"], "phi");
        assert_eq!(json["threshold"], 1.0);
        let back: SettingOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, outcome.settings[0]);
    }
}
