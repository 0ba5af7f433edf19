//! Leases for real: veth pairs in a network namespace of the test's own
//! (`tb-<pid>-<n>`, removed with everything in it when the test ends, by
//! panic too), tc run in it with `tc -n`. This kernel has no sch_netem,
//! so the qdisc is tbf; the lease does not care which.
//!
//! Needs root: in CI (CI=true) a missing privilege fails the test;
//! elsewhere the test is skipped with the reason printed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hostimpair::{
    parse_root_qdisc, LeaseBook, LeaseError, LeaseRecord, Outcome, QdiscHandle, RootQdisc, LEASE_HANDLE,
};
use testbed::NetNs;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True as root. Otherwise the test is skipped with the reason printed,
/// except in CI (CI=true), where these tests must run for real.
fn have_root() -> bool {
    if testbed::is_root() {
        return true;
    }
    let what = "leasing a qdisc needs root (network namespaces, tc)";
    assert!(!in_ci(), "CI=true but not root: {what}");
    eprintln!("skipping: {what}");
    false
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

const TBF_100M: &str = "tbf rate 100mbit burst 32kbit latency 50ms";

/// A namespace of the test's own with veth pair v0/v1, both up (so their
/// root is the kernel's noqueue), and a lease book in a directory of its
/// own. Dropped, the namespace goes and every interface in it.
struct Lab {
    book: LeaseBook,
    dir: tempfile::TempDir,
    ns: NetNs,
}

impl Lab {
    fn new() -> Lab {
        let ns = NetNs::create(&testbed::name_prefix()).unwrap();
        ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
            .unwrap();
        ns.ip(&["link", "set", "v0", "up"]).unwrap();
        ns.ip(&["link", "set", "v1", "up"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let book = LeaseBook::open(dir.path(), Some(ns.name())).unwrap();
        Lab { book, dir, ns }
    }

    /// `tc -n NS ARGS...`, which must succeed; its stdout.
    fn tc(&self, args: &[&str]) -> String {
        let out = Command::new("tc")
            .args(["-n", self.ns.name()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The root qdisc of `iface` as `tc -j qdisc show` lists it, and its
    /// options.
    fn root(&self, iface: &str) -> (Option<RootQdisc>, serde_json::Value) {
        let json = self.tc(&["-j", "qdisc", "show", "dev", iface]);
        let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let options = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["root"] == true)
            .map(|q| q["options"].clone())
            .unwrap_or_default();
        (parse_root_qdisc(&json).unwrap(), options)
    }

    fn assert_default(&self, iface: &str) {
        let (root, _) = self.root(iface);
        assert_eq!(
            root,
            Some(root_of("noqueue", 0)),
            "{iface} is not back at the kernel's default"
        );
    }

    /// The files of the state directory (a book of the calling thread's
    /// namespace keeps its own in a directory there).
    fn state_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(Result::unwrap)
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn allowed(&self) -> Vec<String> {
        vec!["v0".to_string(), "v1".to_string()]
    }
}

fn root_of(kind: &str, handle: u16) -> RootQdisc {
    RootQdisc {
        kind: kind.into(),
        handle: QdiscHandle(handle),
    }
}

fn record(path: &Path) -> LeaseRecord {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_lease_applies_its_qdisc_and_restore_gives_the_default_back() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    lab.assert_default("v0");
    let lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();
    let (root, options) = lab.root("v0");
    assert_eq!(root, Some(root_of("tbf", 0x7462)));
    assert_eq!(options["rate"], 12_500_000, "100 mbit/s in bytes: {options}");
    // The peer is not touched.
    lab.assert_default("v1");

    let file = lab.book.state_file("v0");
    assert_eq!(lease.state_file(), file);
    let written = record(&file);
    assert_eq!(written.iface, "v0");
    assert_eq!(written.netns.as_deref(), Some(lab.ns.name()));
    assert_eq!(written.handle, LEASE_HANDLE);
    assert_eq!(written.kind, "tbf");
    assert_eq!(written.words, words(TBF_100M));
    assert_eq!(written.pid, std::process::id());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(written.boot_id, boot_id.trim());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(r#""handle": "7462:""#), "{text}");

    assert_eq!(lease.restore().unwrap(), Outcome::Removed);
    lab.assert_default("v0");
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

#[test]
fn dropping_the_lease_gives_the_default_back() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    {
        let _lease = lab.book.lease("v1", &lab.allowed(), &words(TBF_100M)).unwrap();
        assert_eq!(lab.root("v1").0, Some(root_of("tbf", 0x7462)));
        assert_eq!(lab.state_files(), [format!("{}:v1.json", lab.ns.name())]);
    }
    lab.assert_default("v1");
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

#[test]
fn an_interface_not_allowed_is_refused_and_left_as_it_is() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    // The same refusal over the kernel's default and over a user's qdisc.
    lab.tc(&[
        "qdisc", "add", "dev", "v1", "root", "handle", "5:", "pfifo", "limit", "77",
    ]);
    for iface in ["v0", "v1"] {
        let before = lab.root(iface);
        let e = lab
            .book
            .lease(iface, &["other".to_string()], &words(TBF_100M))
            .unwrap_err();
        match &e {
            LeaseError::NotAllowed {
                iface: named,
                allowed,
            } => {
                assert_eq!(named, iface);
                assert_eq!(allowed, &["other".to_string()]);
            }
            other => panic!("expected NotAllowed, got {other:?}"),
        }
        assert!(e.to_string().contains(&format!("--allow-impair {iface}")), "{e}");
        assert_eq!(lab.root(iface), before, "{iface} changed");
    }
    assert_eq!(lab.root("v1").0, Some(root_of("pfifo", 5)));
    assert!(lab.state_files().is_empty());
}

#[test]
fn a_qdisc_someone_else_set_is_refused_and_left_as_it_is() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    // With a handle of their choosing, and with one the kernel picked.
    lab.tc(&[
        "qdisc", "add", "dev", "v0", "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "32kbit",
        "latency", "50ms",
    ]);
    lab.tc(&["qdisc", "add", "dev", "v1", "root", "noqueue"]);
    let picked = lab.root("v1").0.unwrap();
    assert_eq!(picked.kind, "noqueue");
    assert_ne!(
        picked.handle,
        QdiscHandle::KERNEL,
        "a noqueue someone added is not the kernel's"
    );

    let before = lab.root("v0");
    let e = lab
        .book
        .lease("v0", &lab.allowed(), &words(TBF_100M))
        .unwrap_err();
    match &e {
        LeaseError::ForeignQdisc { iface, kind, handle } => {
            assert_eq!(
                (iface.as_str(), kind.as_str(), *handle),
                ("v0", "tbf", QdiscHandle(1))
            );
        }
        other => panic!("expected ForeignQdisc, got {other:?}"),
    }
    assert_eq!(lab.root("v0"), before);
    assert_eq!(before.1["rate"], 125_000, "still their 1 mbit/s");

    let e = lab
        .book
        .lease("v1", &lab.allowed(), &words(TBF_100M))
        .unwrap_err();
    assert!(
        matches!(&e, LeaseError::ForeignQdisc { kind, handle, .. } if kind == "noqueue" && *handle == picked.handle),
        "{e:?}"
    );
    assert_eq!(lab.root("v1").0, Some(picked));
    assert!(lab.state_files().is_empty());
}

#[test]
fn a_leaked_lease_is_taken_back_by_the_next_start() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();
    // A receiver that dies without unwinding.
    std::mem::forget(lease);
    assert_eq!(lab.root("v0").0, Some(root_of("tbf", 0x7462)));
    assert_eq!(lab.state_files().len(), 1);

    let restarted = LeaseBook::open(lab.dir.path(), None).unwrap();
    let recovered = restarted.recover().unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].iface, "v0");
    assert_eq!(recovered[0].netns.as_deref(), Some(lab.ns.name()));
    assert_eq!(recovered[0].outcome, Outcome::Removed);
    assert!(recovered[0].to_string().contains("v0"), "{}", recovered[0]);
    lab.assert_default("v0");
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
    // Nothing left to do the next time.
    assert!(restarted.recover().unwrap().is_empty());
}

#[test]
fn a_record_from_before_a_reboot_goes_without_touching_the_interface() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();
    let file = lease.state_file().to_path_buf();
    std::mem::forget(lease);
    let mut old = record(&file);
    old.boot_id = "00000000-0000-4000-8000-000000000000".into();
    std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();

    let recovered = lab.book.recover().unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].outcome, Outcome::Rebooted);
    // The qdisc with our handle is left: after a reboot it cannot be the
    // one the record speaks of.
    assert_eq!(lab.root("v0").0, Some(root_of("tbf", 0x7462)));
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

