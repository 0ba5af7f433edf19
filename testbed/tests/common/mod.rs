//! What the testbed's tests share: the root policy, the namespace list,
//! and taking turns on the link.

#![allow(dead_code)]

use std::process::Command;

pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True as root. Otherwise the test is skipped with `what` as the reason,
/// except in CI (CI=true), where these tests must run for real.
pub fn have_root(what: &str) -> bool {
    if testbed::is_root() {
        return true;
    }
    assert!(!in_ci(), "CI=true but not root: {what}");
    eprintln!("skipping: {what}");
    false
}

/// `ip netns list`, as text.
pub fn namespaces() -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

/// One emulated link at a time: each saturates this machine's two cores,
/// and these tests check timing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The calling thread, and every thread it starts from now on (the link's
/// own among them), at real-time priority (SCHED_RR 10) where the test may
/// set it (root, unless TRANSBENCH_TEST_REALTIME=0), so a CPU-bound
/// neighbour on a busy machine cannot hold a packet up for a time slice.
/// The calling thread is back at normal priority when the guard drops.
/// Not for a link that carries bulk traffic: its thread spins before
/// every packet due, and would keep a core from everything else.
pub fn realtime() -> RealtimeGuard {
    let param = libc::sched_param { sched_priority: 10 };
    let wanted = std::env::var("TRANSBENCH_TEST_REALTIME").as_deref() != Ok("0");
    // SAFETY: plain syscall on the calling thread with a valid struct.
    let set = wanted && unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } == 0;
    if !set {
        eprintln!("at normal priority: {}", std::io::Error::last_os_error());
    }
    RealtimeGuard { set }
}

pub struct RealtimeGuard {
    set: bool,
}

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        if self.set {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as above.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
    }
}
