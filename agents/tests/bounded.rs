//! Every trial ends on time: a rate the sender accepts but cannot keep
//! ends within warm-up + duration + loss timeout + the stated grace,
//! however far behind the sender falls.

mod common;

use common::*;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use transbench::schedule::GRACE;

/// Waits for `child` at most `limit`; past it, stops it (SIGTERM, so it
/// stops its receiver, then SIGKILL) and says so.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling the process this test started, by its PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_rate_the_sender_cannot_keep_still_ends_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let (duration, loss_timeout) = (Duration::from_secs(1), Duration::from_secs(1));
    // The largest rate accepted: a million requests a second, which no
    // sender here keeps (an unoptimized build on a loaded machine least of
    // all). Before the bound it ran on for 15 s and more, sending them all.
    let mut run = Command::new(BIN)
        .args([
            "run",
            "--transport",
            "udp",
            "--rate",
            "1000000",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--loss-timeout",
            "1s",
            "--out",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The trial's own bound, and room on a loaded machine for starting
    // the receiver, connecting and rendering the report.
    let bound = duration + loss_timeout + GRACE + Duration::from_secs(8);
    let start = Instant::now();
    let status = wait_at_most(&mut run, 3 * bound);
    let elapsed = start.elapsed();
    let out = run.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        status.is_some() && elapsed <= bound,
        "ran {elapsed:?}, more than {bound:?}: {err}"
    );
    assert!(status.unwrap().success(), "{err}");
    // The trial ended by its own cutoff, not the safety net: it has a
    // result, invalid or not.
    let results = transbench_reports::read_results(&dir.path().join("results.json")).unwrap();
    let trial = &results.trials[0];
    assert!(
        trial.valid
            || trial
                .invalid_reasons
                .iter()
                .any(|r| r.contains("could not keep its schedule") || r.contains("never sent")),
        "{:?}",
        trial.invalid_reasons
    );
    eprintln!(
        "ended in {elapsed:?} (bound {bound:?}); sent {} requests, {:?}",
        trial.counters.sent, trial.invalid_reasons
    );
}
