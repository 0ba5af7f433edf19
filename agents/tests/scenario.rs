//! `transbench run SCENARIO` on loopback: every trial of the matrix in the
//! scenario's seeded order, each tagged with its cell; `--resume` runs only
//! what a results file lacks; a bad scenario stops before anything runs,
//! saying file, line and key.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use transbench_reports::read_results;

const SCENARIO: &str = r#"name = "tiny"
duration = "300ms"
warmup = "100ms"
trials = 2
seed = 11

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["none"]
rate = 500
"#;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("run")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("TRANSBENCH_SECRET")
        .output()
        .unwrap()
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_scenario_runs_every_trial_in_its_order_and_resumes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SCENARIO);
    let out = dir.path().join("out");
    let o = run(&[&file, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read_results(&out.join("results.json")).unwrap();
    let info = results.scenario.as_ref().expect("scenario recorded");
    assert_eq!(
        (info.name.as_str(), info.seed, info.trials_per_cell),
        ("tiny", 11, 2)
    );
    assert_eq!(info.cells, ["rr udp none rate=500", "rr tcp none rate=500"]);
    // The seeded order, as the scenario crate computes it.
    let scenario = transbench_scenario::parse("tiny.toml", SCENARIO, &|_| None).unwrap();
    let expected: Vec<(String, u32)> = scenario
        .trials()
        .iter()
        .map(|t| (scenario.cells[t.cell].id.clone(), t.repetition))
        .collect();
    let ran: Vec<(String, u32)> = results
        .trials
        .iter()
        .map(|t| (t.cell.clone().unwrap(), t.repetition.unwrap()))
        .collect();
    assert_eq!(ran, expected);
    // (Validity is not the point here: 0.3 s trials on a loaded machine may
    // miss their schedule.)
    for t in &results.trials {
        assert!(t.lat.count > 0, "{}", t.id);
        let cell = t.cell.as_deref().unwrap();
        assert_eq!(cell.split(' ').nth(1), Some(t.transport.name()), "{cell}");
    }

    // Lose the last two trials, as an interrupted run would; --resume runs
    // those two and keeps the rest as they were.
    let mut cut = results.clone();
    cut.trials.truncate(2);
    transbench_reports::write_atomic(&out.join("results.json"), &cut).unwrap();
    let o = run(&[&file, "--resume", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 trials done, 2 to run"), "{}", stderr(&o));
    let resumed = read_results(&out.join("results.json")).unwrap();
    assert_eq!(resumed.trials.len(), 4);
    assert_eq!(resumed.trials[..2], results.trials[..2]);
    let mut cells: Vec<_> = resumed
        .trials
        .iter()
        .map(|t| (t.cell.clone().unwrap(), t.repetition.unwrap()))
        .collect();
    cells.sort();
    let mut all = expected.clone();
    all.sort();
    assert_eq!(cells, all, "every trial once");
    // The run ends with its report, beside the results, of every trial.
    let report = out.join("report");
    for file in ["index.html", "summary.md", "spectrum-rr.png", "spectrum-rr.svg"] {
        assert!(report.join(file).is_file(), "{file}");
    }
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    // Two trials of the cell (a loaded machine may mark one invalid).
    assert!(summary.contains("| rr udp none rate=500 | 2"), "{summary}");
    assert!(report.join("hdr/rr_tcp_none_rate_500.hlog").is_file());
    // `report` renders it again, anywhere.
    let again = dir.path().join("again");
    let report_cmd = |args: &[&str]| Command::new(BIN).arg("report").args(args).output().unwrap();
    let o = report_cmd(&[
        out.join("results.json").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(again.join("index.html").is_file());
    let o = report_cmd(&[dir.path().join("nothing-here").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    // Another scenario's results are not resumed.
    let other = write(dir.path(), &SCENARIO.replace("seed = 11", "seed = 12"));
    let o = run(&[&other, "--resume", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("another scenario"), "{}", stderr(&o));
}

/// A trial that misses its send schedule is run again, up to
/// `retry_invalid` more times, every attempt kept and the replaced ones
/// marked; the summary says in one line that the machine missed it; and
/// `--resume` gives a trial cut off between attempts the ones it lacks.
/// A send lag bound of 1 ns makes every attempt miss (no sender sends 99 %
/// of its messages within a nanosecond of their time).
#[test]
fn a_trial_that_missed_its_schedule_is_retried_and_every_attempt_kept() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &SCENARIO
            .replace("seed = 11", "seed = 11\nretry_invalid = 2")
            .replace("rate = 500", "rate = 500\nmax_send_lag = \"1ns\""),
    );
    let out = dir.path().join("out");
    let o = run(&[&file, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read_results(&out.join("results.json")).unwrap();
    assert_eq!(results.scenario.as_ref().unwrap().retry_invalid, 2);
    assert_eq!(
        results.trials.len(),
        4 * 3,
        "2 cells x 2 repetitions x 3 attempts"
    );
    for attempts in results.trials.chunks(3) {
        let key = |t: &transbench_reports::TrialResult| (t.cell.clone().unwrap(), t.repetition.unwrap());
        for (k, t) in attempts.iter().enumerate() {
            assert_eq!(key(t), key(&attempts[0]));
            assert_eq!(t.attempt, k as u32 + 1, "{}", t.id);
            assert!(!lagged_only(t) && t.missed_schedule, "{}", t.id);
            assert_eq!(t.params.max_send_lag_ns, Some(1));
            assert_eq!(
                t.superseded_by.as_ref(),
                attempts.get(k + 1).map(|n| &n.id),
                "{}",
                t.id
            );
        }
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout
        .lines()
        .rfind(|l| l.contains("missed their send schedule"))
        .unwrap_or_default();
    assert_eq!(
        last,
        "4 of 4 trials missed their send schedule on this machine (send lag p99 over 1ns: the host was busy, \
         not the network); 4 still invalid after 2 retries: rerun on a quieter machine or raise trials",
        "{stdout}"
    );
    assert_eq!(stdout.matches("NO (retried)").count(), 8, "{stdout}");
    // The report counts each trial once, its final attempt.
    let summary = std::fs::read_to_string(out.join("report/summary.md")).unwrap();
    assert!(
        summary.contains("| rr udp none rate=500 max_send_lag=1ns | 2 (2 invalid)"),
        "{summary}"
    );

    // Cut off after a trial's first attempt: --resume runs its two retries
    // and nothing else.
    let mut cut = results.clone();
    cut.trials.truncate(10);
    cut.trials[9].superseded_by = None;
    transbench_reports::write_atomic(&out.join("results.json"), &cut).unwrap();
    let o = run(&[&file, "--resume", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 trials done, 1 to run"), "{}", stderr(&o));
    let resumed = read_results(&out.join("results.json")).unwrap();
    assert_eq!(resumed.trials.len(), 12);
    assert_eq!(resumed.trials[..9], results.trials[..9]);
    let attempts: Vec<u32> = resumed.trials[9..].iter().map(|t| t.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(
        resumed.trials[9].superseded_by.as_ref(),
        Some(&resumed.trials[10].id)
    );
}

/// Without --out every run gets a directory of its own under
/// transbench-out/ and `latest` follows the newest; an --out holding a
/// run is refused, saying what is there and what to do, unless --force.
#[test]
fn a_second_run_never_replaces_the_first() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &SCENARIO
            .replace("trials = 2", "trials = 1")
            .replace(r#", "tcp""#, ""),
    );
    let in_dir = |args: &[&str]| {
        Command::new(BIN)
            .arg("run")
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("TRANSBENCH_SECRET")
            .output()
            .unwrap()
    };
    let root = dir.path().join("transbench-out");
    let mut printed = Vec::new();
    for _ in 0..2 {
        let o = in_dir(&[&file]);
        assert!(o.status.success(), "{}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let results = stdout
            .lines()
            .find_map(|l| l.strip_prefix("results: "))
            .unwrap_or_else(|| panic!("no results line: {stdout}"))
            .to_string();
        assert!(results.starts_with("transbench-out/tiny-"), "{results}");
        assert!(stdout.contains(&format!(
            "report: {}",
            results.replace("results.json", "report/index.html")
        )));
        printed.push(dir.path().join(results));
    }
    assert_ne!(printed[0], printed[1]);
    for results in &printed {
        assert_eq!(
            read_results(results).unwrap().trials.len(),
            1,
            "{}",
            results.display()
        );
    }
    let latest = std::fs::canonicalize(root.join("latest")).unwrap();
    assert_eq!(
        latest,
        std::fs::canonicalize(printed[1].parent().unwrap()).unwrap()
    );
    assert!(std::fs::read_link(root.join("latest")).unwrap().is_relative());

    // An --out that holds a run: refused, then replaced with --force.
    let out = printed[0].parent().unwrap().to_str().unwrap().to_string();
    let o = in_dir(&[&file, "--out", &out]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("already holds a run (results.json with 1 trial of scenario \"tiny\"")
            && err.contains(&format!("--resume {out} continues it, --force replaces it")),
        "{err}"
    );
    let o = in_dir(&[&file, "--out", &out, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_results(&printed[0]).unwrap().trials.len(), 1);
}

#[test]
fn a_bad_scenario_stops_before_anything_runs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = write(dir.path(), &SCENARIO.replace(r#""tcp"]"#, r#""sctp"]"#));
    let o = run(&[&file, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tiny.toml:9: matrix[0].transports: unknown transport \"sctp\""),
        "{err}"
    );
    assert!(!out.exists(), "nothing ran");

    // Valid TOML, but a trial no sender would run: its cell and line.
    let file = write(
        dir.path(),
        &SCENARIO.replace("rate = 500", "rate = 500\nsize = 10"),
    );
    let o = run(&[&file, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tiny.toml:7: cell \"rr udp none rate=500 size=10\""),
        "{err}"
    );
    assert!(err.contains("--size 10 is out of range"), "{err}");
    assert!(!out.exists(), "nothing ran");

    // A scenario sets its own transports.
    let file = write(dir.path(), SCENARIO);
    let o = run(&[&file, "--transport", "quic"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sets the transports"), "{}", stderr(&o));
}

/// As root: a lossy multistream cell gets its no-loss baseline on the same
/// path first (marked, in no cell), each trial carries its own link probe,
/// and a cell marked skip_without_root runs.
#[test]
fn a_lossy_multistream_cell_gets_its_baseline_and_each_trial_its_probe() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hol.toml");
    std::fs::write(
        &file,
        r#"name = "tiny-hol"
duration = "1s"
warmup = "200ms"
trials = 2
seed = 3

[[matrix]]
workload = "multistream"
transports = ["tcp-mux"]
profiles = ["delay 5ms loss 1%"]
streams = 4
rate = 20
size = 256
skip_without_root = true
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&[file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_results(&out.join("results.json")).unwrap();
    assert_eq!(r.trials.len(), 3, "one baseline, two trials");
    let base = &r.trials[0];
    assert!(base.baseline && base.cell.is_none(), "{}", base.id);
    let link = base.impairment.as_ref().unwrap();
    assert!(!link.forward.contains("loss"), "{}", link.forward);
    for t in &r.trials[1..] {
        assert!(!t.baseline && t.cell.is_some(), "{}", t.id);
        let hol = t.hol.as_ref().unwrap();
        assert_eq!(hol.base_source, format!("trial {}", base.id), "{}", t.id);
        let probe = t.impairment.as_ref().unwrap().delivered.as_ref().unwrap();
        assert!(probe.forward.measured.delay_p50_ns >= 5_000_000, "{}", t.id);
    }
    // The report leaves the baseline out of its cells.
    let summary = std::fs::read_to_string(out.join("report/summary.md")).unwrap();
    assert!(summary.contains("3 (1 of them no-loss baselines)"), "{summary}");
    assert!(
        summary.contains("| multistream tcp-mux delay 5ms loss 1% rate=20 size=256 streams=4 | 2"),
        "{summary}"
    );
}
