//! Namespaces a killed process left behind: transbench's own (marked, their
//! owner gone) are emptied and removed; anything else is left alone, named
//! like ours or not. Real namespaces and processes: needs root (in CI,
//! CI=true, a missing privilege fails; elsewhere the test is skipped).

mod common;

use common::{have_root, serial};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use testbed::marker::{self, Marker, Owner};
use testbed::{name_prefix, remove_stale, NetNs};

const ROOT: &str = "namespaces need root";

/// Bounds for things that take milliseconds on an idle machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// A namespace made with plain `ip netns add`, as anyone could: deleted,
/// with any marker a test gave it, when the guard drops.
struct PlainNamespace(String);

impl PlainNamespace {
    fn add(name: String) -> Self {
        let ok = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(ok.success(), "ip netns add {name}");
        PlainNamespace(name)
    }

    fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.0)).unwrap().ino()
    }
}

impl Drop for PlainNamespace {
    fn drop(&mut self) {
        // Quietly: the test may have seen it removed already.
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        let _ = marker::remove(&self.0);
    }
}

/// A process this test started, killed by PID and reaped when the guard
/// drops.
struct Started(Child);

impl Started {
    fn status_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sh -c SCRIPT` in namespace `ns`, once it has become `sleep` (the
/// script ends in `exec sleep`): whatever the script set up is in place.
fn sleeper_in(ns: &str, script: &str) -> Started {
    let mut started = Started(
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", script])
            .spawn()
            .unwrap(),
    );
    let pid = started.0.id();
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(started.is_running(), "`{script}` in {ns} exited");
        assert!(Instant::now() < deadline, "`{script}` in {ns} never got to sleep");
        std::thread::sleep(Duration::from_millis(20));
    }
    started
}

fn listed(name: &str) -> bool {
    common::namespaces()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// A process that ran and is gone: what a killed run's marker names.
fn gone_owner() -> Owner {
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let owner = Owner::of(child.id()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    owner
}

#[test]
fn a_namespace_is_marked_while_it_exists_and_emptied_when_dropped() {
    if !have_root(ROOT) {
        return;
    }
    let _serial = serial();
    let ns = NetNs::create(&format!("{}-marked", name_prefix())).unwrap();
    let name = ns.name().to_string();
    let marker = Marker::parse(&std::fs::read_to_string(marker::path(&name)).unwrap()).unwrap();
    assert_eq!(marker.owner, Owner::current().unwrap());
    let mut inside = sleeper_in(&name, "exec sleep 1000");
    assert_eq!(ns.pids(), vec![inside.0.id()]);
    drop(ns);
    let status = inside
        .status_within(PATIENCE)
        .expect("stopped before the namespace went");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!listed(&name), "{name} is still there");
    assert!(!marker::path(&name).exists(), "the marker of {name} outlived it");
}

#[test]
fn a_stale_namespace_is_emptied_then_removed_with_its_marker() {
    if !have_root(ROOT) {
        return;
    }
    let _serial = serial();
    let owner = gone_owner();
    let ns = PlainNamespace::add(format!("{}-stale", name_prefix()));
    marker::write(
        &ns.0,
        &Marker {
            owner,
            netns_inode: ns.inode(),
        },
    )
    .unwrap();
    let mut polite = sleeper_in(&ns.0, "exec sleep 1000");
    let mut stubborn = sleeper_in(&ns.0, "trap '' TERM; exec sleep 1000");
    let removed = remove_stale();
    let ours: Vec<_> = removed.iter().filter(|r| r.name == ns.0).collect();
    assert_eq!(ours.len(), 1, "{removed:?}");
    assert_eq!((ours[0].owner, ours[0].stopped), (owner, 2));
    assert!(!listed(&ns.0), "{} is still there", ns.0);
    assert!(
        !marker::path(&ns.0).exists(),
        "the marker of {} outlived it",
        ns.0
    );
    // Emptied before it was removed: SIGTERM, then SIGKILL for the one
    // that ignores it.
    let polite = polite
        .status_within(PATIENCE)
        .expect("the polite process was stopped");
    assert_eq!(polite.signal(), Some(libc::SIGTERM), "{polite:?}");
    let stubborn = stubborn
        .status_within(PATIENCE)
        .expect("the stubborn process was stopped");
    assert_eq!(stubborn.signal(), Some(libc::SIGKILL), "{stubborn:?}");
}

#[test]
fn a_marker_whose_pid_was_reused_counts_as_gone() {
    if !have_root(ROOT) {
        return;
    }
    let _serial = serial();
    // The PID runs, but as another process than the one that made the
    // namespace: its start time differs.
    let mut pid_now = Started(Command::new("sleep").arg("1000").spawn().unwrap());
    let running = Owner::of(pid_now.0.id()).unwrap();
    let owner = Owner {
        start_time: running.start_time - 1,
        ..running
    };
    let ns = PlainNamespace::add(format!("{}-reused", name_prefix()));
    marker::write(
        &ns.0,
        &Marker {
            owner,
            netns_inode: ns.inode(),
        },
    )
    .unwrap();
    let mut inside = sleeper_in(&ns.0, "exec sleep 1000");
    let removed = remove_stale();
    assert!(removed.iter().any(|r| r.name == ns.0), "{removed:?}");
    assert!(!listed(&ns.0));
    assert!(
        inside.status_within(PATIENCE).is_some(),
        "the process inside was stopped"
    );
    assert!(
        pid_now.is_running(),
        "the process that has the PID now is not the owner's to stop"
    );
}

#[test]
fn namespaces_without_a_marker_are_left_alone() {
    if !have_root(ROOT) {
        return;
    }
    let _serial = serial();
    // Named as a dead process's would be (PIDs above 4194304 never exist),
    // but nothing says transbench made it.
    let ns = PlainNamespace::add(format!("tb-4194306-{}-snd", std::process::id()));
    let mut inside = sleeper_in(&ns.0, "exec sleep 1000");
    let removed = remove_stale();
    assert!(!removed.iter().any(|r| r.name == ns.0), "{removed:?}");
    assert!(listed(&ns.0), "{} was removed", ns.0);
    assert!(inside.is_running(), "a process in {} was stopped", ns.0);
}

#[test]
fn a_marker_whose_name_now_names_another_namespace_goes_alone() {
    if !have_root(ROOT) {
        return;
    }
    let _serial = serial();
    // The marker's namespace went and someone made another under its name.
    let ns = PlainNamespace::add(format!("{}-renamed", name_prefix()));
    marker::write(
        &ns.0,
        &Marker {
            owner: gone_owner(),
            netns_inode: ns.inode() + 1,
        },
    )
    .unwrap();
    let mut inside = sleeper_in(&ns.0, "exec sleep 1000");
    let removed = remove_stale();
    assert!(!removed.iter().any(|r| r.name == ns.0), "{removed:?}");
    assert!(listed(&ns.0), "{} was removed", ns.0);
    assert!(inside.is_running(), "a process in {} was stopped", ns.0);
    assert!(!marker::path(&ns.0).exists(), "the stale marker stayed");
}
