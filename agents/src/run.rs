//! `transbench run`: a receiver and a sender, on loopback or across an
//! emulated link between two namespaces, one trial per transport, results
//! written after every trial, a summary at the end.

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use linkemu::{ImpairSchedule, NetemSpec};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use testbed::{Backend, Testbed};
use transbench_analysis::churn as churn_theory;
use transbench_reports::{
    human_ns, summary_table, write_atomic, DeliveredDirection, DeliveredLink, Impairment, LatencyKind,
    LinkEvents, RoundTripProbe, RunResults, ScheduleRecord, Sweep, SweepStep, TrialResult,
};
use transbench_wire::auth::{random_nonce, to_hex, Secret};
use transbench_wire::Transport;

use crate::egress::EgressPolicy;
use crate::fault::FaultClock;
use crate::host::host_info;
use crate::measure::oneway as analysis;
use crate::measure::outage::Blackout;
use crate::out_dir::{self, OutChoice};
use crate::spec::bulk::LinkShape;
use crate::spec::{ChurnOptions, LoadSpec, TrialArgs, TrialSpec, WindowOpens, WorkloadSpec};
use crate::workload;
use hostimpair::QdiscLease;
use std::sync::Arc;

/// What the receiver prints first on stdout; `run` and tests parse it.
pub const LISTENING_PREFIX: &str = "transbench receiver listening on ";
/// UDP datagrams the link probe sends each way before a run's trials.
pub const DEFAULT_PROBE_PACKETS: u64 = 500;

/// A receiver child process; stopped (SIGTERM, then SIGKILL) at the end of
/// the run, killed when dropped.
struct ReceiverProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ReceiverProcess {
    /// Starts `transbench receiver` listening on `listen` (port 0: any
    /// free one), inside `netns` if given; returns once it listens.
    fn start(secret_hex: &str, listen: SocketAddr, netns: Option<&str>) -> anyhow::Result<Self> {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().context("locating the transbench binary to start the receiver")?;
        let mut cmd = match netns {
            Some(ns) => {
                // `ip netns exec` execs the receiver: the child's PID is its.
                let mut cmd = std::process::Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(exe);
                cmd
            }
            None => std::process::Command::new(exe),
        };
        cmd.args(["receiver", "--listen", &listen.to_string()])
            .env(crate::secret::SECRET_ENV, secret_hex)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
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
        let (first, first_line) = std::sync::mpsc::channel();
        // Reads the first line, then drains the rest so the receiver never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = first.send(lines.next());
            for _ in lines {}
        });
        // Dropped on failure: killed.
        let mut process = ReceiverProcess { child, addr: listen };
        let line = first_line
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("the receiver did not report its address within 30 s"))?
            .context("the receiver exited before listening (see its error above)")??;
        process.addr = line
            .strip_prefix(LISTENING_PREFIX)
            .and_then(|a| a.trim().parse().ok())
            .with_context(|| format!("unexpected first line from the receiver: {line:?}"))?;
        Ok(process)
    }

    /// SIGTERM, and SIGKILL if it has not exited 3 s later.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let by = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < by {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// SIGKILL, and reaped.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The receiver `run` starts on this host, which a crash
/// (`--receiver-fault crash`) kills and starts again on the same address.
struct LocalReceiver {
    process: std::sync::Mutex<ReceiverProcess>,
    /// Where each receiver is started: a receiver's PR_SET_PDEATHSIG fires
    /// when the thread that started it exits, and a fault's thread exits
    /// after each restart, so one thread that lives as long as this starts
    /// them all.
    starts: std::sync::Mutex<std::sync::mpsc::Sender<StartRequest>>,
}

/// Where to listen, and where to send the started receiver.
type StartRequest = (
    SocketAddr,
    std::sync::mpsc::Sender<anyhow::Result<ReceiverProcess>>,
);

impl LocalReceiver {
    fn start(secret_hex: &str, ip: IpAddr, netns: Option<&str>) -> anyhow::Result<Self> {
        let (starts, requests) = std::sync::mpsc::channel::<StartRequest>();
        let (secret_hex, netns) = (secret_hex.to_string(), netns.map(str::to_string));
        std::thread::Builder::new()
            .name("receiver-starts".into())
            .spawn(move || {
                for (listen, reply) in requests {
                    let _ = reply.send(ReceiverProcess::start(&secret_hex, listen, netns.as_deref()));
                }
            })
            .context("starting the thread that starts receivers")?;
        let process = start_on(&starts, SocketAddr::new(ip, 0))?;
        Ok(LocalReceiver {
            process: std::sync::Mutex::new(process),
            starts: std::sync::Mutex::new(starts),
        })
    }

    fn process(&self) -> std::sync::MutexGuard<'_, ReceiverProcess> {
        self.process.lock().expect("receiver process lock")
    }

    fn addr(&self) -> SocketAddr {
        self.process().addr
    }
}

