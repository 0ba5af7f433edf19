//! A scenario run against a receiver on another host (issue 20): two
//! "lab hosts" are two network namespaces joined by a veth pair, the
//! receiver left running in one as a lab's would be, the sender running
//! the scenario from the other with `--receiver`. Impairment across hosts
//! (each host's netem on its own egress) needs sch_netem: that test
//! re-runs itself in the QEMU guest `netem-scripts/vm-run.sh` boots.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
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
        self.sender_command(args).output().unwrap()
    }

    /// `transbench run FILE --receiver AT ARGS` on the sender's host.
    fn remote_run(&self, file: &Path, at: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", file.to_str().unwrap(), "--receiver", at];
        all.extend_from_slice(args);
        self.sender_run(&all)
    }

    fn sender_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.sender.name(), BIN])
            .args(args)
            .env_remove("TRANSBENCH_SECRET")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// The root qdisc of `dev` on `side`: (kind, handle).
    fn root_qdisc(side: &NetNs, dev: &str) -> (String, String) {
        let out = Command::new("tc")
            .args(["-n", side.name(), "-j", "qdisc", "show", "dev", dev])
            .output()
            .unwrap();
        let root = hostimpair::parse_root_qdisc(&String::from_utf8_lossy(&out.stdout))
            .unwrap()
            .unwrap_or_else(|| panic!("{dev} has no root qdisc"));
        (root.kind, root.handle.to_string())
    }

    fn sender_qdisc(&self) -> (String, String) {
        Self::root_qdisc(&self.sender, "tba")
    }

    fn receiver_qdisc(&self) -> (String, String) {
        Self::root_qdisc(&self.receiver, "tbb")
    }
}

/// Lease records in a state directory, every namespace's.
fn lease_records(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| match p.is_dir() {
            true => lease_records(&p),
            false => usize::from(p.extension().is_some_and(|e| e == "json")),
        })
        .sum()
}

/// A veth's own root qdisc, as the kernel attaches it.
fn kernel_default() -> (String, String) {
    ("noqueue".into(), "0:".into())
}

/// A scenario of one rr udp cell per profile (200/s, 2 s, no warm-up),
/// one trial each, seed 5.
fn impaired_scenario(dir: &Path, name: &str, profiles: &str, seconds: u32) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
duration = "{seconds}s"
warmup = "0s"
trials = 1
seed = 5

[[matrix]]
workload = "rr"
transports = ["udp"]
profiles = {profiles}
rate = 200
size = 64
"#
        ),
    )
    .unwrap();
    path
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
    let first = lab.remote_run(
        &file,
        &at,
        &["--secret-file", secret, "--out", out, "--max-trials", "1"],
    );
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
    let rest = lab.remote_run(&file, &at, &["--secret-file", secret, "--resume", out]);
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
    let without = lab.remote_run(&file, &at, &["--out", out.to_str().unwrap()]);
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
    let elsewhere = dir.path().join("open-run");
    let refused = lab.remote_run(
        &file,
        &at,
        &[
            "--secret-file",
            open.to_str().unwrap(),
            "--out",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("chmod 600"), "{}", stderr(&refused));
}

