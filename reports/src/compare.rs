//! `transbench compare BASE CAND`: a candidate run against a baseline,
//! cell by cell and metric by metric, with verdicts a CI job can gate on
//! (see `stats` for the method).

use serde::Serialize;
use std::collections::BTreeMap;
use thiserror::Error;
use transbench_wire::{printable, Workload};

use crate::cell::{cell_key, params_key};
use crate::schema::{HostInfo, InterfaceInfo, RunResults, TrialResult};
use crate::stats::{self, Better, RankTest, Verdict};

/// A gated metric: how to read it from a trial, which way is better, and
/// the floor of its noise band.
pub struct Metric {
    pub name: &'static str,
    pub what: &'static str,
    pub better: Better,
    /// Changes smaller than this fraction are noise, whatever the data.
    pub floor: f64,
    /// In the family `compare` gates on unless `--metric` names others.
    pub gated: bool,
    /// Which cells have it.
    pub cells: Cells,
    pub unit: Unit,
    /// What the statistics use (positive).
    pub value: fn(&TrialResult) -> Option<f64>,
    /// What the tables show, where it differs from `value`.
    pub shown: Option<fn(&TrialResult) -> Option<f64>>,
}

/// The cells a metric has a value in, by workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cells {
    /// Every workload that times messages, transactions or a probe: all
    /// but bulk.
    Timed,
    /// Churn and handshake: a connection per transaction.
    Churn,
    /// Messages one way or both: rr, multistream, stream.
    Messages,
    /// Bulk flows: bulk, and the load of a latency-under-load trial.
    Bulk,
}

impl Cells {
    pub fn has(self, workload: Workload) -> bool {
        let churn = matches!(workload, Workload::Churn | Workload::Handshake);
        let bulk = workload == Workload::Bulk;
        let load = workload == Workload::Load;
        match self {
            Cells::Timed => !bulk,
            Cells::Churn => churn,
            Cells::Messages => !churn && !bulk && !load,
            Cells::Bulk => bulk || load,
        }
    }
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
    if t.churn.is_some() || t.bulk.is_some() {
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
        gated: true,
        cells: Cells::Timed,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p50 as f64),
        shown: None,
    },
    Metric {
        name: "p99",
        what: "latency p99",
        better: Better::Lower,
        floor: 0.05,
        gated: true,
        cells: Cells::Timed,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p99 as f64),
        shown: None,
    },
    Metric {
        name: "p999",
        what: "latency p99.9",
        better: Better::Lower,
        floor: 0.10,
        gated: false,
        cells: Cells::Timed,
        unit: Unit::Ns,
        value: |t| positive(t.lat.p999 as f64),
        shown: None,
    },
    Metric {
        name: "goodput",
        what: "goodput",
        better: Better::Higher,
        floor: 0.02,
        gated: false,
        cells: Cells::Messages,
        unit: Unit::Bps,
        value: goodput,
        shown: None,
    },
    Metric {
        name: "loss",
        what: "messages lost",
        better: Better::Lower,
        floor: 0.10,
        gated: false,
        cells: Cells::Timed,
        unit: Unit::Ratio,
        // Half a message more on both sides keeps no-loss trials finite in
        // log units and equal to each other.
        value: |t| (t.counters.sent > 0).then(|| (t.counters.lost as f64 + 0.5) / t.counters.sent as f64),
        shown: Some(|t| (t.counters.sent > 0).then(|| t.counters.lost as f64 / t.counters.sent as f64)),
    },
    Metric {
        name: "throughput",
        what: "bulk goodput",
        better: Better::Higher,
        floor: 0.02,
        gated: true,
        cells: Cells::Bulk,
        unit: Unit::Bps,
        value: |t| positive(t.bulk.as_ref()?.goodput_bps),
        shown: None,
    },
    Metric {
        name: "conn_rate",
        what: "connections completed per second",
        better: Better::Higher,
        floor: 0.02,
        gated: true,
        cells: Cells::Churn,
        unit: Unit::PerSecond,
        value: |t| positive(t.churn.as_ref()?.achieved_rate),
        shown: None,
    },
    Metric {
        name: "ttfb_p50",
        what: "time to first byte p50",
        better: Better::Lower,
        floor: 0.02,
        gated: false,
        cells: Cells::Churn,
        unit: Unit::Ns,
        value: |t| positive(t.churn.as_ref()?.ttfb.p50 as f64),
        shown: None,
    },
    Metric {
        name: "ttfb_p99",
        what: "time to first byte p99",
        better: Better::Lower,
        floor: 0.05,
        gated: false,
        cells: Cells::Churn,
        unit: Unit::Ns,
        value: |t| positive(t.churn.as_ref()?.ttfb.p99 as f64),
        shown: None,
    },
];

pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

fn metric_names() -> String {
    METRICS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// The metrics gated unless the user names others.
pub fn default_gate() -> Vec<&'static str> {
    METRICS.iter().filter(|m| m.gated).map(|m| m.name).collect()
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
        "the runs ran against different receivers (the base against {base}, the candidate against {cand}): \
         the far host and the path between them are part of every number; compare runs against one \
         receiver, or pass --allow-host-mismatch"
    )]
    Receiver { base: String, cand: String },
    #[error(
        "the runs come from different scenarios (the base from {base:?}, the candidate from {cand:?}): \
         their cells need not mean the same; compare runs of one scenario, or pass \
         --allow-scenario-mismatch to match cells by workload, transport, path and parameters anyway"
    )]
    Scenario { base: String, cand: String },
    #[error("unknown metric {0:?}: one of {1}")]
    UnknownMetric(String, String),
    #[error(
        "no cell of the base matches a cell of the candidate: nothing to compare (cells match by workload, \
         transport, path and parameters, bulk's also by flows and congestion control; the base has {base}, \
         the candidate {cand})"
    )]
    NothingMatched { base: String, cand: String },
    #[error(
        "no matched cell has any of the gated metrics ({0}) on both sides: gate on others with --metric \
         (one of {1})"
    )]
    NothingGated(String, String),
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

