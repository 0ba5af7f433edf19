//! `transbench compare` end to end: two real runs of one short scenario
//! (A/A, 10 trials a cell, as `bench/scenarios/ci.toml`) show no regression in at least 19 of 20 comparisons of resampled
//! trials; a candidate behind an emulated 2 ms each way (root) is a
//! latency REGRESSION (exit 1); inputs that cannot be compared exit 2 with
//! a one-line reason.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use transbench_reports::compare::{compare, Options};
use transbench_reports::{read_results, RunResults};

fn scenario(dir: &Path, profile: &str) -> PathBuf {
    let path = dir.join(format!("aa-{}.toml", profile.replace(' ', "-")));
    std::fs::write(
        &path,
        format!(
            r#"name = "aa"
duration = "1s"
warmup = "200ms"
trials = 10
seed = 21

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["{profile}"]
rate = 1000
size = 64
"#
        ),
    )
    .unwrap();
    path
}

fn transbench(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn run_into(file: &Path, out: &Path) -> RunResults {
    let o = transbench(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    read_results(&out.join("results.json")).unwrap()
}

/// `r` with each cell's trials drawn with replacement (seeded), their
/// repetitions renumbered.
fn resampled(r: &RunResults, seed: u64) -> RunResults {
    let mut rng = linkemu::rng::Prng::new(seed);
    let mut out = r.clone();
    out.trials.clear();
    let mut cells: Vec<String> = r.trials.iter().filter_map(|t| t.cell.clone()).collect();
    cells.dedup();
    cells.sort();
    cells.dedup();
    for cell in cells {
        let of: Vec<_> = r
            .trials
            .iter()
            .filter(|t| t.cell.as_ref() == Some(&cell))
            .collect();
        for rep in 0..of.len() {
            let mut t = of[rng.below(of.len() as u32) as usize].clone();
            t.repetition = Some(rep as u32);
            out.trials.push(t);
        }
    }
    out
}

#[test]
fn two_runs_of_one_scenario_show_no_regression_and_a_slower_link_does() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "none");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (ra, rb) = (run_into(&file, &a), run_into(&file, &b));

    // The recorded comparison, through the CLI, as JSON.
    let o = transbench(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["rows"].as_array().unwrap().len() >= 10, "{json}");
    assert!(json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["paired"] == true));

    // 20 comparisons of the two runs' trials, resampled.
    let clean = (0..20u64)
        .filter(|k| {
            let c = compare(
                &resampled(&ra, 100 + k),
                &resampled(&rb, 200 + k),
                &Options::default(),
            )
            .unwrap();
            if c.regressions() > 0 {
                eprintln!("resample {k}:\n{}", c.text());
            }
            c.regressions() == 0
        })
        .count();
    assert!(clean >= 19, "A/A: {clean} of 20 comparisons without a regression");

    // The candidate 2 ms slower each way: a regression on latency, exit 1.
    if !have_root() {
        return;
    }
    let slow = dir.path().join("slow");
    run_into(&scenario(dir.path(), "delay 2ms"), &slow);
    let o = transbench(&[
        "compare",
        a.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--allow-host-mismatch",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    for t in ["udp", "tcp"] {
        let p50 = text
            .lines()
            .find(|l| l.starts_with(&format!("rr {t} none")) && l.contains(" p50 "))
            .unwrap_or_else(|| panic!("no p50 row for {t}: {text}"));
        assert!(p50.ends_with("REGRESSION"), "{p50}");
    }
    assert!(text.contains("the path differing"), "{text}");
}

#[test]
fn inputs_that_cannot_be_compared_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("../render/tests/fixtures/results.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let truncated = write("truncated.json", &text[..text.len() / 2]);
    let other = write(
        "other.json",
        &text.replacen("\"transbench/1\"", "\"transbench/0\"", 1),
    );
    let mut empty: serde_json::Value = serde_json::from_str(&text).unwrap();
    empty["trials"] = serde_json::json!([]);
    let empty = write("empty.json", &empty.to_string());
    for (bad, says) in [
        (&truncated, "truncated"),
        (&other, "has schema \"transbench/0\""),
        (&empty, "has no trials"),
        (&dir.path().join("missing.json"), "cannot read"),
    ] {
        let o = transbench(&["compare", good.to_str().unwrap(), bad.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", bad.display());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{}: {err}", bad.display());
    }
}
