//! Delay distributions: what `tabledist()` in sch_netem.c returns for a
//! mean, a jitter and one random draw. netem reads `normal`, `pareto` and
//! `paretonormal` from tables that iproute2 generates (inverse CDFs in
//! units of the jitter, clamped to a 16-bit table at scale 8192); here the
//! same inverse CDFs are computed directly from the draw.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Uniform over `[delay - jitter, delay + jitter)`; netem's default.
    #[default]
    Uniform,
    Normal,
    /// Pareto with shape 3, shifted to mean 0 (a long right tail).
    Pareto,
    /// A quarter normal, three quarters Pareto, quantile by quantile.
    ParetoNormal,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distribution {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::ParetoNormal,
        ]
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or(())
    }
}

/// iproute2's tables: 4096 entries, 16-bit at scale 8192, so values stop
/// just short of 4.
const TABLE_SLOTS: u32 = 4096;
const TABLE_MAX: f64 = 32767.0 / 8192.0;
const TABLE_MIN: f64 = -32768.0 / 8192.0;

/// A delay in ns for mean `mu`, jitter `sigma` and the random draw `rnd`.
pub fn sample(dist: Distribution, mu: i64, sigma: i64, rnd: u32) -> i64 {
    if sigma <= 0 {
        return mu;
    }
    if dist == Distribution::Uniform {
        return (rnd as i64 % (2 * sigma)) + mu - sigma;
    }
    // The draw picks one of the table's slots (`rnd % size` in
    // tabledist), and slot i holds about the quantile i/4096: the same
    // draw gives the kernel's delay to within the table's rounding.
    let slot = rnd % TABLE_SLOTS;
    let q = slot as f64 / TABLE_SLOTS as f64;
    let normal = || {
        if slot == 0 {
            TABLE_MIN
        } else {
            normal_quantile(q).max(TABLE_MIN)
        }
    };
    let t = match dist {
        Distribution::Uniform => unreachable!("handled above"),
        Distribution::Normal => normal(),
        Distribution::Pareto => pareto_quantile(q),
        // iproute2 clamps the Pareto part to its table's range before the
        // mix, so the mix tops out below the table's end.
        Distribution::ParetoNormal => (normal() + 3.0 * pareto_quantile(q).min(TABLE_MAX)) / 4.0,
    };
    mu + (sigma as f64 * t.clamp(TABLE_MIN, TABLE_MAX)).round() as i64
}

/// iproute2's pareto table: `(u^(-1/3) - 1.5) * 4/3` for `u = 1 - q`,
/// which has mean 0.
fn pareto_quantile(q: f64) -> f64 {
    let u = 1.0 - q;
    (u.powf(-1.0 / 3.0) - 1.5) * 4.0 / 3.0
}

/// The standard normal's inverse CDF (Acklam's rational approximation,
/// relative error below 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Prng;

    fn moments(dist: Distribution, n: usize) -> (f64, f64) {
        let mut p = Prng::new(11);
        let xs: Vec<f64> = (0..n)
            .map(|_| sample(dist, 10_000_000, 2_000_000, p.next_u32()) as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        (mean, sd)
    }

    #[test]
    fn normal_quantiles_are_right() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-5);
    }

    // 100k samples; the standard error of the mean is sd/316, so the
    // tolerances below are over 5 standard errors.
    #[test]
    fn uniform_has_the_mean_and_spread_of_its_range() {
        let (mean, sd) = moments(Distribution::Uniform, 100_000);
        assert!((mean - 10e6).abs() < 20e3, "mean {mean}");
        // U(-s, s) has sd s/sqrt(3).
        assert!((sd - 2e6 / 3f64.sqrt()).abs() < 20e3, "sd {sd}");
    }

    #[test]
    fn normal_has_mean_delay_and_sd_jitter() {
        let (mean, sd) = moments(Distribution::Normal, 100_000);
        assert!((mean - 10e6).abs() < 40e3, "mean {mean}");
        assert!((sd - 2e6).abs() < 40e3, "sd {sd}");
    }

    #[test]
    fn pareto_is_centred_with_a_long_right_tail() {
        let mut p = Prng::new(5);
        let mut xs: Vec<i64> = (0..100_000)
            .map(|_| sample(Distribution::Pareto, 0, 1000, p.next_u32()))
            .collect();
        xs.sort();
        let mean = xs.iter().sum::<i64>() as f64 / xs.len() as f64;
        // Clamped at 4 jitters the mean drops a little below 0.
        assert!(mean.abs() < 60.0, "mean {mean}");
        let (median, p999) = (xs[50_000], xs[99_900]);
        assert!(median < 0, "median {median} sits left of the mean");
        assert!(p999 > 3 * -xs[0] / 2, "tail {p999} vs floor {}", xs[0]);
        assert!(xs[99_999] <= 4000);
    }

    #[test]
    fn zero_jitter_is_the_delay_itself() {
        for d in [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::ParetoNormal,
        ] {
            assert_eq!(sample(d, 5_000, 0, 123), 5_000);
        }
    }

    #[test]
    fn paretonormal_matches_iproute2s_table_into_the_tail() {
        // Slots of iproute2's paretonormal.dist (4096 of them, scale 8192);
        // before the Pareto part was clamped first, the top 1 % came out up
        // to 0.3 jitters too long.
        // The draw's remainder by 4096 picks the slot, as in tabledist.
        let at =
            |slot: u32| sample(Distribution::ParetoNormal, 0, 8192, slot + 4096 * 12_345) as f64 / 8192.0;
        for (slot, table) in [
            (0, -1.502),
            (2048, -0.24),
            (3686, 0.974),
            (4055, 3.582),
            (4075, 3.642),
            (4091, 3.759),
            (4095, 3.880),
        ] {
            assert!(
                (at(slot) - table).abs() < 0.01,
                "slot {slot}: {} against the table's {table}",
                at(slot)
            );
        }
    }
}
