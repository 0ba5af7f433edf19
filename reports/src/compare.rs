//! `transbench compare BASE CAND`: a candidate run against a baseline,
//! cell by cell and metric by metric, with verdicts a CI job can gate on
//! (see `stats` for the method).

use serde::Serialize;
use std::collections::BTreeMap;
use thiserror::Error;
use transbench_wire::printable;

use crate::cell::{cell_key, params_key};
use crate::schema::{HostInfo, RunResults, TrialResult};
use crate::stats::{self, Better, Verdict};

/// A gated metric: how to read it from a trial, which way is better, and
/// the floor of its noise band.
pub struct Metric {
    pub name: &'static str,
    pub what: &'static str,
    pub better: Better,
    /// Changes smaller than this fraction are noise, whatever the data.
    pub floor: f64,
    pub unit: Unit,
    /// What the statistics use (positive).
    pub value: fn(&TrialResult) -> Option<f64>,
    /// What the tables show, where it differs from `value`.
    pub shown: Option<fn(&TrialResult) -> Option<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Ns,
    Bps,
    Ratio,
    PerSecond,
}

fn positive(v: f64) -> Option<f64> {
    (v > 0.0 && v.is_finite()).then_some(v)
}

fn goodput(t: &TrialResult) -> Option<f64> {
    if t.churn.is_some() {
        return None;
    }
    positive(t.goodput_bps()?)
}

/// Every metric `compare` knows, in its output's order.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "p50",
        what: "latency p50",
        better: Better::Lower,
        floor: 0.02,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p50 as f64),
        shown: None,
    },
    Metric {
        name: "p99",
        what: "latency p99",
        better: Better::Lower,
        floor: 0.05,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p99 as f64),
        shown: None,
    },
    Metric {
        name: "p999",
        what: "latency p99.9",
        better: Better::Lower,
        floor: 0.10,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p999 as f64),
        shown: None,
    },
    Metric {
        name: "goodput",
        what: "goodput",
        better: Better::Higher,
        floor: 0.02,
        unit: Unit::Bps,
        value: goodput,
        shown: None,
    },
    Metric {
        name: "loss",
        what: "messages lost",
        better: Better::Lower,
        floor: 0.10,
        unit: Unit::Ratio,
        // Half a message more on both sides keeps no-loss trials finite in
        // log units and equal to each other.
        value: |t| (t.counters.sent > 0).then(|| (t.counters.lost as f64 + 0.5) / t.counters.sent as f64),
        shown: Some(|t| (t.counters.sent > 0).then(|| t.counters.lost as f64 / t.counters.sent as f64)),
    },
    Metric {
        name: "conn_rate",
        what: "connections completed per second",
        better: Better::Higher,
        floor: 0.02,
        unit: Unit::PerSecond,
        value: |t| positive(t.churn.as_ref()?.achieved_rate),
        shown: None,
    },
    Metric {
        name: "ttfb_p50",
        what: "time to first byte p50",
        better: Better::Lower,
        floor: 0.02,
        unit: Unit::Ns,
        value: |t| positive(t.churn.as_ref()?.ttfb.p50 as f64),
        shown: None,
    },
    Metric {
        name: "ttfb_p99",
        what: "time to first byte p99",
        better: Better::Lower,
        floor: 0.05,
        unit: Unit::Ns,
        value: |t| positive(t.churn.as_ref()?.ttfb.p99 as f64),
        shown: None,
    },
];

pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// Inputs that cannot be compared: `compare` exits 2 with this.
#[derive(Debug, Error, PartialEq)]
pub enum CompareError {
    #[error("{side} has no trials: nothing to compare")]
    NoTrials { side: &'static str },
    #[error(
        "the runs come from different hosts ({base} vs {cand}): their numbers differ for reasons no \
         statistic can separate; run both on one machine, or pass --allow-host-mismatch"
    )]
    Host { base: String, cand: String },
    #[error(
        "the runs come from different scenarios ({base} vs {cand}); compare runs of one scenario, or pass \
         --allow-host-mismatch"
    )]
    Scenario { base: String, cand: String },
    #[error("unknown metric {0:?}: one of {1}")]
    UnknownMetric(String, String),
    #[error("no cell of the base matches a cell of the candidate: nothing to compare")]
    NothingMatched,
}

