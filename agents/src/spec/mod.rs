//! A trial's options, in one place. [`TrialArgs`] holds them as given, on
//! the command line or in a scenario file (which sets any of them by the
//! flag's name); [`TrialArgs::spec`] checks them once into a [`TrialSpec`]:
//! what every trial has, and the workload's own typed options, with its
//! defaults. The wire setup is made from the spec ([`TrialSpec::setup`]).

pub mod bulk;
pub mod churn;
pub mod heartbeat;
pub mod load;
pub mod oneway;
pub mod rr;

use crate::measure::outage::Blackout;
use anyhow::bail;
use clap::Args;
use std::time::Duration;
use transbench_wire::{
    Carrier, CloseMode, Transport, TrialPlan, TrialSetup, Workload, WorkloadSetup, HEADER_LEN,
};

use crate::dataplane::multi;
use crate::schedule;
use crate::transport::{congestion, tls};

pub use bulk::BulkSpec;
pub use churn::{ChurnOptions, ChurnSpec};
pub use heartbeat::HeartbeatSpec;
pub use load::LoadSpec;
pub use oneway::{HolInputs, MultistreamSpec, StreamSpec};
pub use rr::RrSpec;

/// The longest `--loss-timeout` of one-way workloads: the receiver waits
/// this long at most for the last messages.
pub const MAX_ONE_WAY_WAIT: Duration = Duration::from_secs(60);

/// The longest `--loss-timeout` of any workload: lost requests are
/// recorded at it, and results hold latencies of an hour at most.
pub const MAX_LOSS_TIMEOUT: Duration = Duration::from_nanos(transbench_reports::hist::MAX_VALUE_NS);

