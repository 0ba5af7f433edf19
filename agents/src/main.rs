//! transbench: benchmark raw UDP, TCP, TCP+TLS and QUIC with open-loop,
//! coordinated-omission-free latency histograms. This file parses the
//! command line and dispatches; the work is in the library.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use linkemu::{ImpairSchedule, NetemSpec};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use transbench::admission::ReceiverLimits;
use transbench::spec::TrialArgs;
use transbench::{
    ab, compare, egress, fidelity, host, out_dir, receiver, report, run, scenario_run, secret, shell,
    single_thread_runtime,
};
use transbench_reports::{summary_table, write_atomic, RunResults};
use transbench_wire::auth::Secret;
use transbench_wire::{printable, Transport};

#[derive(Parser)]
#[command(
    name = "transbench",
    version,
    about = "Benchmark UDP, TCP, TCP+TLS and QUIC: open-loop request/response latency in HdrHistograms",
    long_about = "Benchmark UDP, TCP, TCP+TLS and QUIC with open-loop, coordinated-omission-free latency.\n\n\
        Quick start: `transbench run` starts a receiver and a sender on loopback, runs every transport \
        for a few seconds and prints a summary. Across hosts: start `transbench receiver` on one, \
        `transbench sender` on the other, with the same --secret-file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once, at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve trials for senders until stopped (Ctrl-C).
    Receiver {
        /// Control address to listen on, ADDR:PORT (a bare port means 127.0.0.1).
        /// Without a secret only loopback addresses are allowed.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: String,
        #[command(flatten)]
        secret: SecretArgs,
        #[command(flatten)]
        limits: ReceiverLimits,
        #[command(flatten)]
        egress: egress::EgressArgs,
        /// Say what this host can do (tc netem, the allowed interfaces,
        /// lease records, secret, limits) and exit: 0 if the receiver as
        /// configured would work, 1 if not.
        #[arg(long)]
        check: bool,
    },
    /// Run one trial against a receiver and write its result.
    Sender {
        /// The receiver's control address, HOST:PORT.
        #[arg(long)]
        connect: String,
        /// Transport: udp, tcp, tcp+tls or quic; for multistream also
        /// tcp-mux, tcp+tls-mux or tcp-n; for churn and handshake tcp,
        /// tcp+tls, quic or quic-0rtt.
        #[arg(long)]
        transport: Transport,
        #[command(flatten)]
        trial: TrialArgs,
        #[command(flatten)]
        secret: SecretArgs,
        /// Where to write the result (JSON, schema transbench/1.6).
        #[arg(long)]
        out: PathBuf,
    },
    /// Start a receiver and a sender on loopback and run each transport in
    /// turn; or run a scenario file's trials (`transbench run
    /// bench/scenarios/quick.toml`).
    #[command(
        after_help = "Scenario files (TOML): bench/scenarios/*.toml and reports/SCHEMA.md. A scenario sets \
        the transports, workloads, profiles and parameters itself; --out, --force, --resume, --max-trials and --profiles apply to it (retries: its \
        retry_invalid, not --retry-invalid)."
    )]
    Run {
        /// A scenario file: a matrix of transports x workloads x profiles x
        /// parameters, trials per cell, in a seeded order.
        #[arg(value_name = "SCENARIO")]
        scenario: Option<PathBuf>,
        /// With SCENARIO: continue the run in DIR, running only the trials
        /// its results.json lacks (after an interruption or a failure), and
        /// the retries left to one whose last attempt missed its schedule.
        #[arg(long, value_name = "DIR", requires = "scenario", conflicts_with = "out")]
        resume: Option<PathBuf>,
        /// With SCENARIO: where named profiles live [default: the nearest
        /// netem-scripts/profiles above the scenario file].
        #[arg(long, value_name = "DIR", requires = "scenario")]
        profiles: Option<PathBuf>,
        /// With SCENARIO: run at most N of the trials left, in the plan's
        /// order, then stop (`--resume DIR` continues); the summary and
        /// the report come with the run's last trial.
        #[arg(long, value_name = "N", requires = "scenario", value_parser = clap::value_parser!(u32).range(1..))]
        max_trials: Option<u32>,
        /// Transports to run, comma-separated [default: udp,tcp,tcp+tls,quic
        /// for rr; tcp-mux,tcp+tls-mux,tcp-n,quic,udp for multistream; udp
        /// for stream; tcp,tcp+tls,quic for churn (tcp,tcp+tls with --close
        /// rst or --client-port cycle); tcp,tcp+tls,quic,quic-0rtt for
        /// handshake; tcp,tcp+tls,quic for bulk and load]. quic-dgram (QUIC
        /// DATAGRAM frames) runs rr, multistream and stream when named.
        #[arg(long, value_delimiter = ',')]
        transport: Vec<Transport>,
        #[command(flatten)]
        trial: TrialArgs,
        /// Output directory; results go to DIR/results.json, the report to
        /// DIR/report/. One that already holds a run is refused (--resume
        /// continues it, --force replaces it) [default: a new directory
        /// per run, transbench-out/NAME-YYYYMMDDTHHMMSSZ, NAME the
        /// scenario's or the workload's, with transbench-out/latest
        /// pointing at it].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Without SCENARIO: run a trial again, up to N more times, when it
        /// is invalid only because the sender missed its schedule (a busy
        /// machine); every attempt is kept (a scenario file sets this as
        /// retry_invalid).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 0,
            conflicts_with_all = ["scenario", "sweep"],
            value_parser = clap::value_parser!(u32).range(..=i64::from(transbench_scenario::MAX_RETRY_INVALID))
        )]
        retry_invalid: u32,
        /// With --out: replace the run DIR already holds (its results.json
        /// and report/; nothing else there is touched).
        #[arg(long, requires = "out")]
        force: bool,
        #[command(flatten)]
        impair: ImpairArgs,
        /// Churn, handshake: step each transport up these offered
        /// connection rates (per second, rising, comma-separated), one trial
        /// each, and stop at the knee: the first step that completes under
        /// 95 % of what it offered, fails over 1 % of its connections, or
        /// breaks the TTFB p99 bound (--knee-p99).
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "RATES",
            conflicts_with = "conn_rate"
        )]
        sweep: Vec<f64>,
        /// With --sweep: the TTFB p99 past which a step is beyond the knee
        /// [default: 10 x the first step's TTFB p50].
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", requires = "sweep")]
        knee_p99: Option<Duration>,
        /// Run every trial against a `transbench receiver` already running
        /// on another host, at its control port, instead of one started
        /// here (a scenario's [receiver] table says the same; this wins).
        /// Give both agents the same --secret-file. Both hosts are
        /// recorded with each trial, and compare keeps such runs apart
        /// from loopback ones.
        #[arg(long, value_name = "HOST:PORT")]
        receiver: Option<String>,
        #[command(flatten)]
        secret: SecretArgs,
        /// With --receiver: impaired cells put their forward profile on
        /// this host's interface toward the receiver with tc netem, for
        /// the cell's trials (the receiver puts the reverse one on its
        /// own, started with --allow-impair too); repeatable.
        #[command(flatten)]
        egress: egress::EgressArgs,
    },
    /// Render a run's report: index.html (charts inline, opens from disk),
    /// each chart as PNG and SVG, summary.md, and per cell the latency as
    /// HdrHistogram files (hdr/*.hgrm, hdr/*.hlog). `run` does this at its
    /// end; use this to render again or from a copied results file. Or,
    /// with --format, print the run's medians for a CI tool that tracks
    /// them across commits.
    #[command(
        after_help = "CI tools (--format, printed to stdout): per cell and metric the median of the valid \
        trials, named \"<cell> <metric>\" as compare names them, in fixed units (latency ns, goodput \
        Mbit/s, loss %, connection rate ops/s). github-smaller and github-bigger are \
        github-action-benchmark's customSmallerIsBetter and customBiggerIsBetter input (one direction a \
        file; range: the trials' smallest to largest); bmf is the Bencher Metric Format for bencher run \
        --adapter json (measures latency, throughput, bitrate, percentage; lower_value and upper_value: \
        the trials' range). reports/SCHEMA.md describes each."
    )]
    Report {
        /// A run directory (holding results.json) or a results file.
        #[arg(value_name = "DIR|RESULTS.json")]
        input: PathBuf,
        /// Where the HTML report goes [default: report/ beside the results
        /// file]; the other formats print to stdout.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The HTML report, or a CI tool's input on stdout.
        #[arg(long, value_enum, default_value = "html")]
        format: report::Format,
    },
    /// Compare a candidate run with a baseline and gate on it: per cell
    /// and metric, the median change with a 95 % bootstrap interval, a
    /// one-sided rank test (Holm-corrected over the gated metrics) and a
    /// verdict. Exit 0: no regression; 1: a REGRESSION; 2: inputs that
    /// cannot be compared, or too few trials for any verdict.
    #[command(
        after_help = "Verdicts, per row of a gated metric (--metric; default p50, p99, conn_rate, throughput; the \
        rest are printed, not gated): REGRESSION (the whole 95 % interval beyond the noise band on the worse \
        side, and the one-sided rank test for worse at p < 0.05 after Holm over the gated rows), IMPROVEMENT \
        (likewise on the better side, its own family), SAME (the 90 % interval inside the band, with counts the rank test could decide with), INCONCLUSIVE \
        (neither; says how many trials a side would likely decide), TOO FEW TRIALS (the rank test cannot reach \
        significance with these counts: the first line says how many would). The band is the metric's floor \
        (2 % p50 and goodput, 5 % p99, 10 % p99.9 and loss), raised to each run's own spread when both have 6 or \
        more trials a cell, or --threshold. Cells match by workload, transport, path and parameters. Trials \
        pair (signed-rank test) only when the runs are the two sides of one `transbench ab` run, whose \
        interleaving makes partners share the machine's state; two separate runs are compared unpaired \
        (rank-sum test). Invalid trials are counted and listed, never given a verdict. Invariants (errors, discards, flow-control \
        backlog) that the candidate breaks and the base kept count as regressions. \
        The method, with its arithmetic and measured power: docs/compare.md."
    )]
    Compare {
        /// The baseline: a run directory or its results.json.
        #[arg(value_name = "BASE", required_unless_present = "plan")]
        base: Option<PathBuf>,
        /// The candidate: a run directory or its results.json.
        #[arg(value_name = "CAND", required_unless_present = "plan")]
        cand: Option<PathBuf>,
        /// Before any run: what comparing two runs of this scenario could
        /// call (the smallest change likely detected with its trials).
        #[arg(long, value_name = "SCENARIO", conflicts_with_all = ["base", "cand"])]
        plan: Option<PathBuf>,
        /// With --plan: where named profiles live.
        #[arg(long, value_name = "DIR", requires = "plan")]
        profiles: Option<PathBuf>,
        #[command(flatten)]
        gate: compare::GateArgs,
        /// Compare runs from different hosts (CPU, cores, kernel,
        /// congestion control) anyway.
        #[arg(long)]
        allow_host_mismatch: bool,
        /// Compare runs of different scenarios anyway, matching cells by
        /// workload, transport, path and parameters.
        #[arg(long)]
        allow_scenario_mismatch: bool,
    },
    /// Run two builds against each other on one scenario, their trials
    /// alternating in one run, and compare them as `compare` does (the same
    /// output). Exit 0: no regression; 1: a REGRESSION; 2: the builds
    /// could not run the scenario, or their runs cannot be compared.
    #[command(
        after_help = "Each build runs the scenario through its own CLI, one trial at a time (`BIN run SCENARIO \
        --max-trials 1`, then `--resume`), so both builds need `run --max-trials`. Step by step through the \
        scenario's seeded plan, both builds run the step's trial back to back, in ABBA order per cell: a \
        cell's even repetitions base first, its odd ones the candidate first, so going first or second weighs on \
        both sides alike in every cell. Both run the same file with its seed, so a trial's partner (same cell, \
        same repetition) ran next to it in time; both results carry one `interleaved` run id, and compare \
        pairs each trial with its partner (the signed-rank test), so a drift of the machine's speed over the run cancels \
        in each pair. Each side's results are written after every trial: after Ctrl-C or a failing build, \
        `--resume DIR` continues where the run stopped. DIR/base.log and DIR/cand.log keep what each build printed. \
        Pairs need more trials than unpaired runs: the one-sided signed-rank test of n pairs gets no lower than \
        p = 1/2^n, and Holm asks p < 0.05 / the gated rows; where the pairs are too few for that, compare uses the \
        rank-sum test instead. `transbench compare --plan SCENARIO` says what a scenario's trials can detect; \
        bench/scenarios/ci.toml runs 16 a cell (6 gated rows); an even count keeps ABBA balanced."
    )]
    Ab {
        /// The baseline build: a transbench binary (or a script that runs
        /// one).
        #[arg(long, value_name = "BIN")]
        base: PathBuf,
        /// The candidate build.
        #[arg(long, value_name = "BIN")]
        cand: PathBuf,
        /// The scenario file both builds run.
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// Where named profiles live, for both builds [default: the nearest
        /// netem-scripts/profiles above the scenario file].
        #[arg(long, value_name = "DIR")]
        profiles: Option<PathBuf>,
        /// Output directory: DIR/base and DIR/cand hold each build's run.
        #[arg(long, value_name = "DIR", default_value = "transbench-ab")]
        out: PathBuf,
        /// Continue the A/B run in DIR, running only the trials each side
        /// lacks.
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        #[command(flatten)]
        gate: compare::GateArgs,
    },
    /// Hold linkemu against the kernel's netem: probe a set of profiles
    /// through one backend (`probe`), then compare the two backends'
    /// traces feature by feature (`compare`). netem-scripts/fidelity.sh
    /// runs both (the netem side in a QEMU guest when this kernel has no
    /// netem) and rewrites docs/fidelity.md.
    Fidelity {
        #[command(subcommand)]
        action: FidelityAction,
    },
    /// Run any command in a namespace behind an emulated link to a peer
    /// namespace (needs root). The command gets the peer's address in
    /// TRANSBENCH_PEER and the peer namespace's name in TRANSBENCH_PEER_NS;
    /// the shell exits with its status and removes everything it made.
    #[command(
        after_help = "The variables exist only inside the shell: give them to a shell of its own, in \
        single quotes, or your own shell expands them (to nothing) first.\n\nExamples:\n  \
        transbench shell --impair \"delay 10ms\" -- sh -c 'ping -c 5 \"$TRANSBENCH_PEER\"'\n  \
        transbench shell --impair \"delay 25ms loss 1%\" -- \\\n    \
        sh -c 'ip netns exec $TRANSBENCH_PEER_NS iperf3 -s -1 & sleep 1; iperf3 -c $TRANSBENCH_PEER'"
    )]
    Shell {
        #[command(flatten)]
        impair: ImpairArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Started by `shell`, not by hand: once the shell process has exited,
    /// removes what it left (its namespaces and the processes in them).
    #[command(hide = true)]
    ShellWatchdog {
        /// The shell's PID.
        #[arg(long)]
        pid: u32,
        /// The shell's start time (field 22 of /proc/PID/stat): a later
        /// process with its PID is not the shell.
        #[arg(long)]
        start_time: u64,
    },
}

