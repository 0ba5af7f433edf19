//! The CI exports pass their formats' checks (`tests/export/validate.py`):
//! github-action-benchmark's custom JSON and the Bencher Metric Format
//! against JSON Schemas (Bencher's published one; the action's written
//! from its README and its parser, as the action runs only on GitHub), and
//! the JUnit XML against Jenkins xunit's `junit-10.xsd`, then read by
//! `junitparser` (what GitHub's publish-unit-test-result action reads JUnit
//! with) to the counts the gate has. The inputs: the report fixture's real
//! trials as a run, and a comparison with a regression, a broken invariant,
//! a cell id of characters XML cannot carry and a cell only one side has.
//!
//! Needs python3 with jsonschema, xmlschema and junitparser, and the XSD
//! (`tests/export/junit-xsd.sh` puts it in target/interop/, or give its
//! path in TRANSBENCH_JUNIT_XSD); `.ci/run` sets them up. Elsewhere a
//! missing one skips its test with the reason; in CI (CI=true) it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use transbench_reports::compare::{compare, Comparison, Options};
use transbench_reports::export::{bencher, github, junit};
use transbench_reports::stats::Better;
use transbench_reports::{read_results, RunResults, TrialResult};

fn missing(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} (CI=true: .ci/run must install it)");
    }
    eprintln!("skipping: {what}");
}

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> RunResults {
    read_results(&here().join("../render/tests/fixtures/results.json")).unwrap()
}

/// Whether python3 has the checker's packages; if not, says so.
fn checker_runs() -> bool {
    let probe = "import jsonschema, xmlschema, junitparser";
    match Command::new("python3").args(["-c", probe]).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            missing(&format!(
                "python3 lacks the checker's packages (pip install jsonschema xmlschema junitparser): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            false
        }
        Err(e) => {
            missing(&format!("python3 not runnable: {e}"));
            false
        }
    }
}

/// `validate.py KIND FILE [XSD]` on `text`: its one line, or a panic with
/// its reasons.
fn validate(kind: &str, text: &str, xsd: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(here().join("tests/export/validate.py"))
        .arg(kind)
        .arg(&file);
    cmd.args(xsd);
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{kind} refused:\n{out}{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// `n` copies of `template` as the trials of cell `id`, latency scaled by
/// `scale` with a seeded 3 % spread.
fn cell(template: &TrialResult, id: &str, n: u32, scale: f64, seed: u64) -> Vec<TrialResult> {
    let mut rng = linkemu::rng::Prng::new(seed);
    (0..n)
        .map(|rep| {
            let f = scale * (1.0 + 0.06 * (rng.next_u32() as f64 / u32::MAX as f64 - 0.5));
            let mut t = template.clone();
            t.id = format!("{id}-{rep}");
            t.cell = Some(id.to_string());
            t.repetition = Some(rep);
            for v in [&mut t.lat.p50, &mut t.lat.p99, &mut t.lat.p999] {
                *v = (*v as f64 * f) as u64;
            }
            t
        })
        .collect()
}

/// A candidate 30 % slower in one cell, with errors in another whose id
/// XML 1.0 cannot carry as it is, and a cell only the base has.
fn comparison() -> Comparison {
    let run = fixture();
    let template = run.trials.iter().find(|t| t.cell.is_some()).unwrap();
    let weird = "rr <odd> & \"quoted\" \u{0}\u{1b}[2J\u{fffe}";
    let (mut base, mut cand) = (run.clone(), run.clone());
    base.trials = [
        cell(template, "rr slower", 12, 1.0, 1),
        cell(template, weird, 12, 1.0, 2),
        cell(template, "rr gone", 3, 1.0, 3),
    ]
    .concat();
    cand.trials = [
        cell(template, "rr slower", 12, 1.3, 4),
        cell(template, weird, 12, 1.0, 5),
    ]
    .concat();
    cand.trials.last_mut().unwrap().counters.errors = 1;
    compare(&base, &cand, &Options::default()).unwrap()
}

#[test]
fn github_action_benchmark_input_has_its_shape() {
    if !checker_runs() {
        return;
    }
    let run = fixture();
    let c = comparison();
    for better in [Better::Lower, Better::Higher] {
        let out = validate("github", &github::from_run(&run, better).unwrap(), None);
        assert!(out.starts_with("github: "), "{out}");
        validate("github", &github::from_comparison(&c, better).unwrap(), None);
    }
}

#[test]
fn bencher_metric_format_has_its_shape() {
    if !checker_runs() {
        return;
    }
    let out = validate("bmf", &bencher::from_run(&fixture()).unwrap(), None);
    assert!(out.starts_with("bmf: "), "{out}");
    validate("bmf", &bencher::from_comparison(&comparison()).unwrap(), None);
}

fn xsd() -> Option<PathBuf> {
    let path = std::env::var_os("TRANSBENCH_JUNIT_XSD")
        .map(PathBuf::from)
        .unwrap_or_else(|| here().join("../target/interop/junit-10.xsd"));
    if path.is_file() {
        Some(path)
    } else {
        missing(&format!(
            "no JUnit schema at {}: run reports/tests/export/junit-xsd.sh",
            path.display()
        ));
        None
    }
}

#[test]
fn junit_xml_validates_against_the_xsd_and_reads_back_as_the_gate_judged() {
    if !checker_runs() {
        return;
    }
    let Some(xsd) = xsd() else {
        return;
    };
    let c = comparison();
    assert!(
        c.regressions() >= 2,
        "a latency row and the invariant: {}",
        c.text()
    );
    let out = validate("junit", &junit::from_comparison(&c), Some(&xsd));
    let tests = c.rows.len() + c.invariants.len() + c.only_in_base.len() + c.only_in_cand.len();
    let expected = format!("junit: tests={tests} failures={} skipped=", c.regressions());
    assert!(out.starts_with(&expected), "{out} is not {expected}...");
    let skipped: usize = out.trim().rsplit('=').next().unwrap().parse().unwrap();
    assert!(skipped >= 1, "the cell only the base has: {out}");
}