#[derive(Args, Clone, Debug)]
pub struct TrialArgs {
    /// Workload: rr (request/response, round-trip latency), multistream (N
    /// streams of messages one way, for head-of-line blocking), stream
    /// (UDP datagrams one way at --bitrate), churn (a new connection per
    /// transaction: TIME_WAIT, ports), handshake (the same, gently: time
    /// to first byte of each setup), bulk (--flows byte streams as fast
    /// as the transport takes them: goodput, fairness, TCP_INFO and
    /// quinn's statistics), load (bulk flows with a request/response
    /// probe before, during and after them: the latency the load adds) or
    /// heartbeat (heartbeats one way to a monitor that runs a fixed
    /// timeout and the φ accrual detector over them: false suspicions of
    /// a live peer, and how soon a silent one is suspected; udp, tcp,
    /// quic).
    #[arg(long, default_value = "rr")]
    pub workload: Workload,
    /// Offered rate, open-loop (each message has an intended send time fixed
    /// in advance, and latency counts from it): requests/s for rr, messages/s
    /// per stream for multistream [default: 1000 for rr, 25 for multistream].
    /// At most a million sends a second in all, and 5,000,000 over warm-up
    /// and duration.
    #[arg(long, conflicts_with = "closed_loop", allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Bytes per message, 32-byte header included (rr: request and response;
    /// bulk: bytes per write) [default: 64 for rr, churn and handshake, 512
    /// for multistream, 1200 for stream, 128 KiB for bulk].
    #[arg(long)]
    pub size: Option<usize>,
    /// Stream: offered bit rate, bits/s with an optional k, M or G (e.g.
    /// 200M); the datagram rate is this over --size [default: 100M].
    #[arg(long, value_parser = oneway::parse_bitrate, value_name = "BITS")]
    pub bitrate: Option<f64>,
    /// Stream: send datagrams in batches with UDP GSO (one system call for
    /// up to 64 KiB); a datagram may wait up to 200 us for its batch, which
    /// shows in its latency.
    #[arg(long)]
    pub gso: bool,
    /// Multistream: logical streams, 1 to 64 (tcp-n: connections; udp:
    /// flows) [default: 8].
    #[arg(long)]
    pub streams: Option<u32>,
    /// Multistream: the no-loss latency that head-of-line excess counts from
    /// (p1 of the same transport at 0 % loss) [default: `run` measures it on
    /// the same path without loss; `sender` takes the trial's own p1].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub hol_base: Option<Duration>,
    /// Multistream: measure each message's round trip (the receiver echoes
    /// its header at once) instead of its one-way delivery. Automatic when
    /// the receiver runs on another host, where there is no shared clock.
    #[arg(long)]
    pub round_trip: bool,
    /// Bulk: parallel flows, 1 to 64, each a TCP connection (tcp, tcp+tls)
    /// or a QUIC stream (quic) [default: 1].
    #[arg(long, value_name = "N")]
    pub flows: Option<u32>,
    /// Bulk over QUIC: connections the flows are spread over, flow i on
    /// connection i mod N [default: 1, every stream on one connection].
    #[arg(long, value_name = "N")]
    pub quic_connections: Option<u32>,
    /// Bulk, load: which way the flows run: up (sender to receiver), down
    /// (receiver to sender, as iperf3 -R) or both (--flows each way at
    /// once, as RRUL) [default: up].
    #[arg(long, value_name = "up|down|both")]
    pub direction: Option<transbench_wire::BulkDirection>,
    /// Load: the probe's transport, a flow of its own beside the load's
    /// (udp, tcp, tcp+tls, quic or quic-dgram) [default: udp, as a ping
    /// measures the queue].
    #[arg(long, value_name = "TRANSPORT")]
    pub probe: Option<Transport>,
    /// Load: probe requests per second, open-loop [default: 100].
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true)]
    pub probe_rate: Option<f64>,
    /// Load: how long the probe runs alone before the load and after it
    /// [default: 2s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle: Option<Duration>,
    /// Heartbeat: one heartbeat every this long, open-loop, 1ms to 1h
    /// [default: 100ms].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Option<Duration>,
    /// Heartbeat: the monitored peer fails silently this far into the
    /// measured window: it sends no more heartbeats but keeps its socket
    /// or connection open (a frozen process or a crashed host, not an
    /// exit whose FIN or RST would tell the transport); the monitor's
    /// detection time counts from here [default: it never fails].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub fail_at: Option<Duration>,
    /// Heartbeat: the φ thresholds the monitor replays the φ accrual
    /// detector at, comma-separated [default: 1,2,3,4,6,8,12,16].
    #[arg(long, value_delimiter = ',', value_name = "PHI,...")]
    pub phi_thresholds: Option<Vec<f64>>,
    /// Heartbeat: the fixed timeouts the monitor replays, comma-separated,
    /// each in heartbeat intervals (3x) or a time (250ms) [default:
    /// 1.5x,2x,3x,5x,10x].
    #[arg(long, value_delimiter = ',', value_parser = heartbeat::parse_timeout, value_name = "TIMEOUT,...")]
    pub timeouts: Option<Vec<heartbeat::TimeoutSetting>>,
    /// With `run` (its own receiver), a fault of the receiver in each
    /// trial's measured window. Rr and multistream: "freeze AT FOR" stops
    /// it (SIGSTOP) AT into the window and lets it go (SIGCONT) FOR later,
    /// e.g. "freeze 2s 4s": a peer that stops answering without closing
    /// anything (its kernel goes on acknowledging TCP and queueing
    /// datagrams). Rr: "crash AT FOR" kills it (SIGKILL) and starts it
    /// again on the same address FOR later: its kernel closes its sockets,
    /// and the new one knows nothing of the trial (see --reconnect).
    /// Measured as one of the trial's `outages` (dark: frozen, crashed).
    #[arg(long, value_name = "FAULT")]
    pub receiver_fault: Option<crate::fault::ReceiverFault>,
    /// Measured time per trial (e.g. 3s, 500ms, 1m).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time before measuring, discarded [default: 1s; churn with
    /// --port-range: at most a tenth of the time the range lasts at
    /// --conn-rate, so that the ports run out in the measured window].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    /// Ping-pong at the maximum rate instead of a schedule (rr only; recorded as such).
    #[arg(long)]
    pub closed_loop: bool,
    /// A request unanswered (a message undelivered) this long after its
    /// intended send time is lost; for bulk, how long after the trial's end
    /// a flow may take to be read to its end. At most 1h (60s for
    /// multistream and stream).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub loss_timeout: Duration,
    /// The send lag p99 (how late the sender sent, against its schedule)
    /// past which a trial is invalid: the sender, not the path, missed
    /// its schedule [default: 1ms; churn and handshake: 1ms or one period
    /// of --conn-rate, whichever is longer; load: the same of its probe's
    /// --probe-rate].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_send_lag: Option<Duration>,
    /// Congestion control. TCP transports: pinned per socket on both ends
    /// [default: cubic where permitted, else the system's], recorded as the
    /// kernel reports it. QUIC: quinn's controller, cubic [default], bbr or
    /// reno.
    #[arg(long, value_name = "NAME")]
    pub cc: Option<String>,
    /// QUIC rr only: a new stream per request [default], or one long-lived stream.
    #[arg(long, value_enum)]
    pub quic_stream: Option<QuicStreamArg>,
    /// Rr: the client's retry policy, none or timeout:DUR[,max:N] (N from 1
    /// to 15, default 3). A request without a response DUR after its
    /// intended send time is sent again with the same id, DUR apart, up to
    /// N times and only before --loss-timeout: on udp and quic-dgram a new
    /// datagram, on tcp, tcp+tls and a single QUIC stream the request
    /// written again on the connection, on quic (a stream per request) a
    /// new stream. Its latency still counts from the first intended send.
    /// Given (none too), the receiver counts each id's arrivals and
    /// processings and the result gets a `delivery` section [default: none,
    /// and no counting].
    #[arg(long, value_name = "POLICY")]
    pub retry: Option<crate::measure::delivery::RetryPolicy>,
    /// Rr: the receiver keeps each request id's response and answers a
    /// repeat of the id (a retry, or a copy the path made) from it without
    /// processing it again; counts delivery as --retry does. It keeps the
    /// trial's scheduled ids (3 bytes each); an id past them is processed
    /// every time and counted as beyond_ids.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Rr, open loop: when the data plane's connection is lost (the
    /// receiver closed or reset it, QUIC's idle timeout, or a datagram
    /// refused: nobody listens there), set the trial up again on a new
    /// session, waiting DURATION after each failed attempt, while requests
    /// are due; the requests due meanwhile fail and count lost. What an
    /// application that reconnects does after its peer crashed and was
    /// started again (--receiver-fault crash, or a receiver restarted by
    /// hand); without it a lost connection ends the trial's sending.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reconnect: Option<Duration>,
    /// Churn, handshake: offered connections per second, open-loop (each
    /// transaction's latency counts from its intended start) [default: 200
    /// for churn, 20 for handshake].
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true)]
    pub conn_rate: Option<f64>,
    /// Churn, handshake: most transactions in flight at once; a transaction
    /// waits for a slot, and its wait counts in txn_lat [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<u32>,
    /// Churn, handshake: who closes first once the response is through:
    /// client (FIN; TIME_WAIT on the client), server (TIME_WAIT on the
    /// receiver) or rst (SO_LINGER 0; no TIME_WAIT) [default: client].
    #[arg(long, value_name = "WHO")]
    pub close: Option<CloseMode>,
    /// Churn, handshake: the client's ephemeral ports, LO-HI (e.g.
    /// 40000-40199). In the testbed (--impair...) it is the sender
    /// namespace's net.ipv4.ip_local_port_range; on loopback each socket
    /// gets IP_LOCAL_PORT_RANGE (Linux 6.3+, no root needed).
    #[arg(long, value_name = "LO-HI", value_parser = churn::parse_port_range)]
    pub port_range: Option<(u16, u16)>,
    /// Churn, handshake: net.ipv4.tcp_tw_reuse of the sender's namespace
    /// (0 off, 1 on, 2 loopback only); testbed only (--impair...), never
    /// the host's own namespace [default: the namespace's, recorded].
    #[arg(long, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub tw_reuse: Option<u8>,
    /// Churn, handshake: how TCP client ports are chosen: kernel
    /// (connect() picks) or cycle (bind each port of the range in turn
    /// with SO_REUSEADDR, as netperf's TCP_CRR does) [default: kernel].
    #[arg(long, value_enum, value_name = "HOW")]
    pub client_port: Option<ClientPortArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientPortArg {
    /// connect() picks a free port.
    Kernel,
    /// The client binds each port of the range in turn.
    Cycle,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum QuicStreamArg {
    /// A new bidirectional stream per request.
    PerRequest,
    /// One long-lived bidirectional stream, like TCP.
    Single,
}

impl TrialArgs {
    /// The flags given that only some workloads take.
    fn workload_flags_given(&self) -> Vec<&'static str> {
        [
            (self.rate.is_some(), "--rate"),
            (self.closed_loop, "--closed-loop"),
            (self.quic_stream.is_some(), "--quic-stream"),
            (self.retry.is_some(), "--retry"),
            (self.idempotency_keys, "--idempotency-keys"),
            (self.reconnect.is_some(), "--reconnect"),
            (self.streams.is_some(), "--streams"),
            (self.hol_base.is_some(), "--hol-base"),
            (self.round_trip, "--round-trip"),
            (self.bitrate.is_some(), "--bitrate"),
            (self.gso, "--gso"),
            (self.conn_rate.is_some(), "--conn-rate"),
            (self.max_inflight.is_some(), "--max-inflight"),
            (self.close.is_some(), "--close"),
            (self.port_range.is_some(), "--port-range"),
            (self.tw_reuse.is_some(), "--tw-reuse"),
            (self.client_port.is_some(), "--client-port"),
            (self.flows.is_some(), "--flows"),
            (self.quic_connections.is_some(), "--quic-connections"),
            (self.direction.is_some(), "--direction"),
            (self.probe.is_some(), "--probe"),
            (self.probe_rate.is_some(), "--probe-rate"),
            (self.idle.is_some(), "--idle"),
            (self.heartbeat_interval.is_some(), "--heartbeat-interval"),
            (self.fail_at.is_some(), "--fail-at"),
            (self.phi_thresholds.is_some(), "--phi-thresholds"),
            (self.timeouts.is_some(), "--timeouts"),
            (self.receiver_fault.is_some(), "--receiver-fault"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// The transports `run` measures when none are named: every one the
    /// workload runs on by default, less those an option rules out (RST
    /// and bound client ports are TCP's: QUIC has neither).
    pub fn default_transports(&self) -> Vec<Transport> {
        let tcp_only = self.close == Some(CloseMode::Rst) || self.client_port == Some(ClientPortArg::Cycle);
        self.workload
            .default_transports()
            .into_iter()
            .filter(|t| !(tcp_only && self.workload.is_churn() && t.is_quic()))
            .collect()
    }

    /// 1 s, unless a churn trial's own port range would run out in it: a
    /// warm-up that spent the ports would leave the measured window only
    /// failures, and the moment they ran out unmeasured.
    fn default_warmup(&self) -> Duration {
        const WARMUP: Duration = Duration::from_secs(1);
        let default_rate = match self.workload {
            Workload::Churn => churn::CHURN_RATE,
            Workload::Handshake => churn::HANDSHAKE_RATE,
            _ => return WARMUP,
        };
        let Some((lo, hi)) = self.port_range else {
            return WARMUP;
        };
        let lasts_s = f64::from(hi - lo + 1) / self.conn_rate.unwrap_or(default_rate);
        match Duration::try_from_secs_f64(lasts_s / 10.0) {
            Ok(tenth) => tenth.min(WARMUP),
            Err(_) => WARMUP,
        }
    }

    /// The trial for `transport`; `all` are the transports of the whole
    /// command, to refuse options none of them uses.
    pub fn spec(&self, transport: Transport, all: &[Transport]) -> anyhow::Result<TrialSpec> {
        for flag in self.workload_flags_given() {
            if !WorkloadSpec::flags(self.workload).contains(&flag) {
                bail!("{}", misplaced(flag, self.workload));
            }
        }
        if self.quic_stream.is_some() && !all.iter().any(|t| t.is_quic()) {
            bail!("--quic-stream applies only to --transport quic with --workload rr");
        }
        let size = self.size.unwrap_or(WorkloadSpec::default_size(self.workload));
        let workload = match self.workload {
            Workload::Rr => WorkloadSpec::Rr(RrSpec::from_args(self)),
            Workload::Multistream => WorkloadSpec::Multistream(MultistreamSpec::from_args(self)),
            Workload::Stream => WorkloadSpec::Stream(StreamSpec::from_args(self, size)),
            Workload::Churn => WorkloadSpec::Churn(ChurnSpec::from_args(self, churn::CHURN_RATE)),
            Workload::Handshake => WorkloadSpec::Handshake(ChurnSpec::from_args(self, churn::HANDSHAKE_RATE)),
            Workload::Bulk => WorkloadSpec::Bulk(BulkSpec::from_args(self)),
            Workload::Load => WorkloadSpec::Load(LoadSpec::from_args(self)),
            Workload::Heartbeat => WorkloadSpec::Heartbeat(HeartbeatSpec::from_args(self)),
        };
        Ok(TrialSpec {
            transport,
            size,
            duration: self.duration,
            warmup: self.warmup.unwrap_or_else(|| self.default_warmup()),
            loss_timeout: self.loss_timeout,
            max_send_lag: self.max_send_lag,
            congestion: self.cc.clone(),
            path_rtt_ns: None,
            reverse_impair: None,
            window_opens: WindowOpens::default(),
            link_changes: false,
            blackouts: Vec::new(),
            receiver_fault: self.receiver_fault,
            rejecting: Vec::new(),
            workload,
        })
    }
}

/// `TrialArgs` alone, to parse options given other than on the command
/// line.
#[derive(clap::Parser)]
#[command(name = "transbench run", no_binary_name = true, disable_help_flag = true)]
struct OptionsOnly {
    #[command(flatten)]
    trial: TrialArgs,
}

impl TrialArgs {
    /// The options of a `workload` trial given by flag name, as a scenario
    /// file gives them (`conn_rate = 400` is `--conn-rate 400`; `true`
    /// gives a flag without a value, `false` leaves it out), parsed and
    /// defaulted exactly as on the command line.
    pub fn from_options<'a>(
        workload: Workload,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TrialArgs, String> {
        use clap::{CommandFactory, FromArgMatches};
        let command = OptionsOnly::command();
        let mut argv = vec!["--workload".to_string(), workload.name().to_string()];
        for (key, value) in options {
            let long = key.replace('_', "-");
            let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
            else {
                return Err(format!(
                    "{key:?} is no trial option: a scenario sets the flags of `transbench run --help` \
                     by name, with underscores ({})",
                    trial_option_names().join(", ")
                ));
            };
            if key.contains('-') || long == "workload" {
                return Err(format!("{key:?}: write it as {}", key.replace('-', "_")));
            }
            if arg.get_action().takes_values() {
                argv.extend([format!("--{long}"), value.to_string()]);
            } else {
                match value {
                    "true" => argv.push(format!("--{long}")),
                    "false" => {}
                    other => return Err(format!("{key} = {other}: it is true or false")),
                }
            }
        }
        let matches = command.try_get_matches_from(argv).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
            first.to_string()
        })?;
        OptionsOnly::from_arg_matches(&matches)
            .map(|o| o.trial)
            .map_err(|e| e.to_string())
    }

    /// A trial's options that need the testbed: refused on loopback.
    pub fn check_path(&self, emulated: bool) -> anyhow::Result<()> {
        if self.tw_reuse.is_some() && !emulated {
            bail!(
                "--tw-reuse sets net.ipv4.tcp_tw_reuse in the sender's namespace, so it needs the testbed: \
                 add --impair-backend linkemu (an unimpaired emulated link) or an --impair profile (root); \
                 transbench never changes the host's own namespace"
            );
        }
        Ok(())
    }
}

/// Every trial option by the name a scenario file gives it.
fn trial_option_names() -> Vec<String> {
    use clap::CommandFactory;
    OptionsOnly::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "workload")
        .map(|l| l.replace('-', "_"))
        .collect()
}

