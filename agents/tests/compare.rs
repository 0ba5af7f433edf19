//! `transbench compare` end to end: A/A, the two halves of one run of a
//! short scenario (20 trials a cell in its seeded order, halved by
//! repetition: 10 a cell each, as `bench/scenarios/ci.toml`) show no
//! regression, through the CLI and in at least 19 of 20 splits of the
//! trials; with 6 trials a side, a candidate behind an emulated 1 ms each
//! way (root) is a latency REGRESSION (exit 1); inputs that cannot be
//! compared exit 2 with a one-line reason.
//!
//! Why halves of one run and not two runs: on a machine whose load changes
//! (a build starts next door), two runs one after the other differ for
//! real, and compare rightly says so. The scenario's seeded order spreads
//! each cell's trials over the whole run, so its two halves (and any split
//! of its trials) see the same machine, as `transbench ab` (which
//! `bench/ci/compare.yml` uses) interleaves two builds' trials.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use transbench_reports::compare::{compare, Options};
use transbench_reports::{read_results, write_atomic, RunResults};

fn run_into(file: &Path, out: &Path) -> RunResults {
    let o = realtime(&mut Command::new(BIN))
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    read_results(&out.join("results.json")).unwrap()
}

/// Of `r`, per cell, the trials whose repetition `side` maps to a new one
/// (`None`: left out), renumbered so; the scenario's trial count set to
/// what is left.
fn part(r: &RunResults, per_cell: u32, side: impl Fn(u32) -> Option<u32>) -> RunResults {
    let mut out = r.clone();
    out.trials = r
        .trials
        .iter()
        .filter_map(|t| {
            let rep = side(t.repetition.expect("a scenario trial"))?;
            let mut t = t.clone();
            t.repetition = Some(rep);
            Some(t)
        })
        .collect();
    out.scenario.as_mut().unwrap().trials_per_cell = per_cell;
    out
}

/// A seeded split of repetitions 0..2n into two sides of n: for each
/// repetition, its side and its repetition there.
fn split(n: u32, seed: u64) -> Vec<(bool, u32)> {
    let mut rng = linkemu::rng::Prng::new(seed);
    let mut order: Vec<u32> = (0..2 * n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u32 + 1) as usize);
    }
    let mut at = vec![(false, 0); order.len()];
    for (pos, &rep) in order.iter().enumerate() {
        let pos = pos as u32;
        at[rep as usize] = (pos >= n, pos % n);
    }
    at
}

#[test]
fn two_halves_of_one_run_show_no_regression_and_a_slower_link_does() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    const HALF: u32 = 10;
    let whole = run_into(
        &rr_scenario(dir.path(), "aa", "none", 2 * HALF),
        &dir.path().join("whole"),
    );
    assert_eq!(whole.trials.len(), 2 * 2 * HALF as usize);

    // The halves by repetition's parity, as two result files, through the
    // CLI as JSON: unpaired (one run's halves share seeds, not time).
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ra = part(&whole, HALF, |rep| (rep % 2 == 0).then_some(rep / 2));
    let rb = part(&whole, HALF, |rep| (rep % 2 == 1).then_some(rep / 2));
    for (path, r) in [(&a, &ra), (&b, &rb)] {
        std::fs::create_dir_all(path).unwrap();
        write_atomic(&path.join("results.json"), r).unwrap();
    }
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
        .all(|r| r["paired"] == false));

    // 20 A/A comparisons: the parity halves, and 19 seeded splits. Each
    // flags a REGRESSION with probability at most alpha = 5 % by compare's
    // construction (one-sided rank-sum tests, Holm at 5 % over the gated
    // rows), and the noise band lowers that a great deal: the interval
    // must also clear the band, which each run's own A/A spread sets. The
    // issue's bound is at most 1 in 20. (reports/tests/calibration.rs
    // measures the rate on recorded runs, quiet and beside a CPU-bound
    // neighbour: 1 in 400 splits.)
    let clean = (0..20u64)
        .filter(|&k| {
            let (base, cand) = if k == 0 {
                (ra.clone(), rb.clone())
            } else {
                let at = split(HALF, 100 + k);
                let side = |cand: bool| {
                    let at = at.clone();
                    move |rep: u32| (at[rep as usize].0 == cand).then_some(at[rep as usize].1)
                };
                (part(&whole, HALF, side(false)), part(&whole, HALF, side(true)))
            };
            let c = compare(&base, &cand, &Options::default()).unwrap();
            if c.regressions() > 0 {
                note(&format!("compare A/A split {k}:\n{}", c.text()));
            }
            c.regressions() == 0
        })
        .count();
    assert!(clean >= 19, "A/A: {clean} of 20 comparisons without a regression");

    // 3 trials a side can call nothing with 4 gated rows: said first,
    // exit 2, since a gate that cannot fail is no gate.
    let (x, y) = (dir.path().join("x"), dir.path().join("y"));
    for (path, keep) in [(&x, 0..3), (&y, 3..6)] {
        std::fs::create_dir_all(path).unwrap();
        let r = part(&whole, 3, |rep| keep.contains(&rep).then(|| rep - keep.start));
        write_atomic(&path.join("results.json"), &r).unwrap();
    }
    let o = transbench(&["compare", x.to_str().unwrap(), y.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{text}{}", stderr(&o));
    assert!(
        text.starts_with("TOO FEW TRIALS: with 3 and 3 trials a cell"),
        "{text}"
    );
    assert!(!text.contains("INCONCLUSIVE"), "{text}");
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));

    // The case: 6 trials a side, the candidate behind an emulated
    // 1 ms each way. Its p50 is a REGRESSION, exit 1 (it was INCONCLUSIVE
    // at p = 0.31 when seeds made pairs and Holm ran over every row).
    if !have_root() {
        return;
    }
    const SIX: u32 = 6;
    let base6 = dir.path().join("base6");
    std::fs::create_dir_all(&base6).unwrap();
    write_atomic(
        &base6.join("results.json"),
        &part(&whole, SIX, |rep| (rep < SIX).then_some(rep)),
    )
    .unwrap();
    let slow = dir.path().join("slow");
    run_into(&rr_scenario(dir.path(), "aa", "delay 1ms", SIX), &slow);
    let o = transbench(&[
        "compare",
        base6.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--allow-host-mismatch",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    assert!(text.starts_with("REGRESSION in "), "{text}");
    assert_p50_regressions(&text);
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
    let mut other: serde_json::Value = serde_json::from_str(&text).unwrap();
    other["schema"] = serde_json::json!("transbench/0");
    let other = write("other.json", &other.to_string());
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
