//! The statistics behind `transbench compare`: a candidate's trials
//! against a baseline's, per metric. Effects are log ratios (so 2 % faster
//! and 2 % slower weigh the same), estimated by the median, with a seeded
//! bootstrap interval and a rank test; verdicts need both.

use linkemu::rng::Prng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples, and the seed that makes every comparison
/// reproducible.
pub const RESAMPLES: u32 = 10_000;
pub const SEED: u64 = 0x7472_616e_7362_656e;
/// Significance level of each one-sided family (worse, better), after
/// Holm's correction.
pub const ALPHA: f64 = 0.05;
/// The power a minimum detectable effect is quoted at.
pub const POWER: f64 = 0.8;

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Regression,
    Improvement,
    Same,
    Inconclusive,
    /// The rank test cannot reach significance with these trial counts in
    /// this family, whatever the values: no change could be called.
    TooFewTrials,
    /// Printed for information, outside the family the user gates on.
    NotGated,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Regression => "REGRESSION",
            Verdict::Improvement => "IMPROVEMENT",
            Verdict::Same => "SAME",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::TooFewTrials => "TOO FEW TRIALS",
            Verdict::NotGated => "not gated",
        })
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn ln_all(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.ln()).collect()
}

/// The effect in log units: median(ln cand) - median(ln base), or, for
/// trials paired (interleaved partners), the median of ln(cand_i / base_i). Values must
/// be positive.
pub fn effect(base: &[f64], cand: &[f64], paired: bool) -> f64 {
    if paired {
        let d: Vec<f64> = base.iter().zip(cand).map(|(b, c)| (c / b).ln()).collect();
        median(&d)
    } else {
        median(&ln_all(cand)) - median(&ln_all(base))
    }
}