fn start_on(
    starts: &std::sync::mpsc::Sender<StartRequest>,
    listen: SocketAddr,
) -> anyhow::Result<ReceiverProcess> {
    let (reply, started) = std::sync::mpsc::channel();
    starts
        .send((listen, reply))
        .map_err(|_| anyhow::anyhow!("the thread that starts receivers has exited"))?;
    started
        .recv()
        .map_err(|_| anyhow::anyhow!("the thread that starts receivers has exited"))?
}

impl crate::fault::ReceiverHandle for LocalReceiver {
    fn pid(&self) -> Option<u32> {
        let mut process = self.process();
        matches!(process.child.try_wait(), Ok(None)).then(|| process.child.id())
    }

    fn kill(&self) -> Result<(), String> {
        let mut process = self.process();
        process
            .child
            .kill()
            .map_err(|e| format!("PID {}: {e}", process.child.id()))?;
        process.child.wait().map(drop).map_err(|e| e.to_string())
    }

    fn restart(&self) -> Result<(), String> {
        let mut process = self.process();
        let starts = self.starts.lock().expect("receiver starts lock");
        *process = start_on(&starts, process.addr).map_err(|e| format!("{e:#}"))?;
        Ok(())
    }
}

/// A `transbench receiver` already running on another host (`run
/// --receiver`): every trial goes to it instead of to a receiver `run`
/// starts here.
#[derive(Clone)]
pub struct RemoteReceiver {
    /// `HOST:PORT` as given, recorded in the results.
    pub given: String,
    pub addr: SocketAddr,
    pub secret: Option<Secret>,
    /// `--allow-impair` on this side: where an impaired cell's forward
    /// profile goes (this host's interface toward the receiver).
    pub own_egress: Option<Arc<EgressPolicy>>,
}

impl RemoteReceiver {
    /// Resolves `given` (HOST:PORT) once, for the whole run.
    pub async fn resolve(
        given: &str,
        secret: Option<Secret>,
        own_egress: Option<Arc<EgressPolicy>>,
    ) -> anyhow::Result<Self> {
        let addr = crate::session::resolve("the receiver", given).await?;
        Ok(RemoteReceiver {
            given: given.to_string(),
            addr,
            secret,
            own_egress,
        })
    }

    /// Whether an impaired cell can run against it: its forward profile
    /// needs this host's `--allow-impair` (the reverse one, the
    /// receiver's, which says so itself when it lacks it).
    pub fn check_impairment(&self, profiles: &LinkProfiles) -> anyhow::Result<()> {
        if profiles.schedules.is_some() {
            bail!(
                "impairment schedules run on the local testbed's link only: across hosts each host puts a \
                 constant profile on its own egress. Drop --receiver (or the scenario's [receiver]) to run \
                 the schedule between two namespaces here, or give a constant profile"
            );
        }
        if self.own_egress.is_none() && profiles.forward != NetemSpec::default() {
            bail!(
                "an impaired cell against the receiver at {} puts its forward profile on this host's \
                 interface toward it: pass --allow-impair IFACE (that interface; `ip route get {}` names \
                 it), and start the receiver with --allow-impair on its own",
                self.given,
                self.addr.ip()
            );
        }
        Ok(())
    }
}

/// `impairment.backend` across hosts: tc netem, on each host's egress.
pub const REMOTE_BACKEND: &str = "netem, each host's egress";

/// Across hosts, each host impairs its own egress for the phase: this one
/// the forward profile (held here), the receiver the reverse one (asked
/// for in each trial's setup).
fn lease_forward(remote: &RemoteReceiver, profiles: &LinkProfiles) -> anyhow::Result<Option<QdiscLease>> {
    remote.check_impairment(profiles)?;
    if profiles.forward == NetemSpec::default() {
        return Ok(None);
    }
    let policy = remote.own_egress.as_ref().expect("checked above");
    Ok(Some(
        policy.lease_toward(remote.addr.ip(), &profiles.forward.to_string())?,
    ))
}

pub struct RunOptions {
    /// Where the trials go: a receiver on another host, or (`None`) one
    /// this run starts here, on loopback or across the testbed's link.
    pub receiver: Option<RemoteReceiver>,
    pub transports: Vec<Transport>,
    pub spec: TrialSpec,
    /// More attempts a trial gets when the sender missed its schedule
    /// (`--retry-invalid`; not for sweep steps).
    pub retry_invalid: u32,
    /// Run across an emulated link instead of loopback.
    pub impair: Option<LinkProfiles>,
    /// Churn and handshake: step each transport up these rates to its knee.
    pub sweep: Option<SweepPlan>,
}

/// `run --sweep`: offered connection rates in rising order, and the TTFB
/// p99 beyond which a step is past the knee (default: 10 x the first
/// step's p50).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub rates: Vec<f64>,
    pub p99_bound_ns: Option<u64>,
}