/// An interface as a comparison holds it equal: driver, MTU and
/// offloads (not the qdisc, which an impaired cell sets).
fn interface_fingerprint(i: &InterfaceInfo) -> String {
    format!(
        "{} ({}), mtu {}, offloads {}",
        i.name,
        i.driver.as_deref().unwrap_or("no driver"),
        i.mtu.map_or("unknown".into(), |m| m.to_string()),
        i.offloads.as_ref().map_or("unknown".into(), |o| match o.len() {
            0 => "none".into(),
            _ => o.join(","),
        })
    )
}

/// Where a run's trials went: `None` for a receiver on the sender's host
/// (loopback or the local testbed); else the remote receiver's address and
/// what the trials recorded of it and of both ends' interfaces.
fn remote_end(r: &RunResults) -> Option<(&str, String)> {
    let addr = r.remote_receiver.as_deref()?;
    let facts = match r.trials.iter().find(|t| t.receiver.host.is_some()) {
        Some(t) => {
            let far = t.receiver.host.as_deref().expect("found with a host");
            let interface = |h: Option<&HostInfo>| {
                h.and_then(|h| h.interface.as_ref())
                    .map_or("unknown".into(), interface_fingerprint)
            };
            format!(
                "a receiver on {} via {}, leaving the sender via {}",
                fingerprint(far),
                interface(Some(far)),
                interface(t.sender_host.as_ref())
            )
        }
        None => "a receiver on another host, of which the trials recorded nothing".into(),
    };
    Some((addr, facts))
}

fn describe_end(end: &Option<(&str, String)>) -> String {
    match end {
        None => "a receiver on the sender's host".into(),
        Some((addr, facts)) => format!("{addr} ({facts})"),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Metrics to gate on; empty: [`default_gate`]. Every metric both runs
    /// have is printed.
    pub gate: Vec<String>,
    /// Per metric, a band (fraction) that replaces floor and A/A noise.
    pub thresholds: BTreeMap<String, f64>,
    pub allow_host_mismatch: bool,
    pub allow_scenario_mismatch: bool,
}

/// One metric of one cell, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub cell: String,
    pub metric: &'static str,
    pub unit: Unit,
    pub better: Better,
    /// In the family the verdicts are corrected for and the exit status
    /// depends on.
    pub gated: bool,
    pub base: Vec<f64>,
    pub cand: Vec<f64>,
    pub base_median: f64,
    pub cand_median: f64,
    /// cand / base - 1, from the median log ratio.
    pub change: f64,
    /// The 95 % interval of `change`.
    pub ci: (f64, f64),
    /// Trials paired with their interleaved partner (`transbench ab`).
    pub paired: bool,
    pub test: RankTest,
    /// One-sided p-values of a change for the worse and for the better.
    pub p_worse: f64,
    pub p_better: f64,
    /// The same after Holm's correction, each over the gated rows; `None`
    /// for a row not gated.
    pub p_worse_adjusted: Option<f64>,
    pub p_better_adjusted: Option<f64>,
    /// Changes inside +-band are noise (fraction).
    pub band: f64,
    /// `floor`, `a/a` (raised to the runs' own noise) or `--threshold`.
    pub band_source: &'static str,
    /// The smallest change these trial counts would likely call (80 %
    /// power) at the spread the trials show; `None` when none could be.
    pub min_detectable: Option<f64>,
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
    /// REGRESSION when the candidate broke one the base kept.
    pub verdict: Verdict,
}

/// A cell's invalid trials: the sender missed its schedule. They stay in
/// the statistics, since the candidate itself may be what slowed the
/// sender; this says how many, without a verdict.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidTrials {
    pub cell: String,
    pub base: usize,
    pub cand: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base_host: String,
    pub cand_host: String,
    /// The gated metrics, and how many rows they make: the family.
    pub gate: Vec<&'static str>,
    pub family: usize,
    pub rows: Vec<Row>,
    pub invariants: Vec<Invariant>,
    pub invalid_trials: Vec<InvalidTrials>,
    /// Cells matched by workload, transport and parameters alone: the path
    /// (profile) differs, as when a candidate's link is changed on
    /// purpose. (base id, candidate id).
    pub matched_across_paths: Vec<(String, String)>,
    /// Cells only one side has: listed, never dropped in silence.
    pub only_in_base: Vec<String>,
    pub only_in_cand: Vec<String>,
}

