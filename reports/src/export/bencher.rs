//! The Bencher Metric Format (bencher.dev/docs/reference/bencher-metric-format):
//! a JSON object `{benchmark: {measure: {value, lower_value?,
//! upper_value?}}}`, read by `bencher run --adapter json`.
//!
//! A Bencher measure has one unit, so measures go by unit: nanoseconds are
//! Bencher's built-in `latency` and operations per second its built-in
//! `throughput`; Mbit/s and percentages are the measures `bitrate` and
//! `percentage`, which Bencher creates on first use (with generic units,
//! unless created beforehand with theirs).

use serde::Serialize;
use std::collections::BTreeMap;

use super::{points_of_comparison, points_of_run, ExportError, Point, Scale};
use crate::compare::{Comparison, Unit};
use crate::schema::RunResults;

/// Bencher refuses longer benchmark names (`bencher_valid`'s
/// `MAX_BENCHMARK_NAME_LEN`, in bytes).
pub const MAX_BENCHMARK_NAME: usize = 1024;

/// The measure's slug for values in `unit` (in [`Scale::of`]'s terms).
pub fn measure(unit: Unit) -> &'static str {
    match unit {
        Unit::Ns => "latency",
        Unit::PerSecond => "throughput",
        Unit::Bps => "bitrate",
        Unit::Ratio => "percentage",
    }
}

#[derive(Serialize)]
struct BencherMetric {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

/// A run's medians per cell and metric, between the smallest and the
/// largest trial.
pub fn from_run(run: &RunResults) -> Result<String, ExportError> {
    render(&points_of_run(run))
}

/// The candidate's medians; bounds where the candidate's trials give them
/// in the value's terms (see [`points_of_comparison`]).
pub fn from_comparison(c: &Comparison) -> Result<String, ExportError> {
    render(&points_of_comparison(c))
}

fn render(points: &[Point]) -> Result<String, ExportError> {
    if points.is_empty() {
        return Err(ExportError::Nothing {
            format: "the Bencher Metric Format",
            why: "no cell has a valid trial with a metric; rerun, on a quieter machine if the trials were \
                  invalid"
                .to_string(),
        });
    }
    let mut benchmarks: BTreeMap<&str, BTreeMap<&str, BencherMetric>> = BTreeMap::new();
    for p in points {
        if p.name.len() > MAX_BENCHMARK_NAME {
            return Err(ExportError::NameTooLong {
                name: p.name.clone(),
                len: p.name.len(),
                limit: MAX_BENCHMARK_NAME,
            });
        }
        let scale = Scale::of(p.metric.unit);
        benchmarks.entry(&p.name).or_default().insert(
            measure(p.metric.unit),
            BencherMetric {
                value: p.value * scale.factor,
                lower_value: p.spread.map(|(lo, _)| lo * scale.factor),
                upper_value: p.spread.map(|(_, hi)| hi * scale.factor),
            },
        );
    }
    Ok(serde_json::to_string_pretty(&benchmarks).expect("metrics serialize") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::{run, slower};
    use serde_json::Value;

    #[test]
    fn each_series_is_a_benchmark_with_the_measure_of_its_unit() {
        let r = run(&["rr a"], 3, 50_000.0, 1);
        let bmf: Value = serde_json::from_str(&from_run(&r).unwrap()).unwrap();
        let benchmarks = bmf.as_object().unwrap();
        assert_eq!(benchmarks.len(), 5, "{bmf}");
        let p99 = &bmf["rr a p99"]["latency"];
        let (lo, value, hi) = (
            p99["lower_value"].as_f64().unwrap(),
            p99["value"].as_f64().unwrap(),
            p99["upper_value"].as_f64().unwrap(),
        );
        assert!(lo <= value && value <= hi && lo > 40_000.0, "{p99}");
        assert_eq!(bmf["rr a loss"]["percentage"]["value"].as_f64(), Some(0.1));
        assert!(bmf["rr a goodput"]["bitrate"]["value"].as_f64().unwrap() > 0.5);
        // One measure a benchmark.
        assert!(benchmarks.values().all(|m| m.as_object().unwrap().len() == 1));
    }

    #[test]
    fn a_comparison_exports_the_candidate() {
        let c = slower("rr slow", "rr same");
        let bmf: Value = serde_json::from_str(&from_comparison(&c).unwrap()).unwrap();
        let row = c
            .rows
            .iter()
            .find(|r| r.cell == "rr slow" && r.metric == "p50")
            .unwrap();
        assert_eq!(
            bmf["rr slow p50"]["latency"]["value"].as_f64(),
            Some(row.cand_median)
        );
        assert!(bmf["rr slow loss"]["percentage"].get("lower_value").is_none());
    }

    #[test]
    fn a_name_past_benchers_limit_is_refused_and_nothing_to_export_says_so() {
        let long = format!("rr {}", "x".repeat(MAX_BENCHMARK_NAME));
        let e = from_run(&run(&[&long], 1, 50_000.0, 1)).unwrap_err().to_string();
        assert!(e.contains("over Bencher's limit of 1024"), "{e}");
        let mut r = run(&["rr a"], 1, 50_000.0, 1);
        r.trials[0].valid = false;
        let e = from_run(&r).unwrap_err().to_string();
        assert!(e.contains("no cell has a valid trial"), "{e}");
    }
}
