//! Process lifecycle: the receiver stops cleanly on a signal, and a sender
//! with nobody to talk to says so.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn receiver_exits_cleanly_on_sigint_and_sigterm() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut receiver = ReceiverGuard::start(&[]);
        // SAFETY: signalling the child this test started, by its PID.
        unsafe { libc::kill(receiver.pid() as libc::pid_t, signal) };
        let status = wait_exit(receiver.child_mut(), Duration::from_secs(10)).expect("receiver did not exit");
        assert!(status.success(), "signal {signal}: exit status {status:?}");
    }
}

#[test]
fn sender_without_a_receiver_says_what_is_wrong() {
    // Bind and drop to find a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = sender(format!("127.0.0.1:{port}").parse().unwrap(), "udp", &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is `transbench receiver` running there?"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn sender_fails_cleanly_when_the_receiver_dies_mid_trial() {
    let receiver = ReceiverGuard::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut sender = sender_command(receiver.addr, "tcp")
        .args([
            "--duration",
            "3s",
            "--warmup",
            "0s",
            "--rate",
            "200",
            "--loss-timeout",
            "500ms",
            "--out",
        ])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: killing the receiver this test started, by its PID.
    unsafe { libc::kill(receiver.pid() as libc::pid_t, libc::SIGKILL) };
    let status = wait_exit(&mut sender, Duration::from_secs(20));
    let Some(status) = status else {
        let _ = sender.kill();
        panic!("sender hung after the receiver died");
    };
    assert!(
        !status.success(),
        "a trial without the receiver's report cannot succeed"
    );
    assert!(!out.exists(), "no result file for a failed trial");
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                kids.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    kids
}

fn is_alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn run_stopped_by_a_signal_stops_its_receiver_and_keeps_results() {
    // SIGTERM: run stops the receiver itself. SIGKILL: the kernel does
    // (the receiver asked for SIGTERM at its parent's death).
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        stop_run_with(signal);
    }
}

fn stop_run_with(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = std::process::Command::new(BIN)
        .args([
            "run",
            "--transport",
            "tcp",
            "--duration",
            "20s",
            "--warmup",
            "0s",
            "--rate",
            "100",
            "--out",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let receiver_pid = loop {
        if let Some(&pid) = children_of(run.id()).first() {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "run started no receiver"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling the process this test started, by its PID.
    unsafe { libc::kill(run.id() as libc::pid_t, signal) };
    let status = wait_exit(&mut run, Duration::from_secs(10)).expect("run did not stop");
    assert!(!status.success(), "an interrupted run is not a success");
    let gone_by = Instant::now() + Duration::from_secs(5);
    while is_alive(receiver_pid) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !is_alive(receiver_pid),
        "signal {signal}: receiver {receiver_pid} outlived its run"
    );
    let results = transbench_reports::read_results(&dir.path().join("results.json")).unwrap();
    assert!(results.trials.is_empty(), "the interrupted trial is not a result");
}
