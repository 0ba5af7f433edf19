//! A scenario run against a receiver on another host (issue 20): two
//! "lab hosts" are two network namespaces joined by a veth pair, the
//! receiver left running in one as a lab's would be, the sender running
//! the scenario from the other with `--receiver`.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use testbed::NetNs;
use transbench_reports::{read_results, RunResults};

const SECRET: &str = "a lab's shared secret, 32 bytes.";
const SENDER_IP: &str = "10.202.0.1";
const RECEIVER_IP: &str = "10.202.0.2";

/// Two namespaces joined by a veth pair (`tba` in the sender's, `tbb` in
/// the receiver's), both removed when dropped, with what runs in them.
struct LabPair {
    sender: NetNs,
    receiver: NetNs,
}

impl LabPair {
    fn new() -> Self {
        let prefix = testbed::name_prefix();
        let sender = NetNs::create(&format!("{prefix}-a")).unwrap();
        let receiver = NetNs::create(&format!("{prefix}-b")).unwrap();
        sender
            .ip(&[
                "link",
                "add",
                "tba",
                "type",
                "veth",
                "peer",
                "name",
                "tbb",
                "netns",
                receiver.name(),
            ])
            .unwrap();
        for (ns, dev, ip) in [(&sender, "tba", SENDER_IP), (&receiver, "tbb", RECEIVER_IP)] {
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", dev]).unwrap();
            ns.ip(&["link", "set", dev, "up"]).unwrap();
            ns.ip(&["link", "set", "lo", "up"]).unwrap();
        }
        LabPair { sender, receiver }
    }

    /// `transbench ARGS` on the sender's host.
    fn sender_run(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", self.sender.name(), BIN])
            .args(args)
            .env_remove("TRANSBENCH_SECRET")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }
}

fn scenario_order(file: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(file).unwrap();
    let s = transbench_scenario::parse("s.toml", &text, &|_| None).unwrap();
    s.trials()
        .into_iter()
        .map(|t| (s.cells[t.cell].id.clone(), t.repetition))
        .collect()
}

fn ran(results: &RunResults) -> Vec<(String, u32)> {
    results
        .trials
        .iter()
        .map(|t| (t.cell.clone().unwrap(), t.repetition.unwrap()))
        .collect()
}

#[test]
fn a_scenario_runs_against_a_receiver_on_another_host_and_resumes() {
    if !have_root() {
        return;
    }
    let _one = serial();
    let lab = LabPair::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "secret", SECRET);
    let secret = secret.to_str().unwrap();
    let receiver = ReceiverGuard::start_in(
        lab.receiver.name(),
        &format!("{RECEIVER_IP}:0"),
        &["--secret-file", secret],
    );
    let at = receiver.addr.to_string();
    let file = rr_scenario(dir.path(), "lab", "none", 2);
    let out = dir.path().join("remote");
    let out = out.to_str().unwrap();

    // Interrupted after one trial, as a lab run might be, then resumed.
    let first = lab.sender_run(&[
        "run",
        file.to_str().unwrap(),
        "--receiver",
        &at,
        "--secret-file",
        secret,
        "--out",
        out,
        "--max-trials",
        "1",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let one = read_results(&Path::new(out).join("results.json")).unwrap();
    assert_eq!(one.trials.len(), 1);
    // Resuming against another receiver would mix two paths in one run.
    let elsewhere = lab.sender_run(&["run", file.to_str().unwrap(), "--resume", out]);
    assert!(!elsewhere.status.success());
    assert!(
        stderr(&elsewhere).contains(&format!("ran against the receiver at {at}")),
        "{}",
        stderr(&elsewhere)
    );
    let rest = lab.sender_run(&[
        "run",
        file.to_str().unwrap(),
        "--receiver",
        &at,
        "--secret-file",
        secret,
        "--resume",
        out,
    ]);
    assert!(rest.status.success(), "{}", stderr(&rest));

    let results = read_results(&Path::new(out).join("results.json")).unwrap();
    assert_eq!(results.remote_receiver.as_deref(), Some(at.as_str()));
    assert_eq!(results.trials[0].id, one.trials[0].id, "the first trial kept");
    assert_eq!(
        ran(&results),
        scenario_order(&file),
        "every trial once, in the seeded order"
    );
    for t in &results.trials {
        assert!(t.counters.received > 0, "{}: {:?}", t.id, t.counters);
        let sender = t.sender_host.as_ref().and_then(|h| h.interface.as_ref()).unwrap();
        let far = t
            .receiver
            .host
            .as_ref()
            .and_then(|h| h.interface.as_ref())
            .unwrap();
        assert_eq!(
            (sender.name.as_str(), far.name.as_str()),
            ("tba", "tbb"),
            "{}",
            t.id
        );
        assert_eq!((sender.mtu, far.mtu), (Some(1500), Some(1500)));
        if installed("ethtool", "--version", "ethtool") {
            assert_eq!(far.driver.as_deref(), Some("veth"));
        }
        assert_ne!(t.sender_netns, t.receiver.netns, "two hosts, two namespaces");
        assert_eq!(t.params.peer, at);
    }

    // The same scenario on loopback is another path: compare says so.
    let local_out = dir.path().join("local");
    let local = transbench(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        local_out.to_str().unwrap(),
    ]);
    assert!(local.status.success(), "{}", stderr(&local));
    let cmp = transbench(&["compare", local_out.to_str().unwrap(), out]);
    assert_eq!(cmp.status.code(), Some(2), "{}", stderr(&cmp));
    let why = stderr(&cmp);
    assert!(
        why.contains("a receiver on the sender's host") && why.contains(&at) && why.contains("tbb (veth)"),
        "{why}"
    );
}

#[test]
fn a_sender_without_the_secret_or_with_an_open_secret_file_runs_nothing() {
    if !have_root() {
        return;
    }
    let lab = LabPair::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "secret", SECRET);
    let receiver = ReceiverGuard::start_in(
        lab.receiver.name(),
        &format!("{RECEIVER_IP}:0"),
        &["--secret-file", secret.to_str().unwrap()],
    );
    let at = receiver.addr.to_string();
    let file = rr_scenario(dir.path(), "lab", "none", 1);
    let out = dir.path().join("none");
    let without = lab.sender_run(&[
        "run",
        file.to_str().unwrap(),
        "--receiver",
        &at,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!without.status.success());
    assert!(
        stderr(&without).contains("requires a shared secret"),
        "{}",
        stderr(&without)
    );
    let results = read_results(&out.join("results.json")).unwrap();
    assert!(results.trials.is_empty(), "{:?}", results.trials);

    let open = secret_file(dir.path(), "open", SECRET);
    std::fs::set_permissions(
        &open,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )
    .unwrap();
    let refused = lab.sender_run(&[
        "run",
        file.to_str().unwrap(),
        "--receiver",
        &at,
        "--secret-file",
        open.to_str().unwrap(),
        "--out",
        dir.path().join("open-run").to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("chmod 600"), "{}", stderr(&refused));
}