#[test]
fn a_record_whose_interface_now_has_someone_elses_qdisc_leaves_it_alone() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    for iface in ["v0", "v1"] {
        std::mem::forget(lab.book.lease(iface, &lab.allowed(), &words(TBF_100M)).unwrap());
        lab.tc(&["qdisc", "del", "dev", iface, "root"]);
    }
    // Another handle; and ours, but another kind than recorded.
    lab.tc(&[
        "qdisc", "add", "dev", "v0", "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "32kbit",
        "latency", "50ms",
    ]);
    lab.tc(&[
        "qdisc", "add", "dev", "v1", "root", "handle", "7462:", "pfifo", "limit", "77",
    ]);

    let recovered = lab.book.recover().unwrap();
    let outcomes: Vec<_> = recovered
        .iter()
        .map(|r| (r.iface.as_str(), r.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "v0",
                Outcome::Foreign {
                    kind: "tbf".into(),
                    handle: QdiscHandle(1)
                }
            ),
            (
                "v1",
                Outcome::Foreign {
                    kind: "pfifo".into(),
                    handle: QdiscHandle(0x7462)
                }
            ),
        ]
    );
    assert_eq!(lab.root("v0").0, Some(root_of("tbf", 1)));
    assert_eq!(lab.root("v1").0, Some(root_of("pfifo", 0x7462)));
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

