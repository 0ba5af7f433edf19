//! `transbench shell`: any command in a namespace behind an emulated link,
//! the way mahimahi's shells work. The command sees the peer's address in
//! TRANSBENCH_PEER and the peer namespace in TRANSBENCH_PEER_NS (to start a
//! server there with `ip netns exec`). The shell exits with the command's
//! status and removes what it made, processes left in its namespaces
//! included.
//!
//! Killed outright (SIGKILL), the shell can clean up nothing itself:
//! - its command dies with it, by PR_SET_PDEATHSIG (SIGKILL);
//! - what the command started (a server in the peer namespace, say) has no
//!   such tie to the shell, but it runs in the shell's namespaces. A
//!   watchdog process, started first and in a session of its own, waits
//!   for the shell to exit, then stops everything in those namespaces and
//!   removes them: at once, not whenever a next run's
//!   [`testbed::remove_stale`] would. That stays the fallback for a
//!   watchdog killed too (a whole process tree killed, say).
//!
//! A thread of the shell's own cannot do the watchdog's part (it dies with
//! the shell); a cgroup would still need someone alive to kill it, and
//! root with a writable cgroup tree besides. The namespaces are the
//! boundary: a process that leaves them on purpose (`nsenter` elsewhere)
//! is not stopped.

use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};
use testbed::marker::Owner;
use testbed::process::Pidfd;
use testbed::Testbed;
use tokio::signal::unix::{signal, SignalKind};

use crate::run::{start_testbed, LinkProfiles};

pub const PEER_ENV: &str = "TRANSBENCH_PEER";
pub const PEER_NS_ENV: &str = "TRANSBENCH_PEER_NS";
pub const LOCAL_ENV: &str = "TRANSBENCH_LOCAL";

pub async fn shell(profiles: LinkProfiles, command: Vec<String>) -> anyhow::Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .context("give the command to run after --")?;
    // Before anything is built: a signal during set-up must still find the
    // handlers, so the namespaces get removed.
    let mut signals = Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    start_watchdog()?;
    let (bed, profiles) = start_testbed(&profiles)?;
    eprintln!(
        "transbench shell: {} -> {} forward [{}], reverse [{}]",
        testbed::SENDER_ADDR,
        testbed::RECEIVER_ADDR,
        profiles.forward,
        profiles.reverse
    );
    let status = run_command(&bed, program, args, &mut signals).await;
    let stats = bed.link_stats();
    // Stops what the command left running in the namespaces, then removes
    // them.
    drop(bed);
    if let Some(stats) = stats {
        eprintln!(
            "transbench shell: forward {} arrived, {} delivered; reverse {} arrived, {} delivered",
            stats.forward.arrived, stats.forward.delivered, stats.reverse.arrived, stats.reverse.delivered
        );
    }
    let status = status?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None => {
            use std::os::unix::process::ExitStatusExt;
            ExitCode::from(128 + status.signal().unwrap_or(0).clamp(0, 127) as u8)
        }
    })
}

struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

async fn run_command(
    bed: &Testbed,
    program: &str,
    args: &[String],
    signals: &mut Signals,
) -> anyhow::Result<std::process::ExitStatus> {
    let mut command = tokio::process::Command::new("ip");
    command
        .args(["netns", "exec", bed.sender.name(), program])
        .args(args)
        .env(PEER_ENV, testbed::RECEIVER_ADDR.to_string())
        .env(PEER_NS_ENV, bed.receiver.name())
        .env(LOCAL_ENV, testbed::SENDER_ADDR.to_string())
        .kill_on_drop(true);
    // PDEATHSIG fires when the *thread* that started the child ends, not
    // the process. tokio forks on the calling thread, and a current-thread
    // runtime runs this on the main thread, which ends only with the
    // process; from a thread that comes and goes (tokio's blocking pool)
    // the command would be killed under the user.
    // SAFETY: gettid and getpid have no preconditions.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    anyhow::ensure!(
        main_thread,
        "the shell's command must be started from the main thread"
    );
    let shell = std::process::id();
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls, allocating nothing.
    unsafe {
        command.pre_exec(move || {
            // Kept across exec (`ip netns exec` execs the command in place,
            // and neither is set-user-ID). SIGKILL: with the shell gone,
            // nothing would follow up a SIGTERM the command ignores.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The shell died before that took hold: nothing would send it.
            if libc::getppid() as u32 != shell {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    let mut child = command.spawn().with_context(|| format!("starting {program}"))?;
    let pid = child.id().context("the command exited at once")? as libc::pid_t;
    loop {
        // The command decides what a signal means; the link stays up until
        // it has exited. Ctrl-C already reaches it (same process group), so
        // only SIGTERM, sent to this process alone, is passed on.
        tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = signals.interrupt.recv() => {}
            _ = signals.terminate.recv() => {
                // SAFETY: signalling our own child by its PID.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
}

/// Starts `transbench shell-watchdog` for this shell ([`watchdog`]). In a
/// session of its own, so Ctrl-C at a terminal, or a kill of the shell's
/// process group, does not take it along; its output goes where the
/// shell's errors go.
fn start_watchdog() -> anyhow::Result<()> {
    let me = Owner::current().context("reading this process's start time")?;
    let mut watchdog = std::process::Command::new("/proc/self/exe");
    watchdog
        .args(["shell-watchdog", "--pid", &me.pid.to_string()])
        .args(["--start-time", &me.start_time.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Holds no directory of the user's busy.
        .current_dir("/");
    // SAFETY: setsid between fork and exec is async-signal-safe.
    unsafe {
        watchdog.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    // Not waited for: it outlives the shell by design, and exits right after.
    watchdog.spawn().context("starting the shell's watchdog")?;
    Ok(())
}

/// `transbench shell-watchdog`: waits for `shell` to exit, then removes
/// what it left: after a normal exit, nothing; killed outright, its
/// namespaces and every process in them ([`testbed::remove_left_by`]).
pub fn watchdog(shell: Owner) -> anyhow::Result<()> {
    // The pidfd before the check that the PID is still the shell's: a
    // shell that exits in between counts as gone, and a pidfd opened on a
    // later process with its PID is never waited on.
    let pidfd = Pidfd::open(shell.pid);
    if shell.is_running() {
        pidfd
            .context("watching the shell")?
            .wait_exited(None)
            .context("waiting for the shell to exit")?;
    }
    for removed in testbed::remove_left_by(shell) {
        eprintln!("transbench shell-watchdog: {removed}");
    }
    Ok(())
}