/// Why `flag` is refused with `workload`: which workloads take it, and
/// what this one is paced by instead.
fn misplaced(flag: &str, workload: Workload) -> String {
    let takers: Vec<&str> = Workload::ALL
        .into_iter()
        .filter(|w| WorkloadSpec::flags(*w).contains(&flag))
        .map(Workload::name)
        .collect();
    match (flag, workload) {
        ("--rate", Workload::Stream) => "--workload stream is paced by --bitrate (bits/s), not --rate".into(),
        ("--rate", Workload::Heartbeat) => {
            "--workload heartbeat is paced by --heartbeat-interval, not --rate".into()
        }
        ("--rate", w) if w.is_churn() => {
            format!("--workload {w} is paced by --conn-rate (connections/s), not --rate")
        }
        ("--closed-loop", w) => format!("--workload {w} is open-loop only: drop --closed-loop"),
        _ => format!("{flag} applies only to --workload {}", takers.join(" or ")),
    }
}

/// The most messages (requests, datagrams, connections) one trial may
/// schedule, warm-up included: what the receiver's delivery log keeps
/// ([`multi::MAX_RECORDS`]), and what bounds the sender's own records. The
/// one-way pacer keeps one per message and churn one per connection; rr's
/// tracker keeps each request until it is answered or a loss timeout past
/// it (a lost one four more), and on UDP 24 bytes of each for the
/// sequence tracker. Five million of them are a few hundred MB.
pub const MAX_MESSAGES: u64 = multi::MAX_RECORDS as u64;

