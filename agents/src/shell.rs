//! `transbench shell`: any command in a namespace behind an emulated link,
//! the way mahimahi's shells work. The command sees the peer's address in
//! TRANSBENCH_PEER and the peer namespace in TRANSBENCH_PEER_NS (to start a
//! server there with `ip netns exec`). The shell exits with the command's
//! status and removes what it made, processes left in its namespaces
//! included.

use anyhow::Context;
use std::process::ExitCode;
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
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", bed.sender.name(), program])
        .args(args)
        .env(PEER_ENV, testbed::RECEIVER_ADDR.to_string())
        .env(PEER_NS_ENV, bed.receiver.name())
        .env(LOCAL_ENV, testbed::SENDER_ADDR.to_string())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
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
