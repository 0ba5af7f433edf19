//! Failure detectors over heartbeat arrivals, and the theory to set beside
//! them: a fixed timeout, and the φ accrual detector of Hayashibara,
//! Défago, Yared and Katayama ("The φ accrual failure detector", SRDS
//! 2004).
//!
//! The φ detector keeps the last `window` intervals between heartbeats and
//! models the next one as normal with their mean μ and standard deviation σ.
//! A time `t` after the last heartbeat its suspicion is φ(t) = −log10
//! P_later(t), where P_later(t) = Q((t − μ)/σ) is the chance the model
//! gives a heartbeat of coming later still (Q is the normal upper tail,
//! 1 − CDF). Between heartbeats the model is fixed, so φ only rises; it
//! reaches a threshold φₜ at the detection time t_d = μ + σ·Q⁻¹(10^−φₜ)
//! ([`NormalModel::detection_ns`]). After a crash, that is how long past
//! the last heartbeat the detector takes to suspect the peer.
//!
//! A *false suspicion* is an interval between two heartbeats of a live
//! peer during which the detector, checked continuously, suspected it:
//! since φ only rises, one that outlasted the t_d of the model held when it
//! began. A check at its closing heartbeat, made before that heartbeat is
//! taken in, sees it; the trade-off functions count so. Rates here are per
//! interval (per heartbeat); per hour is that times the heartbeats in an
//! hour. Were μ and σ the true ones,
//! the chance per interval would be exactly 10^−φₜ: this is the "about
//! 10^−8 per check" at φ = 8. A check at a uniformly random instant finds
//! the peer suspected far more rarely, with chance E[(X − t_d)⁺]/μ (some
//! 1.7·10^−10 at φ = 8 with σ = μ/10), and a monitor checking every few
//! ms misses suspicions shorter than that: the per-interval count is the
//! most any schedule of checks can see. The window only estimates μ and σ,
//! which raises the rate: [`expected_false_suspicions_per_interval`] gives
//! it, exactly for normal intervals (1.32·10^−8 at φ = 8 for a full window
//! of 1,000 intervals, 1.0·10^−7 for 100).
//!
//! Q is computed in logarithms with a relative error below 1.2·10^−7 at
//! every z, so φ is right to 10^−7 at any depth, where 1 − erf loses a
//! digit for each unit of φ (all of them by φ ≈ 16) and Q itself
//! underflows past φ ≈ 324. Akka computes
//! the tail with a logistic approximation instead, under which its φ = 8
//! falls where the normal tail is 8.7·10^−8.

use std::collections::VecDeque;
use std::f64::consts::{LN_10, LN_2};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Intervals a φ detector's window holds unless told: Akka's
/// `max-sample-size` and Cassandra's `SAMPLE_SIZE`. The paper leaves the
/// size to the application; a small window follows a changing path
/// sooner but misjudges its tail (see
/// [`expected_false_suspicions_per_interval`]).
pub const DEFAULT_WINDOW: usize = 1000;

/// Intervals a φ detector waits for, unless told, before it models them
/// and may suspect: from a few intervals the model misjudges the tail
/// badly. At φ = 8 the chance per interval of a false suspicion is 0.068
/// with 2 intervals, 2.3·10^−4 with 10, 1.0·10^−7 with 100 and 1.3·10^−8
/// with 1,000 ([`expected_false_suspicions_per_interval`]); starting at 2,
/// filling a window of 1,000 costs 0.10 false suspicions on average, at
/// 100 some 2·10^−5. The monitor's fixed timeout covers the wait.
pub const DEFAULT_MIN_INTERVALS: usize = 100;

/// The largest window: with intervals held to [`MAX_INTERVAL_NS`] the
/// window's sums, and what the variance is computed from, stay exact in
/// 128 bits (n·Σx² and (Σx)² are at most 2^126).
pub const MAX_WINDOW: usize = 1 << 15;

/// An interval longer than this (2^48 ns, some 78 hours) enters the window
/// as this; no heartbeat schedule comes near it.
pub const MAX_INTERVAL_NS: u64 = 1 << 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DetectorError {
    #[error("a φ detector's window holds 2 to {MAX_WINDOW} intervals, not {0}")]
    Window(usize),
    #[error("a φ detector models from 2 intervals up to its window's {window}, not {min_intervals}")]
    MinIntervals { min_intervals: usize, window: usize },
    #[error("a φ detector's floor on the standard deviation must be at least 1 ns")]
    NoStdDevFloor,
}

/// Suspects the peer once more than `timeout_ns` has passed since its
/// last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedTimeoutDetector {
    pub timeout_ns: u64,
    last_heartbeat_ns: Option<u64>,
}

impl FixedTimeoutDetector {
    pub fn new(timeout_ns: u64) -> Self {
        FixedTimeoutDetector {
            timeout_ns,
            last_heartbeat_ns: None,
        }
    }

    /// A heartbeat arrived at `now_ns` (the monitor's monotonic clock).
    pub fn heartbeat(&mut self, now_ns: u64) {
        self.last_heartbeat_ns = Some(now_ns);
    }