/// A workload's offered rate as the sender paces it: the flag that sets
/// it and its value as given, the sends a second it makes, and what to
/// change besides the flag.
struct Pacing {
    flag: &'static str,
    given: String,
    sends: f64,
    /// The flag's value per send a second.
    flag_per_send: f64,
    what: &'static str,
    advice: &'static str,
}

impl Pacing {
    /// The flag's value for `sends` a second.
    fn flag_at(&self, sends: f64) -> f64 {
        sends * self.flag_per_send
    }
}

/// One trial: its transport, what every trial has, and its workload's own
/// options.
#[derive(Debug, Clone)]
pub struct TrialSpec {
    pub transport: Transport,
    /// Bytes per message, header included.
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub loss_timeout: Duration,
    /// `--max-send-lag`; `None`: the default (see [`TrialSpec::send_lag_bound_ns`]).
    pub max_send_lag: Option<Duration>,
    /// Congestion control to pin (TCP) or run (QUIC); `None`: the
    /// preferred one where permitted (see `congestion`).
    pub congestion: Option<String>,
    /// The path's round-trip time from the link probe, when `run` knows
    /// it: what head-of-line and handshake expectations count in.
    pub path_rtt_ns: Option<u64>,
    /// Across hosts: the path receiver -> sender's netem profile, which
    /// the receiver puts on its own egress for the trial.
    pub reverse_impair: Option<String>,
    /// Told when the measured window opens: where an impairment schedule
    /// puts its time 0.
    pub window_opens: WindowOpens,
    /// Whether an impairment schedule changes the link during the trial:
    /// open-loop rr then keeps a timeline of it.
    pub link_changes: bool,
    /// Where the schedule darkens the path within the measured window:
    /// open-loop rr measures the recovery from each.
    pub blackouts: Vec<Blackout>,
    /// Done to the receiver `run` starts, in each trial's window.
    pub receiver_fault: Option<crate::fault::ReceiverFault>,
    /// Where a schedule rejects, either way, as `(start, end)` in schedule
    /// time over the whole data plane: the control connection crosses the
    /// same path, so the sender waits these out before its Stop
    /// ([`crate::session::wait_while_rejecting`]).
    pub rejecting: Vec<(u64, u64)>,
    pub workload: WorkloadSpec,
}

/// Told once per trial, before its first send, the time its measured
/// window opens (the monotonic clock, ns); by default nobody listens.
/// Clones share what they were told.
#[derive(Clone, Default)]
pub struct WindowOpens {
    listener: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>>,
    /// The time told; 0: not yet.
    opened: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl WindowOpens {
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        WindowOpens {
            listener: Some(std::sync::Arc::new(f)),
            opened: Default::default(),
        }
    }

    pub fn tell(&self, mono_ns: u64) {
        self.opened.store(mono_ns, std::sync::atomic::Ordering::Relaxed);
        if let Some(f) = &self.listener {
            f(mono_ns);
        }
    }

    /// When the window opened, once told.
    pub fn opened_at(&self) -> Option<u64> {
        match self.opened.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

impl std::fmt::Debug for WindowOpens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowOpens")
    }
}

/// Each workload's own options, typed.
#[derive(Debug, Clone)]
pub enum WorkloadSpec {
    Rr(RrSpec),
    Multistream(MultistreamSpec),
    Stream(StreamSpec),
    Churn(ChurnSpec),
    Handshake(ChurnSpec),
    Bulk(BulkSpec),
    Load(LoadSpec),
    Heartbeat(HeartbeatSpec),
}

