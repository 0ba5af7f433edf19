//! `transbench compare BASE CAND`: the CI gate. Exit 0 without a
//! regression, 1 with one, 2 when the inputs cannot be compared (or too
//! few trials could call anything, or have nothing to say in the format
//! asked for). `--plan SCENARIO`: before a run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use transbench_reports::compare::{compare, Comparison, Options};
use transbench_reports::export::{bencher, github, junit, ExportError};
use transbench_reports::stats::Better;

/// What to gate on and how to print it: `compare`'s and `ab`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Metrics to gate on, the family the correction is over [default:
    /// p50, p99, conn_rate, throughput]; one of p50, p99, p999, goodput,
    /// loss, throughput (bulk and load's goodput), conn_rate, ttfb_p50,
    /// ttfb_p99. Every metric a cell's workload measures is printed.
    #[arg(long = "metric", value_name = "NAME", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// A metric's noise band in percent, replacing its floor and the
    /// runs' own noise, e.g. --threshold p99=8.
    #[arg(long = "threshold", value_name = "METRIC=PCT", value_parser = parse_threshold)]
    pub thresholds: Vec<(String, f64)>,
    /// What to print. The exit status is the same in every format; a
    /// format with nothing to say (github-bigger of runs with no
    /// higher-is-better metric) exits 2. reports/SCHEMA.md describes
    /// each.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The table and its notes.
    Text,
    /// The same in Markdown, for a PR comment or a job summary.
    Markdown,
    /// Every number behind the verdicts (reports/SCHEMA.md).
    Json,
    /// The candidate's medians of the lower-is-better metrics, with change
    /// and verdict, for github-action-benchmark's customSmallerIsBetter.
    GithubSmaller,
    /// The same of the higher-is-better metrics, for its
    /// customBiggerIsBetter.
    GithubBigger,
    /// The candidate's medians in the Bencher Metric Format (bencher run
    /// --adapter json).
    Bmf,
    /// A test case per row, invariant and unmatched cell, as the gate
    /// judges it: JUnit XML for CI test reports.
    Junit,
}

/// `c` in `format`.
fn render(c: &Comparison, format: Format) -> Result<String, ExportError> {
    Ok(match format {
        Format::Text => c.text(),
        Format::Markdown => c.markdown(),
        Format::Json => serde_json::to_string_pretty(c).expect("comparisons serialize") + "\n",
        Format::GithubSmaller => github::from_comparison(c, Better::Lower)?,
        Format::GithubBigger => github::from_comparison(c, Better::Higher)?,
        Format::Bmf => bencher::from_comparison(c)?,
        Format::Junit => junit::from_comparison(c),
    })
}

/// `METRIC=PCT` (a percentage, `5` or `5%`) into (metric, fraction).
pub fn parse_threshold(s: &str) -> Result<(String, f64), String> {
    let (name, pct) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected METRIC=PCT, e.g. p99=5"))?;
    let pct: f64 = pct
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?}: {pct:?} is not a percentage"))?;
    if !(pct.is_finite() && pct > 0.0 && pct < 1000.0) {
        return Err(format!("{s:?}: the band must be a positive percentage"));
    }
    Ok((name.trim().to_string(), pct / 100.0))
}

fn input_error(what: impl std::fmt::Display) -> ExitCode {
    // It may quote the results files (a host, a scenario's name).
    eprintln!("error: {}", transbench_wire::printable(&what.to_string()));
    ExitCode::from(2)
}

fn results_path(p: &Path) -> std::path::PathBuf {
    if p.is_dir() {
        p.join("results.json")
    } else {
        p.to_path_buf()
    }
}

/// `compare --plan SCENARIO`: what two runs of it could show, before
/// either runs.
pub fn plan(scenario: &Path, profiles: Option<&Path>, gate: &[String]) -> anyhow::Result<ExitCode> {
    let scenario = crate::scenario_run::load(scenario, profiles)?;
    let gate = match gate_metrics(gate) {
        Ok(g) => g,
        Err(e) => return Ok(input_error(e)),
    };
    print!("{}", crate::scenario_run::compare_plan(&scenario, &gate).text());
    Ok(ExitCode::SUCCESS)
}

/// The metrics named, or the default gate; an unknown name is refused.
fn gate_metrics(names: &[String]) -> Result<Vec<&'static str>, String> {
    use transbench_reports::compare::{default_gate, metric, METRICS};
    if names.is_empty() {
        return Ok(default_gate());
    }
    names
        .iter()
        .map(|n| {
            metric(n).map(|m| m.name).ok_or_else(|| {
                let all: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
                format!("unknown metric {n:?}: one of {}", all.join(", "))
            })
        })
        .collect()
}

/// What may differ between the runs compared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mismatch {
    pub host: bool,
    pub scenario: bool,
}

pub fn run(base: &Path, cand: &Path, gate: GateArgs, allow: Mismatch) -> ExitCode {
    let GateArgs {
        metrics,
        thresholds,
        format,
    } = gate;
    let read = |p: &Path| transbench_reports::read_results(&results_path(p));
    let base = match read(base) {
        Ok(r) => r,
        Err(e) => return input_error(format!("base: {e}")),
    };
    let cand = match read(cand) {
        Ok(r) => r,
        Err(e) => return input_error(format!("candidate: {e}")),
    };
    let opts = Options {
        gate: metrics,
        thresholds: thresholds.into_iter().collect::<BTreeMap<_, _>>(),
        allow_host_mismatch: allow.host,
        allow_scenario_mismatch: allow.scenario,
    };
    let c = match compare(&base, &cand, &opts) {
        Ok(c) => c,
        Err(e) => return input_error(e),
    };
    match render(&c, format) {
        Ok(out) => print!("{out}"),
        Err(e) => return input_error(e),
    }
    if c.regressions() > 0 {
        ExitCode::from(1)
    } else if !c.decidable() {
        // A gate that can never fail is no gate: the CI job should hear.
        eprintln!("error: {}", transbench_wire::printable(&c.headline()));
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_as_fractions() {
        assert_eq!(parse_threshold("p99=5"), Ok(("p99".into(), 0.05)));
        assert_eq!(parse_threshold("goodput=2.5%"), Ok(("goodput".into(), 0.025)));
        assert!(parse_threshold("p99").unwrap_err().contains("METRIC=PCT"));
        assert!(parse_threshold("p99=x").unwrap_err().contains("not a percentage"));
        assert!(parse_threshold("p99=-1").is_err());
    }
}
