//! `transbench run`: a receiver and a sender, on loopback or across an
//! emulated link between two namespaces, one trial per transport, results
//! written after every trial, a summary at the end.

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use linkemu::NetemSpec;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use testbed::{Backend, Testbed};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use transbench_reports::{
    human_ns, summary_table, write_atomic, DeliveredDirection, DeliveredLink, Impairment, LinkEvents,
    RunResults,
};
use transbench_wire::auth::{random_nonce, to_hex, Secret};
use transbench_wire::Transport;

use crate::host::host_info;
use crate::sender::{self, TrialSpec};

/// What the receiver prints first on stdout; `run` and tests parse it.
pub const LISTENING_PREFIX: &str = "transbench receiver listening on ";
pub const SECRET_ENV: &str = "TRANSBENCH_SECRET";

/// A receiver child process; stopped (SIGTERM, then SIGKILL) when dropped.
struct ReceiverProcess {
    child: Child,
    addr: SocketAddr,
}

impl ReceiverProcess {
    /// Starts `transbench receiver` listening on `ip`, inside `netns` if
    /// given.
    async fn start(secret_hex: &str, ip: IpAddr, netns: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the transbench binary to start the receiver")?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        cmd.args(["receiver", "--listen", &SocketAddr::new(ip, 0).to_string()])
            .env(SECRET_ENV, secret_hex)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        // SAFETY: prctl is async-signal-safe. Should this process die without
        // stopping the receiver (SIGKILL), the kernel sends it SIGTERM.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting the receiver process")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the receiver did not report its address within 30 s")??
            .context("the receiver exited before listening (see its error above)")?;
        let addr = line
            .strip_prefix(LISTENING_PREFIX)
            .and_then(|a| a.trim().parse().ok())
            .with_context(|| format!("unexpected first line from the receiver: {line:?}"))?;
        // Keep draining stdout so the receiver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ReceiverProcess { child, addr })
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

pub struct RunOptions {
    pub transports: Vec<Transport>,
    pub spec: TrialSpec,
    pub out: PathBuf,
    /// Run across an emulated link instead of loopback.
    pub impair: Option<LinkProfiles>,
}

/// The netem profile of each direction of the link.
pub struct LinkProfiles {
    pub forward: NetemSpec,
    pub reverse: NetemSpec,
    /// Who impairs the link; `None`: netem where the kernel has it, else
    /// linkemu.
    pub backend: Option<Backend>,
    /// Probe datagrams sent each way before the trials (0: no probe).
    pub probe_packets: u64,
}

/// What the link delivers each way, measured with sequenced UDP datagrams
/// (one per millisecond) before any trial runs.
fn probe_link(bed: &Testbed, profiles: &LinkProfiles) -> anyhow::Result<DeliveredLink> {
    use testbed::{RECEIVER_ADDR, SENDER_ADDR};
    let one_way = |spec: &NetemSpec, from: &testbed::NetNs, from_ip, to: &testbed::NetNs, to_ip| {
        // Wait for stragglers: the longest delay netem can give, and more.
        let worst = spec.delay.map_or(0, |d| d.latency_ns + 4 * d.jitter_ns);
        let wait = Duration::from_nanos(worst) + Duration::from_millis(500);
        let measured = testbed::probe::probe(
            from,
            from_ip,
            to,
            to_ip,
            profiles.probe_packets,
            Duration::from_millis(1),
            wait,
        )?;
        anyhow::Ok(DeliveredDirection {
            configured: spec.to_string(),
            measured,
        })
    };
    Ok(DeliveredLink {
        forward: one_way(
            &profiles.forward,
            &bed.sender,
            SENDER_ADDR,
            &bed.receiver,
            RECEIVER_ADDR,
        )
        .context("probing the link sender -> receiver")?,
        reverse: one_way(
            &profiles.reverse,
            &bed.receiver,
            RECEIVER_ADDR,
            &bed.sender,
            SENDER_ADDR,
        )
        .context("probing the link receiver -> sender")?,
    })
}

fn describe(direction: &DeliveredDirection) -> String {
    let d = &direction.measured;
    format!(
        "loss {:.2}%, dup {:.2}%, early {:.2}% (RFC 4737 reordered {:.2}%), delay p50 {} (min {}, max {}) \
         — configured: {}",
        100.0 * d.loss_ratio,
        100.0 * d.dup_ratio,
        100.0 * d.early_ratio,
        100.0 * d.reorder_ratio,
        human_ns(d.delay_p50_ns),
        human_ns(d.delay_min_ns),
        human_ns(d.delay_max_ns),
        direction.configured
    )
}

/// The testbed for an impaired run: stale namespaces of killed runs go
/// first, and each direction gets a seed (recorded in its profile) so the
/// run can be repeated decision for decision.
pub fn start_testbed(profiles: &LinkProfiles) -> anyhow::Result<(Testbed, LinkProfiles)> {
    for name in testbed::remove_stale() {
        eprintln!("removed network namespace {name}, left behind by a run that was killed");
    }
    let netem = match profiles.backend {
        Some(Backend::Linkemu) => None,
        _ => testbed::probe_netem().context("probing for tc netem")?,
    };
    let backend = match (profiles.backend, netem) {
        (Some(Backend::Netem), None) => bail!(
            "--impair-backend netem: this kernel has no sch_netem (tc says the qdisc kind is unknown); \
             use --impair-backend linkemu, the same semantics in userspace"
        ),
        (Some(b), _) => b,
        (None, Some(_)) => Backend::Netem,
        (None, None) => Backend::Linkemu,
    };
    let mut forward = profiles.forward.clone();
    let mut reverse = profiles.reverse.clone();
    // A queue above the bandwidth-delay product unless the profile says
    // otherwise: netem's default of 1000 packets tail-drops a fast, long
    // path by itself.
    forward.limit.get_or_insert(IMPAIRED_LIMIT);
    reverse.limit.get_or_insert(IMPAIRED_LIMIT);
    // Each direction its own seed (derived from the profile's, if it has
    // one, so one `--impair "... seed 7"` does not mirror losses), recorded
    // in the profile so the run can be repeated decision for decision --
    // unless netem is in use without seed support, where none is claimed.
    if netem.is_none_or(|n| n.seed) || backend == Backend::Linkemu {
        let base = forward
            .seed
            .unwrap_or_else(|| u64::from_be_bytes(random_nonce()[..8].try_into().expect("8 bytes")));
        forward.seed = Some(base);
        if reverse.seed.is_none() || reverse.seed == Some(base) {
            reverse.seed = Some(base.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15);
        }
    } else {
        forward.seed = None;
        reverse.seed = None;
    }
    let bed = Testbed::up(backend, &forward, &reverse, forward.seed.unwrap_or(0))
        .with_context(|| format!("setting up the emulated link ({})", backend.name()))?;
    Ok((
        bed,
        LinkProfiles {
            forward,
            reverse,
            backend: Some(backend),
            probe_packets: profiles.probe_packets,
        },
    ))
}

/// netem's queue limit for impaired runs when the profile sets none.
const IMPAIRED_LIMIT: u32 = 100_000;

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    for t in &opts.transports {
        TrialSpec {
            transport: *t,
            ..opts.spec.clone()
        }
        .validate()?;
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create the output directory {}", opts.out.display()))?;
    let results_path = opts.out.join("results.json");

    let secret_hex = to_hex(&random_nonce());
    let secret = Secret::new(secret_hex.as_bytes())?;
    // A signal to this process alone (a CI job's timeout, a supervisor) must
    // still stop the receiver it started.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let link = opts.impair.as_ref().map(start_testbed).transpose()?;
    let delivered = match &link {
        Some((bed, profiles)) if profiles.probe_packets > 0 => Some(probe_link(bed, profiles)?),
        _ => None,
    };
    let receiver = match &link {
        Some((bed, _)) => {
            ReceiverProcess::start(
                &secret_hex,
                testbed::RECEIVER_ADDR.into(),
                Some(bed.receiver.name()),
            )
            .await?
        }
        None => ReceiverProcess::start(&secret_hex, Ipv4Addr::LOCALHOST.into(), None).await?,
    };
    if let Some((bed, _)) = &link {
        // This thread runs the sender: its sockets must live there.
        bed.sender.enter()?;
    }
    let outcome = tokio::select! {
        outcome = run_trials(&opts, receiver.addr, &secret, &results_path, link.as_ref(), delivered) => outcome,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    };
    receiver.stop().await;
    // The link and its namespaces go last, after everything that used them.
    drop(link);
    let results = outcome.with_context(|| {
        format!(
            "run stopped; the trials that finished are in {}",
            results_path.display()
        )
    })?;

    print!("{}", summary_table(&results));
    if let Some(d) = &results.delivered_impairment {
        println!("link as delivered, sender -> receiver: {}", describe(&d.forward));
        println!("link as delivered, receiver -> sender: {}", describe(&d.reverse));
    }
    println!("results: {}", results_path.display());
    let failed = opts.transports.len() - results.trials.len();
    if failed > 0 {
        bail!(
            "{failed} of {} trials failed (see the errors above)",
            opts.transports.len()
        );
    }
    Ok(())
}

async fn run_trials(
    opts: &RunOptions,
    addr: SocketAddr,
    secret: &Secret,
    results_path: &Path,
    link: Option<&(Testbed, LinkProfiles)>,
    delivered: Option<DeliveredLink>,
) -> anyhow::Result<RunResults> {
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut results = RunResults::new(created, host_info());
    results.delivered_impairment = delivered;
    write_atomic(results_path, &results)?;
    let per_trial = opts.spec.warmup + opts.spec.duration;
    let bar = ProgressBar::new(opts.transports.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}")
            .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    for (n, transport) in opts.transports.iter().enumerate() {
        bar.set_message(format!("{transport} ({} s each)", per_trial.as_secs_f64()));
        let spec = TrialSpec {
            transport: *transport,
            ..opts.spec.clone()
        };
        let before = link.map(|(bed, _)| bed.link_stats());
        match sender::run_trial(addr, Some(secret), &spec, format!("{transport}-{}", n + 1)).await {
            Ok(mut trial) => {
                if let (Some((bed, profiles)), Some(before)) = (link, before) {
                    let after = bed.link_stats();
                    if after.is_some_and(|s| s.failed) {
                        trial.valid = false;
                        trial
                            .invalid_reasons
                            .push("the emulated link failed during the trial".into());
                    }
                    trial.impairment = Some(Impairment {
                        backend: bed.backend.name().into(),
                        forward: profiles.forward.to_string(),
                        reverse: profiles.reverse.to_string(),
                        events: before.zip(after).map(|(before, after)| LinkEvents {
                            forward: after.forward.since(&before.forward),
                            reverse: after.reverse.since(&before.reverse),
                        }),
                    });
                }
                results.trials.push(trial);
                write_atomic(results_path, &results)?;
            }
            Err(e) => bar.suspend(|| eprintln!("error: {transport} trial failed: {e:#}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(results)
}
