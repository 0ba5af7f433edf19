//! Results in the formats CI tools already read: github-action-benchmark's
//! custom JSON ([`github`]), the Bencher Metric Format ([`bencher`]), and
//! JUnit XML of `compare`'s verdicts ([`junit`]).
//!
//! Every metric of every cell is one series, named `<cell> <metric>` in
//! each format and from a run or a comparison alike, so a tool that tracks
//! a series across commits finds it again. Values are the medians of the
//! trials, each metric in one fixed unit ([`Scale`]): the tools compare a
//! series' numbers across commits, so a unit must never change.

pub mod bencher;
pub mod github;
pub mod junit;

use thiserror::Error;
use transbench_wire::printable;

use crate::cell::cell_key;
use crate::compare::{metric, Comparison, Metric, Row, Unit, METRICS};
use crate::schema::{RunResults, TrialResult};
use crate::stats::{self, Verdict};

/// Why an export has nothing to say, or cannot say it in its format.
#[derive(Debug, Error, PartialEq)]
pub enum ExportError {
    #[error("nothing to export as {format}: {why}")]
    Nothing { format: &'static str, why: String },
    #[error(
        "the benchmark name {name:?} is {len} bytes, over Bencher's limit of {limit}: shorten the cell's \
         name (a scenario's cell names come from its workloads, profiles and parameters)"
    )]
    NameTooLong { name: String, len: usize, limit: usize },
}

/// A unit as the CI tools get it: its name, how many of it make one of
/// transbench's own, and the decimals a human needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub name: &'static str,
    pub factor: f64,
    pub decimals: usize,
}

impl Scale {
    pub fn of(unit: Unit) -> Scale {
        let (name, factor, decimals) = match unit {
            Unit::Ns => ("ns", 1.0, 0),
            // Goodputs in bit/s run to ten digits: unreadable on a chart.
            Unit::Bps => ("Mbit/s", 1e-6, 3),
            Unit::Ratio => ("%", 100.0, 3),
            // Bencher's built-in throughput is ops/s; a connection
            // completed is one operation.
            Unit::PerSecond => ("ops/s", 1.0, 1),
        };
        Scale {
            name,
            factor,
            decimals,
        }
    }

    /// `v` (in transbench's unit) as a number and unit, for people.
    pub fn show(&self, v: f64) -> String {
        format!("{:.*} {}", self.decimals, v * self.factor, self.name)
    }
}

/// The series' name: the cell as the terminal output shows it (escaped:
/// ids come from results files and the tools show them on web pages).
pub fn series_name(cell: &str, metric: &str) -> String {
    format!("{} {metric}", printable(cell))
}

/// One metric of one cell, as every format exports it.
pub struct Point<'a> {
    pub name: String,
    pub metric: &'static Metric,
    /// The median, in transbench's unit.
    pub value: f64,
    /// The smallest and the largest trial, where the trials' values are
    /// the ones `value` is the median of.
    pub spread: Option<(f64, f64)>,
    pub trials: usize,
    /// From a comparison: the row the point is the candidate's side of.
    pub row: Option<&'a Row>,
}

fn spread(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Per cell (as `compare` groups them) and metric, the median of the valid
/// trials' values as the tables show them. Invalid trials are left out:
/// the load generator missed its schedule, so they measure the machine;
/// so are attempts a retry replaced.
pub fn points_of_run(run: &RunResults) -> Vec<Point<'static>> {
    let mut cells: Vec<(String, Vec<&TrialResult>)> = Vec::new();
    for t in run
        .trials
        .iter()
        .filter(|t| t.valid && !t.baseline && t.is_final())
    {
        let id = t.cell.clone().unwrap_or_else(|| cell_key(t));
        match cells.iter_mut().find(|(c, _)| *c == id) {
            Some((_, trials)) => trials.push(t),
            None => cells.push((id, vec![t])),
        }
    }
    let mut points = Vec::new();
    for (cell, trials) in &cells {
        for m in METRICS {
            let read = m.shown.unwrap_or(m.value);
            let values: Vec<f64> = trials
                .iter()
                .filter_map(|t| read(t))
                .filter(|v| v.is_finite())
                .collect();
            if let Some(range) = spread(&values) {
                points.push(Point {
                    name: series_name(cell, m.name),
                    metric: m,
                    value: stats::median(&values),
                    spread: Some(range),
                    trials: values.len(),
                    row: None,
                });
            }
        }
    }
    points
}

