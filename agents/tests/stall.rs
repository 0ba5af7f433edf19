//! A receiver that stalls (SIGSTOP) mid-trial: open-loop latency must show
//! the stall in every request scheduled during it (no coordinated
//! omission), and closed-loop must count what timed out and carry on.
//!
//! The stall is timed from the sender's start, and a busy machine may take
//! long to start it: what the tests expect follows from when the stall
//! really lay in the trial's measured window, and a trial that missed most
//! of it is run again (at most 3 attempts, each retry said on stderr).

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use transbench_reports::{read_results, TrialResult};

/// When the receiver was stopped and when it was let go on.
struct Stall {
    stopped: SystemTime,
    resumed: SystemTime,
}

fn stall(receiver: &ReceiverGuard, after: Duration, length: Duration) -> Stall {
    std::thread::sleep(after);
    // SAFETY: signalling the receiver this test started, by its PID.
    unsafe { libc::kill(receiver.pid() as libc::pid_t, libc::SIGSTOP) };
    let stopped = SystemTime::now();
    std::thread::sleep(length);
    let resumed = SystemTime::now();
    unsafe { libc::kill(receiver.pid() as libc::pid_t, libc::SIGCONT) };
    Stall { stopped, resumed }
}

impl Stall {
    /// How long, of the stall less `tail` at its end, lies in `t`'s
    /// measured window.
    fn within(&self, t: &TrialResult, tail: Duration) -> Duration {
        let (start, end) = window(t);
        let (from, to) = (self.stopped.max(start), (self.resumed - tail).min(end));
        to.duration_since(from).unwrap_or_default()
    }

    /// `Err` unless more than `least` of the stall lies in `t`'s measured
    /// window and the receiver went on before the window closed: a
    /// trial the busy machine started so late that it missed the stall.
    fn landed(&self, t: &TrialResult, least: Duration) -> Result<(), String> {
        let within = self.within(t, Duration::ZERO);
        if within > least && self.resumed < window(t).1 {
            Ok(())
        } else {
            Err(format!(
                "{within:?} of the stall lay in the measured window, which began {:?} after it",
                window(t).0.duration_since(self.stopped).unwrap_or_default()
            ))
        }
    }
}

/// The trial's measured window, by the wall clock.
fn window(t: &TrialResult) -> (SystemTime, SystemTime) {
    let start = humantime::parse_rfc3339(&t.start_time).expect("an RFC 3339 start");
    (start, start + Duration::from_nanos(t.duration_ns))
}

/// A TCP trial (`args` plus no warm-up) during which the receiver stops
/// for `length` after `after`.
fn trial_with_a_stall(args: &[&str], after: Duration, length: Duration) -> (TrialResult, Stall) {
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
    let stalled = stall(&receiver, after, length);
    let o = sender.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (read_results(&out).unwrap().trials.remove(0), stalled)
}

#[test]
fn open_loop_latency_shows_a_stall_in_every_request_it_delays() {
    let (t, stalled) = retried("a 500 ms stall at 200/s", || {
        let (t, stalled) = trial_with_a_stall(
            &["--rate", "200", "--duration", "3s", "--loss-timeout", "5s"],
            Duration::from_millis(1000),
            Duration::from_millis(500),
        );
        stalled.landed(&t, Duration::from_millis(400))?;
        Ok((t, stalled))
    });
    assert_eq!(t.counters.lost, 0);
    let h = t.lat.histogram().unwrap();
    // Every request scheduled while the receiver was stopped, up to 100 ms
    // before it went on, waits over 100 ms: at 200/s, 200 per second of
    // that (500 ms stopped: ~80), less one at the edge. A closed-loop or
    // coordinated-omission measurement would record one slow sample
    // instead.
    let expected = (200.0 * stalled.within(&t, Duration::from_millis(100)).as_secs_f64()) as u64;
    let over_100ms = h.count_between(100_000_000, u64::MAX);
    assert!(
        over_100ms + 1 >= expected,
        "only {over_100ms} requests show the stall, {expected} expected"
    );
    assert!(t.lat.max >= 400_000_000, "max {} ns", t.lat.max);
}

#[test]
fn closed_loop_counts_timeouts_during_a_stall_and_carries_on() {
    let (t, _) = retried("an 800 ms stall of a closed loop", || {
        let (t, stalled) = trial_with_a_stall(
            &["--closed-loop", "--duration", "3s", "--loss-timeout", "300ms"],
            Duration::from_millis(1000),
            Duration::from_millis(800),
        );
        // A request waiting out its 300 ms loss timeout in the stall needs
        // the stall in the window for longer than that.
        stalled.landed(&t, Duration::from_millis(400))?;
        Ok((t, stalled))
    });
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
