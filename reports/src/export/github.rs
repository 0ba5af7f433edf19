//! github-action-benchmark's input for its `customSmallerIsBetter` and
//! `customBiggerIsBetter` tools: a JSON array of `{name, unit, value,
//! range?, extra?}` (its README, "customBiggerIsBetter and
//! customSmallerIsBetter"; its `src/extract.ts` reads the file with a zod
//! schema: `value` a number, the others strings). A workflow step runs one
//! tool, and a tool is one direction, so lower- and higher-is-better
//! metrics are two outputs.

use serde::Serialize;

use super::{describe, points_of_comparison, points_of_run, ExportError, Point, Scale};
use crate::compare::{Comparison, METRICS};
use crate::schema::RunResults;
use crate::stats::Better;

#[derive(Serialize)]
struct Entry {
    name: String,
    unit: &'static str,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<String>,
}

/// The tool (its `tool:` input) that reads the metrics `better` is the
/// direction of.
pub fn tool(better: Better) -> &'static str {
    match better {
        Better::Lower => "customSmallerIsBetter",
        Better::Higher => "customBiggerIsBetter",
    }
}

/// A run's medians per cell, the metrics where `better` is better.
pub fn from_run(run: &RunResults, better: Better) -> Result<String, ExportError> {
    render(&points_of_run(run), better)
}

/// The candidate's medians, with the change against the base and the
/// verdict: what the tool, which only sees one run a commit, cannot know.
pub fn from_comparison(c: &Comparison, better: Better) -> Result<String, ExportError> {
    render(&points_of_comparison(c), better)
}

fn entry(p: &Point) -> Entry {
    let scale = Scale::of(p.metric.unit);
    let pct = |v: f64| format!("{:+.1}%", v * 100.0);
    let (range, extra) = match p.row {
        Some(r) => (
            Some(format!(
                "{} (95% CI {} to {}) against the base",
                pct(r.change),
                pct(r.ci.0),
                pct(r.ci.1)
            )),
            Some(describe(r)),
        ),
        None => (
            p.spread.map(|(lo, hi)| {
                format!(
                    "{} to {} over {} trials",
                    scale.show(lo),
                    scale.show(hi),
                    p.trials
                )
            }),
            None,
        ),
    };
    Entry {
        name: p.name.clone(),
        unit: scale.name,
        value: p.value * scale.factor,
        range,
        extra,
    }
}

fn render(points: &[Point], better: Better) -> Result<String, ExportError> {
    let entries: Vec<Entry> = points
        .iter()
        .filter(|p| p.metric.better == better)
        .map(entry)
        .collect();
    if entries.is_empty() {
        let (these, other) = match better {
            Better::Lower => ("lower", "github-bigger"),
            Better::Higher => ("higher", "github-smaller"),
        };
        let names: Vec<&str> = METRICS
            .iter()
            .filter(|m| m.better == better)
            .map(|m| m.name)
            .collect();
        return Err(ExportError::Nothing {
            format: tool(better),
            why: format!(
                "no cell has a metric where {these} is better ({}), and github-action-benchmark refuses an \
                 empty file; export only the other direction (--format {other})",
                names.join(", ")
            ),
        });
    }
    Ok(serde_json::to_string_pretty(&entries).expect("entries serialize") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::{run, slower};
    use serde_json::Value;

    fn parse(s: &str) -> Vec<Value> {
        serde_json::from_str::<Value>(s)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn each_direction_gets_its_own_metrics_in_fixed_units() {
        let r = run(&["rr a"], 3, 50_000.0, 1);
        let smaller = parse(&from_run(&r, Better::Lower).unwrap());
        let names: Vec<&str> = smaller.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["rr a p50", "rr a p99", "rr a p999", "rr a loss"]);
        let loss = &smaller[3];
        assert_eq!(
            (loss["unit"].as_str(), loss["value"].as_f64()),
            (Some("%"), Some(0.1))
        );
        assert_eq!(loss["range"], "0.100 % to 0.100 % over 3 trials");
        assert!(loss.get("extra").is_none());
        let bigger = parse(&from_run(&r, Better::Higher).unwrap());
        assert_eq!(bigger.len(), 1);
        // 999 answers of 64 bytes in one second.
        assert_eq!(bigger[0]["name"], "rr a goodput");
        assert_eq!(bigger[0]["unit"], "Mbit/s");
        assert!((bigger[0]["value"].as_f64().unwrap() - 0.511488).abs() < 1e-9);
    }

    #[test]
    fn a_comparison_carries_the_change_and_the_verdict() {
        let c = slower("rr slow", "rr same");
        let smaller = parse(&from_comparison(&c, Better::Lower).unwrap());
        let p50 = smaller.iter().find(|e| e["name"] == "rr slow p50").unwrap();
        let row = c
            .rows
            .iter()
            .find(|r| r.cell == "rr slow" && r.metric == "p50")
            .unwrap();
        assert_eq!(p50["value"].as_f64(), Some(row.cand_median));
        let range = p50["range"].as_str().unwrap();
        assert!(
            range.starts_with('+') && range.ends_with("against the base"),
            "{range}"
        );
        assert!(p50["extra"].as_str().unwrap().ends_with("REGRESSION"), "{p50}");
    }

    #[test]
    fn an_empty_direction_is_refused_with_the_other_one_named() {
        let mut r = run(&["rr a"], 3, 50_000.0, 1);
        // No goodput without a duration: nothing higher-is-better is left.
        for t in &mut r.trials {
            t.duration_ns = 0;
        }
        let e = from_run(&r, Better::Higher).unwrap_err().to_string();
        assert!(
            e.contains("customBiggerIsBetter") && e.contains("--format github-smaller"),
            "{e}"
        );
        assert!(e.contains("goodput, throughput, conn_rate"), "{e}");
    }
}
