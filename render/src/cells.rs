//! Trials grouped into cells: the same transport, workload, path and
//! parameters, repeated. Charts and tables speak of cells.

use hdrhistogram::Histogram;
use linkemu::NetemSpec;
use transbench_reports::cell::{cell_key, lossless_path_label, path_label};
use transbench_reports::{new_histogram, LatencyKind, RunResults, TrialResult};
use transbench_wire::{Transport, Workload};

#[derive(Debug, Clone)]
pub struct CellTrials<'a> {
    /// The scenario's cell id, or one made the same way.
    pub id: String,
    pub workload: Workload,
    pub transport: Transport,
    /// The netem words of the path ("loopback" without one); both
    /// directions when they differ.
    pub profile: String,
    /// The path without its loss: cells on one loss axis share it.
    pub lossless: String,
    /// The configured mean loss in percent (both directions for round
    /// trips); `None` where the model has no closed form.
    pub loss_pct: Option<f64>,
    pub backend: Option<String>,
    pub trials: Vec<&'a TrialResult>,
}

impl CellTrials<'_> {
    /// Every trial's latency histogram added together: the cell's
    /// distribution over all its repetitions.
    pub fn merged_lat(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for t in &self.trials {
            if let Ok(h) = t.lat.histogram() {
                // Auto-resizing, so adding never runs out of range.
                let _ = all.add(&h);
            }
        }
        all
    }

    pub fn valid(&self) -> usize {
        self.trials.iter().filter(|t| t.valid).count()
    }
}

/// A transport's colour, the same in every chart.
pub fn transport_color(t: Transport) -> usize {
    Transport::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// The configured mean loss of a trial's path in percent: the data
/// direction's, with the reverse direction's added when `both_ways`.
pub fn loss_pct(t: &TrialResult, both_ways: bool) -> Option<f64> {
    let Some(i) = &t.impairment else {
        return Some(0.0);
    };
    let loss = |words: &str| NetemSpec::parse(words).ok()?.mean_loss();
    let mut p = loss(&i.forward)?;
    if both_ways {
        p += loss(&i.reverse)?;
    }
    Some(p * 100.0)
}

/// The cells of a run: a scenario's in its file's order, others in the
/// order their first trial ran. Baseline trials (measured only to set
/// another trial's reference) are left out.
pub fn cells(results: &RunResults) -> Vec<CellTrials<'_>> {
    let mut out = in_run_order(results);
    if let Some(s) = &results.scenario {
        out.sort_by_key(|c| s.cells.iter().position(|id| *id == c.id).unwrap_or(usize::MAX));
    }
    out
}

fn in_run_order(results: &RunResults) -> Vec<CellTrials<'_>> {
    let mut out: Vec<CellTrials<'_>> = Vec::new();
    for t in results.trials.iter().filter(|t| !t.baseline) {
        let profile = path_label(t.impairment.as_ref());
        let id = t.cell.clone().unwrap_or_else(|| cell_key(t));
        match out.iter_mut().find(|c| c.id == id) {
            Some(c) => c.trials.push(t),
            None => out.push(CellTrials {
                id,
                workload: t.workload,
                transport: t.transport,
                loss_pct: loss_pct(t, t.latency_kind == LatencyKind::Rtt),
                backend: t.impairment.as_ref().map(|i| i.backend.clone()),
                profile,
                lossless: lossless_path_label(t.impairment.as_ref()),
                trials: vec![t],
            }),
        }
    }
    out
}

/// A file name made from a cell id: letters, digits, `.`, `_`, `-` only.
pub fn slug(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => s.push(c),
            '+' => s.push('-'),
            '%' => s.push_str("pct"),
            _ if s.ends_with('_') => {}
            _ => s.push('_'),
        }
    }
    s.trim_matches('_').to_string()
}
