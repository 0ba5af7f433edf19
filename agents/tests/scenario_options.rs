//! A scenario sets any trial option a flag of `transbench run` sets, by the
//! flag's name, and refuses a bad one at its key before anything runs.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use transbench_reports::read_results;

fn run(file: &Path, out: &Path) -> Output {
    Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .env_remove("TRANSBENCH_SECRET")
        .output()
        .unwrap()
}

const OPTIONS: &str = r#"name = "options"
duration = "300ms"
warmup = "100ms"
seed = 3

[[matrix]]
workload = "rr"
transports = ["quic"]
rate = 200
quic_stream = "single"
loss_timeout = "1500ms"
"#;

#[test]
fn options_beyond_the_first_few_reach_the_trial() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("options.toml");
    std::fs::write(&file, OPTIONS).unwrap();
    let out = dir.path().join("out");
    let o = run(&file, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_results(&out.join("results.json")).unwrap();
    let t = &r.trials[0];
    assert_eq!(
        t.cell.as_deref(),
        Some("rr quic none rate=200 loss_timeout=1500ms quic_stream=single")
    );
    assert_eq!(t.params.quic_stream.as_deref(), Some("single"));
    assert_eq!(t.params.loss_timeout_ns, 1_500_000_000);
    assert_eq!(t.params.rate, Some(200.0));
}

#[test]
fn a_bad_option_is_refused_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let refused = |text: String, says: &str| {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let o = run(&file, &out);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(!out.exists(), "nothing ran");
    };
    refused(
        OPTIONS.replace("rate = 200", "rate = 200\nstreams = 4"),
        "bad.toml:10: matrix[0].streams: --streams applies only to --workload multistream",
    );
    refused(
        OPTIONS.replace("rate = 200", "rat = 200"),
        "bad.toml:9: matrix[0].rat: \"rat\" is no trial option",
    );
    refused(
        OPTIONS.replace(r#"quic_stream = "single""#, r#"quic_stream = "double""#),
        "matrix[0].quic_stream: invalid value 'double'",
    );
    // Checked with its cell: only an emulated link has a namespace to set.
    let churn = OPTIONS
        .replace(r#"workload = "rr""#, r#"workload = "churn""#)
        .replace("rate = 200", "conn_rate = 50")
        .replace(r#"quic_stream = "single""#, "tw_reuse = 1")
        .replace(r#"["quic"]"#, r#"["tcp"]"#);
    refused(churn, "needs the testbed");
}