impl Comparison {
    fn gated(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.gated)
    }

    pub fn regressions(&self) -> usize {
        self.gated().filter(|r| r.verdict == Verdict::Regression).count()
            + self
                .invariants
                .iter()
                .filter(|i| i.verdict == Verdict::Regression)
                .count()
    }

    /// Whether any gated row could have been called, whatever its values:
    /// false when the trial counts are too few for the family.
    pub fn decidable(&self) -> bool {
        self.gated().any(|r| r.verdict != Verdict::TooFewTrials)
    }

    /// The comparison in one line: what a CI log shows first.
    pub fn headline(&self) -> String {
        let count = |v: Verdict| self.gated().filter(|r| r.verdict == v).count();
        let broken = self
            .invariants
            .iter()
            .filter(|i| i.verdict == Verdict::Regression)
            .count();
        let present: Vec<&str> = self
            .gate
            .iter()
            .copied()
            .filter(|m| self.gated().any(|r| r.metric == *m))
            .collect();
        let family = format!(
            "{} gated rows ({} of {} cells)",
            self.family,
            present.join(", "),
            self.gated()
                .map(|r| &r.cell)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        if !self.decidable() {
            let r = self.gated().next().expect("a comparison has a gated row");
            let (n1, n2) = (r.base.len(), r.cand.len());
            let p = stats::smallest_p(r.test, n1, n2);
            let needed = stats::trials_for_rank_test(RankTest::RankSum, self.family);
            let mut line = format!(
                "TOO FEW TRIALS: with {n1} and {n2} trials a cell and {family}, no change can be called: the \
                 rank test's smallest p, {p:.3}, is not below 0.05 / {} after Holm's correction; run {needed} or \
                 more trials a cell (a scenario's `trials`), or gate on fewer metrics (--metric)",
                self.family
            );
            if broken > 0 {
                line.push_str(&format!("; {broken} invariant(s) broken: REGRESSION"));
            }
            return line;
        }
        let tally: Vec<String> = [
            (Verdict::Improvement, "improved"),
            (Verdict::Same, "the same"),
            (Verdict::Inconclusive, "inconclusive"),
            (Verdict::TooFewTrials, "with too few trials"),
        ]
        .iter()
        .filter(|(v, _)| count(*v) > 0)
        .map(|(v, what)| format!("{} {what}", count(*v)))
        .collect();
        let tally = match tally.join(", ") {
            t if t.is_empty() => t,
            t => format!(": {t}"),
        };
        let worse = count(Verdict::Regression);
        let broken = match broken {
            0 => String::new(),
            n => format!(", and {n} invariant(s) broken"),
        };
        match self.regressions() {
            0 => format!("no regression in {family}{tally}"),
            _ => format!("REGRESSION in {worse} of {family}{broken}{tally}"),
        }
    }
}

