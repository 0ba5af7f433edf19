//! Where each trial runs: a scenario that mixes an emulated path and
//! loopback runs every loopback trial's sender and receiver in the host's
//! network namespace, however many emulated trials ran before it on the
//! same thread, and every emulated trial's in the testbed's (root; in CI a
//! missing privilege fails, elsewhere the test is skipped with the reason).

mod common;

use common::*;
use std::process::Command;
use transbench_reports::read_results;

const MIXED: &str = r#"name = "mixed-paths"
duration = "300ms"
warmup = "100ms"
trials = 2
seed = 5
order = "as-written"

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["delay 1ms"]
rate = 200

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["none"]
rate = 200
"#;

#[test]
fn loopback_trials_after_emulated_ones_run_in_the_host_namespace() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    let host = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.toml");
    std::fs::write(&file, MIXED).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .env_remove("TRANSBENCH_SECRET")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_results(&out.join("results.json")).unwrap();
    assert_eq!(r.trials.len(), 8, "every trial of both entries");
    // As written: the emulated trials first, then loopback.
    let emulated: Vec<_> = r.trials.iter().filter(|t| t.impairment.is_some()).collect();
    let loopback: Vec<_> = r.trials.iter().filter(|t| t.impairment.is_none()).collect();
    assert_eq!((emulated.len(), loopback.len()), (4, 4));
    assert!(r.trials[..4].iter().all(|t| t.impairment.is_some()));
    for t in &loopback {
        assert_eq!(
            t.sender_netns.as_deref(),
            Some(host.as_str()),
            "sender of {}",
            t.id
        );
        assert_eq!(
            t.receiver.netns.as_deref(),
            Some(host.as_str()),
            "receiver of {}",
            t.id
        );
    }
    for t in &emulated {
        let (sender, receiver) = (t.sender_netns.as_deref(), t.receiver.netns.as_deref());
        assert!(
            sender.is_some() && sender != Some(host.as_str()),
            "sender of {}: {sender:?}",
            t.id
        );
        assert!(
            receiver.is_some() && receiver != Some(host.as_str()),
            "receiver of {}",
            t.id
        );
        assert_ne!(sender, receiver, "{}: two namespaces, one per agent", t.id);
    }
}