#[test]
fn restore_leaves_a_qdisc_put_in_place_of_ours_alone() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();
    lab.tc(&[
        "qdisc", "replace", "dev", "v0", "root", "handle", "2:", "pfifo", "limit", "5",
    ]);
    assert_eq!(
        lease.restore().unwrap(),
        Outcome::Foreign {
            kind: "pfifo".into(),
            handle: QdiscHandle(2)
        }
    );
    assert_eq!(lab.root("v0").0, Some(root_of("pfifo", 2)));
    assert!(lab.state_files().is_empty());
}

#[test]
fn a_record_whose_interface_is_gone_is_dropped() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    std::mem::forget(lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap());
    lab.ns.ip(&["link", "del", "v0"]).unwrap();
    let recovered = lab.book.recover().unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].outcome, Outcome::InterfaceGone);
    assert!(lab.state_files().is_empty());
}

#[test]
fn change_keeps_the_handle_and_may_change_the_kind() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let mut lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();

    let slower = words("tbf rate 10mbit burst 32kbit latency 50ms");
    lease.change(&slower).unwrap();
    let (root, options) = lab.root("v0");
    assert_eq!(root, Some(root_of("tbf", 0x7462)));
    assert_eq!(options["rate"], 1_250_000, "{options}");
    assert_eq!(record(lease.state_file()).words, slower);

    let pfifo = words("pfifo limit 100");
    lease.change(&pfifo).unwrap();
    let (root, options) = lab.root("v0");
    assert_eq!(root, Some(root_of("pfifo", 0x7462)));
    assert_eq!(options["limit"], 100, "{options}");
    let now = record(lease.state_file());
    assert_eq!((now.kind.as_str(), now.changing_from), ("pfifo", None));
    assert_eq!(lease.kind(), "pfifo");

    // Words tc refuses: an error with tc's complaint, the lease as it was.
    let e = lease.change(&words("pfifo limit lots")).unwrap_err();
    assert!(
        matches!(&e, LeaseError::Tc { stderr, .. } if !stderr.is_empty()),
        "{e:?}"
    );
    assert_eq!(lab.root("v0").1["limit"], 100);
    assert_eq!(record(lease.state_file()).words, pfifo);

    assert_eq!(lease.restore().unwrap(), Outcome::Removed);
    lab.assert_default("v0");
    assert!(lab.state_files().is_empty());
}