/// A bootstrap interval of [`effect`] at `level` (0.95, 0.90): each side
/// resampled with replacement (pairs together when paired), read at
/// Hesterberg's expanded percentiles, which widen the plain percentile
/// interval by sqrt(n / (n - 1)) t(n - 1) / z so that it keeps its
/// coverage with the few trials a benchmark has (the plain one covers
/// too seldom below about 20).
pub fn bootstrap_ci(
    base: &[f64],
    cand: &[f64],
    paired: bool,
    level: f64,
    resamples: u32,
    seed: u64,
) -> (f64, f64) {
    let mut rng = Prng::new(seed);
    let (lb, lc) = (ln_all(base), ln_all(cand));
    let mut draw = |from: &[f64], into: &mut Vec<f64>| {
        into.clear();
        for _ in 0..from.len() {
            into.push(from[rng.below(from.len() as u32) as usize]);
        }
    };
    let mut stats = Vec::with_capacity(resamples as usize);
    let (mut b, mut c) = (Vec::new(), Vec::new());
    let d: Vec<f64> = lb.iter().zip(&lc).map(|(b, c)| c - b).collect();
    for _ in 0..resamples {
        if paired {
            draw(&d, &mut b);
            stats.push(median(&b));
        } else {
            draw(&lb, &mut b);
            draw(&lc, &mut c);
            stats.push(median(&c) - median(&b));
        }
    }
    stats.sort_by(f64::total_cmp);
    let n = base.len().min(cand.len()).max(2) as f64;
    let tail = (1.0 - level) / 2.0;
    let expanded = (n / (n - 1.0)).sqrt() * student_t_quantile(1.0 - tail, n - 1.0);
    let q = normal_sf(expanded);
    let at = |q: f64| stats[((q * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    (at(q), at(1.0 - q))
}

/// Student's t quantile by its Cornish-Fisher expansion in 1/df (within
/// 0.5 % from 4 degrees of freedom, 3 % at 2).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let z = normal_quantile(p);
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

/// Average ranks (1-based) of `v`, ties sharing theirs; and the tie
/// correction term sum(t^3 - t).
fn ranks(v: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    (r, ties)
}

/// Standard normal upper tail, P(Z > z) (Abramowitz-Stegun 7.1.26 via
/// erfc; |error| < 1.5e-7).
fn normal_sf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// The standard normal quantile (Acklam's rational approximation).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.696_830_286_653_76,
        220.946_098_424_520_5,
        -275.928_510_446_968_7,
        138.357_751_867_269,
        -30.664_798_066_147_16,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -54.476_098_798_224_06,
        161.585_836_858_040_9,
        -155.698_979_859_886_6,
        66.801_311_887_719_72,
        -13.280_681_552_885_72,
    ];
    const C: [f64; 6] = [
        -0.007_784_894_002_430_293,
        -0.322_396_458_041_136_5,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        0.007_784_695_709_041_462,
        0.322_467_129_070_039_8,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// One-sided p-values of a rank test: of the candidate's values lying
/// higher than the base's, and of their lying lower. `compare` gates on
/// one side (a regression is "worse", one direction) and reports the
/// other as an improvement, each its own family (see docs/compare.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tails {
    pub higher: f64,
    pub lower: f64,
}

impl Tails {
    const NONE: Tails = Tails {
        higher: 1.0,
        lower: 1.0,
    };

    /// (p of worse, p of better) for a metric whose `better` is given.
    pub fn worse_better(self, better: Better) -> (f64, f64) {
        match better {
            Better::Lower => (self.higher, self.lower),
            Better::Higher => (self.lower, self.higher),
        }
    }

    /// From an exact distribution of a statistic (counts by value) and
    /// the observed value.
    fn exact(counts: &[f64], observed: usize) -> Tails {
        let total: f64 = counts.iter().sum();
        Tails {
            higher: counts[observed..].iter().sum::<f64>() / total,
            lower: counts[..=observed].iter().sum::<f64>() / total,
        }
    }

    /// By the normal approximation with a continuity correction.
    fn normal(observed: f64, mean: f64, var: f64) -> Tails {
        if var <= 0.0 {
            return Tails::NONE;
        }
        let sd = var.sqrt();
        Tails {
            higher: normal_sf((observed - mean - 0.5) / sd).min(1.0),
            lower: normal_sf((mean - observed - 0.5) / sd).min(1.0),
        }
    }
}

/// The rank test a comparison uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankTest {
    /// Wilcoxon signed-rank on the log ratios of paired trials.
    SignedRank,
    /// Mann-Whitney U (Wilcoxon rank-sum) of the two sides.
    RankSum,
}

impl RankTest {
    /// For trials paired by interleaving, the signed-rank test when it can
    /// reach significance in a family of `family` at all, else the
    /// rank-sum test (valid for interleaved trials too, and with far more
    /// arrangements: its smallest p at 5 v 5 is 1/252 against 1/32).
    /// Chosen from the counts alone, never from the values.
    pub fn choose(paired: bool, n1: usize, n2: usize, family: usize) -> RankTest {
        if paired && reachable(smallest_p(RankTest::SignedRank, n1, n2), family) {
            RankTest::SignedRank
        } else {
            RankTest::RankSum
        }
    }

    /// Its one-sided p-values; `base` and `cand` pair by index for
    /// the signed-rank test. Values must be positive.
    pub fn tails(self, base: &[f64], cand: &[f64]) -> Tails {
        match self {
            RankTest::SignedRank => {
                let d: Vec<f64> = base.iter().zip(cand).map(|(b, c)| (c / b).ln()).collect();
                signed_rank(&d)
            }
            RankTest::RankSum => rank_sum(base, cand),
        }
    }
}

/// The smallest one-sided p `test` can give with these trial counts: one
/// arrangement of all that are equally likely under no change, 1 / 2^n
/// for n pairs, 1 / C(n1 + n2, n1) unpaired.
pub fn smallest_p(test: RankTest, n1: usize, n2: usize) -> f64 {
    match test {
        RankTest::SignedRank => 0.5f64.powi(n1.min(n2) as i32),
        RankTest::RankSum => (1..=n1.min(n2)).fold(1.0, |p, k| p * k as f64 / (n1.max(n2) + k) as f64),
    }
}

/// Whether a p-value of `p` survives Holm's first step in a family of
/// `family`: the least any result in it needs.
pub fn reachable(p: f64, family: usize) -> bool {
    p * (family.max(1) as f64) < ALPHA
}

/// Mann-Whitney U of `cand` against `base`: exact (U counted over every
/// arrangement) without ties for up to 50 trials a side; otherwise the
/// normal approximation with tie and continuity corrections.
pub fn rank_sum(base: &[f64], cand: &[f64]) -> Tails {
    let (n1, n2) = (base.len(), cand.len());
    if n1 == 0 || n2 == 0 {
        return Tails::NONE;
    }
    let all: Vec<f64> = cand.iter().chain(base).copied().collect();
    let (r, ties) = ranks(&all);
    // U of the candidate: how many (cand, base) pairs the candidate wins.
    let u = r[..n2].iter().sum::<f64>() - (n2 * (n2 + 1)) as f64 / 2.0;
    if ties == 0.0 && n1 <= 50 && n2 <= 50 {
        return Tails::exact(&u_distribution(n2, n1), u.round() as usize);
    }
    let n = (n1 + n2) as f64;
    let var = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    Tails::normal(u, (n1 * n2) as f64 / 2.0, var)
}

/// Counts of each U from 0 to n1 n2 over all arrangements of two samples
/// without ties.
fn u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    // f[m][u] for samples (m, n) built up n by n: f(m, n, u) = f(m-1, n, u-n) + f(m, n-1, u).
    let max = n1 * n2;
    let mut prev: Vec<Vec<f64>> = (0..=n1).map(|_| vec![0.0; max + 1]).collect();
    for row in prev.iter_mut() {
        row[0] = 1.0; // n = 0: one arrangement, U = 0
    }
    for n in 1..=n2 {
        let mut cur: Vec<Vec<f64>> = (0..=n1).map(|_| vec![0.0; max + 1]).collect();
        cur[0][0] = 1.0;
        for m in 1..=n1 {
            for u in 0..=m * n {
                let with_a_last = if u >= n { cur[m - 1][u - n] } else { 0.0 };
                cur[m][u] = with_a_last + prev[m][u];
            }
        }
        prev = cur;
    }
    prev.swap_remove(n1)
}

