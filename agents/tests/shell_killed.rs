//! `transbench shell` killed outright (SIGKILL): its command dies with it,
//! and what the command started in the peer namespace is stopped and the
//! namespaces removed by the shell's watchdog. Real processes and
//! namespaces: needs root (in CI, CI=true, a missing privilege fails;
//! elsewhere the test is skipped).
//!
//! This test process makes itself a child subreaper: the shell's orphans
//! become its children, so it sees how each of them ended, and reaps
//! them. One test in this binary, so no other test's orphans land here.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The command must be dead by then: PDEATHSIG is sent as the shell exits.
const COMMAND_LIMIT: Duration = Duration::from_secs(5);
/// The watchdog runs `ip` and gives the peer's process its SIGTERM grace:
/// a generous bound for a busy machine.
const WATCHDOG_LIMIT: Duration = Duration::from_secs(30);

/// Processes the killed shell left to this one: killed by PID and reaped
/// on drop if they are still this process's unreaped children (never a
/// PID that is no longer one).
#[derive(Default)]
struct Adopted(Vec<u32>);

impl Drop for Adopted {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let mut status = 0;
            // SAFETY: waitpid and kill on a PID that is our unreaped child
            // (waitpid returns 0 for exactly those).
            unsafe {
                if libc::waitpid(pid as i32, &mut status, libc::WNOHANG) == 0 {
                    libc::kill(pid as i32, libc::SIGKILL);
                    libc::waitpid(pid as i32, &mut status, 0);
                }
            }
        }
    }
}

struct Shell(Child);

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How adopted child `pid` ended, once it has, within `limit`.
fn reaped_within(pid: u32, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one PID, with a status we own.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        assert!(
            r >= 0,
            "waitpid {pid}: {} (not adopted?)",
            std::io::Error::last_os_error()
        );
        if r as u32 == pid {
            return Some(ExitStatus::from_raw(status));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PID a script wrote to `file`, once it is `sleep`.
fn sleeper(dir: &Path, file: &str, deadline: Instant) -> u32 {
    loop {
        if let Some(pid) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n"))
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no sleep wrote {file}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shell's children, as /proc lists them for each of its threads.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flat_map(|t| {
            std::fs::read_to_string(t.unwrap().path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[test]
fn a_shell_killed_outright_takes_its_command_and_the_peer_namespace_processes_along() {
    if !have_root() {
        return;
    }
    let _serial = serial();
    // SAFETY: prctl on this process.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    let dir = tempfile::tempdir().unwrap();
    // A server in the peer namespace and the command itself, each as a
    // `sleep` whose PID the test reads.
    let script = r#"ip netns exec "$TRANSBENCH_PEER_NS" sh -c 'echo $$ > peer.new; mv peer.new peer.pid; exec sleep 1000' &
echo $$ > command.new; mv command.new command.pid; exec sleep 1000"#;
    // Declared first, dropped last: after the shell guard has killed the
    // shell, what it left is this process's to kill and reap.
    let mut adopted = Adopted::default();
    let mut shell = Shell(
        Command::new(BIN)
            .args(["shell", "--impair", "delay 1ms", "--", "sh", "-c", script])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let shell_pid = shell.0.id();
    // Everything that writes here (the shell, its command, the watchdog)
    // has ended when this reaches end of file.
    let mut stderr = shell.0.stderr.take().unwrap();
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = said.send(text);
    });

    let deadline = Instant::now() + WATCHDOG_LIMIT;
    let command = sleeper(dir.path(), "command.pid", deadline);
    adopted.0.push(command);
    let peer = sleeper(dir.path(), "peer.pid", deadline);
    adopted.0.push(peer);
    let watchdog: Vec<u32> = children(shell_pid)
        .into_iter()
        .filter(|&c| c != command)
        .collect();
    assert_eq!(
        watchdog.len(),
        1,
        "the shell's children besides {command}: {watchdog:?}"
    );
    let watchdog = watchdog[0];
    adopted.0.push(watchdog);
    let watchdog_args = std::fs::read_to_string(format!("/proc/{watchdog}/cmdline")).unwrap();
    assert!(watchdog_args.contains("shell-watchdog"), "{watchdog_args:?}");
    let namespaces = our_namespaces(shell_pid);
    assert_eq!(namespaces.len(), 2, "{namespaces:?}");

    shell.0.kill().unwrap();
    let status = shell.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    // Killed by its PDEATHSIG, not stopped by the watchdog (which sends
    // SIGTERM first).
    let command_status = reaped_within(command, COMMAND_LIMIT).expect("the command outlived the shell");
    assert_eq!(command_status.signal(), Some(libc::SIGKILL), "{command_status:?}");
    let peer_status = reaped_within(peer, WATCHDOG_LIMIT).expect("the peer's process outlived the shell");
    assert_eq!(peer_status.signal(), Some(libc::SIGTERM), "{peer_status:?}");
    let watchdog_status = reaped_within(watchdog, WATCHDOG_LIMIT).expect("the watchdog did not finish");
    assert!(watchdog_status.success(), "{watchdog_status:?}");

    assert!(
        our_namespaces(shell_pid).is_empty(),
        "left behind: {:?}",
        our_namespaces(shell_pid)
    );
    for name in &namespaces {
        assert!(
            !testbed::marker::path(name).exists(),
            "the marker of {name} outlived it"
        );
    }
    let said = heard.recv_timeout(WATCHDOG_LIMIT).expect("stderr closed");
    for name in &namespaces {
        assert!(
            said.contains(&format!(
                "transbench shell-watchdog: removed network namespace {name}, left behind by process {shell_pid}"
            )),
            "{said}"
        );
    }
    assert!(said.contains("(stopped the process in it)"), "{said}");
}