impl SweepPlan {
    /// `--sweep`'s rates, checked: churn or handshake only, positive,
    /// rising, and each a valid trial.
    pub fn checked(spec: &TrialSpec, rates: Vec<f64>, knee_p99: Option<Duration>) -> anyhow::Result<Self> {
        if spec.workload.churn().is_none() {
            bail!("--sweep applies only to --workload churn or handshake");
        }
        if let Some(bad) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            bail!("--sweep {bad}: every rate must be a positive number of connections per second");
        }
        if rates.windows(2).any(|w| w[1] <= w[0]) {
            bail!(
                "--sweep rates must rise, e.g. 100,200,400,800: the sweep stops at the first that does not keep up"
            );
        }
        if knee_p99.is_some_and(|d| d.is_zero()) {
            bail!("--knee-p99 must be longer than zero: every step would be past the knee");
        }
        for rate in &rates {
            TrialSpec {
                workload: spec.workload.at_rate(*rate),
                ..spec.clone()
            }
            .validate()?;
        }
        Ok(SweepPlan {
            rates,
            p99_bound_ns: knee_p99.map(|d| d.as_nanos() as u64),
        })
    }
}

/// The sweeps of a run as they progress: a transport's stops at its first
/// step past the knee.
#[derive(Default)]
pub(crate) struct Sweeps {
    p99_bound_ns: Option<u64>,
    list: Vec<Sweep>,
}

impl Sweeps {
    fn past_knee(&self, transport: Transport) -> bool {
        self.list
            .iter()
            .any(|s| s.transport == transport && s.knee_reason.is_some())
    }

    fn record(&mut self, rate: f64, trial: &TrialResult) {
        let Some(c) = &trial.churn else { return };
        if !self.list.iter().any(|s| s.transport == trial.transport) {
            let (bound, source) = match self.p99_bound_ns {
                Some(b) => (b, "--knee-p99".to_string()),
                None => (
                    churn_theory::DEFAULT_P99_FACTOR * c.ttfb.p50,
                    format!("{} x the first step's TTFB p50", churn_theory::DEFAULT_P99_FACTOR),
                ),
            };
            self.list.push(Sweep {
                transport: trial.transport,
                workload: trial.workload,
                ttfb_p99_bound_ns: bound,
                bound_source: source,
                steps: Vec::new(),
                knee_rate: None,
                knee_reason: None,
            });
        }
        let sweep = self
            .list
            .iter_mut()
            .find(|s| s.transport == trial.transport)
            .expect("added above");
        let figures = churn_theory::StepFigures {
            offered_rate: rate,
            achieved_rate: c.achieved_rate,
            started: c.started,
            failed: c.failed,
            ttfb_p99_ns: c.ttfb.p99,
        };
        let past = churn_theory::past_knee(&figures, sweep.ttfb_p99_bound_ns);
        sweep.steps.push(SweepStep {
            rate,
            trial: trial.id.clone(),
            achieved_rate: c.achieved_rate,
            failed_frac: c.failed as f64 / c.started.max(1) as f64,
            ttfb_p99_ns: c.ttfb.p99,
            kept_up: past.is_none(),
        });
        match past {
            None => sweep.knee_rate = Some(rate),
            Some(why) => sweep.knee_reason = Some(format!("at {rate:.0}/s: {why}")),
        }
    }
}

/// The netem profile of each direction of the link.
pub struct LinkProfiles {
    /// With schedules, each one's first profile.
    pub forward: NetemSpec,
    pub reverse: NetemSpec,
    /// Profiles that change during each trial (`--impair-schedule`).
    pub schedules: Option<LinkSchedules>,
    /// Who impairs the link; `None`: netem where the kernel has it, else
    /// linkemu.
    pub backend: Option<Backend>,
    /// Probe datagrams sent each way before the trials (0: no probe).
    pub probe_packets: u64,
}

/// Each direction's impairment schedule; schedule time 0 is the start of
/// each trial's measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSchedules {
    pub forward: ImpairSchedule,
    pub reverse: ImpairSchedule,
}

impl LinkProfiles {
    /// Each direction's own schedule, or a constant one; `None`: neither
    /// changes.
    pub fn scheduled(forward: ImpairSchedule, reverse: ImpairSchedule) -> Self {
        let (f, r) = (forward.at(0), reverse.at(0));
        // A reject held throughout changes nothing, but only a schedule
        // says it rejects.
        let scheduled = |s: &ImpairSchedule| !s.is_constant() || s.rejects();
        LinkProfiles {
            forward: f,
            reverse: r,
            schedules: (scheduled(&forward) || scheduled(&reverse))
                .then_some(LinkSchedules { forward, reverse }),
            backend: None,
            probe_packets: DEFAULT_PROBE_PACKETS,
        }
    }

    /// Each direction's schedule: its own, or its profile held throughout.
    pub fn each_way(&self) -> (ImpairSchedule, ImpairSchedule) {
        match &self.schedules {
            Some(s) => (s.forward.clone(), s.reverse.clone()),
            None => (
                ImpairSchedule::constant(self.forward.clone()),
                ImpairSchedule::constant(self.reverse.clone()),
            ),
        }
    }