#[test]
fn an_interface_that_does_not_exist_is_named() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let allowed = vec!["nope0".to_string()];
    let e = lab.book.lease("nope0", &allowed, &words(TBF_100M)).unwrap_err();
    match &e {
        LeaseError::NoSuchInterface { iface, netns } => {
            assert_eq!(iface, "nope0");
            assert_eq!(netns.as_deref(), Some(lab.ns.name()));
        }
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    assert!(e.to_string().contains("no interface named nope0"), "{e}");
    assert!(lab.state_files().is_empty());
}

#[test]
fn words_tc_refuses_leave_no_record_and_no_qdisc() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let e = lab
        .book
        .lease("v0", &lab.allowed(), &words("tbf rate bogus"))
        .unwrap_err();
    match &e {
        LeaseError::Tc { command, stderr, .. } => {
            assert!(command.contains("root handle 7462: tbf rate bogus"), "{command}");
            assert!(!stderr.is_empty());
        }
        other => panic!("expected a tc error, got {other:?}"),
    }
    lab.assert_default("v0");
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

#[test]
fn a_leased_interface_cannot_be_leased_twice() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let lease = lab.book.lease("v0", &lab.allowed(), &words(TBF_100M)).unwrap();
    let e = lab
        .book
        .lease(
            "v0",
            &lab.allowed(),
            &words("tbf rate 1mbit burst 32kbit latency 50ms"),
        )
        .unwrap_err();
    assert!(
        matches!(&e, LeaseError::AlreadyLeased { iface, pid, .. } if iface == "v0" && *pid == std::process::id()),
        "{e:?}"
    );
    // The first lease is untouched.
    assert_eq!(lab.root("v0").1["rate"], 12_500_000);
    assert_eq!(lease.restore().unwrap(), Outcome::Removed);
}

#[test]
fn an_interface_that_is_down_can_be_leased() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    lab.ns
        .ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .unwrap();
    // A device that is down lists no root qdisc.
    assert_eq!(lab.root("d0").0, None);
    let lease = lab
        .book
        .lease("d0", &["d0".to_string()], &words(TBF_100M))
        .unwrap();
    assert_eq!(lab.root("d0").0, Some(root_of("tbf", 0x7462)));
    assert_eq!(lease.restore().unwrap(), Outcome::Removed);
    assert_eq!(lab.root("d0").0, None);
}

/// Set for the copy of this binary that [`a_killed_receivers_lease_is_taken_back`] starts.
const CHILD: &str = "HOSTIMPAIR_TEST_CHILD";

/// Not a test of its own: the receiver that gets killed. Takes a lease on
/// v0 in the namespace and state directory it is given, says so, and
/// waits to be killed.
#[test]
#[ignore = "run by a_killed_receivers_lease_is_taken_back in a process of its own"]
fn killed_receiver() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (dir, netns) = spec.split_once('\n').unwrap();
    let book = LeaseBook::open(Path::new(dir), Some(netns)).unwrap();
    let lease = book.lease("v0", &["v0".to_string()], &words(TBF_100M)).unwrap();
    println!("LEASED {}", std::process::id());
    std::thread::sleep(Duration::from_secs(60));
    drop(lease);
}

