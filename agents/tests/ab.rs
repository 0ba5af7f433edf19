//! `transbench ab` end to end on loopback: an A/A run of one build against
//! itself, interrupted and resumed, interleaves the two sides ABBA and
//! shows no regression; a candidate slowed by ptrace is a p50 REGRESSION;
//! a build without `run --max-trials` is refused in one line.
//!
//! Both runs gate on compare's default, p50 and p99 of the 2 cells: with
//! 8 trials a cell, paired, the one-sided signed-rank test's smallest p is
//! 1/256, which survives Holm over 4 rows (p < 0.0125). An A/A flags a
//! REGRESSION with probability at most 5 % by compare's construction, far
//! less with its noise band (reports/tests/calibration.rs measures it);
//! interleaving keeps the machine's drift out of the pairs.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use transbench_reports::{read_results, RunResults, Side};

const TRIALS: u32 = 8;

/// `transbench ab --base BASE --cand CAND SCENARIO ARGS...`,
/// at real-time priority where it can be had (its builds inherit it).
fn ab(base: &Path, cand: &Path, scenario: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    realtime(&mut cmd)
        .arg("ab")
        .arg("--base")
        .arg(base)
        .arg("--cand")
        .arg(cand)
        .arg(scenario)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// An executable shell script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn side(out: &Path, name: &str) -> RunResults {
    read_results(&out.join(name).join("results.json")).unwrap()
}

/// Every trial of both sides as (start time, cell, repetition, side), in
/// the order they ran.
fn timeline(base: &RunResults, cand: &RunResults) -> Vec<(String, String, u32, Side)> {
    let mut all: Vec<_> = [(base, Side::Base), (cand, Side::Cand)]
        .into_iter()
        .flat_map(|(r, side)| {
            r.trials.iter().map(move |t| {
                (
                    t.start_time.clone(),
                    t.cell.clone().unwrap(),
                    t.repetition.unwrap(),
                    side,
                )
            })
        })
        .collect();
    // RFC 3339 in UTC with milliseconds: text order is time order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// A/A: `ab` of the test's build against itself. Interrupted (SIGINT to
/// `ab` alone, as a CI job's timeout sends) once the base has 3 trials,
/// it exits 2 saying how to resume and keeps what finished; `--resume`
/// runs only the rest. Then every trial's partner (same cell, same
/// repetition) ran right next to it, base first on even repetitions and
/// the candidate first on odd ones, both sides carry one run id, compare
/// pairs every trial, and p50 shows no regression (exit 0).
#[test]
fn an_aa_run_interrupted_and_resumed_interleaves_abba_and_shows_no_regression() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = rr_scenario(dir.path(), "ab", "none", TRIALS);
    let out = dir.path().join("ab");
    let bin = Path::new(BIN);
    let started = Instant::now();

    let child = ab(bin, bin, &file, &["--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base_results = out.join("base/results.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_results(&base_results).map_or(true, |r| r.trials.len() < 3) {
        assert!(Instant::now() < deadline, "no 3 base trials in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: a plain syscall to the child this test started and has not
    // reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("interrupted") && err.contains(&format!("--resume {}", out.display())),
        "{err}"
    );
    let before = [side(&out, "base"), side(&out, "cand")];

    let o = ab(
        bin,
        bin,
        &file,
        &["--resume", out.to_str().unwrap(), "--format", "json"],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    note(&format!("ab A/A took {:.0} s", started.elapsed().as_secs_f64()));
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    let (base, cand) = (side(&out, "base"), side(&out, "cand"));

    // Resumed, not rerun: what finished before is there as it was.
    for (was, now) in before.iter().zip([&base, &cand]) {
        assert_eq!(was.trials[..], now.trials[..was.trials.len()]);
        assert_eq!(now.trials.len(), 2 * TRIALS as usize);
    }
    let (mb, mc) = (
        base.interleaved.clone().unwrap(),
        cand.interleaved.clone().unwrap(),
    );
    assert_eq!((mb.side, mc.side), (Side::Base, Side::Cand));
    assert_eq!(mb.run, mc.run);
    assert!(mb.base.starts_with(BIN) && mb.cand.starts_with(BIN), "{mb:?}");
    let order = timeline(&base, &cand);
    for pair in order.chunks(2) {
        let [(_, cell, rep, first), (_, cell2, rep2, second)] = pair else {
            panic!("an odd trial out: {order:#?}")
        };
        assert_eq!((cell, rep), (cell2, rep2), "partners ran apart: {order:#?}");
        let expected = if rep % 2 == 0 {
            (Side::Base, Side::Cand)
        } else {
            (Side::Cand, Side::Base)
        };
        assert_eq!((*first, *second), expected, "{cell} #{rep}: {order:#?}");
    }
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(json["family"], 4, "p50 and p99 of 2 cells: {json}");
    assert!(rows.iter().all(|r| r["paired"] == true), "{json}");
    assert!(
        rows.iter()
            .filter(|r| r["gated"] == true)
            .all(|r| r["test"] == "signed-rank"),
        "8 pairs reach significance in a family of 4: {json}"
    );
}

/// A candidate that does more per message: `strace -f` runs the build
/// (and the receiver it starts) under ptrace, so each of its system calls
/// stops it twice for the tracer, as a build making more or slower system
/// calls per message would be slower. No code path of the product is
/// made for the test. On this 2-core VM, loopback p50 goes from about
/// 80-110 us to 350-560 us (+320 % udp, +360 % tcp): exit 1, a REGRESSION
/// on both p50 rows.
#[test]
fn a_candidate_slowed_by_ptrace_is_a_p50_regression() {
    let _serial = serial();
    if !installed("strace", "-V", "strace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = rr_scenario(dir.path(), "ab", "none", TRIALS);
    let out = dir.path().join("ab");
    let slowed = script(
        dir.path(),
        "slowed",
        &format!("exec strace -f -qq -o /dev/null {BIN} \"$@\""),
    );
    let started = Instant::now();
    let o = ab(Path::new(BIN), &slowed, &file, &["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    note(&format!(
        "ab against a ptraced candidate, {:.0} s:\n{text}",
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    assert_p50_regressions(&text);
    let cand = side(&out, "cand").interleaved.unwrap();
    assert!(cand.cand.starts_with(slowed.to_str().unwrap()), "{cand:?}");
}

/// A build from before `run --max-trials` (here a script that refuses the
/// flag as clap does) is refused before any trial runs, in one line that
/// names it and says what it needs.
#[test]
fn a_build_without_max_trials_is_refused_in_one_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = rr_scenario(dir.path(), "ab", "none", TRIALS);
    let out = dir.path().join("ab");
    let old = script(
        dir.path(),
        "old",
        &format!(
            "case \" $* \" in *\" --max-trials \"*) echo \"error: unexpected argument '--max-trials' found\" >&2; \
             exit 2;; esac\nexec {BIN} \"$@\""
        ),
    );
    let o: Output = ab(&old, Path::new(BIN), &file, &["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for says in [
        "the base build",
        old.to_str().unwrap(),
        "no `run --max-trials`",
        "unexpected argument",
    ] {
        assert!(err.contains(says), "{says:?}: {err}");
    }
    assert!(!out.join("base").exists() && !out.join("cand").exists());
}