    /// Whether it suspects the peer at `now_ns`; never before the first
    /// heartbeat, which the monitor waits for on its own terms.
    pub fn suspects(&self, now_ns: u64) -> bool {
        self.last_heartbeat_ns
            .is_some_and(|last| now_ns.saturating_sub(last) > self.timeout_ns)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhiAccrualConfig {
    /// Intervals the model is taken from: the latest this many.
    pub window: usize,
    /// Intervals needed before there is a model, and φ above 0: at least
    /// 2, as a standard deviation needs two; at most `window`.
    pub min_intervals: usize,
    /// The model's standard deviation is never below this, ns (Akka's
    /// `min-std-deviation`): very regular heartbeats measure a σ of
    /// microseconds, and φ would then leap at the first late scheduling
    /// or short stall; at least 1.
    pub min_std_dev_ns: u64,
    /// Added to the model's mean, ns (Akka's `acceptable-heartbeat-pause`):
    /// silences this much longer than usual, a lost heartbeat or a pause,
    /// raise φ no more than an on-time heartbeat would; 0 is the paper's
    /// model.
    pub acceptable_pause_ns: u64,
}

impl PhiAccrualConfig {
    /// For heartbeats sent every `interval_ns`: a window of
    /// [`DEFAULT_WINDOW`], a model from [`DEFAULT_MIN_INTERVALS`] on, a
    /// floor of a tenth of the interval (Akka's 100 ms for its 1 s
    /// heartbeats), no acceptable pause.
    pub fn for_interval(interval_ns: u64) -> Self {
        PhiAccrualConfig {
            window: DEFAULT_WINDOW,
            min_intervals: DEFAULT_MIN_INTERVALS,
            min_std_dev_ns: (interval_ns / 10).max(1),
            acceptable_pause_ns: 0,
        }
    }
}

/// The normal model of the next heartbeat interval a φ detector holds:
/// the window's mean and sample standard deviation, the acceptable pause
/// added to the one and the floor applied to the other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalModel {
    pub mean_ns: f64,
    pub std_dev_ns: f64,
}

impl NormalModel {
    /// φ this long after the last heartbeat: −log10 of the chance the
    /// model gives the next one of coming later still.
    pub fn phi(&self, elapsed_ns: f64) -> f64 {
        -ln_normal_tail((elapsed_ns - self.mean_ns) / self.std_dev_ns) / LN_10
    }

    /// How long after the last heartbeat φ reaches `threshold`, ns: μ +
    /// σ·Q⁻¹(10^−threshold). φ is above the threshold at every later
    /// instant and at no earlier one (negative when the threshold is
    /// below φ at the heartbeat itself).
    pub fn detection_ns(&self, threshold: f64) -> f64 {
        self.mean_ns + self.std_dev_ns * z_with_ln_tail(-threshold * LN_10)
    }
}

/// The φ accrual detector: suspicion from a normal model of the latest
/// heartbeat intervals.
#[derive(Debug, Clone)]
pub struct PhiAccrualDetector {
    config: PhiAccrualConfig,
    intervals: VecDeque<u64>,
    /// Σx and Σx² over `intervals`, exact: no drift however long it runs.
    sum_ns: u128,
    sum_squares: u128,
    last_heartbeat_ns: Option<u64>,
}

impl PhiAccrualDetector {
    pub fn new(config: PhiAccrualConfig) -> Result<Self, DetectorError> {
        if !(2..=MAX_WINDOW).contains(&config.window) {
            return Err(DetectorError::Window(config.window));
        }
        if !(2..=config.window).contains(&config.min_intervals) {
            return Err(DetectorError::MinIntervals {
                min_intervals: config.min_intervals,
                window: config.window,
            });
        }
        if config.min_std_dev_ns == 0 {
            return Err(DetectorError::NoStdDevFloor);
        }
        Ok(PhiAccrualDetector {
            config,
            intervals: VecDeque::with_capacity(config.window),
            sum_ns: 0,
            sum_squares: 0,
            last_heartbeat_ns: None,
        })
    }

    /// A heartbeat arrived at `now_ns` (the monitor's monotonic clock; an
    /// earlier time than the last counts as an interval of 0).
    pub fn heartbeat(&mut self, now_ns: u64) {
        if let Some(last) = self.last_heartbeat_ns {
            if self.intervals.len() == self.config.window {
                let oldest = u128::from(self.intervals.pop_front().expect("a full window"));
                self.sum_ns -= oldest;
                self.sum_squares -= oldest * oldest;
            }
            let interval = now_ns.saturating_sub(last).min(MAX_INTERVAL_NS);
            self.intervals.push_back(interval);
            self.sum_ns += u128::from(interval);
            self.sum_squares += u128::from(interval) * u128::from(interval);
        }
        self.last_heartbeat_ns = Some(now_ns);
    }

    /// The model φ is computed from; `None` before `min_intervals`.
    pub fn model(&self) -> Option<NormalModel> {
        let n = self.intervals.len();
        if n < self.config.min_intervals {
            return None;
        }
        // n·Σx² − (Σx)² is n(n − 1) times the sample variance, exactly.
        let spread = n as u128 * self.sum_squares - self.sum_ns * self.sum_ns;
        let variance = spread as f64 / (n as f64 * (n - 1) as f64);
        Some(NormalModel {
            mean_ns: self.sum_ns as f64 / n as f64 + self.config.acceptable_pause_ns as f64,
            std_dev_ns: variance.sqrt().max(self.config.min_std_dev_ns as f64),
        })
    }