#[test]
fn an_impaired_cell_needs_both_hosts_to_allow_it_and_a_refusal_changes_nothing() {
    if !have_root() {
        return;
    }
    let _one = serial();
    let lab = LabPair::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "secret", SECRET);
    let secret = secret.to_str().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    // The forward profile is this host's to apply: without --allow-impair
    // nothing runs.
    let forward = impaired_scenario(
        dir.path(),
        "forward",
        r#"[{ forward = "delay 5ms", reverse = "none" }]"#,
        1,
    );
    let receiver = ReceiverGuard::start_in(
        lab.receiver.name(),
        &format!("{RECEIVER_IP}:0"),
        &["--secret-file", secret],
    );
    let at = receiver.addr.to_string();
    let o = lab.remote_run(&forward, &at, &["--secret-file", secret]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--allow-impair IFACE"), "{}", stderr(&o));

    // The reverse one is the receiver's: one started without
    // --allow-impair, or allowing another interface, refuses it.
    let reverse = impaired_scenario(
        dir.path(),
        "reverse",
        r#"[{ forward = "none", reverse = "delay 5ms" }]"#,
        1,
    );
    let refused = |receiver: &ReceiverGuard, why: &str| {
        let out = dir.path().join(format!("out-{}", receiver.addr.port()));
        let at = receiver.addr.to_string();
        let o = lab.remote_run(
            &reverse,
            &at,
            &["--secret-file", secret, "--out", out.to_str().unwrap()],
        );
        assert!(!o.status.success());
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
        assert_eq!(
            lab.receiver_qdisc(),
            kernel_default(),
            "refused, and nothing changed"
        );
        assert!(read_results(&out.join("results.json")).unwrap().trials.is_empty());
    };
    refused(&receiver, "start it with --allow-impair IFACE");
    drop(receiver);
    let elsewhere = ReceiverGuard::start_in(
        lab.receiver.name(),
        &format!("{RECEIVER_IP}:0"),
        &[
            "--secret-file",
            secret,
            "--allow-impair",
            "lo",
            "--impair-state-dir",
            state,
        ],
    );
    refused(&elsewhere, "tbb is not one this host may impair");
    drop(elsewhere);
    // Someone else's qdisc on the interface: refused, and left as it was.
    let tc = |args: &[&str]| {
        let o = Command::new("tc")
            .args(["-n", lab.receiver.name()])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "tc {args:?}: {}", stderr(&o));
    };
    tc(&[
        "qdisc", "add", "dev", "tbb", "root", "handle", "1:", "tbf", "rate", "1gbit", "burst", "64kb",
        "latency", "10ms",
    ]);
    let allowed = ReceiverGuard::start_in(
        lab.receiver.name(),
        &format!("{RECEIVER_IP}:0"),
        &[
            "--secret-file",
            secret,
            "--allow-impair",
            "tbb",
            "--impair-state-dir",
            state,
        ],
    );
    let out = dir.path().join("foreign");
    let at = allowed.addr.to_string();
    let o = lab.remote_run(
        &reverse,
        &at,
        &["--secret-file", secret, "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tbf"), "{}", stderr(&o));
    assert_eq!(lab.receiver_qdisc(), ("tbf".to_string(), "1:".to_string()));
    assert_eq!(lease_records(Path::new(state)), 0, "no lease recorded");
}

/// The receiver's lease as `tc` shows it.
fn leased() -> (String, String) {
    ("netem".into(), "7462:".into())
}

/// Polls `what` every 50 ms for up to `within`; whether it held.
fn eventually(within: Duration, mut what: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    what()
}

const IN_GUEST: &str = "TRANSBENCH_IN_LAB_GUEST";

