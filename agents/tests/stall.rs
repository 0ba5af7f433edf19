//! A receiver that stalls (SIGSTOP) mid-trial: open-loop latency must show
//! the stall in every request scheduled during it (no coordinated
//! omission), and closed-loop must count what timed out and carry on.

mod common;

use common::*;
use std::process::Stdio;
use std::time::Duration;
use transbench_reports::{read_results, TrialResult};

fn stall(receiver: &ReceiverGuard, after: Duration, length: Duration) {
    std::thread::sleep(after);
    // SAFETY: signalling the receiver this test started, by its PID.
    unsafe { libc::kill(receiver.pid() as libc::pid_t, libc::SIGSTOP) };
    std::thread::sleep(length);
    unsafe { libc::kill(receiver.pid() as libc::pid_t, libc::SIGCONT) };
}

/// A TCP trial (`args` plus no warm-up) during which the receiver stops
/// for `length` after `after`.
fn trial_with_a_stall(args: &[&str], after: Duration, length: Duration) -> TrialResult {
    let receiver = ReceiverGuard::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let sender = sender_command(receiver.addr, "tcp")
        .args(args)
        .args(["--warmup", "0s", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stall(&receiver, after, length);
    let o = sender.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_results(&out).unwrap().trials.remove(0)
}

#[test]
fn open_loop_latency_shows_a_stall_in_every_request_it_delays() {
    let t = &trial_with_a_stall(
        &["--rate", "200", "--duration", "3s", "--loss-timeout", "5s"],
        Duration::from_millis(1000),
        Duration::from_millis(500),
    );
    assert_eq!(t.counters.lost, 0);
    let h = t.lat.histogram().unwrap();
    // 500 ms at 200/s schedules 100 requests into the stall; the first ~80
    // wait over 100 ms. A closed-loop or coordinated-omission measurement
    // would record one slow sample instead.
    let over_100ms = h.count_between(100_000_000, u64::MAX);
    assert!(over_100ms >= 60, "only {over_100ms} requests show the stall");
    assert!(t.lat.max >= 400_000_000, "max {} ns", t.lat.max);
}

#[test]
fn closed_loop_counts_timeouts_during_a_stall_and_carries_on() {
    let t = &trial_with_a_stall(
        &["--closed-loop", "--duration", "3s", "--loss-timeout", "300ms"],
        Duration::from_millis(1000),
        Duration::from_millis(800),
    );
    assert_eq!(t.duration_ns, 3_000_000_000, "the trial ran its whole window");
    assert!(t.counters.lost >= 1, "{:?}", t.counters);
    assert!(
        t.counters.late >= 1,
        "the stalled answer arrived late: {:?}",
        t.counters
    );
    assert_eq!(t.counters.sent, t.counters.received + t.counters.lost);
    assert_eq!(t.lat.count, t.counters.sent);
    assert!(
        t.counters.received > 100,
        "requests after the stall were answered: {:?}",
        t.counters
    );
}