    /// The suspicion at `now_ns`. Without a model it is 0: the detector
    /// suspects no one it knows too little about. (Akka seeds its window
    /// with a guessed interval instead; the monitor runs a fixed timeout
    /// beside it, which covers a peer lost that early.)
    pub fn phi(&self, now_ns: u64) -> f64 {
        match (self.last_heartbeat_ns, self.model()) {
            (Some(last), Some(model)) => model.phi(now_ns.saturating_sub(last) as f64),
            _ => 0.0,
        }
    }

    pub fn suspects(&self, now_ns: u64, threshold: f64) -> bool {
        self.phi(now_ns) > threshold
    }
}

/// One detector setting's point on the trade-off between detection time
/// and false suspicions, from replaying a live peer's heartbeats that end
/// in its crash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeOffPoint {
    /// Intervals the detector was checked over: every one for a fixed
    /// timeout; for φ, all but the first `min_intervals` (before them it
    /// has no model).
    pub intervals_watched: u64,
    /// Of those, the ones during which it suspected the live peer.
    pub false_suspicions: u64,
    /// First heartbeat to last: how long the peer was alive, ns.
    pub alive_ns: u64,
    /// The crash after the last heartbeat is suspected at every instant
    /// more than this after it, ns; `None` for φ without a model.
    pub detection_ns: Option<f64>,
}

impl TradeOffPoint {
    pub fn false_suspicions_per_hour(&self) -> Option<f64> {
        (self.alive_ns > 0).then(|| self.false_suspicions as f64 * 3.6e12 / self.alive_ns as f64)
    }
}

/// The φ detector at each of `thresholds` over heartbeats arriving at
/// `arrivals_ns` (in order), one point per threshold in their order: each
/// interval checked just before its closing heartbeat is taken in.
pub fn phi_trade_off(
    arrivals_ns: &[u64],
    config: PhiAccrualConfig,
    thresholds: &[f64],
) -> Result<Vec<TradeOffPoint>, DetectorError> {
    let mut detector = PhiAccrualDetector::new(config)?;
    let mut watched = 0;
    let mut false_suspicions = vec![0; thresholds.len()];
    for &now in arrivals_ns {
        if detector.model().is_some() {
            watched += 1;
            let phi = detector.phi(now);
            for (count, &threshold) in false_suspicions.iter_mut().zip(thresholds) {
                *count += u64::from(phi > threshold);
            }
        }
        detector.heartbeat(now);
    }
    let model = detector.model();
    Ok(thresholds
        .iter()
        .zip(false_suspicions)
        .map(|(&threshold, false_suspicions)| TradeOffPoint {
            intervals_watched: watched,
            false_suspicions,
            alive_ns: alive_ns(arrivals_ns),
            detection_ns: model.map(|m| m.detection_ns(threshold)),
        })
        .collect())
}

/// A fixed timeout at each of `timeouts_ns` over heartbeats arriving at
/// `arrivals_ns` (in order), one point per timeout in their order.
pub fn fixed_timeout_trade_off(arrivals_ns: &[u64], timeouts_ns: &[u64]) -> Vec<TradeOffPoint> {
    timeouts_ns
        .iter()
        .map(|&timeout_ns| {
            let mut detector = FixedTimeoutDetector::new(timeout_ns);
            let mut false_suspicions = 0;
            for &now in arrivals_ns {
                false_suspicions += u64::from(detector.suspects(now));
                detector.heartbeat(now);
            }
            TradeOffPoint {
                intervals_watched: arrivals_ns.len().saturating_sub(1) as u64,
                false_suspicions,
                alive_ns: alive_ns(arrivals_ns),
                detection_ns: (!arrivals_ns.is_empty()).then_some(timeout_ns as f64),
            }
        })
        .collect()
}

fn alive_ns(arrivals_ns: &[u64]) -> u64 {
    match (arrivals_ns.first(), arrivals_ns.last()) {
        (Some(first), Some(last)) => last.saturating_sub(*first),
        _ => 0,
    }
}

/// The chance per interval that a φ detector at `threshold` falsely
/// suspects a live peer whose intervals are independent and normal, its
/// window full of `window` of them (NaN for a window under 2). The
/// interval X is independent of the window's mean m and sample deviation
/// s, so (X − m)/(s·√(1 + 1/W)) is Student's t with W − 1 degrees of
/// freedom and the chance X outlasts t_d = m + s·z is exactly P(T >
/// z/√(1 + 1/W)), z = Q⁻¹(10^−threshold): above 10^−threshold, more so
/// the smaller the window and the higher the threshold. Assumes no
/// acceptable pause and a floor below the intervals' spread; while the
/// window fills, the rate is this at the smaller window.
pub fn expected_false_suspicions_per_interval(threshold: f64, window: usize) -> f64 {
    if window < 2 {
        return f64::NAN;
    }
    let w = window as f64;
    let z = z_with_ln_tail(-threshold * LN_10);
    student_t_tail(z / (1.0 + 1.0 / w).sqrt(), w - 1.0)
}

/// Q(z) = P(Z > z) for a standard normal Z, to a relative error below
/// 1.2·10^−7; 0 once it underflows (beyond z ≈ 38), where φ is still
/// computed from its logarithm.
pub fn normal_tail(z: f64) -> f64 {
    ln_normal_tail(z).exp()
}

/// The z with Q(z) = `p`: +∞ for `p` ≤ 0, −∞ for `p` ≥ 1.
pub fn normal_tail_inverse(p: f64) -> f64 {
    z_with_ln_tail(p.ln())
}