/// Wilcoxon signed-rank test of paired differences (cand - base; zeros
/// dropped). Exact without ties for up to 30 pairs; otherwise normal.
pub fn signed_rank(d: &[f64]) -> Tails {
    let d: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let n = d.len();
    if n == 0 {
        return Tails::NONE;
    }
    let abs: Vec<f64> = d.iter().map(|x| x.abs()).collect();
    let (r, ties) = ranks(&abs);
    let w: f64 = r.iter().zip(&d).filter(|(_, x)| **x > 0.0).map(|(r, _)| r).sum();
    let max = n * (n + 1) / 2;
    if ties == 0.0 && n <= 30 {
        // Subsets of ranks 1..n by their sum.
        let mut count = vec![0.0f64; max + 1];
        count[0] = 1.0;
        for k in 1..=n {
            for s in (k..=max).rev() {
                count[s] += count[s - k];
            }
        }
        return Tails::exact(&count, w.round() as usize);
    }
    let nf = n as f64;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - ties / 48.0;
    Tails::normal(w, nf * (nf + 1.0) / 4.0, var)
}

/// Two-sided pooled two-proportion z test: is `x1` of `n1` the same rate
/// as `x2` of `n2`? 1 when either sample is empty or both rates are 0 or 1.
pub fn two_proportion_p(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    two_proportion_p_inflated((x1, n1, 1.0), (x2, n2, 1.0))
}