impl WorkloadSpec {
    pub fn kind(&self) -> Workload {
        match self {
            WorkloadSpec::Rr(_) => Workload::Rr,
            WorkloadSpec::Multistream(_) => Workload::Multistream,
            WorkloadSpec::Stream(_) => Workload::Stream,
            WorkloadSpec::Churn(_) => Workload::Churn,
            WorkloadSpec::Handshake(_) => Workload::Handshake,
            WorkloadSpec::Bulk(_) => Workload::Bulk,
            WorkloadSpec::Load(_) => Workload::Load,
            WorkloadSpec::Heartbeat(_) => Workload::Heartbeat,
        }
    }

    /// The flags this workload takes beyond those every workload takes.
    pub fn flags(workload: Workload) -> &'static [&'static str] {
        match workload {
            Workload::Rr => rr::FLAGS,
            Workload::Multistream => oneway::MULTISTREAM_FLAGS,
            Workload::Stream => oneway::STREAM_FLAGS,
            Workload::Churn | Workload::Handshake => churn::FLAGS,
            Workload::Bulk => bulk::FLAGS,
            Workload::Load => load::FLAGS,
            Workload::Heartbeat => heartbeat::FLAGS,
        }
    }

    /// Bytes per message unless `--size` says.
    pub fn default_size(workload: Workload) -> usize {
        match workload {
            Workload::Rr => rr::DEFAULT_SIZE,
            Workload::Multistream => oneway::MULTISTREAM_SIZE,
            Workload::Stream => oneway::STREAM_SIZE,
            Workload::Churn | Workload::Handshake => churn::DEFAULT_SIZE,
            Workload::Bulk | Workload::Load => bulk::DEFAULT_SIZE,
            Workload::Heartbeat => heartbeat::DEFAULT_SIZE,
        }
    }

    /// The offered rate: requests/s (rr; `None` closed-loop), messages/s
    /// per stream (multistream), datagrams/s (stream), connections/s
    /// (churn, handshake); `None` closed-loop (rr) and for bulk, which
    /// the transport paces.
    pub fn rate(&self) -> Option<f64> {
        match self {
            WorkloadSpec::Rr(r) => r.rate,
            WorkloadSpec::Bulk(_) | WorkloadSpec::Load(_) => None,
            WorkloadSpec::Multistream(m) => Some(m.rate),
            WorkloadSpec::Stream(s) => Some(s.rate),
            WorkloadSpec::Churn(c) | WorkloadSpec::Handshake(c) => Some(c.rate),
            WorkloadSpec::Heartbeat(h) => Some(h.rate()),
        }
    }

    /// The same workload at another offered rate (a sweep's step).
    pub fn at_rate(&self, rate: f64) -> WorkloadSpec {
        let mut spec = self.clone();
        match &mut spec {
            WorkloadSpec::Rr(r) => r.rate = Some(rate),
            WorkloadSpec::Multistream(m) => m.rate = rate,
            WorkloadSpec::Stream(s) => s.rate = rate,
            WorkloadSpec::Churn(c) | WorkloadSpec::Handshake(c) => c.rate = rate,
            WorkloadSpec::Heartbeat(h) => h.interval = Duration::from_secs_f64(1.0 / rate),
            WorkloadSpec::Bulk(_) | WorkloadSpec::Load(_) => {}
        }
        spec
    }

    /// Messages in flight per intended send time: the streams of a
    /// multistream trial, else one.
    pub fn streams(&self) -> u32 {
        match self {
            WorkloadSpec::Multistream(m) => m.streams,
            _ => 1,
        }
    }

    /// How the offered rate was given and what it sends, for refusing one
    /// the sender cannot schedule; `None` closed-loop.
    fn pacing(&self, size: usize) -> Option<Pacing> {
        let rate = self.rate()?;
        let simple = |flag, what, advice| Pacing {
            flag,
            given: rate.to_string(),
            sends: rate,
            flag_per_send: 1.0,
            what,
            advice,
        };
        Some(match self {
            WorkloadSpec::Rr(_) => simple("--rate", "requests", ", or use --closed-loop"),
            WorkloadSpec::Multistream(m) => Pacing {
                given: format!("{rate} x --streams {}", m.streams),
                sends: rate * f64::from(m.streams),
                flag_per_send: 1.0 / f64::from(m.streams),
                ..simple("--rate", "messages", ", or fewer --streams")
            },
            WorkloadSpec::Stream(s) => Pacing {
                given: format!("{} at --size {size}", s.bitrate(size)),
                flag_per_send: 8.0 * size as f64,
                ..simple("--bitrate", "datagrams", ", or a larger --size")
            },
            WorkloadSpec::Churn(_) | WorkloadSpec::Handshake(_) => simple("--conn-rate", "connections", ""),
            // Its own check holds the interval and the count to what the
            // pacer keeps, before these are looked at.
            WorkloadSpec::Heartbeat(h) => Pacing {
                given: humantime::format_duration(h.interval).to_string(),
                flag_per_send: f64::NAN,
                ..simple("--heartbeat-interval", "heartbeats", "")
            },
            WorkloadSpec::Bulk(_) | WorkloadSpec::Load(_) => return None,
        })
    }

    /// What a workload that opens a connection per transaction asks for.
    pub fn churn(&self) -> Option<&ChurnSpec> {
        match self {
            WorkloadSpec::Churn(c) | WorkloadSpec::Handshake(c) => Some(c),
            _ => None,
        }
    }

    /// The wire's form of these options.
    fn setup(&self) -> WorkloadSetup {
        match self {
            WorkloadSpec::Rr(r) => WorkloadSetup::Rr {
                quic_stream: r.quic_stream,
                udp_peer_port: None,
                delivery: r.delivery_counting(),
            },
            WorkloadSpec::Multistream(m) => WorkloadSetup::Multistream {
                streams: m.streams,
                echo: m.round_trip,
            },
            WorkloadSpec::Stream(_) => WorkloadSetup::Stream {},
            WorkloadSpec::Churn(c) => WorkloadSetup::Churn {
                close: c.options.close,
                max_inflight: c.options.max_inflight,
            },
            WorkloadSpec::Handshake(c) => WorkloadSetup::Handshake {
                close: c.options.close,
                max_inflight: c.options.max_inflight,
            },
            // A load trial's own setup is its bulk trial's (the probe is
            // an rr trial of its own).
            WorkloadSpec::Bulk(b) | WorkloadSpec::Load(LoadSpec { bulk: b, .. }) => WorkloadSetup::Bulk {
                flows: b.flows,
                quic_connections: b.quic_connections,
                direction: b.direction,
            },
            WorkloadSpec::Heartbeat(_) => WorkloadSetup::Heartbeat {},
        }
    }
}