/// ln Q(z). For z ≥ 0, Q(z) = erfc(z/√2)/2 with Numerical Recipes'
/// Chebyshev fit of erfc (`erfcc`: erfc(x) = t·exp(−x² + P(t)), t = 1/(1 +
/// x/2), fractional error below 1.2·10^−7 everywhere), kept in logarithms
/// so the far tail neither cancels nor underflows; below 0, Q(z) = 1 −
/// Q(−z).
fn ln_normal_tail(z: f64) -> f64 {
    if z < 0.0 {
        return (-ln_normal_tail(-z).exp()).ln_1p();
    }
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let p = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + p - LN_2
}

/// The z with ln Q(z) = `ln_p`, by bisection (Q is monotone): exact to
/// the last bit of z for [`ln_normal_tail`], at any depth of the tail.
fn z_with_ln_tail(ln_p: f64) -> f64 {
    if ln_p.is_nan() {
        return f64::NAN;
    }
    if ln_p >= 0.0 {
        return f64::NEG_INFINITY;
    }
    if ln_p == f64::NEG_INFINITY {
        return f64::INFINITY;
    }
    let (mut low, mut high) = (-1.0_f64, 1.0_f64);
    while ln_normal_tail(low) < ln_p {
        low *= 2.0;
    }
    while ln_normal_tail(high) > ln_p {
        high *= 2.0;
    }
    loop {
        let middle = 0.5 * (low + high);
        if middle <= low || middle >= high {
            return middle;
        }
        if ln_normal_tail(middle) > ln_p {
            low = middle;
        } else {
            high = middle;
        }
    }
}

/// P(T > t) for Student's t with `dof` degrees of freedom: half the
/// regularized incomplete beta function I_x(dof/2, 1/2) at x = dof/(dof +
/// t²), as Numerical Recipes' `betai` computes it.
fn student_t_tail(t: f64, dof: f64) -> f64 {
    if t < 0.0 {
        return 1.0 - student_t_tail(-t, dof);
    }
    let (a, b) = (dof / 2.0, 0.5);
    let x = dof / (dof + t * t);
    // 1 − x without the cancellation.
    let rest = t * t / (dof + t * t);
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * rest.ln()).exp();
    // The continued fraction converges fast below (a + 1)/(a + b + 2);
    // above, I_x(a, b) = 1 − I_{1−x}(b, a).
    let incomplete = if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, rest) / b
    };
    incomplete / 2.0
}

