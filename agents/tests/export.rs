//! `report --format` and `compare --format` for CI tools, through the CLI:
//! a real run (the report fixture) exports as github-action-benchmark's
//! and Bencher's input, and a slower candidate's comparison as JUnit XML
//! with the regression failing. What the formats' own tools make of the
//! output is `reports/tests/export_interop.rs`.

mod common;

use common::{stderr, transbench};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use transbench_reports::{read_results, write_atomic, RunResults};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../render/tests/fixtures/results.json")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_run_exports_each_cell_and_metric_once_in_fixed_units() {
    let path = fixture();
    let path = path.to_str().unwrap();
    let mut names = Vec::new();
    for (format, units) in [
        ("github-smaller", &["ns", "%"][..]),
        ("github-bigger", &["Mbit/s", "ops/s"][..]),
    ] {
        let o = transbench(&["report", path, "--format", format]);
        assert!(o.status.success(), "{}", stderr(&o));
        let entries: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
        for e in &entries {
            assert!(units.contains(&e["unit"].as_str().unwrap()), "{format}: {e}");
            assert!(e["value"].as_f64().unwrap().is_finite(), "{e}");
            names.push(e["name"].as_str().unwrap().to_string());
        }
    }
    assert!(
        names.contains(&"rr tcp none rate=1000 size=64 p50".to_string()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("churn ") && n.ends_with(" conn_rate")),
        "{names:?}"
    );

    let o = transbench(&["report", path, "--format", "bmf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bmf: serde_json::Map<String, Value> = serde_json::from_str(&stdout(&o)).unwrap();
    // The same series in both tools.
    let mut bencher: Vec<&String> = bmf.keys().collect();
    let mut github: Vec<&String> = names.iter().collect();
    bencher.sort();
    github.sort();
    assert_eq!(bencher, github);
    assert_eq!(
        bmf["rr tcp none rate=1000 size=64 p50"]["latency"]["value"],
        33751.0
    );

    // Export formats print; a directory for them is a mistake, said so.
    let o = transbench(&["report", path, "--format", "bmf", "--out", "somewhere"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("redirect it to the file instead"),
        "{}",
        stderr(&o)
    );
}

/// `n` trials of the fixture's `rr tcp none` cell, each a copy of its
/// first with latency scaled by `scale` and a seeded 3 % spread.
fn rr_cell(n: u32, scale: f64, seed: u64) -> RunResults {
    let mut run = read_results(&fixture()).unwrap();
    let template = run
        .trials
        .iter()
        .find(|t| t.cell.as_deref() == Some("rr tcp none rate=1000 size=64"))
        .unwrap()
        .clone();
    let mut rng = linkemu::rng::Prng::new(seed);
    run.trials = (0..n)
        .map(|rep| {
            let f = scale * (1.0 + 0.06 * (rng.next_u32() as f64 / u32::MAX as f64 - 0.5));
            let mut t = template.clone();
            t.id = format!("tcp-{rep}");
            t.repetition = Some(rep);
            for v in [&mut t.lat.p50, &mut t.lat.p99, &mut t.lat.p999] {
                *v = (*v as f64 * f) as u64;
            }
            t
        })
        .collect();
    run
}

#[test]
fn a_slower_candidate_fails_its_junit_case_and_the_gate_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base.json"), dir.path().join("cand.json"));
    write_atomic(&base, &rr_cell(12, 1.0, 1)).unwrap();
    write_atomic(&cand, &rr_cell(12, 1.3, 2)).unwrap();
    let (base, cand) = (base.to_str().unwrap(), cand.to_str().unwrap());

    let o = transbench(&["compare", base, cand, "--format", "junit"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let xml = stdout(&o);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("rr tcp none rate=1000 size=64 p50"))
        .unwrap_or_else(|| panic!("{xml}"));
    let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("REGRESSION"));

    // The comparison's numbers reach github-action-benchmark too.
    let o = transbench(&["compare", base, cand, "--format", "github-smaller"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let entries: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let p50 = entries
        .iter()
        .find(|e| e["name"] == "rr tcp none rate=1000 size=64 p50")
        .unwrap();
    assert!(p50["extra"].as_str().unwrap().ends_with("REGRESSION"), "{p50}");
}

#[test]
fn a_direction_with_nothing_to_export_exits_2_and_names_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = rr_cell(3, 1.0, 3);
    // No duration, no goodput: nothing higher-is-better.
    for t in &mut run.trials {
        t.duration_ns = 0;
    }
    let path = dir.path().join("run.json");
    write_atomic(&path, &run).unwrap();
    let path = path.to_str().unwrap();
    let o = transbench(&["compare", path, path, "--format", "github-bigger"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--format github-smaller"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let o = transbench(&["report", path, "--format", "github-bigger"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--format github-smaller"), "{}", stderr(&o));
}