#[derive(Subcommand)]
enum FidelityAction {
    /// Send each profile's datagrams one way through BACKEND and write
    /// OUT/BACKEND/PROFILE.json: every arrival with its number and times,
    /// and how many arrived corrupted (needs root).
    Probe {
        #[arg(long, value_enum)]
        backend: ProbeBackend,
        /// The profiles, counts and intervals (TOML).
        #[arg(long, default_value = "bench/fidelity.toml", value_name = "FILE")]
        set: PathBuf,
        /// Where the traces go: DIR/BACKEND/PROFILE.json.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only these profiles (comma-separated; the baseline and the
        /// timing profile always run: the comparison needs them).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        only: Vec<String>,
    },
    /// Compare DIR/netem/*.json with DIR/linkemu/*.json and print the
    /// table in Markdown. Exit 0: no unexplained FAIL; 1: one or more;
    /// 2: unusable input.
    Compare(fidelity::CompareOptions),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProbeBackend {
    /// tc netem on a router namespace (the kernel's sch_netem).
    Netem,
    /// The built-in userspace emulator over TUN devices.
    Linkemu,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Auto,
    /// tc netem on a router namespace between the two (kernel sch_netem).
    Netem,
    /// The built-in userspace emulator over TUN devices; any kernel.
    Linkemu,
}

/// Impairment: the agents run in two network namespaces joined by linkemu
/// (tc netem's semantics in userspace, over TUN devices). Needs root.
#[derive(Args)]
struct ImpairArgs {
    /// A tc-netem profile for both directions, e.g. "delay 10ms loss 1%".
    #[arg(long, value_name = "NETEM")]
    impair: Option<String>,
    /// The sender -> receiver direction (overrides --impair for it).
    #[arg(long, value_name = "NETEM")]
    impair_forward: Option<String>,
    /// The receiver -> sender direction (overrides --impair for it).
    #[arg(long, value_name = "NETEM")]
    impair_reverse: Option<String>,
    /// A profile that changes during each trial, both directions: steps
    /// "TIME: NETEM" or "TIME: reject [tcp-reset]", and shapes "partition
    /// AT FOR [reject [tcp-reset]]", "flap PERIOD [at AT] [for D]", "ramp
    /// loss FROM TO OVER [at AT]", separated by ";". Time 0 is the start of
    /// each trial's measured window. A reject drops every packet and
    /// answers it, as a firewall's REJECT: ICMP host unreachable, or a TCP
    /// reset for TCP segments with tcp-reset (linkemu only). E.g. "0s:
    /// delay 10ms; 5s: loss 100%; 13s: delay 10ms", "0s: delay 10ms;
    /// partition 5s 8s", or "0s: delay 5ms; partition 2s 1s reject
    /// tcp-reset". A direction with a schedule takes its profiles from it:
    /// give that direction no --impair profile.
    #[arg(long, value_name = "SCHEDULE")]
    impair_schedule: Option<String>,
    /// The sender -> receiver direction's schedule (overrides
    /// --impair-schedule for it): a reject here answers the requests.
    #[arg(long, value_name = "SCHEDULE")]
    impair_schedule_forward: Option<String>,
    /// The receiver -> sender direction's schedule (overrides
    /// --impair-schedule for it): a partition here alone cuts the
    /// responses and not the requests; a reject answers the receiver.
    #[arg(long, value_name = "SCHEDULE")]
    impair_schedule_reverse: Option<String>,
    /// Who impairs the link: tc netem where the kernel has it, else linkemu
    /// (auto; linkemu for a schedule that rejects); or one of them, refused
    /// with the reason where it cannot run.
    #[arg(long, value_enum, default_value = "auto")]
    impair_backend: BackendArg,
    /// UDP datagrams sent each way (1 per ms) to measure the link as
    /// delivered before the trials; 0 skips the probe.
    #[arg(long, default_value_t = run::DEFAULT_PROBE_PACKETS, value_name = "N")]
    probe_packets: u64,
}

impl ImpairArgs {
    fn profiles(&self) -> anyhow::Result<Option<run::LinkProfiles>> {
        // A backend alone asks for an unimpaired emulated path (to see what
        // the emulator itself costs).
        let backend_chosen = !matches!(self.impair_backend, BackendArg::Auto);
        if [
            &self.impair,
            &self.impair_forward,
            &self.impair_reverse,
            &self.impair_schedule,
            &self.impair_schedule_forward,
            &self.impair_schedule_reverse,
        ]
        .iter()
        .all(|f| f.is_none())
            && !backend_chosen
        {
            return Ok(None);
        }
        // Each direction: its own flag's text, or the flag for both; the
        // error names the flag the text came from.
        let pick =
            |own_flag: &'static str, own: &Option<String>, both_flag: &'static str, both: &Option<String>| {
                match (own, both) {
                    (Some(t), _) => Some((own_flag, t.clone())),
                    (None, Some(t)) => Some((both_flag, t.clone())),
                    (None, None) => None,
                }
            };
        let direction = |name: &str,
                         profile: Option<(&str, String)>,
                         schedule: Option<(&str, String)>|
         -> anyhow::Result<ImpairSchedule> {
            match (profile, schedule) {
                (Some((p, _)), Some((s, _))) => bail!(
                    "the {name} direction has both a profile (--{p}) and a schedule (--{s}): put the profile \
                     in the schedule as its first step (\"0s: PROFILE; ...\") and drop --{p}"
                ),
                (None, Some((flag, text))) => ImpairSchedule::parse(&text)
                    .with_context(|| format!("--{flag} {text:?} is not a valid impairment schedule")),
                (Some((flag, text)), None) => NetemSpec::parse(&text)
                    .map(ImpairSchedule::constant)
                    .with_context(|| format!("--{flag} {text:?} is not a valid netem profile")),
                (None, None) => Ok(ImpairSchedule::constant(NetemSpec::default())),
            }
        };
        let forward = direction(
            "sender -> receiver",
            pick("impair-forward", &self.impair_forward, "impair", &self.impair),
            pick(
                "impair-schedule-forward",
                &self.impair_schedule_forward,
                "impair-schedule",
                &self.impair_schedule,
            ),
        )?;
        let reverse = direction(
            "receiver -> sender",
            pick("impair-reverse", &self.impair_reverse, "impair", &self.impair),
            pick(
                "impair-schedule-reverse",
                &self.impair_schedule_reverse,
                "impair-schedule",
                &self.impair_schedule,
            ),
        )?;
        Ok(Some(run::LinkProfiles {
            backend: match self.impair_backend {
                BackendArg::Auto => None,
                BackendArg::Netem => Some(testbed::Backend::Netem),
                BackendArg::Linkemu => Some(testbed::Backend::Linkemu),
            },
            probe_packets: self.probe_packets,
            ..run::LinkProfiles::scheduled(forward, reverse)
        }))
    }
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !testbed::is_root() {
        bail!("{what} needs root: the emulated link lives in network namespaces with TUN devices");
    }
    Ok(())
}

#[derive(Args)]
struct SecretArgs {
    /// File holding the shared secret (surrounding whitespace ignored).
    /// Without it, the TRANSBENCH_SECRET environment variable is used if set.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

impl SecretArgs {
    fn load(&self) -> anyhow::Result<Option<Secret>> {
        secret::load(self.secret_file.as_deref())
    }
}

/// `receiver --check`: each finding on a line, `ok` or `PROBLEM` first.
fn receiver_check(
    listen: std::net::SocketAddr,
    secret: &SecretArgs,
    limits: &ReceiverLimits,
    egress: &egress::EgressArgs,
) -> ExitCode {
    let mut found = Vec::new();
    let secret = secret.load();
    found.push(match (&secret, listen.ip().is_loopback()) {
        (Ok(Some(_)), _) => egress::Finding {
            ok: true,
            text: format!("listen {listen}, with a shared secret"),
        },
        (Ok(None), true) => egress::Finding {
            ok: true,
            text: format!("listen {listen} without a secret: loopback only"),
        },
        (Ok(None), false) => egress::Finding {
            ok: false,
            text: format!("listen {listen} needs a shared secret: pass --secret-file FILE"),
        },
        (Err(e), _) => egress::Finding {
            ok: false,
            text: format!("secret: {e:#}"),
        },
    });
    found.push(egress::Finding {
        ok: true,
        text: format!(
            "limits: {} sessions, trials up to {}, messages up to {} bytes, rate {}, idle timeout {}, memory {} bytes",
            limits.max_sessions,
            humantime::format_duration(limits.max_duration),
            limits.max_message_size,
            limits.max_rate.map_or("unlimited".into(), |r| format!("up to {r}/s")),
            humantime::format_duration(limits.idle_timeout),
            limits.memory_budget
        ),
    });
    found.extend(egress::check(egress));
    for f in &found {
        println!("{:7} {}", if f.ok { "ok" } else { "PROBLEM" }, f.text);
    }
    if found.iter().all(|f| f.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn init_logging(default: &str) {
    // quinn warns of a "duplicate reset token" when connections come and go
    // by the thousand (churn); it changes nothing here.
    let default = format!("{default},quinn_proto::endpoint=error");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
fn main() -> ExitCode {
    match run_command(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

fn print_error(e: &anyhow::Error) {
    // The whole chain on one line: what failed, and why. It may quote a
    // peer or a file, so it is escaped.
    eprintln!("error: {}", printable(&format!("{e:#}")));
}

fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Receiver {
            listen,
            secret,
            limits,
            egress,
            check,
        } => {
            init_logging("info");
            let listen = receiver::parse_listen(&listen)?;
            if check {
                return Ok(receiver_check(listen, &secret, &limits, &egress));
            }
            let secret = secret.load()?;
            let policy = egress::EgressPolicy::start(&egress)?.map(std::sync::Arc::new);
            single_thread_runtime()?.block_on(async {
                let receiver = receiver::Receiver::bind(listen, secret, limits, policy.clone()).await?;
                let addr = receiver.local_addr()?;
                // Handlers go in before the address is printed: whoever read
                // it may signal us at once.
                use tokio::signal::unix::{signal, SignalKind};
                let mut interrupt = signal(SignalKind::interrupt())?;
                let mut terminate = signal(SignalKind::terminate())?;
                println!("{}{addr}", run::LISTENING_PREFIX);
                tokio::select! {
                    served = receiver.serve() => served?,
                    _ = interrupt.recv() => tracing::info!("interrupted; exiting"),
                    _ = terminate.recv() => tracing::info!("terminated; exiting"),
                }
                // Sessions run on threads of their own, which exit with
                // the process without dropping their leases.
                if let Some(policy) = &policy {
                    policy.give_back_all();
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Sender {
            connect,
            transport,
            trial,
            secret,
            out,
        } => {
            init_logging("warn");
            let secret = secret.load()?;
            let spec = trial.spec(transport, &[transport])?;
            spec.validate()?;
            if trial.receiver_fault.is_some() {
                bail!(
                    "--receiver-fault signals the receiver process `transbench run` starts; a sender's receiver \
                     runs elsewhere: freeze it (kill -STOP PID) or restart it yourself (with --reconnect here), \
                     or use run"
                );
            }
            if trial.tw_reuse.is_some() {
                bail!(
                    "--tw-reuse sets net.ipv4.tcp_tw_reuse in the sender's own network namespace, which only \
                     `transbench run` with the testbed does; set it yourself where you run the sender"
                );
            }
            // Make the place for the result before spending a trial on it.
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the directory for --out {}", out.display()))?;
            }
            single_thread_runtime()?.block_on(async {
                let addr = transbench::session::resolve("--connect", &connect).await?;
                let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
                let trial =
                    transbench::workload::run_trial(addr, secret.as_ref(), &spec, format!("{transport}-1"))
                        .await?;
                let mut results = RunResults::new(created, host::host_info());
                results.trials.push(trial);
                write_atomic(&out, &results)?;
                print!("{}", summary_table(&results));
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Run {
            scenario,
            resume,
            profiles,
            max_trials,
            transport,
            trial,
            out,
            impair,
            sweep,
            knee_p99,
            force,
            retry_invalid,
            receiver,
            secret,
            egress,
        } => {
            init_logging("warn");
            let out = out_dir::OutChoice::from_flags(resume, out, force);
            if receiver.is_none()
                && scenario.is_none()
                && (secret.secret_file.is_some() || !egress.allow_impair.is_empty())
            {
                bail!(
                    "--secret-file and --allow-impair are for a receiver on another host: add --receiver \
                     HOST:PORT (a run without it starts its own receiver, with a secret of its own, and \
                     impairs the local testbed's link)"
                );
            }
            if let Some(file) = scenario {
                if !transport.is_empty() || !sweep.is_empty() || impair.profiles()?.is_some() {
                    bail!(
                        "{} sets the transports, profiles and parameters itself: drop --transport, --impair... \
                         and --sweep (or edit the scenario)",
                        file.display()
                    );
                }
                single_thread_runtime()?.block_on(scenario_run::run_scenario(
                    scenario_run::ScenarioOptions {
                        file,
                        profiles,
                        out,
                        max_trials: max_trials.map(|n| n as usize),
                        receiver,
                        secret_file: secret.secret_file,
                        egress,
                    },
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            let transport = if transport.is_empty() {
                trial.default_transports()
            } else {
                transport
            };
            let spec = trial.spec(transport[0], &transport)?;
            let impair = impair.profiles()?;
            if impair.is_some() && receiver.is_none() {
                require_root("--impair (drop it to measure loopback)")?;
            } else {
                trial.check_path(false)?;
            }
            let rt = single_thread_runtime()?;
            let receiver = match receiver {
                Some(given) => {
                    let own = egress::EgressPolicy::start(&egress)?.map(std::sync::Arc::new);
                    let remote = rt.block_on(run::RemoteReceiver::resolve(&given, secret.load()?, own))?;
                    if let Some(p) = &impair {
                        remote.check_impairment(p)?;
                    }
                    Some(remote)
                }
                None => None,
            };
            let sweep = (!sweep.is_empty())
                .then(|| run::SweepPlan::checked(&spec, sweep, knee_p99))
                .transpose()?;
            rt.block_on(run::run(
                run::RunOptions {
                    receiver,
                    transports: transport,
                    spec,
                    retry_invalid,
                    impair,
                    sweep,
                },
                &out,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            base,
            cand,
            plan,
            profiles,
            gate,
            allow_host_mismatch,
            allow_scenario_mismatch,
        } => match (plan, base, cand) {
            (Some(scenario), _, _) => compare::plan(&scenario, profiles.as_deref(), &gate.metrics),
            (None, Some(base), Some(cand)) => Ok(compare::run(
                &base,
                &cand,
                gate,
                compare::Mismatch {
                    host: allow_host_mismatch,
                    scenario: allow_scenario_mismatch,
                },
            )),
            _ => unreachable!("clap requires BASE and CAND without --plan"),
        },
        Command::Ab {
            base,
            cand,
            scenario,
            profiles,
            out,
            resume,
            gate,
        } => {
            init_logging("warn");
            let (out, resume) = match resume {
                Some(dir) => (dir, true),
                None => (out, false),
            };
            let opts = ab::AbOptions {
                base,
                cand,
                scenario,
                profiles,
                out,
                resume,
                gate,
            };
            // Builds that could not run count as runs that cannot be
            // compared: exit 2, as compare's, not 1, its REGRESSION.
            Ok(single_thread_runtime()?
                .block_on(ab::run(opts))
                .unwrap_or_else(|e| {
                    print_error(&e);
                    ExitCode::from(2)
                }))
        }
        Command::Report { input, out, format } => {
            init_logging("warn");
            report::report(&input, format, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Fidelity { action } => {
            init_logging("warn");
            match action {
                FidelityAction::Probe {
                    backend,
                    set,
                    out,
                    only,
                } => {
                    let backend = match backend {
                        ProbeBackend::Netem => testbed::Backend::Netem,
                        ProbeBackend::Linkemu => testbed::Backend::Linkemu,
                    };
                    fidelity::probe(&set, backend, &out, &only)?;
                    Ok(ExitCode::SUCCESS)
                }
                FidelityAction::Compare(options) => Ok(fidelity::compare(&options)),
            }
        }
        Command::Shell { impair, command } => {
            init_logging("warn");
            shell::check_command(&command)?;
            let profiles = impair.profiles()?.unwrap_or_else(|| run::LinkProfiles {
                forward: NetemSpec::parse("").expect("an empty profile parses"),
                reverse: NetemSpec::parse("").expect("an empty profile parses"),
                schedules: None,
                backend: None,
                probe_packets: 0,
            });
            require_root("transbench shell")?;
            single_thread_runtime()?.block_on(shell::shell(profiles, command))
        }
        Command::ShellWatchdog { pid, start_time } => {
            init_logging("warn");
            shell::watchdog(testbed::marker::Owner { pid, start_time })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