/// What makes two hosts' numbers comparable: CPU, cores, kernel and
/// congestion control (not the host name, which CI runners change).
pub fn fingerprint(h: &HostInfo) -> String {
    format!(
        "{} x{}, kernel {}, cc {}",
        h.cpu_model,
        h.cores,
        h.kernel,
        h.congestion_control.as_deref().unwrap_or("unknown")
    )
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Metrics to gate on; empty: every one both runs have.
    pub metrics: Vec<String>,
    /// Per metric, a band (fraction) that replaces floor and A/A noise.
    pub thresholds: BTreeMap<String, f64>,
    pub allow_mismatch: bool,
}

/// One metric of one cell, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub cell: String,
    pub metric: &'static str,
    pub unit: Unit,
    pub better: Better,
    pub base: Vec<f64>,
    pub cand: Vec<f64>,
    pub base_median: f64,
    pub cand_median: f64,
    /// cand / base - 1, from the median log ratio.
    pub change: f64,
    /// The 95 % interval of `change`.
    pub ci: (f64, f64),
    /// Trials paired by seed (Wilcoxon), else unpaired (Mann-Whitney).
    pub paired: bool,
    pub p: f64,
    /// After Holm's correction over every row compared.
    pub p_adjusted: f64,
    /// Changes inside +-band are noise (fraction).
    pub band: f64,
    /// `floor`, `a/a` (raised to the runs' own noise) or `--threshold`.
    pub band_source: &'static str,
    /// The smallest change these trial counts detect (80 % power).
    pub min_detectable: f64,
    pub verdict: Verdict,
    /// INCONCLUSIVE: trials per side that would likely decide.
    pub trials_to_decide: Option<u32>,
}

/// A count that must stay zero, where the candidate has it and the base
/// did not, or both.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub cell: String,
    pub name: &'static str,
    pub base: u64,
    pub cand: u64,
    /// REGRESSION when the candidate broke a gated one the base kept.
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base_host: String,
    pub cand_host: String,
    pub rows: Vec<Row>,
    pub invariants: Vec<Invariant>,
    /// Cells matched by workload, transport and parameters alone: the path
    /// (profile) differs, as when a candidate's link is changed on
    /// purpose. (base id, candidate id).
    pub matched_across_paths: Vec<(String, String)>,
    /// Cells only one side has: listed, never dropped in silence.
    pub only_in_base: Vec<String>,
    pub only_in_cand: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
            + self
                .invariants
                .iter()
                .filter(|i| i.verdict == Verdict::Regression)
                .count()
    }
}

/// A cell of one run: its id (a scenario's, naming the profile as the
/// scenario does, or [`cell_key`]), the same without its path, and its
/// trials.
struct RunCell<'a> {
    id: String,
    without_path: String,
    trials: Vec<&'a TrialResult>,
}

fn cells(r: &RunResults) -> Vec<RunCell<'_>> {
    let mut out: Vec<RunCell<'_>> = Vec::new();
    for t in r.trials.iter().filter(|t| !t.baseline) {
        let id = t.cell.clone().unwrap_or_else(|| cell_key(t));
        match out.iter_mut().find(|c| c.id == id) {
            Some(c) => c.trials.push(t),
            None => out.push(RunCell {
                id,
                without_path: format!("{} {}{}", t.workload, t.transport, params_key(t)),
                trials: vec![t],
            }),
        }
    }
    out
}

/// Each base cell's match among the candidate's: the same id; else, for a
/// path changed on purpose, the one cell with the same workload, transport
/// and parameters (when each side has just one such left).
fn matches<'a, 'b>(
    base: &'a [RunCell<'b>],
    cand: &'a [RunCell<'b>],
) -> Vec<(&'a RunCell<'b>, &'a RunCell<'b>)> {
    let mut out: Vec<(&RunCell, &RunCell)> = Vec::new();
    for b in base {
        if let Some(c) = cand.iter().find(|c| c.id == b.id) {
            out.push((b, c));
        }
    }
    let ub: Vec<&RunCell> = base
        .iter()
        .filter(|b| !out.iter().any(|m| std::ptr::eq(m.0, *b)))
        .collect();
    let uc: Vec<&RunCell> = cand
        .iter()
        .filter(|c| !out.iter().any(|m| std::ptr::eq(m.1, *c)))
        .collect();
    for b in &ub {
        let same: Vec<&&RunCell> = uc.iter().filter(|c| c.without_path == b.without_path).collect();
        if ub.iter().filter(|x| x.without_path == b.without_path).count() == 1 && same.len() == 1 {
            out.push((b, same[0]));
        }
    }
    out
}