/// The continued fraction of the incomplete beta function, by the
/// modified Lentz method (Numerical Recipes' `betacf`); it takes some
/// √max(a, b) terms.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    let off_zero = |v: f64| if v.abs() < 1e-300 { 1e-300 } else { v };
    let (sum, above, below) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / off_zero(1.0 - sum * x / above);
    let mut h = d;
    for m in 1..=1000 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((below + 2.0 * m) * (a + 2.0 * m));
        d = 1.0 / off_zero(1.0 + even * d);
        c = off_zero(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (sum + m) * x / ((a + 2.0 * m) * (above + 2.0 * m));
        d = 1.0 / off_zero(1.0 + odd * d);
        c = off_zero(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x ≥ 1/2 (the t tail's arguments are): Lanczos'
/// approximation (g = 7, nine terms), to some 15 digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkemu::rng::Prng;

    const MS: u64 = 1_000_000;
    const START: u64 = 5_000_000_000_000;
    /// Q⁻¹(10^−8), tabulated.
    const Z_AT_PHI_8: f64 = 5.612_001_244_174_789;

    /// Uniform in [0, 1) from 53 random bits.
    fn uniform(rng: &mut Prng) -> f64 {
        let bits = u64::from(rng.next_u32()) << 21 | u64::from(rng.next_u32() >> 11);
        bits as f64 / (1u64 << 53) as f64
    }

    /// Heartbeat arrivals whose `intervals` intervals are independent and
    /// normal (Box–Muller): the loss-free, jittered path the φ model
    /// describes.
    fn normal_arrivals(seed: u64, intervals: usize, mean_ns: f64, std_dev_ns: f64) -> Vec<u64> {
        let rng = &mut Prng::new(seed);
        let mut now = START;
        let mut arrivals = vec![now];
        for _ in 0..intervals {
            let (u, v) = (1.0 - uniform(rng), uniform(rng));
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            now += (mean_ns + std_dev_ns * z).round().max(1.0) as u64;
            arrivals.push(now);
        }
        arrivals
    }

    fn detector_after(config: PhiAccrualConfig, arrivals: &[u64]) -> PhiAccrualDetector {
        let mut detector = PhiAccrualDetector::new(config).unwrap();
        for &now in arrivals {
            detector.heartbeat(now);
        }
        detector
    }

    fn assert_relative(got: f64, want: f64, tolerance: f64, what: &str) {
        let off = if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        };
        assert!(off <= tolerance, "{what}: {got:e}, want {want:e}");
    }

    #[test]
    fn the_normal_tail_matches_tabulated_values_deep_into_it() {
        // Q(z) = erfc(z/√2)/2 to 17 digits (mpmath).
        let table = [
            (-3.0, 0.998_650_101_968_369_9),
            (-1.0, 0.841_344_746_068_543),
            (0.0, 0.5),
            (0.5, 0.308_537_538_725_986_9),
            (1.0, 0.158_655_253_931_457_05),
            (2.0, 0.022_750_131_948_179_21),
            (3.0, 0.001_349_898_031_630_094_5),
            (5.0, 2.866_515_718_791_939e-7),
            (5.612, 1.000_007_191_783_612_4e-8),
            (6.0, 9.865_876_450_376_98e-10),
            (8.0, 6.220_960_574_271_784e-16),
            (10.0, 7.619_853_024_160_526e-24),
            (20.0, 2.753_624_118_606_233_7e-89),
            (37.0, 5.725_571_222_524_577e-300),
        ];
        for (z, q) in table {
            assert_relative(normal_tail(z), q, 1.2e-7, &format!("Q({z})"));
        }
        // Where Q underflows (3.7·10^−350 at z = 40) φ is still exact.
        let model = NormalModel {
            mean_ns: 0.0,
            std_dev_ns: 1.0,
        };
        assert_relative(model.phi(40.0), 349.437_006_459_345_84, 1e-9, "φ at z = 40");
        assert_relative(model.phi(0.0), std::f64::consts::LOG10_2, 1e-7, "φ at the mean");
    }

    #[test]
    fn the_inverse_tail_matches_tabulated_values() {
        let table = [
            (0.1, 1.281_551_565_544_600_5),
            (0.05, 1.644_853_626_951_472_7),
            (0.01, 2.326_347_874_040_841),
            (1e-3, 3.090_232_306_167_813_5),
            (1e-6, 4.753_424_308_822_899),
            (1e-8, Z_AT_PHI_8),
            (1e-12, 7.034_483_825_301_132),
            (1e-20, 9.262_340_089_798_408),
            (0.9, -1.281_551_565_544_600_5),
        ];
        for (p, z) in table {
            // Q's relative error of 1.2·10^−7 moves z by at most that over
            // z + 1/z: well under 10^−7.
            let got = normal_tail_inverse(p);
            assert!((got - z).abs() < 1e-7, "Q⁻¹({p:e}) = {got}, want {z}");
        }
        assert!(normal_tail_inverse(0.5).abs() < 1e-7);
        assert_eq!(normal_tail_inverse(0.0), f64::INFINITY);
        assert_eq!(normal_tail_inverse(1.0), f64::NEG_INFINITY);
        assert!(normal_tail_inverse(f64::NAN).is_nan());
    }

    #[test]
    fn detection_time_is_where_phi_reaches_the_threshold() {
        let model = NormalModel {
            mean_ns: 100e6,
            std_dev_ns: 10e6,
        };
        // Within Q⁻¹'s error of 10^−7 times σ.
        assert!((model.detection_ns(8.0) - (100e6 + 10e6 * Z_AT_PHI_8)).abs() < 1.0);
        for threshold in [0.5, 1.0, 3.0, 8.0, 12.0, 50.0, 300.0] {
            let t_d = model.detection_ns(threshold);
            assert!((model.phi(t_d) - threshold).abs() < 1e-9, "φ(t_d) at {threshold}");
            assert!(model.phi(t_d - 1.0) < threshold && model.phi(t_d + 1.0) > threshold);
        }
    }

    #[test]
    fn student_t_tail_matches_closed_forms_and_tabulated_values() {
        // One degree of freedom is Cauchy's, two have a closed form too.
        for t in [0.0, 0.5, 1.0, 3.0, 40.0] {
            let cauchy = 0.5 - f64::atan(t) / std::f64::consts::PI;
            assert_relative(student_t_tail(t, 1.0), cauchy, 1e-12, &format!("t = {t}, 1 dof"));
            let two = 0.5 - t / (2.0 * (2.0 + t * t).sqrt());
            assert_relative(student_t_tail(t, 2.0), two, 1e-12, &format!("t = {t}, 2 dof"));
        }
        // mpmath's regularized incomplete beta.
        let table = [
            (2.0, 10.0, 0.036_694_017_385_370_18),
            (0.3, 4.0, 0.389_560_714_138_729_86),
            (30.0, 5.0, 3.859_324_310_248_026e-7),
            (5.6, 999.0, 1.384_906_965_158_514_5e-8),
            (3.0, 16_383.0, 0.001_351_927_705_793_749_8),
        ];
        for (t, dof, tail) in table {
            assert_relative(
                student_t_tail(t, dof),
                tail,
                1e-10,
                &format!("t = {t}, {dof} dof"),
            );
        }
        assert_relative(
            student_t_tail(-2.0, 10.0),
            1.0 - 0.036_694_017_385_370_18,
            1e-12,
            "t < 0",
        );
    }

    #[test]
    fn an_estimated_model_suspects_more_often_than_its_threshold_says() {
        // P(T_{W−1} > Q⁻¹(10^−φ)/√(1 + 1/W)) from mpmath; the bound is Q's
        // error carried through Q⁻¹ and t's density.
        let table = [
            (1.0, 1000, 0.100_261_055_721_024_24),
            (2.0, 1000, 0.010_130_797_362_125_509),
            (3.0, 1000, 0.001_032_982_453_954_546_4),
            (8.0, 1000, 1.315_420_875_353_372_7e-8),
            (8.0, 100, 1.030_699_585_321_290_9e-7),
            (3.0, 30, 0.002_487_902_557_361_111),
            (8.0, 2, 0.068_394_554_037_807_11),
            (0.2, 1000, 0.630_859_240_915_789_5),
            (8.0, MAX_WINDOW, 1.008_568_311_730_069_1e-8),
        ];
        for (threshold, window, rate) in table {
            let got = expected_false_suspicions_per_interval(threshold, window);
            assert_relative(got, rate, 1e-6, &format!("φ = {threshold}, window {window}"));
        }
        assert!(expected_false_suspicions_per_interval(8.0, 1).is_nan());
    }

    /// The configuration of the statistical tests: the default window, a
    /// model only once it is full (so every interval checked has the same
    /// theory), and a floor well under the path's σ of 10 ms, so that the
    /// test sees the pure normal model (the default floor, a tenth of the
    /// interval, would sit right at that σ).
    fn full_window_config() -> PhiAccrualConfig {
        PhiAccrualConfig {
            min_intervals: DEFAULT_WINDOW,
            min_std_dev_ns: MS,
            ..PhiAccrualConfig::for_interval(100 * MS)
        }
    }

    /// The acceptance's first half. A million intervals, N(100 ms, 10 ms),
    /// no loss. Per interval the chance of a false suspicion at threshold φ
    /// is p = [`expected_false_suspicions_per_interval`] (10^−φ raised by
    /// the window's estimation: ×1.003, ×1.013, ×1.033 at φ = 1, 2, 3;
    /// ×1.32 at 8), and the count is compared with n·p within 4 binomial
    /// standard deviations, √(n·p(1 − p)): a rate off by 1.2 %, 4 % or
    /// 12 % at φ = 1, 2, 3 fails. Intervals share windows, but a long one
    /// also widens the σ its successors are judged by, and that wins: over
    /// 200 seeds the counts spread 0.62, 0.85 and 0.95 times as much as
    /// binomially, so the bound is at least 4 of their own deviations.
    ///
    /// At φ = 8 a million intervals are expected to hold 0.013 false
    /// suspicions: the count must be 0 or 1 (2 or more has chance 9·10^−5).
    /// That alone is weak: it rejects only rates above some 5·10^−6 (where
    /// 0 or 1 has under 5 % chance; 240 seeds, 240 million intervals, gave
    /// 5 against 3.2 expected). What holds φ = 8 to its theory is what the
    /// test checks besides: every interval is suspected exactly when it
    /// outlasts its model's t_d; Q is right to 1.2·10^−7 there; and the
    /// chance the true distribution gives each interval of outlasting its
    /// t_d, averaged over the run, is p within 10 % (over 200 seeds it
    /// averaged p to 0.1 % and spread 2.3 %), where 10^−8 is 24 % short.
    #[test]
    fn false_suspicions_on_a_normal_path_match_the_threshold_theory() {
        const INTERVALS: usize = 1_000_000;
        const MEAN_NS: f64 = 100e6;
        const STD_DEV_NS: f64 = 10e6;
        let arrivals = normal_arrivals(21, INTERVALS, MEAN_NS, STD_DEV_NS);
        let thresholds = [1.0, 2.0, 3.0, 8.0];
        let z = thresholds.map(|threshold: f64| normal_tail_inverse(10f64.powf(-threshold)));

        let mut detector = PhiAccrualDetector::new(full_window_config()).unwrap();
        let mut suspected = [0u64; 4];
        let mut chance_at_8 = 0.0;
        for pair in arrivals.windows(2) {
            let (last, now) = (pair[0], pair[1]);
            detector.heartbeat(last);
            let Some(model) = detector.model() else { continue };
            let (phi, elapsed) = (detector.phi(now), (now - last) as f64);
            for i in 0..thresholds.len() {
                let t_d = model.mean_ns + model.std_dev_ns * z[i];
                let suspects = phi > thresholds[i];
                assert!(
                    suspects == (elapsed > t_d) || (elapsed - t_d).abs() < 1e-3,
                    "φ {phi} at {elapsed} ns, t_d {t_d} ns"
                );
                suspected[i] += u64::from(suspects);
            }
            let t_d_8 = model.mean_ns + model.std_dev_ns * z[3];
            chance_at_8 += normal_tail((t_d_8 - MEAN_NS) / STD_DEV_NS);
        }

        let points = phi_trade_off(&arrivals, full_window_config(), &thresholds).unwrap();
        let n = (INTERVALS - DEFAULT_WINDOW) as u64;
        for (i, point) in points.iter().enumerate() {
            assert_eq!(
                point.false_suspicions, suspected[i],
                "the trade-off replays the detector"
            );
            assert_eq!(point.intervals_watched, n);
            assert_eq!(point.alive_ns, arrivals[INTERVALS] - arrivals[0]);
        }
        let n = n as f64;
        for (i, &threshold) in thresholds[..3].iter().enumerate() {
            let p = expected_false_suspicions_per_interval(threshold, DEFAULT_WINDOW);
            let (expected, bound) = (n * p, 4.0 * (n * p * (1.0 - p)).sqrt());
            let count = suspected[i] as f64;
            assert!(
                (count - expected).abs() <= bound,
                "φ = {threshold}: {count} false suspicions, expected {expected:.0} ± {bound:.0}"
            );
        }
        assert!(suspected[3] <= 1, "φ = 8: {} false suspicions", suspected[3]);
        let p_8 = expected_false_suspicions_per_interval(8.0, DEFAULT_WINDOW);
        assert_relative(chance_at_8 / n, p_8, 0.10, "φ = 8: the true chance per interval");
    }

    /// The acceptance's second half: the crash after the last heartbeat is
    /// suspected from t_d = μ + σ·Q⁻¹(10^−8) on, 156.12 ms for the true μ
    /// and σ. The detector knows them only from its window, so its t_d is
    /// off by m − μ + z(s − σ), of standard deviation σ·√(1/W + z²/(2(W −
    /// 1))) = 1.29 ms for W = 1,000 (over 200 seeds: 1.32 ms, their mean
    /// 0.03 ms above the theory); the test allows 4 of them, 5.2 ms.
    #[test]
    fn a_crash_is_detected_when_the_theory_says() {
        let arrivals = normal_arrivals(8, 2 * DEFAULT_WINDOW, 100e6, 10e6);
        let last = *arrivals.last().unwrap();
        let detector = detector_after(full_window_config(), &arrivals);

        // The first instant it suspects, by bisection on its own answer.
        let (mut quiet, mut suspected) = (last, last + 1_000 * MS);
        assert!(detector.suspects(suspected, 8.0));
        while suspected - quiet > 1 {
            let middle = quiet + (suspected - quiet) / 2;
            if detector.suspects(middle, 8.0) {
                suspected = middle;
            } else {
                quiet = middle;
            }
        }
        let detected_ns = (suspected - last) as f64;
        let t_d = detector.model().unwrap().detection_ns(8.0);
        assert!(
            detected_ns - 1.0 <= t_d && t_d < detected_ns,
            "the model's t_d {t_d} ns"
        );

        let theory = NormalModel {
            mean_ns: 100e6,
            std_dev_ns: 10e6,
        }
        .detection_ns(8.0);
        let w = DEFAULT_WINDOW as f64;
        let spread = 10e6 * (1.0 / w + Z_AT_PHI_8 * Z_AT_PHI_8 / (2.0 * (w - 1.0))).sqrt();
        assert!(
            (detected_ns - theory).abs() <= 4.0 * spread,
            "detected after {detected_ns} ns, theory {theory} ± {} ns",
            4.0 * spread
        );
        let point = phi_trade_off(&arrivals, full_window_config(), &[8.0]).unwrap()[0];
        assert_eq!(point.detection_ns, Some(t_d));
    }

    /// Normal intervals with 5 % of the heartbeats lost: gaps of two and
    /// three intervals among them.
    fn lossy_arrivals(seed: u64) -> Vec<u64> {
        let rng = &mut Prng::new(seed ^ 0x5eed);
        let mut arrivals = normal_arrivals(seed, 20_000, 100e6, 10e6);
        arrivals.retain(|_| rng.below(100) >= 5);
        arrivals
    }

    #[test]
    fn a_fixed_timeout_suspects_exactly_the_intervals_over_it() {
        let arrivals = lossy_arrivals(3);
        let timeouts = [120 * MS, 150 * MS, 199 * MS, 250 * MS, 600 * MS];
        let points = fixed_timeout_trade_off(&arrivals, &timeouts);
        let alive_ns = arrivals.last().unwrap() - arrivals[0];
        for (point, timeout) in points.iter().zip(timeouts) {
            let over = arrivals.windows(2).filter(|w| w[1] - w[0] > timeout).count() as u64;
            assert_eq!(point.false_suspicions, over, "timeout {timeout} ns");
            assert_eq!(point.intervals_watched, arrivals.len() as u64 - 1);
            assert_eq!(point.alive_ns, alive_ns);
            assert_eq!(point.detection_ns, Some(timeout as f64));
            let per_hour = over as f64 / (alive_ns as f64 / 3.6e12);
            assert_relative(
                point.false_suspicions_per_hour().unwrap(),
                per_hour,
                1e-12,
                "per hour",
            );
        }
        assert!(points[1].false_suspicions > points[2].false_suspicions);
        assert!(points[2].false_suspicions > 0 && points[4].false_suspicions == 0);

        // An interval exactly as long as the timeout is not over it.
        let even = [0, 100 * MS, 250 * MS, 400 * MS];
        let points = fixed_timeout_trade_off(&even, &[150 * MS, 150 * MS - 1]);
        assert_eq!(
            points.iter().map(|p| p.false_suspicions).collect::<Vec<_>>(),
            [0, 2]
        );
        let mut detector = FixedTimeoutDetector::new(150 * MS);
        assert!(
            !detector.suspects(u64::MAX),
            "no suspicion before a first heartbeat"
        );
        detector.heartbeat(START);
        assert!(!detector.suspects(START + 150 * MS) && detector.suspects(START + 150 * MS + 1));
    }

    #[test]
    fn on_loss_the_trade_off_runs_from_fast_and_wrong_to_slow_and_right() {
        let arrivals = lossy_arrivals(4);
        let config = PhiAccrualConfig {
            min_std_dev_ns: MS,
            ..PhiAccrualConfig::for_interval(100 * MS)
        };
        let points = phi_trade_off(&arrivals, config, &[1.0, 3.0, 8.0, 16.0]).unwrap();
        for pair in points.windows(2) {
            assert!(pair[0].false_suspicions >= pair[1].false_suspicions);
            assert!(pair[0].detection_ns < pair[1].detection_ns);
        }
        assert_eq!(
            points[0].intervals_watched,
            (arrivals.len() - 1 - DEFAULT_MIN_INTERVALS) as u64
        );
        // Lost heartbeats widen σ until a single loss is no longer
        // suspected at high thresholds.
        assert!(points[0].false_suspicions > 100);
        assert!(points[3].detection_ns.unwrap() > 200e6);
    }

    #[test]
    fn phi_is_zero_until_the_model_has_its_intervals() {
        let config = PhiAccrualConfig {
            min_intervals: 2,
            ..PhiAccrualConfig::for_interval(100 * MS)
        };
        let mut detector = PhiAccrualDetector::new(config).unwrap();
        let never = |d: &PhiAccrualDetector| d.model().is_none() && d.phi(u64::MAX) == 0.0;
        assert!(never(&detector));
        detector.heartbeat(START);
        assert!(never(&detector), "one heartbeat, no interval");
        detector.heartbeat(START + 100 * MS);
        assert!(never(&detector), "one interval has no deviation");
        detector.heartbeat(START + 200 * MS);
        assert!(
            detector.suspects(START + 10_000 * MS, 8.0),
            "two intervals make a model"
        );

        let defaults = detector_after(
            PhiAccrualConfig::for_interval(100 * MS),
            &normal_arrivals(5, 99, 100e6, 10e6),
        );
        assert!(never(&defaults), "{DEFAULT_MIN_INTERVALS} intervals by default");
    }

    #[test]
    fn identical_intervals_are_judged_by_the_floor() {
        let config = PhiAccrualConfig::for_interval(100 * MS);
        let arrivals: Vec<u64> = (0..200).map(|i| START + i * 100 * MS).collect();
        let model = detector_after(config, &arrivals).model().unwrap();
        assert_eq!(
            model,
            NormalModel {
                mean_ns: 100e6,
                std_dev_ns: 10e6
            }
        );
        assert!((model.detection_ns(8.0) - (100e6 + 10e6 * Z_AT_PHI_8)).abs() < 1.0);
    }

    #[test]
    fn the_window_keeps_the_latest_intervals_and_the_pause_adds_to_their_mean() {
        let config = PhiAccrualConfig {
            window: 3,
            min_intervals: 3,
            min_std_dev_ns: 1,
            acceptable_pause_ns: 0,
        };
        let arrivals = [
            START,
            START + 50 * MS,
            START + 60 * MS,
            START + 80 * MS,
            START + 110 * MS,
        ];
        let detector = detector_after(config, &arrivals);
        // 10, 20 and 30 ms: the 50 ms interval left the window.
        assert_eq!(
            detector.model(),
            Some(NormalModel {
                mean_ns: 20e6,
                std_dev_ns: 10e6
            })
        );

        let pause = 300 * MS;
        let paused = detector_after(
            PhiAccrualConfig {
                acceptable_pause_ns: pause,
                ..config
            },
            &arrivals,
        );
        let model = paused.model().unwrap();
        assert_eq!(model.mean_ns, 320e6);
        let shift = model.detection_ns(8.0) - detector.model().unwrap().detection_ns(8.0);
        assert!((shift - pause as f64).abs() < 1e-6);
        assert_eq!(
            paused.phi(START + 110 * MS + pause + 20 * MS),
            detector.phi(START + 130 * MS)
        );
    }

    #[test]
    fn the_longest_intervals_are_held_at_the_cap() {
        let config = PhiAccrualConfig {
            window: MAX_WINDOW,
            min_intervals: 2,
            ..PhiAccrualConfig::for_interval(100 * MS)
        };
        let mut detector = detector_after(config, &[0, 0, u64::MAX]);
        let model = detector.model().unwrap();
        assert_eq!(model.mean_ns, MAX_INTERVAL_NS as f64 / 2.0);
        // A clock read backwards is an interval of 0, not a wrap.
        detector.heartbeat(0);
        assert_eq!(detector.model().unwrap().mean_ns, MAX_INTERVAL_NS as f64 / 3.0);
    }

    #[test]
    fn a_window_floor_or_minimum_out_of_range_is_refused() {
        let ok = PhiAccrualConfig::for_interval(100 * MS);
        let refused = |config| PhiAccrualDetector::new(config).unwrap_err();
        assert_eq!(
            refused(PhiAccrualConfig { window: 1, ..ok }),
            DetectorError::Window(1)
        );
        assert_eq!(
            refused(PhiAccrualConfig {
                window: MAX_WINDOW + 1,
                ..ok
            }),
            DetectorError::Window(MAX_WINDOW + 1)
        );
        assert_eq!(
            refused(PhiAccrualConfig { window: 50, ..ok }),
            DetectorError::MinIntervals {
                min_intervals: DEFAULT_MIN_INTERVALS,
                window: 50
            }
        );
        assert_eq!(
            refused(PhiAccrualConfig {
                min_intervals: 1,
                ..ok
            }),
            DetectorError::MinIntervals {
                min_intervals: 1,
                window: DEFAULT_WINDOW
            }
        );
        assert_eq!(
            refused(PhiAccrualConfig {
                min_std_dev_ns: 0,
                ..ok
            }),
            DetectorError::NoStdDevFloor
        );
        assert_eq!(PhiAccrualConfig::for_interval(5).min_std_dev_ns, 1);
        assert!(phi_trade_off(&[], PhiAccrualConfig { window: 0, ..ok }, &[8.0]).is_err());

        let empty = phi_trade_off(&[], ok, &[8.0]).unwrap()[0];
        assert_eq!((empty.intervals_watched, empty.detection_ns), (0, None));
        assert_eq!(empty.false_suspicions_per_hour(), None);
        assert_eq!(fixed_timeout_trade_off(&[], &[MS])[0].detection_ns, None);
    }
}