/// Kills the child it holds when dropped, unless it has been waited for.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_receivers_lease_is_taken_back() {
    if !have_root() {
        return;
    }
    let lab = Lab::new();
    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killed_receiver",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, format!("{}\n{}", lab.dir.path().display(), lab.ns.name()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest's "test killed_receiver ... " comes first on the line.
            if let Some(at) = line.find("LEASED ") {
                let _ = said.send(line[at..].to_string());
            }
        }
    });
    let line = heard
        .recv_timeout(Duration::from_secs(30))
        .expect("the child never said it had the lease");
    assert_eq!(line, format!("LEASED {}", child.0.id()));
    assert_eq!(lab.root("v0").0, Some(root_of("tbf", 0x7462)));

    // While it runs its lease is its own: left alone.
    let recovered = lab.book.recover().unwrap();
    assert_eq!(
        recovered.iter().map(|r| r.outcome.clone()).collect::<Vec<_>>(),
        [Outcome::HeldByRunningProcess { pid: child.0.id() }]
    );
    assert_eq!(lab.root("v0").0, Some(root_of("tbf", 0x7462)));
    assert_eq!(lab.state_files().len(), 1);

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(
        lab.root("v0").0,
        Some(root_of("tbf", 0x7462)),
        "SIGKILL runs no drop"
    );

    let recovered = lab.book.recover().unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].outcome, Outcome::Removed);
    lab.assert_default("v0");
    assert!(lab.state_files().is_empty(), "{:?}", lab.state_files());
}

/// Two agents on one host, each in its own namespace with an interface of
/// the same name, sharing the state directory: neither's lease collides
/// with the other's, and neither's start settles the other's record.
#[test]
fn namespaces_sharing_a_state_directory_keep_to_their_own_leases() {
    if !have_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let make = || {
        let ns = NetNs::create(&testbed::name_prefix()).unwrap();
        ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
            .unwrap();
        ns.ip(&["link", "set", "v0", "up"]).unwrap();
        ns
    };
    let (a, b) = (make(), make());
    let root = |ns: &NetNs| {
        let out = Command::new("tc")
            .args(["-n", ns.name(), "-j", "qdisc", "show", "dev", "v0"])
            .output()
            .unwrap();
        hostimpair::parse_root_qdisc(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    // Each in its own namespace, as a receiver and a sender would be.
    let in_ns = |ns: &NetNs, f: fn(&Path) -> Vec<Outcome>| {
        let dir = dir.path().to_path_buf();
        ns.run(move || f(&dir)).unwrap()
    };
    let lease_and_crash = |dir: &Path| {
        let book = LeaseBook::open(dir, None).unwrap();
        assert!(book.recover().unwrap().is_empty());
        std::mem::forget(book.lease("v0", &["v0".to_string()], &words(TBF_100M)).unwrap());
        Vec::new()
    };
    let start = |dir: &Path| {
        let book = LeaseBook::open(dir, None).unwrap();
        book.recover().unwrap().into_iter().map(|r| r.outcome).collect()
    };
    in_ns(&a, lease_and_crash);
    in_ns(&b, lease_and_crash);
    assert_eq!(root(&a), Some(root_of("tbf", 0x7462)));
    assert_eq!(root(&b), Some(root_of("tbf", 0x7462)));
    // b starts again: its own lease is given back, a's is left as it is.
    assert_eq!(in_ns(&b, start), [Outcome::Removed]);
    assert_eq!(root(&b), Some(root_of("noqueue", 0)));
    assert_eq!(
        root(&a),
        Some(root_of("tbf", 0x7462)),
        "another namespace's lease settled"
    );
    assert_eq!(in_ns(&a, start), [Outcome::Removed]);
    assert_eq!(root(&a), Some(root_of("noqueue", 0)));
}