/// Before a run: what a comparison of two runs of a scenario could call,
/// from its cells and trial count alone (`compare --plan`, and `run`
/// says it at the start).
#[derive(Clone)]
pub struct Plan {
    pub trials: u32,
    pub cells: usize,
    pub family: usize,
    /// Per gated metric: its floor, and the change likely called (80 %
    /// power) at each of [`PLAN_SPREADS`]; `None`: none could be.
    pub metrics: Vec<(&'static Metric, Vec<Option<f64>>)>,
}

/// Trial-to-trial spreads (robust SD of log values) a plan is quoted at:
/// about what p50 shows on a quiet loopback, what p99 shows, and a busy
/// machine's.
pub const PLAN_SPREADS: [f64; 3] = [0.01, 0.05, 0.15];

pub fn plan(workloads: &[Workload], trials: u32, gate: &[&'static str]) -> Plan {
    let gated: Vec<&'static Metric> = METRICS.iter().filter(|m| gate.contains(&m.name)).collect();
    let family = workloads
        .iter()
        .map(|&w| gated.iter().filter(|m| m.cells.has(w)).count())
        .sum();
    let n = trials as usize;
    let metrics = gated
        .into_iter()
        .filter(|m| workloads.iter().any(|&w| m.cells.has(w)))
        .map(|m| {
            let band = (1.0 + m.floor).ln();
            let at = PLAN_SPREADS
                .iter()
                .map(|&sigma| {
                    stats::detectable_change(sigma, n, n, band, RankTest::RankSum, family)
                        .map(|d| d.exp() - 1.0)
                })
                .collect();
            (m, at)
        })
        .collect();
    Plan {
        trials,
        cells: workloads.len(),
        family,
        metrics,
    }
}

impl Plan {
    pub fn decidable(&self) -> bool {
        stats::reachable(
            stats::smallest_p(RankTest::RankSum, self.trials as usize, self.trials as usize),
            self.family,
        )
    }

    /// One line: what `run` prints before its trials.
    pub fn line(&self) -> String {
        if !self.decidable() {
            return format!(
                "compare: with {} trials a cell, a comparison of two such runs can call no change ({} gated rows); \
                 {} trials a cell could",
                self.trials,
                self.family,
                stats::trials_for_rank_test(RankTest::RankSum, self.family)
            );
        }
        let each: Vec<String> = self
            .metrics
            .iter()
            .filter_map(|(m, at)| Some(format!("{} {:.0} %", m.name, at[1]? * 100.0)))
            .collect();
        format!(
            "compare: with {} trials a cell, a comparison of two such runs likely calls changes from {} at 5 % \
             trial-to-trial spread ({} gated rows; `transbench compare --plan` for more)",
            self.trials,
            each.join(", "),
            self.family
        )
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "{} cells, {} trials a cell: {} gated rows in the family (Holm over them, one-sided rank-sum test)\n",
            self.cells, self.trials, self.family
        );
        let p = stats::smallest_p(RankTest::RankSum, self.trials as usize, self.trials as usize);
        if !self.decidable() {
            s.push_str(&format!(
                "no change can be called: the rank test's smallest p, {p:.4}, is not below 0.05 / {}; run {} or \
                 more trials a cell, or gate on fewer metrics (--metric)\n",
                self.family,
                stats::trials_for_rank_test(RankTest::RankSum, self.family)
            ));
            return s;
        }
        s.push_str(&format!(
            "the rank test's smallest p, {p:.2e}, survives Holm (< 0.05 / {})\n\nthe smallest change likely \
             called (80 % power), by trial-to-trial spread of the metric:\n",
            self.family
        ));
        let head: Vec<String> = PLAN_SPREADS
            .iter()
            .map(|v| format!("at {:.0} %", v * 100.0))
            .collect();
        s.push_str(&format!("{:<10} {:>8}  {}\n", "metric", "floor", head.join("  ")));
        for (m, at) in &self.metrics {
            let cols: Vec<String> = at
                .iter()
                .zip(&head)
                .map(|(d, h)| {
                    let v = d.map_or("–".to_string(), |d| format!("{:.1} %", d * 100.0));
                    format!("{v:>w$}", w = h.chars().count())
                })
                .collect();
            s.push_str(&format!(
                "{:<10} {:>6.0} %  {}\n",
                m.name,
                m.floor * 100.0,
                cols.join("  ")
            ));
        }
        s.push_str(
            "\nTwo runs one after the other also differ by what the machine did meanwhile; `transbench ab` \
             interleaves them.\n",
        );
        s
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

/// Whether the two runs are the two sides of one interleaved A/B run:
/// then each trial's partner (same cell and repetition) ran beside it in
/// time, and pairing them takes out what the machine did meanwhile. Runs
/// made one after the other share seeds but not time, and are not paired.
fn interleaved(base: &RunResults, cand: &RunResults) -> bool {
    match (&base.interleaved, &cand.interleaved) {
        (Some(b), Some(c)) => b.run == c.run && b.side != c.side,
        _ => false,
    }
}

/// Trials of both sides paired by repetition; a trial whose partner is
/// missing drops out.
fn pairs<'a>(b: &[&'a TrialResult], c: &[&'a TrialResult]) -> Vec<(&'a TrialResult, &'a TrialResult)> {
    b.iter()
        .filter_map(|tb| {
            let rep = tb.repetition?;
            let tc = c.iter().find(|tc| tc.repetition == Some(rep))?;
            Some((*tb, *tc))
        })
        .collect()
}

pub fn compare(base: &RunResults, cand: &RunResults, opts: &Options) -> Result<Comparison, CompareError> {
    // A trial retried for missing its schedule counts once, as its final
    // attempt.
    let (base, cand) = (&base.final_attempts(), &cand.final_attempts());
    if base.trials.is_empty() {
        return Err(CompareError::NoTrials { side: "the base" });
    }
    if cand.trials.is_empty() {
        return Err(CompareError::NoTrials {
            side: "the candidate",
        });
    }
    let (bh, ch) = (fingerprint(&base.host), fingerprint(&cand.host));
    if !opts.allow_host_mismatch && bh != ch {
        return Err(CompareError::Host { base: bh, cand: ch });
    }
    let (br, cr) = (remote_end(base), remote_end(cand));
    // Two runs against one lab host may name it differently: its facts
    // decide, not its address.
    let facts = |end: &Option<(&str, String)>| end.as_ref().map(|(_, f)| f.clone());
    if !opts.allow_host_mismatch && facts(&br) != facts(&cr) {
        return Err(CompareError::Receiver {
            base: describe_end(&br),
            cand: describe_end(&cr),
        });
    }
    let name = |r: &RunResults| {
        r.scenario
            .as_ref()
            .map_or("no scenario".to_string(), |s| s.name.clone())
    };
    if !opts.allow_scenario_mismatch && name(base) != name(cand) {
        return Err(CompareError::Scenario {
            base: name(base),
            cand: name(cand),
        });
    }
    let gate: Vec<&'static str> = if opts.gate.is_empty() {
        default_gate()
    } else {
        opts.gate
            .iter()
            .map(|n| {
                metric(n)
                    .map(|m| m.name)
                    .ok_or_else(|| CompareError::UnknownMetric(n.clone(), metric_names()))
            })
            .collect::<Result<_, _>>()?
    };
    if let Some(name) = opts.thresholds.keys().find(|n| metric(n).is_none()) {
        return Err(CompareError::UnknownMetric(name.clone(), metric_names()));
    }

    let (bc, cc) = (cells(base), cells(cand));
    let matched_cells = matches(&bc, &cc);
    if matched_cells.is_empty() {
        let list = |cells: &[RunCell<'_>]| {
            let ids: Vec<String> = cells.iter().take(3).map(|c| format!("{:?}", c.id)).collect();
            let more = cells.len().saturating_sub(3);
            format!(
                "{}{}",
                ids.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        return Err(CompareError::NothingMatched {
            base: list(&bc),
            cand: list(&cc),
        });
    }
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
    let paired = interleaved(base, cand);
    let mut rows = Vec::new();
    let mut invariants = Vec::new();
    let mut invalid_trials = Vec::new();
    let mut matched_across_paths = Vec::new();
    for (bcell, ccell) in &matched_cells {
        let label = if bcell.id == ccell.id {
            bcell.id.clone()
        } else {
            matched_across_paths.push((bcell.id.clone(), ccell.id.clone()));
            format!("{} -> {}", bcell.id, ccell.id)
        };
        let (bt, ct) = (&bcell.trials, &ccell.trials);
        let invalid = |ts: &[&'_ TrialResult]| ts.iter().filter(|t| !t.valid).count();
        if invalid(bt) + invalid(ct) > 0 {
            invalid_trials.push(InvalidTrials {
                cell: label.clone(),
                base: invalid(bt),
                cand: invalid(ct),
            });
        }
        let trial_pairs = paired.then(|| pairs(bt, ct));
        let workload = bt.first().map(|t| t.workload);
        // Only the metrics the cell's workload measures (a bulk trial's
        // message counters say nothing of loss).
        for m in METRICS.iter().filter(|m| workload.is_none_or(|w| m.cells.has(w))) {
            let (b, c): (Vec<f64>, Vec<f64>) = match &trial_pairs {
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
                gate.contains(&m.name),
                b,
                c,
                paired,
                opts.thresholds.get(m.name).copied(),
            );
            (r.base_median, r.cand_median) = (shown(bt), shown(ct));
            rows.push(r);
        }
        for (name, count) in INVARIANTS {
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
                    verdict: if nc > 0 && nb == 0 {
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
    let family = rows.iter().filter(|r| r.gated).count();
    if family == 0 {
        return Err(CompareError::NothingGated(gate.join(", "), metric_names()));
    }
    decide(&mut rows, family);
    Ok(Comparison {
        base_host: bh,
        cand_host: ch,
        gate,
        family,
        rows,
        invariants,
        invalid_trials,
        matched_across_paths,
        only_in_base,
        only_in_cand,
    })
}

/// Each row's test, now that the family is known; Holm over the gated
/// rows, for the worse and the better side each; the verdicts.
fn decide(rows: &mut [Row], family: usize) {
    for r in rows.iter_mut() {
        r.test = RankTest::choose(r.paired, r.base.len(), r.cand.len(), family);
        (r.p_worse, r.p_better) = r.test.tails(&r.base, &r.cand).worse_better(r.better);
    }
    let gated: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].gated).collect();
    let worse = stats::holm(&gated.iter().map(|&i| rows[i].p_worse).collect::<Vec<_>>());
    let better = stats::holm(&gated.iter().map(|&i| rows[i].p_better).collect::<Vec<_>>());
    for (k, &i) in gated.iter().enumerate() {
        rows[i].p_worse_adjusted = Some(worse[k]);
        rows[i].p_better_adjusted = Some(better[k]);
    }
    for r in rows.iter_mut() {
        let (n1, n2) = (r.base.len(), r.cand.len());
        let (ln_band, ln_change) = ((1.0 + r.band).ln(), (1.0 + r.change).ln());
        let sigma = stats::log_spread(&r.base).max(stats::log_spread(&r.cand));
        r.min_detectable =
            stats::detectable_change(sigma, n1, n2, ln_band, r.test, family).map(|d| d.exp() - 1.0);
        let (Some(worse), Some(better)) = (r.p_worse_adjusted, r.p_better_adjusted) else {
            r.verdict = Verdict::NotGated;
            continue;
        };
        let ln = |(lo, hi): (f64, f64)| ((1.0 + lo).ln(), (1.0 + hi).ln());
        r.verdict = stats::verdict(ln(r.ci), ln(narrow_ci(r)), ln_band, (worse, better), r.better);
        // Counts the rank test cannot decide with in this family decide
        // nothing: an interval of so few trials (one a side is a single
        // ratio) says nothing of the noise, so SAME is no more earned
        // than REGRESSION.
        let reachable = stats::reachable(stats::smallest_p(r.test, n1, n2), family);
        if !reachable {
            r.verdict = Verdict::TooFewTrials;
        }
        if r.verdict == Verdict::Inconclusive {
            let by_interval = stats::trials_to_decide(ln_change, ln_band, sigma);
            // Beyond the band, the rank test must also be able to agree.
            let by_rank = stats::trials_for_rank_test(RankTest::RankSum, family);
            let beyond = ln_change.abs() > ln_band;
            r.trials_to_decide = by_interval.map(|n| if beyond { n.max(by_rank) } else { n });
        }
    }
}

/// Counts that must stay zero: no errors, none of the trial's own messages
/// discarded by the receiver (strangers' rejected traffic is not the
/// candidate's doing), no sender backlog (a multistream sender its
/// transport's flow control held back). The candidate breaking one the
/// base kept is a regression. (Invalid trials are not among them: see
/// [`InvalidTrials`].)
type Count = fn(&TrialResult) -> u64;
const INVARIANTS: [(&str, Count); 3] = [
    (
        "errors",
        |t| {
            if t.churn.is_some() {
                0
            } else {
                t.counters.errors
            }
        },
    ),
    ("discarded by the receiver", |t| t.receiver.discarded),
    ("flow-control backlog", |t| {
        t.hol.as_ref().is_some_and(|h| h.backlog) as u64
    }),
];

fn narrow_ci(r: &Row) -> (f64, f64) {
    let (lo, hi) = stats::bootstrap_ci(&r.base, &r.cand, r.paired, 0.90, stats::RESAMPLES, stats::SEED);
    (lo.exp() - 1.0, hi.exp() - 1.0)
}

fn row(
    cell: &str,
    m: &'static Metric,
    gated: bool,
    b: Vec<f64>,
    c: Vec<f64>,
    paired: bool,
    threshold: Option<f64>,
) -> Row {
    let effect = stats::effect(&b, &c, paired);
    let (lo, hi) = stats::bootstrap_ci(&b, &c, paired, 0.95, stats::RESAMPLES, stats::SEED);
    let floor_band = (1.0 + m.floor).ln();
    let (band, band_source) = match threshold {
        Some(t) => ((1.0 + t).ln(), "--threshold"),
        None => {
            let band = stats::noise_band(m.floor, &b, &c);
            (band, if band > floor_band { "a/a" } else { "floor" })
        }
    };
    Row {
        cell: cell.to_string(),
        metric: m.name,
        unit: m.unit,
        better: m.better,
        gated,
        base_median: stats::median(&b),
        cand_median: stats::median(&c),
        change: effect.exp() - 1.0,
        ci: (lo.exp() - 1.0, hi.exp() - 1.0),
        paired,
        test: RankTest::RankSum,
        p_worse: 1.0,
        p_better: 1.0,
        p_worse_adjusted: None,
        p_better_adjusted: None,
        band: band.exp() - 1.0,
        band_source,
        min_detectable: None,
        verdict: Verdict::NotGated,
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

    /// The p the table shows: of the side the change points to, adjusted
    /// where the row is gated.
    fn p_shown(&self) -> String {
        let worse = match self.better {
            Better::Lower => self.change > 0.0,
            Better::Higher => self.change < 0.0,
        };
        let (raw, adjusted) = if worse {
            (self.p_worse, self.p_worse_adjusted)
        } else {
            (self.p_better, self.p_better_adjusted)
        };
        match adjusted {
            Some(p) => format!("{p:.3}"),
            None => format!("({raw:.3})"),
        }
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
                    r.p_shown(),
                    r.min_detectable
                        .map_or("–".to_string(), |d| format!("{:.1}%", d * 100.0)),
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
        let pairing = match self.rows.first() {
            Some(r) if r.paired => "trials paired with their interleaved partner (transbench ab)",
            _ => "trials unpaired (two separate runs; `transbench ab` interleaves them, and pairs)",
        };
        notes.push(format!(
            "p: one-sided, of the side the change points to; Holm over the {} gated rows (p of rows not gated, \
             in parentheses, is uncorrected); {pairing}",
            self.family
        ));
        for i in &self.invariants {
            notes.push(format!(
                "{}: {}: {} in the base, {} in the candidate: {}",
                i.cell, i.name, i.base, i.cand, i.verdict
            ));
        }
        for i in &self.invalid_trials {
            notes.push(format!(
                "{}: invalid trials: {} in the base, {} in the candidate (the sender missed its schedule: a busy \
                 machine, or a build too slow to keep it); counted like the rest, since either may be the cause",
                i.cell, i.base, i.cand
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
        let mut s = printable(&self.headline()).into_owned() + "\n";
        s.push_str(&line(headers.iter().map(|h| h.to_string()).collect()));
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
        let mut s = format!(
            "**{}**\n\n| {} |\n|{}\n",
            esc(&printable(&self.headline())),
            headers.join(" | "),
            "---|".repeat(headers.len())
        );
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
    use crate::schema::{Interleaved, ScenarioInfo, Side};
    use transbench_wire::Transport;

    /// A run of `n` trials per transport, cells `rr <transport> none`
    /// ([`crate::store::tests::synthetic`]), as one scenario with one seed.
    fn run(transports: &[Transport], n: u32, center: f64, seed: u64) -> RunResults {
        let cells: Vec<(Transport, String)> =
            transports.iter().map(|t| (*t, format!("rr {t} none"))).collect();
        let cells: Vec<(Transport, &str)> = cells.iter().map(|(t, c)| (*t, c.as_str())).collect();
        let mut r = crate::store::tests::synthetic(&cells, n, center, seed);
        r.scenario = Some(ScenarioInfo {
            name: "s".into(),
            file: "s.toml".into(),
            seed: 1,
            order: "random".into(),
            cells: Vec::new(),
            trials_per_cell: n,
            retry_invalid: 0,
        });
        r
    }

    fn opts() -> Options {
        Options::default()
    }

    /// `base` and `cand` as the two sides of one interleaved A/B run.
    fn interleave(base: &mut RunResults, cand: &mut RunResults) {
        for (r, side) in [(base, Side::Base), (cand, Side::Cand)] {
            r.interleaved = Some(Interleaved {
                run: "ab-1".into(),
                side,
                base: "a".into(),
                cand: "b".into(),
            });
        }
    }

    #[test]
    fn a_run_against_itself_is_the_same_everywhere() {
        let mut a = run(&[Transport::Tcp, Transport::Quic], 10, 50_000.0, 1);
        let c = compare(&a, &a, &opts()).unwrap();
        assert!(!c.rows.is_empty());
        assert!(c.rows.iter().all(|r| !r.paired), "one run's seeds are not time");
        let mut b = a.clone();
        interleave(&mut a, &mut b);
        let c = compare(&a, &b, &opts()).unwrap();
        // p50 and p99 of 2 cells gated; the rest printed, not gated.
        assert_eq!(c.family, 4, "{}", c.text());
        for r in &c.rows {
            assert!(r.paired, "{}", c.text());
            let expect = if r.gated { Verdict::Same } else { Verdict::NotGated };
            assert_eq!(r.verdict, expect, "{}", c.text());
        }
        assert_eq!(c.regressions(), 0);
        assert!(
            c.text().starts_with("no regression in 4 gated rows"),
            "{}",
            c.text()
        );
    }

    /// An attempt a retry replaced is no trial of the comparison: a
    /// candidate with a slow superseded attempt in every cell compares as
    /// its final attempts do.
    #[test]
    fn only_the_final_attempt_of_a_retried_trial_counts() {
        let base = run(&[Transport::Tcp, Transport::Quic], 10, 50_000.0, 1);
        let mut cand = base.clone();
        for (i, mut slow) in base
            .trials
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, t)| t.repetition == Some(0))
        {
            slow.id = format!("retried-{i}");
            slow.lat.p50 *= 100;
            slow.lat.p99 *= 100;
            slow.valid = false;
            slow.missed_schedule = true;
            slow.superseded_by = Some(base.trials[i].id.clone());
            cand.trials.push(slow);
        }
        assert_eq!(cand.trials.len(), base.trials.len() + 2);
        let c = compare(&base, &cand, &opts()).unwrap();
        assert_eq!(c.regressions(), 0, "{}", c.text());
        assert!(
            c.rows.iter().all(|r| r.cand.len() == 10 && r.cand == r.base),
            "{}",
            c.text()
        );
    }

    /// The measured case: two 6-trial runs of 2 cells, the
    /// candidate's p50 85 times the base's. Pairing by seed made it a
    /// Wilcoxon test whose best p, 1/32, Holm over 10 rows lifted to 0.31.
    #[test]
    fn a_blatant_regression_with_6_or_5_trials_a_side_is_one() {
        for n in [6, 5] {
            let base = run(&[Transport::Udp, Transport::Tcp], n, 24_000.0, 10);
            let cand = run(&[Transport::Udp, Transport::Tcp], n, 2_070_000.0, 11);
            let c = compare(&base, &cand, &opts()).unwrap();
            assert!(c.decidable(), "{}", c.text());
            for r in c.rows.iter().filter(|r| r.metric == "p50") {
                assert_eq!(r.verdict, Verdict::Regression, "{n} trials: {}", c.text());
            }
            assert!(c.regressions() >= 2, "{}", c.text());
            assert!(c.text().starts_with("REGRESSION"), "{}", c.text());
        }
    }

    #[test]
    fn too_few_trials_say_so_first_instead_of_inconclusive_rows() {
        let base = run(&[Transport::Tcp, Transport::Udp], 3, 50_000.0, 12);
        let cand = run(&[Transport::Tcp, Transport::Udp], 3, 500_000.0, 13);
        let c = compare(&base, &cand, &opts()).unwrap();
        assert!(!c.decidable());
        assert_eq!(c.regressions(), 0);
        let text = c.text();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("TOO FEW TRIALS: with 3 and 3 trials a cell"),
            "{first}"
        );
        assert!(first.contains("run 5 or more trials a cell"), "{first}");
        assert!(!text.contains("INCONCLUSIVE"), "{text}");
        // Gating on one metric makes the family small enough for 4 v 4
        // (1/70 < 0.05 / 2).
        let base = run(&[Transport::Tcp, Transport::Udp], 4, 50_000.0, 12);
        let cand = run(&[Transport::Tcp, Transport::Udp], 4, 500_000.0, 13);
        assert!(!compare(&base, &cand, &opts()).unwrap().decidable());
        let one = Options {
            gate: vec!["p50".into()],
            ..opts()
        };
        let c = compare(&base, &cand, &one).unwrap();
        assert_eq!((c.family, c.regressions()), (2, 2), "{}", c.text());
    }

    /// `run` as bulk trials, each with goodput `center` times its
    /// synthetic latency's spread around the synthetic center.
    fn bulk_run(n: u32, goodput: f64, seed: u64) -> RunResults {
        let mut r = run(&[Transport::Tcp], n, 50_000.0, seed);
        for t in &mut r.trials {
            let spread = t.lat.p50 as f64 / 50_000.0;
            t.workload = Workload::Bulk;
            t.lat = crate::LatencySummary::from_histogram(&crate::new_histogram()).unwrap();
            t.bulk = Some(crate::BulkMetrics {
                direction: Default::default(),
                bin_ns: 100_000_000,
                window: [10, 40],
                goodput_bps: goodput * spread,
                series_bps: Vec::new(),
                jain: Some(1.0),
                bytes_sent: 1,
                bytes_received: 1,
                sender_cpu_ns_per_byte: 1.0,
                receiver_cpu_ns_per_byte: 1.0,
                quic_connections: None,
                expected: None,
                directions: Vec::new(),
                flows: Vec::new(),
                quic: Vec::new(),
            });
        }
        r
    }

    #[test]
    fn bulk_is_gated_on_its_goodput_and_nothing_it_does_not_measure() {
        let base = bulk_run(5, 95e6, 21);
        let half = bulk_run(5, 47e6, 22);
        let c = compare(&base, &half, &opts()).unwrap();
        // One gated row: throughput; no latency rows for a workload without messages.
        assert_eq!((c.family, c.regressions()), (1, 1), "{}", c.text());
        let metrics: Vec<&str> = c.rows.iter().map(|r| r.metric).collect();
        assert!(
            metrics.contains(&"throughput") && !metrics.contains(&"p50"),
            "{metrics:?}"
        );
        assert!(
            !metrics.contains(&"goodput"),
            "bulk's goodput is `throughput`: {metrics:?}"
        );
        let same = compare(&base, &bulk_run(5, 95e6, 23), &opts()).unwrap();
        assert_eq!(same.regressions(), 0, "{}", same.text());
        let p = plan(&[Workload::Bulk, Workload::Rr], 5, &default_gate());
        assert_eq!(p.family, 3, "bulk: throughput; rr: p50, p99");
        // One trial a side decides nothing, halved or equal: not SAME.
        for cand in [bulk_run(1, 47e6, 24), bulk_run(1, 95e6, 24)] {
            let c = compare(&bulk_run(1, 95e6, 24), &cand, &opts()).unwrap();
            assert!(!c.decidable(), "{}", c.text());
            let throughput = c.rows.iter().find(|r| r.metric == "throughput").unwrap();
            assert_eq!(throughput.verdict, Verdict::TooFewTrials, "{}", c.text());
            assert!(c.text().starts_with("TOO FEW TRIALS"), "{}", c.text());
        }
    }

    #[test]
    fn a_plan_says_before_a_run_what_its_trials_can_detect() {
        let gate = default_gate();
        let few = plan(&[Workload::Rr, Workload::Rr], 2, &gate);
        assert_eq!(few.family, 4);
        assert!(!few.decidable());
        assert_eq!(
            few.line(),
            "compare: with 2 trials a cell, a comparison of two such runs can call no change (4 gated rows); 5 \
             trials a cell could"
        );
        assert!(
            few.text().contains("run 5 or more trials a cell"),
            "{}",
            few.text()
        );
        let enough = plan(&[Workload::Rr, Workload::Churn], 10, &gate);
        // rr: p50, p99; churn: p50, p99 and conn_rate.
        assert_eq!(enough.family, 5);
        assert!(enough.decidable());
        let names: Vec<&str> = enough.metrics.iter().map(|(m, _)| m.name).collect();
        assert_eq!(names, ["p50", "p99", "conn_rate"]);
        for (m, at) in &enough.metrics {
            // Larger at a larger spread, never below the floor.
            let at: Vec<f64> = at.iter().map(|d| d.unwrap()).collect();
            assert!(
                at[0] > m.floor && at[0] < at[1] && at[1] < at[2],
                "{}: {at:?}",
                m.name
            );
        }
        assert!(!enough.line().contains("  "), "{}", enough.line());
    }

    #[test]
    fn only_an_interleaved_run_is_paired() {
        let mut base = run(&[Transport::Tcp], 10, 50_000.0, 14);
        let mut cand = run(&[Transport::Tcp], 10, 50_000.0, 15);
        assert!(compare(&base, &cand, &opts())
            .unwrap()
            .rows
            .iter()
            .all(|r| !r.paired));
        interleave(&mut base, &mut cand);
        let c = compare(&base, &cand, &opts()).unwrap();
        assert!(c.rows.iter().all(|r| r.paired && r.test == RankTest::SignedRank));
        // Two runs each from its own A/B run: not partners.
        cand.interleaved.as_mut().unwrap().run = "ab-2".into();
        assert!(compare(&base, &cand, &opts())
            .unwrap()
            .rows
            .iter()
            .all(|r| !r.paired));
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
            2,
            "p50, p99 (p99.9 not gated): {}",
            c.text()
        );
        assert_eq!(verdict("p999"), Verdict::NotGated);
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
    fn a_run_against_a_remote_receiver_is_kept_apart_from_a_local_one_and_from_another_host() {
        let local = run(&[Transport::Tcp], 3, 50_000.0, 6);
        let far = |cpu: &str, mtu: u32| {
            let mut r = local.clone();
            r.remote_receiver = Some("lab-b:7000".into());
            for t in &mut r.trials {
                t.receiver.host = Some(Box::new(HostInfo {
                    cpu_model: cpu.into(),
                    interface: Some(InterfaceInfo {
                        name: "eth1".into(),
                        driver: Some("mlx5_core".into()),
                        mtu: Some(mtu),
                        qdisc: Some("mq".into()),
                        offloads: Some(vec!["generic-receive-offload".into()]),
                    }),
                    ..local.host.clone()
                }));
            }
            r
        };
        let remote = far("Xeon", 9000);
        let e = compare(&local, &remote, &opts()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CompareError::Receiver { .. }), "{text}");
        assert!(
            text.contains("the base against a receiver on the sender's host")
                && text.contains("lab-b:7000")
                && text.contains("Xeon")
                && text.contains("mtu 9000"),
            "{text}"
        );
        // The same lab host under another name compares; another MTU does not.
        let mut renamed = far("Xeon", 9000);
        renamed.remote_receiver = Some("10.0.0.2:7000".into());
        assert!(compare(&remote, &renamed, &opts()).is_ok());
        let jumbo_off = far("Xeon", 1500);
        let e = compare(&remote, &jumbo_off, &opts()).unwrap_err().to_string();
        assert!(e.contains("mtu 9000") && e.contains("mtu 1500"), "{e}");
        let allow = Options {
            allow_host_mismatch: true,
            ..opts()
        };
        assert!(compare(&local, &remote, &allow).is_ok());
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
            allow_host_mismatch: true,
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
            gate: vec!["p42".into()],
            ..opts()
        };
        let e = compare(&a, &a, &unknown).unwrap_err().to_string();
        assert!(e.contains("p42") && e.contains("p99"), "{e}");
        // Another scenario: both named, and the flag that overrides it.
        let mut other = a.clone();
        other.scenario.as_mut().unwrap().name = "quick".into();
        let e = compare(&a, &other, &opts()).unwrap_err().to_string();
        assert!(
            e.contains("\"s\"") && e.contains("\"quick\"") && e.contains("--allow-scenario-mismatch"),
            "{e}"
        );
        assert!(!e.contains("--allow-host-mismatch"), "{e}");
        let allow = Options {
            allow_scenario_mismatch: true,
            ..opts()
        };
        assert!(compare(&a, &other, &allow).is_ok());
        // Gating on a metric no cell has.
        let churn_only = Options {
            gate: vec!["conn_rate".into()],
            ..opts()
        };
        assert!(matches!(
            compare(&a, &a, &churn_only),
            Err(CompareError::NothingGated(..))
        ));
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
        // An invalid trial is counted, and said so, never as a verdict.
        let mut cand = base.clone();
        cand.trials[2].valid = false;
        let c = compare(&base, &cand, &opts()).unwrap();
        assert_eq!(c.regressions(), 0);
        assert!(c.invariants.is_empty());
        assert!(c.rows.iter().all(|r| r.cand.len() == 6), "{}", c.text());
        let text = c.text();
        assert!(
            text.contains("rr tcp none: invalid trials: 0 in the base, 1 in the candidate"),
            "{text}"
        );
        assert!(
            !text.contains("IMPROVEMENT") && !text.contains("REGRESSION"),
            "{text}"
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