/// Loss within a binomial bound: |observed - p| <= 4 sigma + 1/n.
fn assert_loss(lost: u64, n: u64, p: f64, what: &str) {
    let observed = lost as f64 / n as f64;
    let bound = 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1.0 / n as f64;
    assert!(
        (observed - p).abs() <= bound,
        "{what}: {lost} of {n} lost, expected {p} +- {bound:.4}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn in_guest(out: &Path) {
    let lab = LabPair::new();
    let secret = secret_file(out, "secret", SECRET);
    let secret = secret.to_str().unwrap();
    let (rstate, sstate) = (out.join("receiver-state"), out.join("sender-state"));
    let (rstate, sstate) = (rstate.to_str().unwrap(), sstate.to_str().unwrap());
    let start_receiver = || {
        ReceiverGuard::start_in(
            lab.receiver.name(),
            &format!("{RECEIVER_IP}:7700"),
            &[
                "--secret-file",
                secret,
                "--allow-impair",
                "tbb",
                "--impair-state-dir",
                rstate,
            ],
        )
    };
    let mut receiver = start_receiver();
    let at = receiver.addr.to_string();
    // Each run: the scenario against the receiver, this host's egress
    // allowed, its results in `dir`.
    let remote = |file: &Path, dir: &str, secret: Option<&str>| -> Vec<String> {
        let mut args = vec![
            file.display().to_string(),
            "--allow-impair".into(),
            "tba".into(),
            "--impair-state-dir".into(),
            sstate.into(),
            "--out".into(),
            out.join(dir).display().to_string(),
        ];
        if let Some(s) = secret {
            args.extend(["--secret-file".into(), s.into()]);
        }
        let mut all = vec!["run".to_string(), args.remove(0), "--receiver".into(), at.clone()];
        all.extend(args);
        all
    };
    let sender_args = |file: &Path, dir: &str| remote(file, dir, Some(secret));

    // 1. A plain cell and an impaired one, each host impairing its own
    // egress for the impaired cell only.
    let file = impaired_scenario(
        out,
        "both",
        r#"["none", { forward = "delay 10ms loss 5%", reverse = "delay 5ms" }]"#,
        4,
    );
    let o = lab.sender_run(&args(&sender_args(&file, "both")));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_results(&out.join("both/results.json")).unwrap();
    assert_eq!(ran(&r), scenario_order(&file), "seeded order");
    for t in &r.trials {
        let far = t
            .receiver
            .host
            .as_ref()
            .and_then(|h| h.interface.as_ref())
            .unwrap();
        let near = t.sender_host.as_ref().and_then(|h| h.interface.as_ref()).unwrap();
        let (least_ms, p50_ms) = (t.lat.min as f64 / 1e6, t.lat.p50 as f64 / 1e6);
        eprintln!(
            "guest: {} lost {} of {}, rtt min {least_ms:.2} ms p50 {p50_ms:.2} ms, qdiscs {:?} / {:?}",
            t.cell.as_deref().unwrap(),
            t.counters.lost,
            t.counters.sent,
            near.qdisc,
            far.qdisc
        );
        match &t.impairment {
            Some(i) => {
                let canonical = |p: &str| linkemu::NetemSpec::parse(p).unwrap().to_string();
                assert_eq!(
                    (i.forward.clone(), i.reverse.clone()),
                    (canonical("delay 10ms loss 5%"), canonical("delay 5ms"))
                );
                assert_eq!(
                    (near.qdisc.as_deref(), far.qdisc.as_deref()),
                    (Some("netem"), Some("netem"))
                );
                // TCG adds about a millisecond to every hop; no round trip
                // comes sooner than the two delays.
                assert!((15.0..22.0).contains(&least_ms), "impaired rtt min {least_ms} ms");
                assert_loss(
                    t.counters.lost,
                    t.counters.sent,
                    0.05,
                    "requests across the forward loss",
                );
                // The probe before the cell: each direction's loss where
                // it was received.
                let probe = i.probed_round_trip.expect("an impaired cell is probed first");
                eprintln!("guest: probe {probe:?}");
                assert_eq!(probe.sent, 500);
                assert_loss(probe.sent - probe.reached, probe.sent, 0.05, "probe, forward");
                assert_eq!(
                    probe.answered, probe.reached,
                    "the receiver answers what it takes"
                );
                assert_eq!(probe.received, probe.answered, "nothing is lost on the way back");
                assert!(
                    probe.rtt_min_ns >= 15_000_000,
                    "probe rtt min {} ns",
                    probe.rtt_min_ns
                );
            }
            None => {
                assert_eq!(
                    (near.qdisc.as_deref(), far.qdisc.as_deref()),
                    (Some("noqueue"), Some("noqueue"))
                );
                assert!(least_ms < 5.0, "plain rtt min {least_ms} ms");
                assert_eq!(t.counters.lost, 0);
            }
        }
    }
    assert_eq!(
        (lab.sender_qdisc(), lab.receiver_qdisc()),
        (kernel_default(), kernel_default())
    );

    // 2. The sender killed mid-cell: the receiver's session drops and with
    // it the lease; the sender's own comes back at its next start.
    let long = impaired_scenario(
        out,
        "long",
        r#"[{ forward = "delay 5ms", reverse = "delay 5ms" }]"#,
        60,
    );
    let mut sender = lab
        .sender_command(&args(&sender_args(&long, "killed")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || lab.receiver_qdisc() == leased()),
        "the trial never started"
    );
    assert_eq!(lab.sender_qdisc(), leased());
    sender.kill().unwrap();
    sender.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || lab.receiver_qdisc()
            == kernel_default()),
        "the receiver kept its lease after the sender died: {:?}",
        lab.receiver_qdisc()
    );
    assert_eq!(
        lab.sender_qdisc(),
        leased(),
        "a killed sender cannot give its lease back"
    );
    let plain = impaired_scenario(out, "plain", r#"["none"]"#, 1);
    let o = lab.sender_run(&args(&sender_args(&plain, "after-kill")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        lab.sender_qdisc(),
        kernel_default(),
        "the next start gave it back"
    );

    // 3. The receiver killed mid-trial: its lease stays until it starts
    // again, which gives it back before serving.
    let mut sender = lab
        .sender_command(&args(&sender_args(&long, "receiver-killed")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || lab.receiver_qdisc() == leased()),
        "the trial never started"
    );
    // SAFETY: our own child, by its PID.
    unsafe { libc::kill(receiver.pid() as i32, libc::SIGKILL) };
    assert!(!eventually(Duration::from_millis(500), || lab.receiver_qdisc() != leased()));
    // Its trial would run on unanswered; the sender's side of a kill is
    // step 2's.
    sender.kill().unwrap();
    sender.wait().unwrap();
    drop(receiver);
    receiver = start_receiver();
    assert_eq!(
        lab.receiver_qdisc(),
        kernel_default(),
        "the restarted receiver gave it back"
    );
    assert_eq!(lease_records(Path::new(rstate)), 0);
    let o = lab.sender_run(&args(&sender_args(&plain, "after-receiver-kill")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lab.sender_qdisc(), kernel_default());

    // 4. A sender without the secret changes nothing.
    let o = lab.sender_run(&args(&remote(&long, "no-secret", None)));
    assert!(!o.status.success());
    assert_eq!(lab.receiver_qdisc(), kernel_default());
    drop(receiver);
}

#[test]
fn impairment_across_hosts_in_a_guest_kernel() {
    if let Ok(out) = std::env::var(IN_GUEST) {
        return in_guest(Path::new(&out));
    }
    if !have_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    in_netem_guest(
        "impairment_across_hosts_in_a_guest_kernel",
        IN_GUEST,
        dir.path(),
        600,
    );
}

/// The receiver's systemd unit: systemd takes it as written, and its
/// command line is one this build's receiver takes.
#[test]
fn the_receivers_systemd_unit_verifies_and_its_flags_are_real() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/transbench-receiver.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The installed binary's path, as this build's.
    let here = text.replace("/usr/local/bin/transbench", BIN);
    let copy = dir.path().join("transbench-receiver.service");
    std::fs::write(&copy, &here).unwrap();
    if installed("systemd-analyze", "--version", "systemd") {
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    }
    // ExecStart, its continuation lines joined, with the credential and
    // state directories systemd would set.
    let exec: String = text
        .lines()
        .skip_while(|l| !l.starts_with("ExecStart="))
        .take_while(|l| !l.is_empty() && !l.starts_with("Environment="))
        .map(|l| l.trim_end_matches('\\').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let secret = secret_file(dir.path(), "secret", SECRET);
    let exec = exec
        .trim_start_matches("ExecStart=")
        .replace("${CREDENTIALS_DIRECTORY}/secret", secret.to_str().unwrap())
        .replace("${STATE_DIRECTORY}", dir.path().join("state").to_str().unwrap());
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(&words[..2], ["/usr/local/bin/transbench", "receiver"], "{exec}");
    let o = Command::new(BIN)
        .args(&words[1..])
        .arg("--check")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    // The flags parse (clap exits 2 on one it does not know); the host
    // here need not have eth1 or netem.
    assert_ne!(o.status.code(), Some(2), "{}{}", said, stderr(&o));
    assert!(
        said.contains("listen 192.0.2.2:7700, with a shared secret"),
        "{said}"
    );
    assert!(said.contains("--allow-impair eth1"), "{said}");
}