/// Each row's candidate side. Its spread is the candidate's trials', for
/// metrics whose statistic is the value shown (not loss, which the
/// statistics smooth).
pub fn points_of_comparison(c: &Comparison) -> Vec<Point<'_>> {
    c.rows
        .iter()
        .filter(|r| r.cand_median.is_finite())
        .map(|r| {
            let m = metric(r.metric).expect("a row's metric is one of METRICS");
            Point {
                name: series_name(&r.cell, r.metric),
                metric: m,
                value: r.cand_median,
                spread: if m.shown.is_none() { spread(&r.cand) } else { None },
                trials: r.cand.len(),
                row: Some(r),
            }
        })
        .collect()
}

/// A row in one line: both medians, the change with its interval, the
/// band, the trial counts and the verdict.
pub fn describe(r: &Row) -> String {
    let scale = Scale::of(r.unit);
    let pct = |v: f64| format!("{:+.1}%", v * 100.0);
    let mut line = format!(
        "{}: base {}, candidate {}, change {} (95% CI {} to {}), noise band ±{:.1}% ({}), {} and {} trials: {}",
        r.metric,
        scale.show(r.base_median),
        scale.show(r.cand_median),
        pct(r.change),
        pct(r.ci.0),
        pct(r.ci.1),
        r.band * 100.0,
        r.band_source,
        r.base.len(),
        r.cand.len(),
        r.verdict
    );
    if r.verdict == Verdict::Inconclusive {
        line.push_str(&match r.trials_to_decide {
            Some(n) => format!(" (~{n} trials a side would likely decide)"),
            None => " (no trial count in reach would decide)".to_string(),
        });
    }
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::{compare, Options};
    use transbench_wire::Transport;

    /// `n` tcp trials in each of `cells`: [`crate::store::tests::synthetic`].
    pub(crate) fn run(cells: &[&str], n: u32, center: f64, seed: u64) -> RunResults {
        let cells: Vec<(Transport, &str)> = cells.iter().map(|c| (Transport::Tcp, *c)).collect();
        crate::store::tests::synthetic(&cells, n, center, seed)
    }

    /// A candidate 20 % slower than its base in `slow`, the same in `same`.
    pub(crate) fn slower(slow: &str, same: &str) -> Comparison {
        let base = run(&[slow, same], 12, 50_000.0, 1);
        let mut cand = run(&[same], 12, 50_000.0, 2);
        cand.trials.extend(run(&[slow], 12, 60_000.0, 3).trials);
        compare(&base, &cand, &Options::default()).unwrap()
    }

    #[test]
    fn a_run_exports_the_median_of_its_valid_trials_per_cell_and_metric() {
        let mut r = run(&["rr a"], 5, 50_000.0, 4);
        let p50s: Vec<u64> = r.trials.iter().map(|t| t.lat.p50).collect();
        // An invalid trial far off would move the median: left out.
        r.trials[0].valid = false;
        r.trials[0].lat.p50 = 10_000_000;
        let points = points_of_run(&r);
        let p50 = points.iter().find(|p| p.name == "rr a p50").unwrap();
        let mut kept: Vec<f64> = p50s[1..].iter().map(|&v| v as f64).collect();
        kept.sort_by(f64::total_cmp);
        assert_eq!(p50.trials, 4);
        assert_eq!(p50.value, (kept[1] + kept[2]) / 2.0);
        assert_eq!(p50.spread, Some((kept[0], kept[3])));
        // Loss as the tables show it, unsmoothed: 1 in 1000.
        let loss = points.iter().find(|p| p.name == "rr a loss").unwrap();
        assert_eq!(loss.value, 0.001);
        assert_eq!(Scale::of(loss.metric.unit).show(loss.value), "0.100 %");
    }

    #[test]
    fn a_comparison_exports_the_candidate_side_of_each_row() {
        let c = slower("rr slow", "rr same");
        let points = points_of_comparison(&c);
        assert_eq!(points.len(), c.rows.len());
        let p50 = points.iter().find(|p| p.name == "rr slow p50").unwrap();
        let row = p50.row.unwrap();
        assert_eq!(p50.value, row.cand_median);
        assert!(p50.value > 55_000.0, "{}", p50.value);
        let (lo, hi) = p50.spread.unwrap();
        assert!(lo <= p50.value && p50.value <= hi);
        // Loss's statistic is smoothed: no spread in its terms.
        assert!(points
            .iter()
            .find(|p| p.name == "rr slow loss")
            .unwrap()
            .spread
            .is_none());
        let line = describe(row);
        assert!(line.starts_with("p50: base 5"), "{line}");
        assert!(line.ends_with("REGRESSION"), "{line}");
    }

    #[test]
    fn names_are_escaped_as_the_terminal_output_escapes_them() {
        assert_eq!(series_name("rr\x1b[2J\nx", "p99"), "rr\\u{1b}[2J\\nx p99");
    }
}
