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

/// Refuses a command that could never see the peer: an argument that is
/// the unexpanded text of one of the shell's variables reaches the program
/// as it is, since no shell runs between `transbench shell` and CMD.
pub fn check_command(command: &[String]) -> anyhow::Result<()> {
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("give the command to run after --, e.g. `-- sh -c 'ping -c 5 \"${PEER_ENV}\"'`");
    };
    if is_shell(program) {
        return Ok(());
    }
    if let Some(arg) = args.iter().find(|a| names_variable(a)) {
        anyhow::bail!(
            "{program} would get the text {arg:?} as it is: no shell runs between transbench and \
             the command to expand it. Run the command through one, in single quotes so your own \
             shell leaves the variable alone: -- sh -c '{}'",
            through_shell(program, args)
        );
    }
    Ok(())
}

/// What to tell the user when the command failed and none of its
/// arguments named the peer: the usual cause is `$TRANSBENCH_PEER` typed
/// at the user's own prompt, which expanded it (to nothing) before the
/// shell existed.
pub fn missing_peer_hint(command: &[String]) -> Option<String> {
    let (program, args) = command.split_first()?;
    let peer = testbed::RECEIVER_ADDR.to_string();
    let mentions_peer = args
        .iter()
        .any(|a| a.contains("TRANSBENCH_") || a.contains(&peer));
    if mentions_peer {
        return None;
    }
    let empty = args.iter().any(String::is_empty);
    Some(format!(
        "{program} got no peer address{}: if you typed ${PEER_ENV} at your own prompt, your shell \
         expanded it before transbench set it. The peer is {peer}; pass the variable through a \
         shell, in single quotes: -- sh -c '{program} ... \"${PEER_ENV}\"'",
        if empty { " (one argument is empty)" } else { "" }
    ))
}

fn is_shell(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    matches!(
        name,
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "busybox" | "env"
    )
}

fn names_variable(arg: &str) -> bool {
    [PEER_ENV, PEER_NS_ENV, LOCAL_ENV]
        .iter()
        .any(|v| arg.contains(&format!("${v}")) || arg.contains(&format!("${{{v}}}")))
}

/// The command as one `sh -c` script, to go in single quotes: variables
/// and words with spaces in double quotes, any single quote escaped for
/// the outer quotes.
fn through_shell(program: &str, args: &[String]) -> String {
    let plain = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    };
    let words = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if plain(a) {
                a.to_string()
            } else if names_variable(a) {
                format!("\"{}\"", a.replace(['"', '\\', '`'], ""))
            } else {
                let escaped: String = a
                    .chars()
                    .flat_map(|c| match c {
                        '"' | '\\' | '$' | '`' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                format!("\"{escaped}\"")
            }
        });
    words.collect::<Vec<_>>().join(" ").replace('\'', r"'\''")
}

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
    let (forward, reverse, time_zero) = match &profiles.schedules {
        Some(s) => (
            s.forward.to_string(),
            s.reverse.to_string(),
            "; time 0 is the command's start",
        ),
        None => (profiles.forward.to_string(), profiles.reverse.to_string(), ""),
    };
    eprintln!(
        "transbench shell: {} -> {} forward [{forward}], reverse [{reverse}]{time_zero}",
        testbed::SENDER_ADDR,
        testbed::RECEIVER_ADDR,
    );
    bed.start_schedules(transbench_wire::clock::mono_now_ns());
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
    if !status.success() {
        if let Some(hint) = missing_peer_hint(&command) {
            eprintln!("transbench shell: {hint}");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn an_unexpanded_variable_is_refused_with_the_sh_c_form() {
        let err = check_command(&words(&["ping", "-c", "5", "$TRANSBENCH_PEER"])).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains(r#"-- sh -c 'ping -c 5 "$TRANSBENCH_PEER"'"#),
            "{err}"
        );
        let err = check_command(&words(&["iperf3", "-c", "${TRANSBENCH_PEER}"])).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"sh -c 'iperf3 -c "${TRANSBENCH_PEER}"'"#),
            "{err}"
        );
        // Through a shell, the variable is the shell's to expand.
        check_command(&words(&["sh", "-c", "ping -c 5 \"$TRANSBENCH_PEER\""])).unwrap();
        check_command(&words(&["/bin/bash", "-c", "echo $TRANSBENCH_PEER_NS"])).unwrap();
        check_command(&words(&["ping", "-c", "5", "10.201.0.2"])).unwrap();
        assert!(check_command(&[]).is_err());
    }

    #[test]
    fn the_suggested_script_survives_quotes_and_spaces() {
        let script = through_shell("echo", &words(&["it's", "a b", "$TRANSBENCH_LOCAL"]));
        assert_eq!(script, r#"echo "it'\''s" "a b" "$TRANSBENCH_LOCAL""#);
    }

    #[test]
    fn a_failed_command_without_the_peer_gets_a_hint() {
        // `ping -c 5 $TRANSBENCH_PEER` at the user's prompt: the word vanished.
        let hint = missing_peer_hint(&words(&["ping", "-c", "5"])).unwrap();
        assert!(hint.contains("10.201.0.2") && hint.contains("sh -c"), "{hint}");
        // Quoted there, it became an empty argument.
        let hint = missing_peer_hint(&words(&["ping", "-c", "5", ""])).unwrap();
        assert!(hint.contains("one argument is empty"), "{hint}");
        // A command that names the peer failed for its own reasons.
        assert!(missing_peer_hint(&words(&["ping", "10.201.0.2"])).is_none());
        assert!(missing_peer_hint(&words(&["sh", "-c", "ping $TRANSBENCH_PEER"])).is_none());
    }
}