    /// The same path without its loss (random or modelled) and corruption:
    /// where a multistream run measures its no-loss baseline (a schedule's
    /// first profile, held). `None` if the profiles lose nothing.
    pub fn without_loss(&self) -> Option<LinkProfiles> {
        let strip = |spec: &NetemSpec| NetemSpec {
            loss: None,
            corrupt: None,
            ..spec.clone()
        };
        let (forward, reverse) = (strip(&self.forward), strip(&self.reverse));
        (forward != self.forward || reverse != self.reverse || self.schedules.is_some()).then_some(
            LinkProfiles {
                forward,
                reverse,
                schedules: None,
                backend: self.backend,
                probe_packets: 0,
            },
        )
    }
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
            testbed::probe::OneWay {
                from_ns: from,
                from: from_ip,
                to_ns: to,
                to: to_ip,
            },
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

/// Across hosts, an impaired path's probe: `probe_packets` requests over
/// UDP, one a millisecond, each host's impairment in place.
async fn probe_across_hosts(
    remote: &RemoteReceiver,
    profiles: &LinkProfiles,
    reverse_impair: Option<String>,
) -> anyhow::Result<RoundTripProbe> {
    let duration = format!("{}ms", profiles.probe_packets);
    let options = [
        ("rate", "1000"),
        ("size", "64"),
        ("duration", duration.as_str()),
        ("warmup", "0s"),
    ];
    let args = TrialArgs::from_options(transbench_wire::Workload::Rr, options).map_err(anyhow::Error::msg)?;
    let mut spec = args.spec(Transport::Udp, &[Transport::Udp])?;
    spec.reverse_impair = reverse_impair;
    let t = workload::run_trial(remote.addr, remote.secret.as_ref(), &spec, "probe".into())
        .await
        .with_context(|| format!("probing the path to the receiver at {}", remote.given))?;
    Ok(round_trip_probe(&t))
}

/// What a probe trial's counts say of each direction. A request lost
/// either way is recorded in `lat` at the loss timeout, so only the least
/// and the median (while under half are lost) are round trips.
fn round_trip_probe(t: &TrialResult) -> RoundTripProbe {
    let (sent, reached, answered) = (t.counters.sent, t.receiver.requests, t.receiver.responses);
    let received = t.counters.received + t.counters.late;
    let ratio = |lost: u64, of: u64| lost as f64 / of.max(1) as f64;
    RoundTripProbe {
        sent,
        reached,
        answered,
        received,
        forward_loss_ratio: ratio(sent.saturating_sub(reached), sent),
        reverse_loss_ratio: ratio(answered.saturating_sub(received), answered),
        rtt_min_ns: t.lat.min,
        rtt_p50_ns: t.lat.p50,
    }
}

fn describe_round_trip(p: &RoundTripProbe, profiles: &LinkProfiles) -> String {
    format!(
        "forward loss {:.2}% ({} of {} reached the receiver), reverse loss {:.2}% ({} of {} came back), \
         round trip p50 {} (min {}) — configured: {} | {}",
        100.0 * p.forward_loss_ratio,
        p.reached,
        p.sent,
        100.0 * p.reverse_loss_ratio,
        p.received,
        p.answered,
        human_ns(p.rtt_p50_ns),
        human_ns(p.rtt_min_ns),
        profiles.forward,
        profiles.reverse
    )
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
    for removed in testbed::remove_stale() {
        eprintln!("{removed}");
    }
    let rejects = profiles
        .schedules
        .as_ref()
        .is_some_and(|s| s.forward.rejects() || s.reverse.rejects());
    if rejects && profiles.backend == Some(Backend::Netem) {
        bail!("--impair-backend netem: {}", testbed::REJECT_NEEDS_LINKEMU);
    }
    // A schedule that rejects needs linkemu whatever the kernel has.
    let netem = match (profiles.backend, rejects) {
        (Some(Backend::Linkemu), _) | (_, true) => None,
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
    let (mut forward, mut reverse) = profiles.each_way();
    // Each direction its own seed (derived from the profile's, if it has
    // one, so one `--impair "... seed 7"` does not mirror losses), recorded
    // in the profile so the run can be repeated decision for decision --
    // unless netem is in use without seed support, where none is claimed.
    let seeded = netem.is_none_or(|n| n.seed) || backend == Backend::Linkemu;
    let base = profiles
        .forward
        .seed
        .unwrap_or_else(|| u64::from_be_bytes(random_nonce()[..8].try_into().expect("8 bytes")));
    let reverse_seed = match profiles.reverse.seed {
        Some(s) if s != base => s,
        _ => base.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
    };
    for (schedule, seed) in [(&mut forward, base), (&mut reverse, reverse_seed)] {
        for spec in schedule.profiles_mut() {
            // A queue above the bandwidth-delay product unless the profile
            // says otherwise: netem's default of 1000 packets tail-drops a
            // fast, long path by itself.
            spec.limit.get_or_insert(linkemu::spec::IMPAIRED_LIMIT);
            spec.seed = seeded.then_some(seed);
        }
    }
    let bed = Testbed::up_scheduled(backend, &forward, &reverse, base)
        .with_context(|| format!("setting up the emulated link ({})", backend.name()))?;
    Ok((
        bed,
        LinkProfiles {
            backend: Some(backend),
            probe_packets: profiles.probe_packets,
            ..LinkProfiles::scheduled(forward, reverse)
        },
    ))
}

/// Whether a workload can run under an impairment schedule.
pub fn check_schedule_workload(workload: &WorkloadSpec) -> anyhow::Result<()> {
    if matches!(workload, WorkloadSpec::Load(_)) {
        bail!(
            "workload load runs two trials at once (the probe and the load), and a schedule's time 0 is one \
             trial's measured window: run the schedule with rr, multistream, stream, bulk, churn or heartbeat"
        );
    }
    Ok(())
}

/// Runs `opts` into the directory `out` chooses (named by the workload).
pub async fn run(opts: RunOptions, out: &OutChoice) -> anyhow::Result<()> {
    if opts.impair.as_ref().is_some_and(|p| p.schedules.is_some()) {
        check_schedule_workload(&opts.spec.workload)?;
    }
    if let (Some(remote), Some(_)) = (&opts.receiver, &opts.spec.receiver_fault) {
        bail!(
            "--receiver-fault signals the receiver process this run starts, and the trials go to the receiver at \
             {} instead: drop --receiver to run the fault against a local receiver",
            remote.given
        );
    }
    for t in &opts.transports {
        TrialSpec {
            transport: *t,
            ..opts.spec.clone()
        }
        .validate()?;
    }
    let run_dir = out_dir::prepare(out, opts.spec.workload().name(), SystemTime::now())?;
    let results_path = run_dir.join("results.json");
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut results = RunResults::new(created, host_info());
    results.remote_receiver = opts.receiver.as_ref().map(|r| r.given.clone());
    write_atomic(&results_path, &results)?;

    // Head-of-line excess counts from the same transport's latency without
    // loss: measure it first, on the same path minus its loss.
    let baseline = match &opts.impair {
        Some(p) if matches!(&opts.spec.workload, WorkloadSpec::Multistream(m) if m.hol.base.is_none()) => {
            p.without_loss()
        }
        _ => None,
    };
    let rates: Vec<Option<f64>> = match &opts.sweep {
        Some(plan) => plan.rates.iter().map(|r| Some(*r)).collect(),
        None => vec![None],
    };
    let cells: Vec<Cell> = opts
        .transports
        .iter()
        .flat_map(|t| rates.iter().map(move |r| (*t, *r)))
        .collect();
    // Churn leaves TIME_WAIT sockets behind for 60 s: each trial gets a
    // fresh testbed, so its counts and ports are its own.
    let groups: Vec<Vec<Cell>> = if opts.impair.is_some() && opts.spec.workload().is_churn() {
        cells.iter().map(|c| vec![*c]).collect()
    } else {
        vec![cells.clone()]
    };
    let baseline_cells: Vec<Cell> = opts.transports.iter().map(|t| (*t, None)).collect();
    let planned = cells.len()
        + if baseline.is_some() {
            baseline_cells.len()
        } else {
            0
        };
    let mut sweeps = Sweeps {
        p99_bound_ns: opts.sweep.as_ref().and_then(|s| s.p99_bound_ns),
        list: Vec::new(),
    };
    let bar = ProgressBar::new(planned as u64).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}")
            .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let phases = async {
        let mut bases = HashMap::new();
        let mut out = Outputs {
            results: &mut results,
            path: &results_path,
            bar: &bar,
            bases: &mut bases,
            sweeps: &mut sweeps,
        };
        if let Some(profiles) = &baseline {
            run_phase(&opts, &baseline_cells, Some(profiles), true, &mut out).await?;
        }
        for group in &groups {
            run_phase(&opts, group, opts.impair.as_ref(), false, &mut out).await?;
        }
        anyhow::Ok(())
    };
    let outcome = unless_signalled(phases).await;
    bar.finish_and_clear();
    outcome.with_context(|| {
        format!(
            "run stopped; the trials that finished are in {}",
            results_path.display()
        )
    })?;
    let results = transbench_reports::read_results(&results_path)?;

    print!("{}", summary_table(&results));
    for sweep in &results.sweeps {
        let knee = match (sweep.knee_rate, &sweep.knee_reason) {
            (Some(rate), Some(why)) => format!("keeps up to {rate:.0}/s; {why}"),
            (Some(rate), None) => format!("kept up at every step, to {rate:.0}/s: the knee lies beyond"),
            (None, Some(why)) => format!("past the knee at the first step, {why}"),
            (None, None) => "no step ran".to_string(),
        };
        println!("knee, {}: {knee}", sweep.transport);
    }
    if let Some(d) = &results.delivered_impairment {
        println!("link as delivered, sender -> receiver: {}", describe(&d.forward));
        println!("link as delivered, receiver -> sender: {}", describe(&d.reverse));
    }
    println!("results: {}", results_path.display());
    crate::report::render(&results_path, &run_dir.join("report"))?;
    // Steps past a knee were never run: they are no failures.
    let skipped: usize = results.sweeps.iter().map(|s| rates.len() - s.steps.len()).sum();
    let finished = results.trials.iter().filter(|t| t.is_final()).count();
    let failed = planned - skipped - finished;
    if failed > 0 {
        bail!(
            "{failed} of {} trials failed (see the errors above)",
            planned - skipped
        );
    }
    Ok(())
}

/// Runs `work` unless this process is sent SIGINT or SIGTERM first. A
/// signal to this process alone (a CI job's timeout, a supervisor) must
/// still stop the receiver it started: dropping `work` stops it and
/// removes the link.
pub(crate) async fn unless_signalled<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        outcome = work => outcome,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    }
}