impl TrialSpec {
    /// The send lag p99 past which the trial is invalid: `--max-send-lag`,
    /// else 1 ms. Churn's connection setups share the sender's thread with
    /// its pacer (a TLS or QUIC handshake is hundreds of microseconds of
    /// CPU): by default a lag within one period still offers the rate
    /// asked for, and every transaction's latency counts from its intended
    /// start anyway.
    pub fn send_lag_bound_ns(&self) -> u64 {
        if let Some(given) = self.max_send_lag {
            return given.as_nanos().min(u64::MAX as u128) as u64;
        }
        match (self.workload().is_churn(), self.workload.rate()) {
            (true, Some(rate)) => crate::session::MAX_SEND_LAG_P99_NS.max((1e9 / rate) as u64),
            _ => crate::session::MAX_SEND_LAG_P99_NS,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(fault) = &self.receiver_fault {
            fault.check_within(self.duration).map_err(anyhow::Error::msg)?;
            if fault.kind == crate::fault::FaultKind::Crash {
                match &self.workload {
                    WorkloadSpec::Rr(rr) if rr.counts_delivery() => bail!(
                        "--receiver-fault \"{fault}\" with --retry or --idempotency-keys: the counts per request \
                         id die with the receiver; count delivery under a freeze or a partition instead"
                    ),
                    WorkloadSpec::Rr(_) => {}
                    other => bail!(
                        "--receiver-fault \"{fault}\" runs with rr, whose client can set its trial up again on \
                         the receiver started after the crash; {} cannot (a freeze runs with multistream too)",
                        other.kind()
                    ),
                }
            }
        }
        if let WorkloadSpec::Rr(RrSpec {
            reconnect: Some(_), ..
        }) = &self.workload
        {
            if self.transport.is_quic_datagram() {
                bail!(
                    "--reconnect runs on udp, tcp, tcp+tls and quic: quic-dgram's datagram counts are one \
                     connection's"
                );
            }
        }
        let workload = self.workload.kind();
        if !workload.runs_on(self.transport.capabilities()) {
            let names: Vec<&str> = workload.transports().iter().map(|t| t.name()).collect();
            // Unreliable datagrams have no rate of their own to find: they go at the one asked.
            let instead = match workload {
                Workload::Bulk | Workload::Load if !self.transport.capabilities().reliable => {
                    "; datagrams at a bit rate are --workload stream --bitrate BITS (goodput and loss in its `udp` section)"
                }
                _ => "",
            };
            bail!(
                "transport {} does not run workload {workload}: it runs on {}{instead}",
                self.transport,
                names.join(", ")
            );
        }
        match &self.workload {
            WorkloadSpec::Rr(r) => r.check(self.loss_timeout)?,
            WorkloadSpec::Multistream(m) => m.check(self)?,
            WorkloadSpec::Stream(s) => s.check(self)?,
            WorkloadSpec::Churn(c) | WorkloadSpec::Handshake(c) => c.check(self)?,
            WorkloadSpec::Bulk(b) => b.check(self)?,
            WorkloadSpec::Load(l) => l.check(self)?,
            WorkloadSpec::Heartbeat(h) => h.check(self)?,
        }
        self.check_schedule()?;
        if let Some(cc) = &self.congestion {
            match self.transport.capabilities().carrier {
                Carrier::Udp => bail!("--cc {cc}: {} has no congestion control", self.transport),
                Carrier::Tcp => congestion::check_available(cc)?,
                Carrier::Quic if !tls::QUIC_CONGESTION.contains(&cc.as_str()) => bail!(
                    "--cc {cc}: QUIC runs quinn's congestion controllers: {}",
                    tls::QUIC_CONGESTION.join(", ")
                ),
                Carrier::Quic => {}
            }
        }
        let max = crate::transport::max_message(self.transport);
        if !(HEADER_LEN..=max).contains(&self.size) {
            bail!(
                "--size {} is out of range for {}: messages carry a {HEADER_LEN}-byte header and may be at most {max} bytes",
                self.size,
                self.transport
            );
        }
        if self.duration.is_zero() {
            bail!("--duration must be longer than zero");
        }
        if self.loss_timeout.is_zero() {
            bail!("--loss-timeout must be longer than zero");
        }
        if self.max_send_lag.is_some_and(|d| d.is_zero()) {
            bail!("--max-send-lag must be longer than zero: every trial would be invalid");
        }
        if self.loss_timeout > MAX_LOSS_TIMEOUT {
            bail!(
                "--loss-timeout {} is longer than the hour results record latencies up to (a lost request \
                 is recorded at its loss timeout): use at most 1h",
                humantime::format_duration(self.loss_timeout)
            );
        }
        Ok(())
    }

    /// A schedule the sender can keep and record: no period shorter than
    /// [`schedule::MIN_PERIOD_NS`], no more than [`MAX_MESSAGES`] over
    /// warm-up and duration. Closed-loop rr is paced by its answers.
    fn check_schedule(&self) -> anyhow::Result<()> {
        let Some(pacing) = self.workload.pacing(self.size) else {
            return Ok(());
        };
        let Pacing {
            flag,
            ref given,
            sends,
            what,
            advice,
            ..
        } = pacing;
        let at_most = |sends: f64| pacing.flag_at(sends).floor();
        let max_rate = 1e9 / schedule::MIN_PERIOD_NS;
        if sends > max_rate {
            let period = match 1e9 / sends {
                p if p >= 10.0 => format!("{p:.0}"),
                p => format!("{p:.3}"),
            };
            bail!(
                "{flag} {given} asks for {sends:.0} {what} a second, one every {period} ns: the sender's \
                 pacer keeps at most one send every {:.0} ns ({max_rate:.0} a second in all): give {flag} {} \
                 or less{advice}",
                schedule::MIN_PERIOD_NS,
                at_most(max_rate)
            );
        }
        let window = self.warmup + self.duration;
        let scheduled = sends * window.as_secs_f64();
        if scheduled > MAX_MESSAGES as f64 {
            bail!(
                "{flag} {given} over --warmup + --duration ({}) schedules {scheduled:.0} {what}, more than the \
                 {MAX_MESSAGES} one trial records: give {flag} {} or less, or a shorter --duration",
                humantime::format_duration(window),
                at_most(MAX_MESSAGES as f64 / window.as_secs_f64())
            );
        }
        Ok(())
    }

    pub fn workload(&self) -> Workload {
        self.workload.kind()
    }

    /// TCP transports: the congestion control the receiver pins, as the
    /// sender does.
    pub fn tcp_congestion(&self) -> Option<String> {
        self.transport
            .is_tcp()
            .then(|| self.congestion.clone().unwrap_or(congestion::PREFERRED.into()))
    }

    /// QUIC: the congestion controller both ends run.
    pub fn quic_congestion(&self) -> Option<String> {
        self.transport
            .is_quic()
            .then(|| self.congestion.clone().unwrap_or_else(|| "cubic".into()))
    }

    /// What the receiver is told of this trial.
    pub fn setup(&self) -> TrialSetup {
        TrialSetup {
            transport: self.transport,
            size: self.size as u32,
            tcp_congestion: self.tcp_congestion(),
            quic_congestion: self.quic_congestion(),
            plan: self.plan(),
            reverse_impair: self.reverse_impair.clone(),
            workload: self.workload.setup(),
        }
    }

    /// How long and how much, for the receiver's limits.
    fn plan(&self) -> TrialPlan {
        let window = self.warmup + self.duration;
        TrialPlan {
            warmup_ns: self.warmup.as_nanos() as u64,
            duration_ns: self.duration.as_nanos() as u64,
            loss_timeout_ns: self.loss_timeout.as_nanos() as u64,
            messages: self
                .workload
                .pacing(self.size)
                .map(|p| (p.sends * window.as_secs_f64()).ceil() as u64),
        }
    }
}

/// A rate given on the command line, checked: finite and positive.
fn positive_rate(rate: f64, flag: &str, unit: &str) -> anyhow::Result<()> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("{flag} {rate} must be a positive number of {unit} per second");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        trial: TrialArgs,
    }

    fn args(flags: &[&str]) -> TrialArgs {
        Flags::try_parse_from(std::iter::once("transbench").chain(flags.iter().copied()))
            .unwrap()
            .trial
    }

    fn spec(flags: &[&str], transport: Transport) -> anyhow::Result<TrialSpec> {
        args(flags).spec(transport, &[transport])
    }

    #[test]
    fn each_workload_gets_its_own_defaults() {
        let rr = spec(&[], Transport::Tcp).unwrap();
        assert_eq!((rr.size, rr.workload.rate()), (64, Some(1000.0)));
        let m = spec(&["--workload", "multistream"], Transport::Quic).unwrap();
        assert_eq!(
            (m.size, m.workload.rate(), m.workload.streams()),
            (512, Some(25.0), 8)
        );
        let s = spec(&["--workload", "stream", "--bitrate", "96k"], Transport::Udp).unwrap();
        assert_eq!((s.size, s.workload.rate()), (1200, Some(10.0)));
        let c = spec(&["--workload", "churn"], Transport::Tcp).unwrap();
        let h = spec(&["--workload", "handshake"], Transport::Tcp).unwrap();
        assert_eq!((c.workload.rate(), h.workload.rate()), (Some(200.0), Some(20.0)));
        let closed = spec(&["--closed-loop"], Transport::Udp).unwrap();
        assert_eq!(closed.workload.rate(), None);
    }

    #[test]
    fn a_flag_another_workload_takes_is_refused_naming_who_takes_it() {
        let refused = |flags: &[&str]| spec(flags, Transport::Tcp).unwrap_err().to_string();
        assert_eq!(refused(&["--gso"]), "--gso applies only to --workload stream");
        assert_eq!(
            refused(&["--close", "rst"]),
            "--close applies only to --workload churn or handshake"
        );
        assert!(refused(&["--workload", "stream", "--rate", "5"]).contains("--bitrate"));
        assert!(refused(&["--workload", "churn", "--rate", "5"]).contains("--conn-rate"));
        assert!(refused(&["--workload", "churn", "--closed-loop"]).contains("open-loop only"));
        // Every flag some workload takes is taken by one at least.
        for w in Workload::ALL {
            for flag in WorkloadSpec::flags(w) {
                assert!(!misplaced(flag, Workload::Rr).ends_with("--workload "), "{flag}");
            }
        }
    }

    #[test]
    fn the_wire_setup_carries_the_workload_s_own_options() {
        let m = spec(
            &["--workload", "multistream", "--streams", "3", "--round-trip"],
            Transport::TcpN,
        )
        .unwrap();
        assert_eq!(
            m.setup().workload,
            WorkloadSetup::Multistream {
                streams: 3,
                echo: true
            }
        );
        assert_eq!(m.setup().tcp_congestion.as_deref(), Some(congestion::PREFERRED));
        let c = spec(&["--workload", "churn", "--close", "server"], Transport::Quic).unwrap();
        assert_eq!(
            c.setup().workload,
            WorkloadSetup::Churn {
                close: CloseMode::Server,
                max_inflight: churn::DEFAULT_MAX_INFLIGHT,
            }
        );
        assert_eq!(
            (c.setup().tcp_congestion, c.setup().quic_congestion.as_deref()),
            (None, Some("cubic"))
        );
    }

    #[test]
    fn checks_hold_for_every_workload() {
        let invalid = |flags: &[&str], transport| {
            spec(flags, transport)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(
            invalid(&["--workload", "multistream", "--streams", "65"], Transport::Quic)
                .contains("--streams 65")
        );
        assert!(
            invalid(&["--workload", "churn", "--close", "rst"], Transport::Quic).contains("QUIC has none")
        );
        assert!(invalid(&["--rate", "0"], Transport::Udp).contains("--rate 0"));
        assert!(invalid(&["--workload", "stream"], Transport::Tcp).contains("does not run workload stream"));
        assert!(invalid(&["--cc", "bbr"], Transport::Udp).contains("no congestion control"));
        let long = ["--workload", "stream", "--loss-timeout", "61s"];
        assert!(invalid(&long, Transport::Udp).contains("--loss-timeout"));
        assert!(invalid(&["--loss-timeout", "2h"], Transport::Tcp).contains("at most 1h"));
        spec(&["--loss-timeout", "1h"], Transport::Tcp)
            .unwrap()
            .validate()
            .unwrap();
    }

    fn refused(flags: &[&str], transport: Transport) -> String {
        spec(flags, transport)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_rate_the_pacer_cannot_keep_is_refused_with_the_flag_and_the_limit() {
        // The finding: udp at 1e12/s, accepted, never ended.
        let e = refused(&["--rate", "1e12", "--duration", "2s"], Transport::Udp);
        assert_eq!(
            e,
            "--rate 1000000000000 asks for 1000000000000 requests a second, one every 0.001 ns: the \
             sender's pacer keeps at most one send every 1000 ns (1000000 a second in all): give --rate \
             1000000 or less, or use --closed-loop"
        );
        let e = refused(&["--rate", "1e9"], Transport::Tcp);
        assert!(e.starts_with("--rate 1000000000 asks for"), "{e}");
        // Streams share the pacer: it is their sum that counts.
        let e = refused(
            &["--workload", "multistream", "--rate", "200000", "--streams", "8"],
            Transport::Quic,
        );
        assert!(
            e.starts_with("--rate 200000 x --streams 8 asks for 1600000 messages"),
            "{e}"
        );
        assert!(
            e.contains("give --rate 125000 or less, or fewer --streams"),
            "{e}"
        );
        let e = refused(&["--workload", "stream", "--bitrate", "20G"], Transport::Udp);
        assert!(
            e.starts_with("--bitrate 20000000000 at --size 1200 asks for 2083333 datagrams"),
            "{e}"
        );
        assert!(
            e.contains("give --bitrate 9600000000 or less, or a larger --size"),
            "{e}"
        );
        let e = refused(&["--workload", "churn", "--conn-rate", "2e6"], Transport::Tcp);
        assert!(e.contains("give --conn-rate 1000000 or less"), "{e}");
    }

    #[test]
    fn more_than_a_trial_records_is_refused_with_the_flag_and_the_limit() {
        let e = refused(&["--rate", "1e6", "--duration", "10s"], Transport::Udp);
        assert_eq!(
            e,
            "--rate 1000000 over --warmup + --duration (11s) schedules 11000000 requests, more than the \
             5000000 one trial records: give --rate 454545 or less, or a shorter --duration"
        );
        let e = refused(
            &["--workload", "churn", "--conn-rate", "5000", "--duration", "20m"],
            Transport::Tcp,
        );
        assert!(e.contains("schedules 6005000 connections"), "{e}");
        let e = refused(
            &["--workload", "stream", "--bitrate", "1G", "--duration", "1m"],
            Transport::Udp,
        );
        assert!(e.contains("give --bitrate 786885245 or less"), "{e}");
    }

    #[test]
    fn a_churn_warmup_leaves_the_port_range_to_the_measured_window() {
        let warmup = |flags: &[&str]| spec(flags, Transport::Tcp).unwrap().warmup;
        // 200 ports at 400/s last 500 ms: the warm-up takes a tenth.
        let churn = [
            "--workload",
            "churn",
            "--conn-rate",
            "400",
            "--port-range",
            "40000-40199",
        ];
        assert_eq!(warmup(&churn), Duration::from_millis(50));
        // Given, it is the user's.
        let given = [&churn[..], &["--warmup", "2s"]].concat();
        assert_eq!(warmup(&given), Duration::from_secs(2));
        // A range that lasts, and other workloads, keep 1 s.
        let wide = [
            "--workload",
            "churn",
            "--conn-rate",
            "400",
            "--port-range",
            "30000-59999",
        ];
        assert_eq!(warmup(&wide), Duration::from_secs(1));
        assert_eq!(warmup(&["--workload", "churn"]), Duration::from_secs(1));
        assert_eq!(warmup(&["--rate", "100"]), Duration::from_secs(1));
    }

    #[test]
    fn rates_up_to_the_limits_are_accepted() {
        for flags in [
            &["--rate", "1e6", "--duration", "1s", "--warmup", "0s"][..],
            &["--rate", "1e6"],
            &["--closed-loop", "--duration", "1h"],
        ] {
            spec(flags, Transport::Udp).unwrap().validate().unwrap();
        }
        let m = [
            "--workload",
            "multistream",
            "--rate",
            "125000",
            "--streams",
            "8",
            "--duration",
            "4s",
            "--warmup",
            "1s",
        ];
        spec(&m, Transport::Quic).unwrap().validate().unwrap();
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn options_by_name_parse_as_their_flags_do() {
        let args = TrialArgs::from_options(
            Workload::Churn,
            [
                ("conn_rate", "400"),
                ("close", "rst"),
                ("port_range", "40000-40199"),
                ("loss_timeout", "1s"),
            ],
        )
        .unwrap();
        assert_eq!(
            (args.conn_rate, args.close, args.port_range, args.loss_timeout),
            (
                Some(400.0),
                Some(CloseMode::Rst),
                Some((40000, 40199)),
                Duration::from_secs(1)
            )
        );
        let stream = TrialArgs::from_options(Workload::Stream, [("gso", "true"), ("bitrate", "2M")]).unwrap();
        assert!(stream.gso);
        assert_eq!(stream.bitrate, Some(2e6));
        assert!(
            !TrialArgs::from_options(Workload::Stream, [("gso", "false")])
                .unwrap()
                .gso
        );
    }

    #[test]
    fn a_bad_option_says_what_is_wrong() {
        let err =
            |opts: &[(&str, &str)]| TrialArgs::from_options(Workload::Rr, opts.iter().copied()).unwrap_err();
        assert!(
            err(&[("rat", "5")]).contains("conn_rate"),
            "{}",
            err(&[("rat", "5")])
        );
        assert!(err(&[("size", "big")]).contains("big"));
        assert!(err(&[("gso", "yes")]).contains("true or false"));
        assert!(err(&[("conn-rate", "5")]).contains("conn_rate"));
        assert!(err(&[("workload", "rr")]).contains("workload"));
    }
}