/// Trials of both sides paired by their repetition, when both runs are the
/// same scenario with the same seed and the cell has the same repetitions.
fn pairs<'a>(
    base: &RunResults,
    cand: &RunResults,
    b: &[&'a TrialResult],
    c: &[&'a TrialResult],
) -> Option<Vec<(&'a TrialResult, &'a TrialResult)>> {
    let (sb, sc) = (base.scenario.as_ref()?, cand.scenario.as_ref()?);
    if sb.seed != sc.seed || sb.name != sc.name || b.len() != c.len() {
        return None;
    }
    b.iter()
        .map(|tb| {
            let rep = tb.repetition?;
            let tc = c.iter().find(|tc| tc.repetition == Some(rep))?;
            Some((*tb, *tc))
        })
        .collect()
}

pub fn compare(base: &RunResults, cand: &RunResults, opts: &Options) -> Result<Comparison, CompareError> {
    if base.trials.is_empty() {
        return Err(CompareError::NoTrials { side: "the base" });
    }
    if cand.trials.is_empty() {
        return Err(CompareError::NoTrials {
            side: "the candidate",
        });
    }
    let (bh, ch) = (fingerprint(&base.host), fingerprint(&cand.host));
    if !opts.allow_mismatch {
        if bh != ch {
            return Err(CompareError::Host { base: bh, cand: ch });
        }
        let name = |r: &RunResults| {
            r.scenario
                .as_ref()
                .map_or("no scenario".to_string(), |s| s.name.clone())
        };
        if name(base) != name(cand) {
            return Err(CompareError::Scenario {
                base: name(base),
                cand: name(cand),
            });
        }
    }
    let chosen: Vec<&Metric> = if opts.metrics.is_empty() {
        METRICS.iter().collect()
    } else {
        opts.metrics
            .iter()
            .map(|n| {
                metric(n).ok_or_else(|| {
                    CompareError::UnknownMetric(
                        n.clone(),
                        METRICS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    for name in opts.thresholds.keys() {
        if metric(name).is_none() {
            return Err(CompareError::UnknownMetric(
                name.clone(),
                METRICS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
            ));
        }
    }

    let (bc, cc) = (cells(base), cells(cand));
    let matched_cells = matches(&bc, &cc);
    let only_in_base: Vec<String> = bc
        .iter()
        .filter(|b| !matched_cells.iter().any(|m| std::ptr::eq(m.0, *b)))
        .map(|b| b.id.clone())
        .collect();
    let only_in_cand: Vec<String> = cc
        .iter()
        .filter(|c| !matched_cells.iter().any(|m| std::ptr::eq(m.1, *c)))
        .map(|c| c.id.clone())
        .collect();
    let mut rows = Vec::new();
    let mut invariants = Vec::new();
    let mut matched_across_paths = Vec::new();
    let matched = matched_cells.len();
    for (bcell, ccell) in &matched_cells {
        let (bt, ct) = (&bcell.trials, &ccell.trials);
        let label = if bcell.id == ccell.id {
            bcell.id.clone()
        } else {
            matched_across_paths.push((bcell.id.clone(), ccell.id.clone()));
            format!("{} -> {}", bcell.id, ccell.id)
        };
        let paired = pairs(base, cand, bt, ct);
        for m in &chosen {
            let (b, c): (Vec<f64>, Vec<f64>) = match &paired {
                Some(p) => p
                    .iter()
                    .filter_map(|(tb, tc)| Some(((m.value)(tb)?, (m.value)(tc)?)))
                    .unzip(),
                None => (
                    bt.iter().filter_map(|t| (m.value)(t)).collect(),
                    ct.iter().filter_map(|t| (m.value)(t)).collect(),
                ),
            };
            if b.is_empty() || c.is_empty() {
                continue;
            }
            let shown = |ts: &[&TrialResult]| {
                let read = m.shown.unwrap_or(m.value);
                stats::median(&ts.iter().filter_map(|t| read(t)).collect::<Vec<_>>())
            };
            let mut r = row(
                &label,
                m,
                b,
                c,
                paired.is_some(),
                opts.thresholds.get(m.name).copied(),
            );
            (r.base_median, r.cand_median) = (shown(bt), shown(ct));
            rows.push(r);
        }
        for (name, gated, count) in INVARIANTS {
            let (nb, nc): (u64, u64) = (
                bt.iter().map(|t| count(t)).sum(),
                ct.iter().map(|t| count(t)).sum(),
            );
            if nc > 0 || nb > 0 {
                invariants.push(Invariant {
                    cell: label.clone(),
                    name,
                    base: nb,
                    cand: nc,
                    verdict: if nc > 0 && nb == 0 && gated {
                        Verdict::Regression
                    } else if nc == 0 {
                        Verdict::Improvement
                    } else {
                        Verdict::Inconclusive
                    },
                });
            }
        }
    }
    if matched == 0 {
        return Err(CompareError::NothingMatched);
    }
    // Holm over every row, then the verdicts that need the adjusted p.
    let adjusted = stats::holm(&rows.iter().map(|r| r.p).collect::<Vec<_>>());
    let count = rows.len();
    for (r, p) in rows.iter_mut().zip(adjusted) {
        r.p_adjusted = p;
        let ln = |(lo, hi): (f64, f64)| ((1.0 + lo).ln(), (1.0 + hi).ln());
        let wide = ln(r.ci);
        let narrow = ln(narrow_ci(r));
        r.verdict = stats::verdict(wide, narrow, (1.0 + r.band).ln(), p, r.better);
        if r.verdict == Verdict::Inconclusive {
            let sigma = stats::log_spread(&r.base).max(stats::log_spread(&r.cand));
            let by_interval = stats::trials_to_decide((1.0 + r.change).ln(), (1.0 + r.band).ln(), sigma);
            // Beyond the band, the rank test must also be able to agree.
            let by_rank = stats::trials_for_rank_test(r.paired, count);
            let beyond = (1.0 + r.change).ln().abs() > (1.0 + r.band).ln();
            r.trials_to_decide = by_interval.map(|n| if beyond { n.max(by_rank) } else { n });
        }
    }
    Ok(Comparison {
        base_host: bh,
        cand_host: ch,
        rows,
        invariants,
        matched_across_paths,
        only_in_base,
        only_in_cand,
    })
}

/// Counts that must stay zero: no errors, none of the trial's own messages
/// discarded by the receiver (strangers' rejected traffic is not the
/// candidate's doing), no sender backlog (a multistream sender its
/// transport's flow control held back), every trial valid. The candidate breaking one of the first three is a
/// regression; an invalid trial is reported but does not gate, since it
/// says the load generator missed its schedule (a busy machine), not that
/// the candidate got worse: rerun.
type Count = fn(&TrialResult) -> u64;
const INVARIANTS: [(&str, bool, Count); 4] = [
    ("errors", true, |t| {
        if t.churn.is_some() {
            0
        } else {
            t.counters.errors
        }
    }),
    ("discarded by the receiver", true, |t| t.receiver.discarded),
    ("flow-control backlog", true, |t| {
        t.hol.as_ref().is_some_and(|h| h.backlog) as u64
    }),
    ("invalid trials (reported, not gated: rerun)", false, |t| {
        (!t.valid) as u64
    }),
];

fn narrow_ci(r: &Row) -> (f64, f64) {
    let (lo, hi) = stats::bootstrap_ci(&r.base, &r.cand, r.paired, 0.90, stats::RESAMPLES, stats::SEED);
    (lo.exp() - 1.0, hi.exp() - 1.0)
}

fn row(
    cell: &str,
    m: &'static Metric,
    b: Vec<f64>,
    c: Vec<f64>,
    paired: bool,
    threshold: Option<f64>,
) -> Row {
    let effect = stats::effect(&b, &c, paired);
    let (lo, hi) = stats::bootstrap_ci(&b, &c, paired, 0.95, stats::RESAMPLES, stats::SEED);
    let p = if paired {
        let d: Vec<f64> = b.iter().zip(&c).map(|(b, c)| (c / b).ln()).collect();
        stats::wilcoxon_p(&d)
    } else {
        stats::mann_whitney_p(&b, &c)
    };
    let floor_band = (1.0 + m.floor).ln();
    let (band, band_source) = match threshold {
        Some(t) => ((1.0 + t).ln(), "--threshold"),
        None => {
            let band = stats::noise_band(m.floor, &b, &c);
            (band, if band > floor_band { "a/a" } else { "floor" })
        }
    };
    let sigma = stats::log_spread(&b).max(stats::log_spread(&c));
    Row {
        cell: cell.to_string(),
        metric: m.name,
        unit: m.unit,
        better: m.better,
        base_median: stats::median(&b),
        cand_median: stats::median(&c),
        change: effect.exp() - 1.0,
        ci: (lo.exp() - 1.0, hi.exp() - 1.0),
        paired,
        p,
        p_adjusted: p,
        band: band.exp() - 1.0,
        band_source,
        min_detectable: stats::minimum_detectable(sigma, b.len(), c.len()).exp() - 1.0,
        verdict: Verdict::Inconclusive,
        trials_to_decide: None,
        base: b,
        cand: c,
    }
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ns => crate::table::human_ns(v as u64),
        Unit::Bps => format!("{:.2} Mbit/s", v / 1e6),
        Unit::Ratio => format!("{:.3} %", v * 100.0),
        Unit::PerSecond => format!("{v:.0}/s"),
    }
}

fn pct(v: f64) -> String {
    format!("{:+.1}%", v * 100.0)
}

impl Row {
    fn change_text(&self) -> String {
        format!("{} [{}, {}]", pct(self.change), pct(self.ci.0), pct(self.ci.1))
    }

    fn verdict_text(&self) -> String {
        match (self.verdict, self.trials_to_decide) {
            (Verdict::Inconclusive, Some(n)) => format!("INCONCLUSIVE (~{n} trials a side would decide)"),
            (Verdict::Inconclusive, None) => "INCONCLUSIVE (no trial count in reach would decide)".into(),
            (v, _) => v.to_string(),
        }
    }
}

impl Comparison {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let headers = vec![
            "cell",
            "metric",
            "base",
            "cand",
            "change [95% CI]",
            "band",
            "p (Holm)",
            "MDE",
            "verdict",
        ];
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    printable(&r.cell).into_owned(),
                    r.metric.to_string(),
                    value(r.unit, r.base_median),
                    value(r.unit, r.cand_median),
                    r.change_text(),
                    format!("±{:.1}% ({})", r.band * 100.0, r.band_source),
                    format!("{:.3}", r.p_adjusted),
                    format!("{:.1}%", r.min_detectable * 100.0),
                    r.verdict_text(),
                ]
            })
            .collect();
        (headers, rows)
    }

    /// What the table leaves out, a line each; cell ids escaped, as in
    /// the table: they come from the results files.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for i in &self.invariants {
            notes.push(format!(
                "{}: {}: {} in the base, {} in the candidate: {}",
                i.cell, i.name, i.base, i.cand, i.verdict
            ));
        }
        for (b, c) in &self.matched_across_paths {
            notes.push(format!(
                "matched by workload, transport and parameters, the path differing: {b} -> {c}"
            ));
        }
        for c in &self.only_in_base {
            notes.push(format!("only in the base, not compared: {c}"));
        }
        for c in &self.only_in_cand {
            notes.push(format!("only in the candidate, not compared: {c}"));
        }
        let n = self.regressions();
        notes.push(if n == 0 {
            format!("no regression ({} metrics of cells compared)", self.rows.len())
        } else {
            format!("{n} REGRESSION(S)")
        });
        notes.into_iter().map(|n| printable(&n).into_owned()).collect()
    }

    pub fn text(&self) -> String {
        let (headers, rows) = self.table();
        let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, v) in width.iter_mut().zip(r) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&width)
                .map(|(v, w)| format!("{v}{}", " ".repeat(w - v.chars().count())))
                .collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut s = line(headers.iter().map(|h| h.to_string()).collect());
        for r in rows {
            s.push_str(&line(r));
        }
        for n in self.notes() {
            s.push_str(&n);
            s.push('\n');
        }
        s
    }

    pub fn markdown(&self) -> String {
        let (headers, rows) = self.table();
        let esc = |v: &str| v.replace('|', "\\|");
        let mut s = format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(headers.len()));
        for r in rows {
            s.push_str(&format!(
                "| {} |\n",
                r.iter().map(|v| esc(v)).collect::<Vec<_>>().join(" | ")
            ));
        }
        s.push('\n');
        for n in self.notes() {
            s.push_str(&format!("- {}\n", esc(&n)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::{new_histogram, LatencySummary};
    use crate::schema::ScenarioInfo;
    use transbench_wire::Transport;

    /// A run of `n` trials per transport with latencies around `center` ns
    /// (a seeded 3 % spread), as one scenario with one seed.
    fn run(transports: &[Transport], n: u32, center: f64, seed: u64) -> RunResults {
        let template = crate::store::tests::sample().trials.remove(0);
        let mut r = crate::store::tests::sample();
        r.trials.clear();
        r.scenario = Some(ScenarioInfo {
            name: "s".into(),
            file: "s.toml".into(),
            seed: 1,
            order: "random".into(),
            cells: Vec::new(),
            trials_per_cell: n,
        });
        let mut rng = linkemu::rng::Prng::new(seed);
        for t in transports {
            for rep in 0..n {
                let jitter = 1.0 + 0.06 * (rng.next_u32() as f64 / u32::MAX as f64 - 0.5);
                let mut h = new_histogram();
                for i in 0..1000u64 {
                    h.record((center * jitter) as u64 + i * 10).unwrap();
                }
                let mut trial = template.clone();
                trial.id = format!("{t}-{rep}");
                trial.transport = *t;
                trial.cell = Some(format!("rr {t} none"));
                trial.repetition = Some(rep);
                trial.lat = LatencySummary::from_histogram(&h).unwrap();
                r.trials.push(trial);
            }
        }
        r
    }

    fn opts() -> Options {
        Options::default()
    }

    #[test]
    fn a_run_against_itself_is_the_same_everywhere() {
        let a = run(&[Transport::Tcp, Transport::Quic], 10, 50_000.0, 1);
        let c = compare(&a, &a, &opts()).unwrap();
        assert!(!c.rows.is_empty());
        assert!(
            c.rows.iter().all(|r| r.paired && r.verdict == Verdict::Same),
            "{}",
            c.text()
        );
        assert_eq!(c.regressions(), 0);
        assert!(c.text().contains("no regression"));
    }

    #[test]
    fn a_slower_candidate_is_a_regression_on_latency_only() {
        let base = run(&[Transport::Tcp], 10, 50_000.0, 2);
        let cand = run(&[Transport::Tcp], 10, 60_000.0, 3);
        let c = compare(&base, &cand, &opts()).unwrap();
        let verdict = |m: &str| c.rows.iter().find(|r| r.metric == m).unwrap().verdict;
        assert_eq!(verdict("p50"), Verdict::Regression, "{}", c.text());
        assert_eq!(
            c.rows.iter().filter(|r| r.verdict == Verdict::Regression).count(),
            3,
            "p50, p99, p99.9: {}",
            c.text()
        );
        assert!(c.regressions() >= 1);
        assert!(c.markdown().contains("| rr tcp none | p50 |"), "{}", c.markdown());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["rows"][0]["verdict"], "REGRESSION");
        // The other way round it is an improvement.
        let back = compare(&cand, &base, &opts()).unwrap();
        assert_eq!(
            back.rows.iter().find(|r| r.metric == "p50").unwrap().verdict,
            Verdict::Improvement
        );
    }

    #[test]
    fn cell_ids_from_the_files_reach_the_terminal_escaped() {
        let mut base = run(&[Transport::Tcp, Transport::Udp], 6, 50_000.0, 4);
        for t in &mut base.trials {
            t.cell = Some(format!("rr {}\x1b[2J\nnone", t.transport));
        }
        let mut cand = base.clone();
        cand.trials.retain(|t| t.transport == Transport::Tcp);
        let c = compare(&base, &cand, &opts()).unwrap();
        for out in [c.text(), c.markdown()] {
            assert!(!out.contains('\x1b'), "{out}");
            assert!(out.contains("rr tcp\\u{1b}[2J\\nnone"), "{out}");
            assert!(
                out.contains("only in the base, not compared: rr udp\\u{1b}[2J\\nnone"),
                "{out}"
            );
        }
    }

    #[test]
    fn unmatched_cells_are_listed_and_a_changed_path_still_matches() {
        let base = run(&[Transport::Tcp, Transport::Udp], 6, 50_000.0, 4);
        let mut cand = run(&[Transport::Tcp, Transport::Quic], 6, 50_000.0, 5);
        let c = compare(&base, &cand, &opts()).unwrap();
        assert_eq!(c.only_in_base, ["rr udp none"]);
        assert_eq!(c.only_in_cand, ["rr quic none"]);
        assert!(c.text().contains("only in the base, not compared: rr udp none"));
        // The candidate's tcp ran across another profile: matched by
        // workload, transport and parameters, and said so.
        for t in cand.trials.iter_mut().filter(|t| t.transport == Transport::Tcp) {
            t.cell = Some("rr tcp slow".into());
        }
        let c = compare(&base, &cand, &opts()).unwrap();
        assert_eq!(
            c.matched_across_paths,
            [("rr tcp none".to_string(), "rr tcp slow".to_string())]
        );
        assert!(c.rows.iter().any(|r| r.cell == "rr tcp none -> rr tcp slow"));
    }

    #[test]
    fn inputs_that_cannot_be_compared_say_why() {
        let a = run(&[Transport::Tcp], 3, 50_000.0, 6);
        let mut other_host = a.clone();
        other_host.host.cpu_model = "another cpu".into();
        assert!(matches!(
            compare(&a, &other_host, &opts()),
            Err(CompareError::Host { .. })
        ));
        let allow = Options {
            allow_mismatch: true,
            ..opts()
        };
        assert!(compare(&a, &other_host, &allow).is_ok());
        let mut empty = a.clone();
        empty.trials.clear();
        assert_eq!(
            compare(&a, &empty, &opts()).unwrap_err(),
            CompareError::NoTrials {
                side: "the candidate"
            }
        );
        let unknown = Options {
            metrics: vec!["p42".into()],
            ..opts()
        };
        let e = compare(&a, &a, &unknown).unwrap_err().to_string();
        assert!(e.contains("p42") && e.contains("p99"), "{e}");
    }

    #[test]
    fn an_invariant_the_candidate_breaks_is_a_regression() {
        let base = run(&[Transport::Tcp], 6, 50_000.0, 7);
        let mut cand = base.clone();
        cand.trials[2].counters.errors = 3;
        let c = compare(&base, &cand, &opts()).unwrap();
        let broken: Vec<&Invariant> = c
            .invariants
            .iter()
            .filter(|i| i.verdict == Verdict::Regression)
            .collect();
        assert_eq!(broken.len(), 1);
        assert_eq!((broken[0].name, broken[0].base, broken[0].cand), ("errors", 0, 3));
        assert_eq!(c.regressions(), 1);
        // An invalid trial is reported by name, and gates nothing.
        let mut cand = base.clone();
        cand.trials[2].valid = false;
        let c = compare(&base, &cand, &opts()).unwrap();
        assert_eq!(c.regressions(), 0);
        assert!(
            c.text()
                .contains("invalid trials (reported, not gated: rerun): 0 in the base, 1 in the candidate"),
            "{}",
            c.text()
        );
    }

    #[test]
    fn a_threshold_replaces_the_band() {
        let base = run(&[Transport::Tcp], 10, 50_000.0, 8);
        let cand = run(&[Transport::Tcp], 10, 60_000.0, 9);
        let wide = Options {
            thresholds: [("p50".to_string(), 0.5)].into(),
            ..opts()
        };
        let c = compare(&base, &cand, &wide).unwrap();
        let p50 = c.rows.iter().find(|r| r.metric == "p50").unwrap();
        assert_eq!((p50.band_source, p50.verdict), ("--threshold", Verdict::Same));
        assert!((p50.band - 0.5).abs() < 1e-9);
    }
}