/// A transport on a path without its loss: where a baseline holds.
pub(crate) type BaseKey = (Transport, String);

pub(crate) fn base_key(transport: Transport, profiles: Option<&LinkProfiles>) -> BaseKey {
    let path = match profiles {
        None => "loopback".to_string(),
        Some(p) => {
            let lossless = p.without_loss();
            let p = lossless.as_ref().unwrap_or(p);
            format!("{} | {}", p.forward, p.reverse)
        }
    };
    (transport, path)
}

/// A trial to run: a transport, at a sweep's rate or the run's.
pub(crate) type Cell = (Transport, Option<f64>);

/// Where the phases of a run put what they find.
pub(crate) struct Outputs<'a> {
    pub results: &'a mut RunResults,
    pub path: &'a Path,
    pub bar: &'a ProgressBar,
    /// Each transport's no-loss p1 on each path, from baseline phases.
    pub bases: &'a mut HashMap<BaseKey, (u64, String)>,
    pub sweeps: &'a mut Sweeps,
}

/// Each of `cells` once on one path: its own link (or loopback) and
/// receiver, both gone when this returns or is dropped. A baseline phase
/// records each transport's no-loss p1; the phase after uses it. A sweep
/// skips a transport's steps past its knee.
pub(crate) async fn run_phase(
    opts: &RunOptions,
    cells: &[Cell],
    profiles: Option<&LinkProfiles>,
    baseline: bool,
    out: &mut Outputs<'_>,
) -> anyhow::Result<()> {
    if cells.iter().all(|(t, _)| out.sweeps.past_knee(*t)) {
        out.bar.inc(cells.len() as u64);
        return Ok(());
    }
    let (results, results_path, bar, bases) = (&mut *out.results, out.path, out.bar, &mut *out.bases);
    // Across hosts there is no testbed: each host impairs its own egress.
    let (forward_lease, reverse_impair) = match (&opts.receiver, profiles) {
        (Some(remote), Some(p)) => (
            lease_forward(remote, p)?,
            (p.reverse != NetemSpec::default()).then(|| p.reverse.to_string()),
        ),
        _ => (None, None),
    };
    let link = match opts.receiver {
        Some(_) => None,
        None => profiles.map(start_testbed).transpose()?,
    };
    if let (Some((bed, _)), Some(churn)) = (&link, opts.spec.workload.churn()) {
        set_sender_sysctls(bed, &churn.options)?;
    }
    let mut delivered = None;
    if let Some((bed, profiles)) = &link {
        if !baseline && profiles.probe_packets > 0 {
            delivered = Some(probe_link(bed, profiles)?);
            results.delivered_impairment = delivered.clone();
            write_atomic(results_path, results)?;
        }
    }
    let local_secret = to_hex(&random_nonce());
    let mut fault_clock = None;
    let (local, target) = match (&opts.receiver, &link) {
        (Some(remote), _) => (None, remote.clone()),
        (None, bed) => {
            let (ip, netns) = match bed {
                Some((bed, _)) => (testbed::RECEIVER_ADDR.into(), Some(bed.receiver.name())),
                None => (Ipv4Addr::LOCALHOST.into(), None),
            };
            let process = Arc::new(LocalReceiver::start(&local_secret, ip, netns)?);
            if let Some(fault) = opts.spec.receiver_fault {
                fault_clock = Some(FaultClock::new(process.clone(), fault));
            }
            let addr = process.addr();
            let target = RemoteReceiver {
                given: addr.to_string(),
                addr,
                secret: Some(Secret::new(local_secret.as_bytes())?),
                own_egress: None,
            };
            (Some(process), target)
        }
    };
    // This thread runs the sender: its sockets must live there, for this
    // phase only (the next may be loopback, and start its receiver here).
    let in_sender_ns = link.as_ref().map(|(bed, _)| bed.sender.enter()).transpose()?;
    // Across hosts, the probe runs through the receiver, both hosts'
    // impairment in place.
    let mut probed = None;
    if let (Some(remote), Some(p)) = (&opts.receiver, profiles) {
        if !baseline && p.probe_packets > 0 {
            let probe = probe_across_hosts(remote, p, reverse_impair.clone()).await?;
            bar.suspend(|| println!("path as probed across hosts: {}", describe_round_trip(&probe, p)));
            probed = Some(probe);
        }
    }
    // The probe's one-way delays, both ways (across hosts, its round
    // trip): the path's RTT.
    let rtt_ns = delivered
        .as_ref()
        .map(|d| d.forward.measured.delay_p50_ns + d.reverse.measured.delay_p50_ns)
        .or(probed.map(|p| p.rtt_p50_ns));
    let per_trial = opts.spec.warmup + opts.spec.duration;
    let suffix = if baseline { "-base" } else { "" };
    let schedule_clock = link.as_ref().and_then(|(bed, _)| bed.schedule_clock());
    let mut blackouts = match profiles.and_then(|p| p.schedules.as_ref()) {
        Some(s) => {
            let window = opts.spec.duration.as_nanos() as u64;
            Blackout::of_round_trip(&s.forward.blackouts(window), &s.reverse.blackouts(window))
                .into_iter()
                .map(|b| {
                    let during = |schedule: &ImpairSchedule| schedule.rejects_between(b.start_ns, b.end_ns);
                    b.rejecting(during(&s.forward).or(during(&s.reverse)))
                })
                .collect()
        }
        None => Vec::new(),
    };
    let rejecting = match profiles.and_then(|p| p.schedules.as_ref()) {
        Some(s) => {
            let data_plane =
                crate::schedule::data_plane_limit(Duration::ZERO, opts.spec.duration, opts.spec.loss_timeout);
            let until = data_plane.as_nanos() as u64;
            Blackout::of_round_trip(&s.forward.rejecting(until), &s.reverse.rejecting(until))
                .iter()
                .map(|b| (b.start_ns, b.end_ns))
                .collect()
        }
        None => Vec::new(),
    };
    if let Some(fault) = opts.spec.receiver_fault {
        let (at, end) = fault.span_ns();
        blackouts.push(Blackout::receiver_fault(fault.kind, at, end));
    }
    let window_opens = match (schedule_clock, fault_clock.clone()) {
        (None, None) => WindowOpens::default(),
        (link_clock, fault_clock) => WindowOpens::new(move |ns| {
            if let Some(clock) = &link_clock {
                clock.start(ns);
            }
            if let Some(fault) = &fault_clock {
                fault.start(ns);
            }
        }),
    };
    for (transport, rate) in cells {
        if out.sweeps.past_knee(*transport) {
            bar.inc(1);
            continue;
        }
        // The attempt a retry replaces (the sender missed its schedule).
        let mut previous: Option<usize> = None;
        for attempt in 1u32.. {
            let n = results.trials.len() + 1;
            let id = match rate {
                Some(r) => format!("{transport}@{r}{suffix}-{n}"),
                None => format!("{transport}{suffix}-{n}"),
            };
            bar.set_message(format!("{id} ({} s each)", per_trial.as_secs_f64()));
            let mut spec = TrialSpec {
                transport: *transport,
                path_rtt_ns: rtt_ns,
                reverse_impair: reverse_impair.clone(),
                window_opens: window_opens.clone(),
                link_changes: profiles.is_some_and(|p| p.schedules.is_some()),
                blackouts: blackouts.clone(),
                rejecting: rejecting.clone(),
                ..opts.spec.clone()
            };
            if let Some(rate) = rate {
                spec.workload = spec.workload.at_rate(*rate);
            }
            match &mut spec.workload {
                WorkloadSpec::Multistream(m) => {
                    if m.hol.base.is_none() {
                        m.hol.base = bases.get(&base_key(*transport, profiles)).cloned();
                    }
                    m.hol.loss_p = profiles.and_then(|p| {
                        let forward = p.forward.mean_loss().filter(|&l| l > 0.0)?;
                        // Across hosts multistream runs on echoes (one clock
                        // is not shared): the way back loses too.
                        let echoed = m.round_trip || opts.receiver.is_some();
                        let reverse = if echoed { p.reverse.mean_loss()? } else { 0.0 };
                        Some(forward + reverse)
                    });
                }
                WorkloadSpec::Churn(c) | WorkloadSpec::Handshake(c) => {
                    c.options.port_range_in_namespace = link.is_some();
                }
                WorkloadSpec::Bulk(b) | WorkloadSpec::Load(LoadSpec { bulk: b, .. }) => {
                    if let Some(p) = profiles {
                        let shape = |d: &linkemu::NetemSpec| LinkShape {
                            rate: d.rate,
                            limit: d.effective_limit(),
                        };
                        b.up_link = Some(shape(&p.forward));
                        b.down_link = Some(shape(&p.reverse));
                    }
                }
                WorkloadSpec::Rr(_) | WorkloadSpec::Stream(_) | WorkloadSpec::Heartbeat(_) => {}
            }
            let before = link.as_ref().map(|(bed, _)| bed.link_stats());
            let ran = workload::run_trial(target.addr, target.secret.as_ref(), &spec, id.clone()).await;
            // Back to the first profiles before anything else crosses the
            // link (the next trial's session).
            let changes = link.as_ref().map(|(bed, _)| bed.hold_schedules());
            let fault = fault_clock.as_ref().and_then(|f| f.finish());
            match ran {
                Ok(mut trial) => {
                    if let Some(error) = fault.as_ref().and_then(|f| f.error.as_ref()) {
                        trial.valid = false;
                        trial.missed_schedule = false;
                        trial
                            .invalid_reasons
                            .push(format!("the receiver fault could not be made: {error}"));
                    }
                    trial.receiver_fault = fault;
                    if let (Some((bed, profiles)), Some(before)) = (&link, before) {
                        let after = bed.link_stats();
                        if after.is_some_and(|s| s.failed) {
                            trial.valid = false;
                            trial.missed_schedule = false;
                            trial
                                .invalid_reasons
                                .push("the emulated link failed during the trial".into());
                        }
                        let events = before.zip(after).map(|(before, after)| LinkEvents {
                            forward: after.forward.since(&before.forward),
                            reverse: after.reverse.since(&before.reverse),
                        });
                        if let (Some(hol), Some(e)) = (trial.hol.as_mut(), events) {
                            // What the link really dropped in this trial beats the configuration.
                            if e.forward.arrived > 0 {
                                let ratio = |c: &linkemu::LinkCounters| {
                                    c.dropped_loss as f64 / c.arrived.max(1) as f64
                                };
                                // A round trip crosses the path twice.
                                let p = ratio(&e.forward)
                                    + if trial.latency_kind == LatencyKind::Rtt {
                                        ratio(&e.reverse)
                                    } else {
                                        0.0
                                    };
                                hol.theory = analysis::expectation(
                                    spec.transport,
                                    spec.workload.streams(),
                                    spec.workload.rate().unwrap_or(0.0),
                                    spec.size,
                                    hol.rtt_ns,
                                    Some((p, "link")),
                                );
                            }
                        }
                        let schedule = profiles.schedules.as_ref().map(|s| ScheduleRecord {
                            forward: s.forward.to_string(),
                            reverse: s.reverse.to_string(),
                            changes: changes.unwrap_or_default(),
                        });
                        if let Some(s) = &schedule {
                            let failed = s.changes.iter().filter(|c| c.error.is_some()).count();
                            if failed > 0 {
                                trial.valid = false;
                                trial.missed_schedule = false;
                                trial.invalid_reasons.push(format!(
                                    "{failed} of the impairment schedule's changes could not be made \
                                     (impairment.schedule.changes says which, and why)"
                                ));
                            }
                        }
                        trial.impairment = Some(Impairment {
                            backend: bed.backend.name().into(),
                            forward: profiles.forward.to_string(),
                            reverse: profiles.reverse.to_string(),
                            events,
                            delivered: delivered.clone(),
                            probed_round_trip: None,
                            schedule,
                        });
                    }
                    if let (Some(_), Some(p)) = (&opts.receiver, profiles) {
                        trial.impairment = Some(Impairment {
                            backend: REMOTE_BACKEND.into(),
                            forward: p.forward.to_string(),
                            reverse: p.reverse.to_string(),
                            events: None,
                            delivered: None,
                            probed_round_trip: probed,
                            schedule: None,
                        });
                    }
                    trial.baseline = baseline;
                    if baseline {
                        if let Some(p1) = p1(&trial) {
                            bases.insert(base_key(*transport, profiles), (p1, format!("trial {id}")));
                        }
                    }
                    if let Some(rate) = rate {
                        out.sweeps.record(*rate, &trial);
                        results.sweeps = out.sweeps.list.clone();
                    }
                    trial.attempt = attempt;
                    // A sweep's steps are judged as they run: never retried.
                    let again = rate.is_none() && trial.retry_due(opts.retry_invalid);
                    results.trials.push(trial);
                    if let Some(i) = previous {
                        results.trials[i].superseded_by = Some(id.clone());
                    }
                    write_atomic(results_path, results)?;
                    if again {
                        previous = Some(results.trials.len() - 1);
                        bar.inc_length(1);
                        bar.inc(1);
                        continue;
                    }
                }
                Err(e) => bar.suspend(|| {
                    eprintln!(
                        "error: {id} trial failed: {}",
                        transbench_wire::printable(&format!("{e:#}"))
                    )
                }),
            }
            break;
        }
        bar.inc(1);
    }
    // Each trial's fault was undone as it ended (a frozen receiver would
    // not heed SIGTERM).
    if let Some(local) = local {
        local.process().stop();
    }
    if let Some(lease) = forward_lease {
        let iface = lease.iface().to_string();
        lease
            .restore()
            .with_context(|| format!("giving {iface} back after the trials"))?;
    }
    drop(in_sender_ns);
    // The link and its namespaces go last, after everything that used them.
    drop(link);
    Ok(())
}

/// Churn's knobs that live in the sender's namespace: its ephemeral port
/// range and `tcp_tw_reuse`. Only ever in a testbed namespace.
fn set_sender_sysctls(bed: &Testbed, churn: &ChurnOptions) -> anyhow::Result<()> {
    let mut settings = Vec::new();
    if let Some((lo, hi)) = churn.port_range {
        settings.push(("net.ipv4.ip_local_port_range", format!("{lo} {hi}")));
    }
    if let Some(reuse) = churn.tw_reuse {
        settings.push(("net.ipv4.tcp_tw_reuse", reuse.to_string()));
    }
    for (name, value) in settings {
        let v = value.clone();
        bed.sender
            .run(move || procnet::write_sysctl(name, &v))?
            .with_context(|| format!("setting {name} = {value} in the sender's namespace"))?;
    }
    Ok(())
}

/// The 1st percentile of a trial's latency.
fn p1(trial: &TrialResult) -> Option<u64> {
    let h = trial.lat.histogram().ok()?;
    (!h.is_empty()).then(|| h.value_at_quantile(0.01))
}