/// As [`two_proportion_p`], for events that come in bursts: each side's
/// (count, trials, variance inflation), the inflation being how much more
/// its rate varies than independent trials would (see
/// [`variance_inflation`]).
pub fn two_proportion_p_inflated(a: (u64, u64, f64), b: (u64, u64, f64)) -> f64 {
    let ((x1, n1, f1), (x2, n2, f2)) = (a, b);
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let var = pooled * (1.0 - pooled) * (f1.max(1.0) / n1f + f2.max(1.0) / n2f);
    if var <= 0.0 {
        return 1.0;
    }
    let z = (x1 as f64 / n1f - x2 as f64 / n2f).abs() / var.sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

/// How much more the mean of a 0/1 series varies than if its values were
/// independent, by batch means: the variance of the means of `batches`
/// consecutive batches, over what independent values would give. At least
/// 1; 1 for a series too short to batch or without events.
pub fn variance_inflation(series: &[f64], batches: usize) -> f64 {
    let len = series.len() / batches.max(1);
    if batches < 2 || len == 0 {
        return 1.0;
    }
    let means: Vec<f64> = series
        .chunks_exact(len)
        .take(batches)
        .map(|c| c.iter().sum::<f64>() / len as f64)
        .collect();
    let mean = means.iter().sum::<f64>() / batches as f64;
    let p = mean.clamp(0.0, 1.0);
    if p == 0.0 || p == 1.0 {
        return 1.0;
    }
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
    (var / (p * (1.0 - p) / len as f64)).max(1.0)
}

/// Two-sample Kolmogorov-Smirnov test with a tolerance: the largest
/// vertical gap D between the empirical CDFs that is left once either
/// sample may be shifted by up to `tolerance` (0: the classic D), and its
/// two-sided p from Kolmogorov's distribution with Stephens' small-sample
/// correction. Samples that differ by a shift within the tolerance have
/// D = 0, so the test only sees differences beyond it; conservative when
/// values tie, as counts do. `(0, 1)` when either sample is empty.
pub fn ks_two_sample(a: &[f64], b: &[f64], tolerance: f64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    let cdf = |v: &[f64], x: f64| v.partition_point(|&y| y <= x) as f64 / v.len() as f64;
    // sup over x of F_b(x - t) - F_a(x), reached where F_b steps: x = b_j + t.
    let one_sided = |a: &[f64], b: &[f64]| {
        b.iter()
            .map(|&y| cdf(b, y) - cdf(a, y + tolerance))
            .fold(0.0, f64::max)
    };
    let d = one_sided(&a, &b).max(one_sided(&b, &a));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let ne = na * nb / (na + nb);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    (d, kolmogorov_sf(lambda))
}

/// P(K > lambda) for Kolmogorov's distribution.
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let sum: f64 = (1..=100)
        .map(|k| {
            let k = k as f64;
            let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
            sign * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Holm's step-down adjustment: each p-value multiplied by the number of
/// hypotheses not yet rejected, kept monotone, capped at 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// A robust spread of log values: 1.4826 x the median absolute deviation
/// (the standard deviation for normal noise).
pub fn log_spread(v: &[f64]) -> f64 {
    let l = ln_all(v);
    let m = median(&l);
    let dev: Vec<f64> = l.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&dev)
}

/// Half the width of the effect's interval expected with n1 and n2
/// trials at spread `sigma` (log units) for a quantile `z`: the median's
/// standard error is sqrt(pi/2) sigma / sqrt(n).
fn half_width(sigma: f64, n1: f64, n2: f64, z: f64) -> f64 {
    z * (std::f64::consts::PI / 2.0).sqrt() * sigma * (1.0 / n1 + 1.0 / n2).sqrt()
}

/// The quantile the 95 % interval is read at, as `bootstrap_ci` widens
/// it for n trials.
fn interval_quantile(n: f64) -> f64 {
    let n = n.max(2.0);
    (n / (n - 1.0)).sqrt() * student_t_quantile(0.975, n - 1.0)
}

/// The smallest change (log units) that `compare`'s rule would call with
/// `POWER`, for n1 and n2 trials at spread `sigma`, a band of `band`, in
/// a gated family of `family` rows: the interval must clear the band and
/// the rank test survive Holm. `None` when the rank test cannot reach
/// significance with these counts at all. An approximation (normal
/// theory for both); docs/compare.md has the measured power.
pub fn detectable_change(
    sigma: f64,
    n1: usize,
    n2: usize,
    band: f64,
    test: RankTest,
    family: usize,
) -> Option<f64> {
    if !reachable(smallest_p(test, n1, n2), family) {
        return None;
    }
    let rank = normal_quantile(1.0 - ALPHA / family.max(1) as f64);
    let z = interval_quantile(n1.min(n2) as f64).max(rank) + normal_quantile(POWER);
    Some(band + half_width(sigma, n1 as f64, n2 as f64, z))
}

/// Trials per side that would likely turn an inconclusive comparison into
/// a verdict: enough for the interval to clear the band's edge by the
/// distance the estimate now lies from it. `None` past 1,000.
pub fn trials_to_decide(effect: f64, band: f64, sigma: f64) -> Option<u32> {
    let distance = (effect.abs() - band).abs();
    if sigma == 0.0 {
        return Some(2);
    }
    if distance < 1e-12 {
        return None;
    }
    let n = (2..=1000u32)
        .find(|&n| half_width(sigma, n as f64, n as f64, interval_quantile(n as f64)) <= distance)?;
    Some(n)
}

/// The fewest trials a side for which `test` can reach significance at
/// all in a family of `family`.
pub fn trials_for_rank_test(test: RankTest, family: usize) -> u32 {
    (2..=1000u32)
        .find(|&n| reachable(smallest_p(test, n as usize, n as usize), family))
        .unwrap_or(1000)
}

/// The A/A noise of a run: how far apart the medians of two random halves
/// of its trials fall (95th percentile of |difference| over seeded
/// splits), in log units. Needs 6 trials: halves of fewer say more about
/// chance than about the run.
pub fn aa_noise(v: &[f64], seed: u64) -> Option<f64> {
    if v.len() < 6 {
        return None;
    }
    let l = ln_all(v);
    let mut rng = Prng::new(seed);
    let mut diffs = Vec::with_capacity(500);
    let mut idx: Vec<usize> = (0..l.len()).collect();
    for _ in 0..500 {
        for i in (1..idx.len()).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            idx.swap(i, j);
        }
        let half = idx.len() / 2;
        let a: Vec<f64> = idx[..half].iter().map(|&i| l[i]).collect();
        let b: Vec<f64> = idx[half..2 * half].iter().map(|&i| l[i]).collect();
        diffs.push((median(&a) - median(&b)).abs());
    }
    diffs.sort_by(f64::total_cmp);
    Some(diffs[(diffs.len() * 95) / 100])
}

/// A metric's noise band in log units: its floor (a fraction), raised to
/// the A/A noise each run shows of itself when both have the trials to
/// show it.
pub fn noise_band(floor: f64, base: &[f64], cand: &[f64]) -> f64 {
    let floor = (1.0 + floor).ln();
    match (aa_noise(base, SEED), aa_noise(cand, SEED)) {
        (Some(a), Some(b)) => floor.max(a).max(b),
        _ => floor,
    }
}

/// The verdict from the effect's 95 % interval (`wide`) and its 90 %
/// interval (`narrow`), in log units; the band (log units, symmetric); the
/// Holm-adjusted one-sided p-values of a change for the worse and for the
/// better; and the metric's direction. A change is a regression
/// (improvement) when the whole 95 % interval lies beyond the band on the
/// worse (better) side and the rank test for that side agrees; the same
/// when the 90 % interval lies inside the band (two one-sided tests at
/// 5 %).
pub fn verdict(wide: (f64, f64), narrow: (f64, f64), band: f64, p: (f64, f64), better: Better) -> Verdict {
    // Worse is up for lower-is-better metrics; flip the others.
    let flip = |(lo, hi): (f64, f64)| match better {
        Better::Lower => (lo, hi),
        Better::Higher => (-hi, -lo),
    };
    let ((lo, hi), (nlo, nhi)) = (flip(wide), flip(narrow));
    let (worse, better) = p;
    if lo > band && worse < ALPHA {
        Verdict::Regression
    } else if hi < -band && better < ALPHA {
        Verdict::Improvement
    } else if nlo >= -band && nhi <= band {
        Verdict::Same
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded normal noise (Box-Muller on linkemu's PRNG).
    fn noisy(n: usize, center: f64, rel_sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = Prng::new(seed);
        let mut u = || (rng.next_u32() as f64 + 0.5) / 4_294_967_296.0;
        (0..n)
            .map(|_| {
                let z = (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
                center * (rel_sd * z).exp()
            })
            .collect()
    }

    struct Outcome {
        verdict: Verdict,
        ci: (f64, f64),
    }

    /// One metric of one cell, as `compare` does it: the band from the
    /// floor and both runs' A/A noise.
    fn compare(base: &[f64], cand: &[f64], floor: f64, better: Better) -> Outcome {
        let ci = bootstrap_ci(base, cand, false, 0.95, RESAMPLES, SEED);
        let narrow = bootstrap_ci(base, cand, false, 0.90, RESAMPLES, SEED);
        let p = rank_sum(base, cand).worse_better(better);
        Outcome {
            verdict: verdict(ci, narrow, noise_band(floor, base, cand), p, better),
            ci,
        }
    }

    #[test]
    fn identical_samples_are_the_same() {
        let a = noisy(10, 100.0, 0.03, 1);
        let o = compare(&a, &a, 0.02, Better::Lower);
        assert_eq!(o.verdict, Verdict::Same, "{:?}", o.ci);
        // Paired by seed, identical trials differ by nothing at all.
        let ci = bootstrap_ci(&a, &a, true, 0.95, RESAMPLES, SEED);
        assert_eq!(ci, (0.0, 0.0));
        assert_eq!(signed_rank(&[0.0; 10]), Tails::NONE);
        assert_eq!(
            verdict(ci, ci, (1.02f64).ln(), (1.0, 1.0), Better::Lower),
            Verdict::Same
        );
    }

    #[test]
    fn expanded_intervals_widen_most_for_few_trials() {
        assert!((student_t_quantile(0.975, 4.0) - 2.776).abs() < 0.01);
        assert!((student_t_quantile(0.975, 9.0) - 2.262).abs() < 0.005);
        assert!((student_t_quantile(0.95, 19.0) - 1.729).abs() < 0.005);
        let width = |n: usize| {
            let (lo, hi) = bootstrap_ci(
                &noisy(n, 100.0, 0.05, 11),
                &noisy(n, 100.0, 0.05, 12),
                false,
                0.95,
                RESAMPLES,
                SEED,
            );
            (hi - lo) * (n as f64).sqrt()
        };
        // Scaled by sqrt(n), the interval of 5 trials is the widest.
        assert!(width(5) > width(40), "{} {}", width(5), width(40));
    }

    #[test]
    fn a_20_percent_shift_in_3_percent_noise_is_found_either_way() {
        let base = noisy(10, 100.0, 0.03, 2);
        let slower = noisy(10, 120.0, 0.03, 3);
        assert_eq!(
            compare(&base, &slower, 0.02, Better::Lower).verdict,
            Verdict::Regression
        );
        assert_eq!(
            compare(&base, &slower, 0.02, Better::Higher).verdict,
            Verdict::Improvement
        );
        assert_eq!(
            compare(&slower, &base, 0.02, Better::Lower).verdict,
            Verdict::Improvement
        );
    }

    #[test]
    fn a_2_percent_shift_in_5_percent_noise_with_5_trials_is_never_a_regression() {
        let mut inconclusive = 0;
        for seed in 0..100 {
            let base = noisy(5, 100.0, 0.05, 1000 + seed);
            let cand = noisy(5, 102.0, 0.05, 2000 + seed);
            let v = compare(&base, &cand, 0.02, Better::Lower).verdict;
            assert_ne!(v, Verdict::Regression, "seed {seed}");
            inconclusive += (v == Verdict::Inconclusive) as u32;
        }
        assert!(inconclusive >= 90, "{inconclusive} of 100 inconclusive");
    }

    #[test]
    fn one_outlier_trial_does_not_flip_a_verdict() {
        // Over many cases: making one candidate trial 4x slower (or 40 %
        // faster) leaves the verdict as it was.
        let mut flipped = Vec::new();
        let mut verdicts = std::collections::BTreeSet::new();
        for seed in 0..40u64 {
            let base = noisy(10, 100.0, 0.03, 100 + seed);
            let shift = [1.0, 1.25][seed as usize % 2];
            let cand = noisy(10, 100.0 * shift, 0.03, 200 + seed);
            let before = compare(&base, &cand, 0.02, Better::Lower).verdict;
            verdicts.insert(before);
            for (at, factor) in [(3, 4.0), (7, 0.6)] {
                let mut odd = cand.clone();
                odd[at] *= factor;
                let after = compare(&base, &odd, 0.02, Better::Lower).verdict;
                if after != before {
                    flipped.push((seed, factor, before, after));
                }
            }
        }
        // Never into or out of a regression; a case on the band's edge may
        // move between SAME and INCONCLUSIVE, as any other trial's change
        // could move it.
        assert!(
            flipped
                .iter()
                .all(|f| f.2 != Verdict::Regression && f.3 != Verdict::Regression),
            "{flipped:?}"
        );
        assert!(flipped.len() <= 8, "{} of 80 moved: {flipped:?}", flipped.len());
        assert!(
            verdicts.contains(&Verdict::Regression) && verdicts.len() >= 2,
            "{verdicts:?}"
        );
    }

    #[test]
    fn bootstrap_interval_covers_the_true_shift_in_90_percent() {
        let truth = 1.1f64.ln();
        let mut covered = 0;
        for seed in 0..200 {
            let base = noisy(10, 100.0, 0.05, 10_000 + seed);
            let cand = noisy(10, 110.0, 0.05, 20_000 + seed);
            let (lo, hi) = bootstrap_ci(&base, &cand, false, 0.95, 2_000, SEED + seed);
            covered += (lo <= truth && truth <= hi) as u32;
        }
        assert!(covered >= 180, "covered in {covered} of 200");
    }

    #[test]
    fn holm_turns_a_marginal_result_when_many_are_compared() {
        let alone = holm(&[0.03]);
        assert!(alone[0] < ALPHA);
        let many = holm(&[0.03, 0.2, 0.5, 0.8, 0.9, 0.6]);
        assert!(many[0] >= ALPHA, "{many:?}");
        // Step-down: the smallest times m, the next times m - 1, monotone.
        assert_eq!(holm(&[0.01, 0.02, 0.04]), [0.03, 0.04, 0.04]);
        // Ten and ten, four overlapping: one-sided p = 0.0014 alone, 0.029
        // once Holm has 20 comparisons to correct for, 0.058 with 40.
        let base = [
            100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0,
        ];
        let cand = [
            103.5, 105.5, 107.5, 109.5, 110.0, 111.0, 112.0, 113.0, 114.0, 115.0,
        ];
        let ci = bootstrap_ci(&base, &cand, false, 0.95, RESAMPLES, SEED);
        let narrow = bootstrap_ci(&base, &cand, false, 0.90, RESAMPLES, SEED);
        let p = rank_sum(&base, &cand);
        assert!((0.001..0.0015).contains(&p.higher), "{p:?}");
        assert!(p.lower > 0.99, "{p:?}");
        let band = 1.005f64.ln();
        assert_eq!(
            verdict(ci, narrow, band, (p.higher, p.lower), Better::Lower),
            Verdict::Regression,
            "p {p:?}, ci {ci:?}"
        );
        let mut all = vec![0.5; 40];
        all[0] = p.higher;
        let adjusted = holm(&all)[0];
        assert!(adjusted > ALPHA, "{adjusted}");
        assert_eq!(
            verdict(ci, narrow, band, (adjusted, 1.0), Better::Lower),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn rank_sum_exact_matches_tables() {
        // Complete separation of 5 and 5: one arrangement of C(10, 5).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let t = rank_sum(&a, &b);
        assert!((t.higher - 1.0 / 252.0).abs() < 1e-12, "{t:?}");
        assert!((t.lower - 1.0).abs() < 1e-12, "{t:?}");
        assert_eq!(t.higher, smallest_p(RankTest::RankSum, 5, 5));
        // The other way round.
        assert!((rank_sum(&b, &a).lower - 1.0 / 252.0).abs() < 1e-12);
        // One overlap: U = 1 or less, 2 arrangements.
        let t = rank_sum(&a, &[4.5, 7.0, 8.0, 9.0, 10.0]);
        assert!((t.higher - 2.0 / 252.0).abs() < 1e-12, "{t:?}");
        // Interleaved: nothing to see.
        let t = rank_sum(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0]);
        assert!(t.higher > 0.3 && t.lower > 0.3, "{t:?}");
        // Ties take the normal route and stay in range.
        let t = rank_sum(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]);
        assert!((0.0..=1.0).contains(&t.higher) && (0.0..=1.0).contains(&t.lower));
        // Uneven sides: 1 / C(9, 4).
        assert!((smallest_p(RankTest::RankSum, 4, 5) - 1.0 / 126.0).abs() < 1e-12);
    }

    #[test]
    fn signed_rank_exact_matches_tables() {
        // 6 positive differences: one arrangement of 2^6.
        let t = signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!((t.higher - 1.0 / 64.0).abs() < 1e-12, "{t:?}");
        assert_eq!(t.higher, smallest_p(RankTest::SignedRank, 6, 6));
        let t = signed_rank(&[1.0, -2.0, 3.0, -4.0]);
        assert!(t.higher > 0.4 && t.lower > 0.4, "{t:?}");
        assert_eq!(signed_rank(&[0.0, 0.0]), Tails::NONE);
    }

    #[test]
    fn pairs_use_the_signed_rank_test_only_where_it_can_decide() {
        // 5 pairs: 1/32 one-sided cannot survive Holm over 4; 1/252 can.
        assert_eq!(RankTest::choose(true, 5, 5, 4), RankTest::RankSum);
        assert_eq!(RankTest::choose(true, 5, 5, 1), RankTest::SignedRank);
        assert_eq!(RankTest::choose(true, 10, 10, 4), RankTest::SignedRank);
        assert_eq!(RankTest::choose(false, 10, 10, 1), RankTest::RankSum);
    }

    #[test]
    fn normal_quantile_and_tail_agree() {
        for p in [0.01, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999] {
            let z = normal_quantile(p);
            assert!((1.0 - normal_sf(z) - p).abs() < 1e-6, "p {p}: z {z}");
        }
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn detectable_change_shrinks_with_trials_and_needs_enough_of_them() {
        let (sigma, band) = (0.05, 1.02f64.ln());
        let at = |n: usize| detectable_change(sigma, n, n, band, RankTest::RankSum, 4).unwrap();
        let (few, many) = (at(5), at(20));
        assert!(few > many && many > band, "{few} {many}");
        // With no noise, the band is what is left.
        assert_eq!(
            detectable_change(0.0, 10, 10, band, RankTest::RankSum, 4),
            Some(band)
        );
        // 4 v 4: the rank test's 1/70 cannot survive Holm over 4.
        assert_eq!(detectable_change(sigma, 4, 4, band, RankTest::RankSum, 4), None);
        assert_eq!(trials_to_decide(0.0, 0.02, 0.0), Some(2));
        let n = trials_to_decide(0.0, 0.02, 0.05).unwrap();
        assert!(n > 20, "{n}");
    }

    #[test]
    fn rank_tests_need_enough_trials_to_survive_holm() {
        // Paired: 1/2^5 = 0.031 passes alone, not against 4 comparisons.
        assert_eq!(trials_for_rank_test(RankTest::SignedRank, 1), 5);
        assert_eq!(trials_for_rank_test(RankTest::SignedRank, 4), 7);
        // Unpaired: 1/C(8, 4) = 0.014 alone and for 3; 1/C(10, 5) to 12.
        assert_eq!(trials_for_rank_test(RankTest::RankSum, 3), 4);
        assert_eq!(trials_for_rank_test(RankTest::RankSum, 12), 5);
        assert_eq!(trials_for_rank_test(RankTest::RankSum, 13), 6);
    }

    #[test]
    fn aa_noise_tracks_the_runs_own_spread() {
        let quiet = aa_noise(&noisy(10, 100.0, 0.01, 9), SEED).unwrap();
        let loud = aa_noise(&noisy(10, 100.0, 0.10, 9), SEED).unwrap();
        assert!(loud > 5.0 * quiet, "{quiet} {loud}");
        assert!(aa_noise(&[1.0, 2.0, 3.0], SEED).is_none());
    }

    #[test]
    fn two_proportions_alike_and_apart() {
        assert_eq!(two_proportion_p(0, 100, 0, 100), 1.0);
        assert_eq!(two_proportion_p(5, 0, 3, 10), 1.0);
        assert!(two_proportion_p(50, 1000, 52, 1000) > 0.5);
        // 5 % against 10 % of 1000 each: z = 4.2, p ~ 3e-5.
        let p = two_proportion_p(50, 1000, 100, 1000);
        assert!(p < 1e-4 && p > 1e-6, "{p}");
    }

    #[test]
    fn bursts_inflate_the_variance_and_keep_the_test_honest() {
        // Gilbert-style bursts: enter a burst with 1 %, leave it with 20 %,
        // lose everything inside (about 4.8 % loss, in runs of 5).
        let bursty = |rng: &mut Prng, n: usize| -> Vec<f64> {
            let mut bad = false;
            (0..n)
                .map(|_| {
                    let u = rng.next_u32() as f64 / u32::MAX as f64;
                    bad = if bad { u >= 0.2 } else { u < 0.01 };
                    bad as u8 as f64
                })
                .collect()
        };
        let mut rng = Prng::new(21);
        let independent: Vec<f64> = (0..5000)
            .map(|_| (rng.next_u32() < u32::MAX / 20) as u8 as f64)
            .collect();
        let f = variance_inflation(&independent, 25);
        assert!(f < 2.0, "independent values: inflation {f}");
        let (mut naive, mut corrected) = (0, 0);
        for _ in 0..100 {
            let (a, b) = (bursty(&mut rng, 5000), bursty(&mut rng, 5000));
            let count = |v: &[f64]| v.iter().sum::<f64>() as u64;
            naive += (two_proportion_p(count(&a), 5000, count(&b), 5000) < 0.01) as u32;
            let (fa, fb) = (variance_inflation(&a, 25), variance_inflation(&b, 25));
            assert!(fa > 3.0, "bursts: inflation {fa}");
            corrected +=
                (two_proportion_p_inflated((count(&a), 5000, fa), (count(&b), 5000, fb)) < 0.01) as u32;
        }
        // Same process on both sides: the naive test cries wolf often, the
        // corrected one about as often as its level says (binomial(100,
        // 0.01): P(> 5) < 0.1 %; the batch estimate is itself noisy).
        assert!(naive > 10, "naive rejections {naive}");
        assert!(corrected <= 5, "corrected rejections {corrected}");
    }

    #[test]
    fn ks_accepts_one_distribution_and_rejects_a_shift() {
        let mut rng = Prng::new(11);
        let mut uniform = |n: usize, shift: f64| -> Vec<f64> {
            (0..n)
                .map(|_| rng.next_u32() as f64 / u32::MAX as f64 + shift)
                .collect()
        };
        // Under the null, p is uniform: at most ~1 of 100 below 0.01
        // (binomial(100, 0.01): P(>= 5) < 0.4 %).
        let below = (0..100)
            .filter(|_| {
                let (a, b) = (uniform(500, 0.0), uniform(700, 0.0));
                ks_two_sample(&a, &b, 0.0).1 < 0.01
            })
            .count();
        assert!(below < 5, "{below} of 100 null comparisons rejected");
        let (a, b) = (uniform(2000, 0.0), uniform(2000, 0.1));
        let (d, p) = ks_two_sample(&a, &b, 0.0);
        assert!((d - 0.1).abs() < 0.04 && p < 1e-6, "D {d} p {p}");
        // The same shift within a tolerance of 0.12 is no difference; a
        // tolerance of 0.05 leaves about half of it.
        assert!(ks_two_sample(&a, &b, 0.12).1 > 0.5);
        let (d, p) = ks_two_sample(&a, &b, 0.05);
        assert!((d - 0.05).abs() < 0.04 && p < 0.01, "D {d} p {p}");
        assert_eq!(ks_two_sample(&[], &[1.0], 0.0), (0.0, 1.0));
        // Ties: identical samples of counts are identical.
        let counts = [1.0, 1.0, 2.0, 1.0, 3.0, 1.0];
        assert_eq!(ks_two_sample(&counts, &counts, 0.0), (0.0, 1.0));
        assert_eq!(ks_two_sample(&[1.0, 2.0], &[2.0, 3.0], 0.0).0, 0.5);
    }
}
