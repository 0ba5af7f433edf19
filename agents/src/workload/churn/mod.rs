//! The churn and handshake workloads, both sides: a new connection per
//! transaction, open-loop at an offered rate with a cap on transactions in
//! flight; TIME_WAIT sampled in both agents' namespaces while it runs, and
//! what theory predicts written beside what was measured.

mod records;

use anyhow::Context;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use transbench_analysis::churn::{self as theory, ChurnPath, Closer, Setup};
use transbench_reports::{
    new_histogram, ChurnExpectation, ChurnMetrics, CounterDelta, LatencyKind, LatencySummary, PortRange,
    PortRangeSource, TimeWaitPoint, TimeWaitSeries, TimeWaitSide, TrialResult, ZeroRtt,
};
use transbench_wire::{
    Carrier, CloseMode, ControlMsg, MessageHeader, NamespaceReport, TimeWaitSample, Transport, TrialSetup,
    TrialToken,
};

use super::TrialServer;
use crate::clock::wall_at;
use crate::clock::{mono_now_ns, thread_cpu_ns, tokio_instant_at, Pacer};
use crate::control_io::ControlChannel;
use crate::dataplane::churn::{serve_quic, Dialer, Failure, PortChoice, Timings, CLOSE_WAIT};
use crate::dataplane::listen::{self, ServerTls};
use crate::dataplane::{ErrorLog, ServeCounters, TrialPeer};
use crate::schedule::{self, OpenLoopSchedule, START_LEAD_NS};
use crate::session;
use crate::spec::churn::parse_port_range;
use crate::spec::{ChurnOptions, ChurnSpec, TrialSpec};
use crate::transport::{self, congestion, tls};
use records::TimeWaitRecords;
use transbench_reports::record;

/// TIME_WAIT is sampled this often on both agents.
pub const SAMPLE_INTERVAL_NS: u64 = 100_000_000;

/// One agent's view of its namespace over a trial: sysctls, `TcpExt`
/// counters before and after, TIME_WAIT every [`SAMPLE_INTERVAL_NS`].
pub struct NamespaceWatch {
    sampler: procnet::TimeWaitSampler,
    report: NamespaceReport,
}

impl NamespaceWatch {
    /// Starts watching the calling thread's namespace; `trial` picks this
    /// trial's sockets out of the namespace's: on the sender, those to the
    /// data port; on the receiver, those on it (the two may share a
    /// namespace, on loopback). QUIC has none (`None`).
    pub fn start(trial: Option<procnet::PortFilter>) -> std::io::Result<Self> {
        let report = NamespaceReport {
            start_mono_ns: mono_now_ns(),
            sysctls: procnet::read_sysctls(procnet::CHURN_SYSCTLS),
            tcp_ext_before: time_wait_counters(),
            tcp_ext_after: BTreeMap::new(),
        };
        let sampler = procnet::TimeWaitSampler::start(SAMPLE_INTERVAL_NS, trial, mono_now_ns)?;
        Ok(NamespaceWatch { sampler, report })
    }

    pub fn finish(self) -> (NamespaceReport, Vec<TimeWaitSample>) {
        let samples = self.sampler.stop();
        let mut report = self.report;
        report.tcp_ext_after = time_wait_counters();
        (report, samples)
    }
}

fn time_wait_counters() -> BTreeMap<String, u64> {
    match procnet::ProcNet::this_thread().tcp_ext() {
        Ok(all) => procnet::select_counters(&all, procnet::TIME_WAIT_COUNTERS),
        Err(e) => {
            tracing::warn!("cannot read the TcpExt counters: {e}");
            BTreeMap::new()
        }
    }
}

/// What the schedule did.
struct Outcome {
    t0: u64,
    measured_start: u64,
    measured_ns: u64,
    offered: u64,
    started: u64,
    completed: u64,
    failed: u64,
    connect_lat: Histogram<u64>,
    handshake_lat: Histogram<u64>,
    ttfb: Histogram<u64>,
    txn_lat: Histogram<u64>,
    send_lag: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    first_eaddrnotavail: Option<u64>,
    first_eaddrinuse: Option<u64>,
    /// When each transaction (warm-up included) ended, by outcome.
    completions: Vec<theory::Completion>,
    failures: Vec<u64>,
    zero_rtt: ZeroRtt,
    transactions: u64,
    pacer_busy_ns: u64,
}

impl Outcome {
    fn new(t0: u64, measured_start: u64, measured_ns: u64, offered: u64) -> Self {
        Outcome {
            t0,
            measured_start,
            measured_ns,
            offered,
            started: 0,
            completed: 0,
            failed: 0,
            connect_lat: new_histogram(),
            handshake_lat: new_histogram(),
            ttfb: new_histogram(),
            txn_lat: new_histogram(),
            send_lag: new_histogram(),
            errors: BTreeMap::new(),
            first_eaddrnotavail: None,
            first_eaddrinuse: None,
            completions: Vec::new(),
            failures: Vec::new(),
            zero_rtt: ZeroRtt {
                connections: 0,
                attempted: 0,
                accepted: 0,
                ratio: 0.0,
            },
            transactions: 0,
            pacer_busy_ns: 0,
        }
    }

    fn add(&mut self, measured: bool, intended: u64, result: Result<Timings, Failure>) {
        match result {
            Ok(t) => {
                self.completions.push(theory::Completion {
                    done_ns: t.done,
                    connect_ns: t.connected.saturating_sub(t.connect_start),
                });
                if !measured {
                    return;
                }
                self.completed += 1;
                record(&mut self.connect_lat, t.connected.saturating_sub(t.connect_start));
                record(&mut self.handshake_lat, t.secured.saturating_sub(t.connect_start));
                record(&mut self.ttfb, t.first_byte.saturating_sub(t.connect_start));
                record(&mut self.txn_lat, t.done.saturating_sub(intended));
                if let Some(accepted) = t.zero_rtt {
                    self.zero_rtt.attempted += 1;
                    self.zero_rtt.accepted += accepted as u64;
                }
            }
            Err(f) => {
                self.failures.push(f.at_ns);
                let first = match f.cause.as_str() {
                    "EADDRNOTAVAIL" => Some(&mut self.first_eaddrnotavail),
                    "EADDRINUSE" => Some(&mut self.first_eaddrinuse),
                    _ => None,
                };
                if let Some(first) = first.filter(|t| t.is_none_or(|t| f.at_ns < t)) {
                    *first = Some(f.at_ns);
                }
                if measured {
                    self.failed += 1;
                    *self.errors.entry(f.cause).or_default() += 1;
                }
            }
        }
    }
}

struct Plan {
    rate: f64,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    max_inflight: u32,
    close: CloseMode,
    size: usize,
    /// The trial's, for every request's header.
    token: TrialToken,
    window_opens: crate::spec::WindowOpens,
}

/// Runs the schedule: transaction i starts at its intended time, or as
/// soon after as a slot is free; a transaction still waiting for a slot
/// when the window closes is offered but never started, as is every one
/// the pacer has not reached by its cutoff. Every transaction is over a
/// loss timeout past the cutoff, its close cut short if need be.
async fn run_schedule(
    dialer: Arc<Dialer>,
    peer: SocketAddr,
    local_ip: IpAddr,
    plan: Plan,
) -> std::io::Result<Outcome> {
    let mut pacer = Pacer::new()?;
    let t0 = mono_now_ns() + START_LEAD_NS;
    let schedule = OpenLoopSchedule::new(t0, plan.rate, plan.warmup, plan.duration);
    let measured_start = schedule.intended_ns(schedule.warmup_count());
    plan.window_opens.tell(measured_start);
    let end = measured_start + plan.duration.as_nanos() as u64;
    let slots = Arc::new(Semaphore::new(plan.max_inflight as usize));
    let close_by = tokio_instant_at(schedule.cutoff_ns() + plan.timeout.as_nanos() as u64);
    let mut tasks = JoinSet::new();
    let mut out = Outcome::new(
        t0,
        measured_start,
        plan.duration.as_nanos() as u64,
        schedule.total() - schedule.warmup_count(),
    );
    for i in 0..schedule.total() {
        let intended = schedule.intended_ns(i);
        pacer.wait_until(intended).await?;
        let now = mono_now_ns();
        // So far behind that the window is over: the rest never start.
        if now >= schedule.cutoff_ns() {
            break;
        }
        let measured = schedule.is_measured(i);
        if measured {
            record(&mut out.send_lag, now.saturating_sub(intended));
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let left = Duration::from_nanos(end.saturating_sub(mono_now_ns()));
                match tokio::time::timeout(left, slots.clone().acquire_owned()).await {
                    Ok(p) => p.expect("the semaphore is never closed"),
                    Err(_) => break,
                }
            }
        };
        if mono_now_ns() >= end && measured {
            break;
        }
        out.started += measured as u64;
        out.transactions += 1;
        let (dialer, size, close, token) = (dialer.clone(), plan.size, plan.close, plan.token);
        let limit = plan
            .timeout
            .saturating_sub(Duration::from_nanos(mono_now_ns().saturating_sub(intended)));
        if limit.is_zero() {
            // It waited out its whole loss timeout for a slot: failed,
            // without a connection.
            let failure = Failure {
                cause: "timeout".into(),
                at_ns: mono_now_ns(),
            };
            out.add(measured, intended, Err(failure));
            continue;
        }
        tasks.spawn(async move {
            let _slot = permit;
            let header = MessageHeader::request(token, 0, i, intended);
            let result = dialer
                .transaction(peer, local_ip, header, size, close, limit, close_by)
                .await;
            (measured, intended, result)
        });
        while let Some(done) = tasks.try_join_next() {
            let (measured, intended, result) = done.expect("transactions do not panic");
            out.add(measured, intended, result);
        }
    }
    // Every transaction is bounded (its timeout, then `close_by`).
    while let Some(done) = tasks.join_next().await {
        let (measured, intended, result) = done.expect("transactions do not panic");
        out.add(measured, intended, result);
    }
    out.pacer_busy_ns = pacer.busy_ns();
    out.completions.sort_unstable();
    out.failures.sort_unstable();
    Ok(out)
}

/// The ports the client's connections draw from, and who set them. A
/// per-socket range only narrows the namespace's (the kernel takes the
/// intersection, and ignores a range that misses it), except when the
/// client binds each port itself (`cycle`).
fn port_range(spec: &ChurnOptions, sysctls: &BTreeMap<String, String>) -> anyhow::Result<PortRange> {
    let system = sysctls
        .get("net.ipv4.ip_local_port_range")
        .and_then(|v| parse_port_range(v).ok())
        .unwrap_or((32768, 60999));
    let (range, set_by) = match spec.port_range {
        Some(r) if spec.port_range_in_namespace => (r, PortRangeSource::Sysctl),
        Some(r) if spec.port_cycle => (r, PortRangeSource::Bind),
        Some((lo, hi)) => {
            let (lo2, hi2) = (lo.max(system.0), hi.min(system.1));
            if lo2 > hi2 {
                anyhow::bail!(
                    "--port-range {lo}-{hi} lies outside this namespace's ip_local_port_range {}-{}: a \
                     per-socket range (IP_LOCAL_PORT_RANGE) can only narrow it; pick ports inside it, or \
                     run in the testbed (--impair...), where --port-range sets the namespace's own",
                    system.0,
                    system.1
                );
            }
            if (lo2, hi2) != (lo, hi) {
                tracing::warn!(
                    "--port-range {lo}-{hi}: the kernel uses only {lo2}-{hi2}, its part of this namespace's \
                     ip_local_port_range {}-{}",
                    system.0,
                    system.1
                );
            }
            ((lo2, hi2), PortRangeSource::Socket)
        }
        None => (system, PortRangeSource::System),
    };
    Ok(PortRange {
        lo: range.0,
        hi: range.1,
        ports: u32::from(range.1 - range.0) + 1,
        set_by,
    })
}

/// What setting up a connection of `transport` costs, in theory.
fn setup_of(transport: Transport) -> anyhow::Result<Setup> {
    let caps = transport.capabilities();
    Ok(match (caps.carrier, caps.tls, caps.zero_rtt) {
        (Carrier::Tcp, false, false) => Setup::Tcp,
        (Carrier::Tcp, true, false) => Setup::TcpTls13,
        (Carrier::Quic, _, false) => Setup::Quic,
        (Carrier::Quic, _, true) => Setup::Quic0Rtt,
        (Carrier::Udp, ..) | (Carrier::Tcp, _, true) => {
            anyhow::bail!("{transport} opens no connection of a kind churn can time")
        }
    })
}

/// The receiver's side of churn and handshake: one transaction per connection, closed as the
/// sender asked, with this namespace watched from Start to Stop.
pub async fn serve(
    setup: &TrialSetup,
    close: CloseMode,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
) -> anyhow::Result<TrialServer> {
    let size = setup.size as usize;
    let counters = Arc::new(ServeCounters::default());
    let mut tasks = JoinSet::new();
    let mut quic_endpoint = None;
    let data_port = match setup.transport.capabilities().carrier {
        Carrier::Quic => {
            let (endpoint, data_port) = listen::bind_quic(setup, ctx, local_ip)?;
            tasks.spawn(serve_quic(
                endpoint.clone(),
                peer,
                size,
                close,
                setup.transport.capabilities().zero_rtt,
                counters.clone(),
            ));
            quic_endpoint = Some(endpoint);
            data_port
        }
        Carrier::Tcp => {
            let role = listen::ConnectionRole::Transaction(size, close);
            listen::serve_tcp(setup, ctx, local_ip, peer, counters.clone(), role, &mut tasks).await?
        }
        Carrier::Udp => anyhow::bail!(
            "{} opens no connections: churn needs a connection per transaction",
            setup.transport
        ),
    };
    Ok(TrialServer {
        tasks,
        counters,
        cpu_start: thread_cpu_ns(),
        quic: quic_endpoint,
        records: Box::new(TimeWaitRecords::new(
            setup
                .transport
                .is_tcp()
                .then_some(procnet::PortFilter::Local(data_port..=data_port)),
        )),
        data_port,
        token: peer.token,
    })
}

/// Runs one churn or handshake trial on an authenticated control session.
pub async fn run_trial(
    mut ctl: ControlChannel,
    boot_id: Option<String>,
    addr: SocketAddr,
    spec: &TrialSpec,
    churn: &ChurnSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    let rate = churn.rate;
    let local_ip = ctl.stream().local_addr()?.ip();
    let options = &churn.options;
    let admitted = session::setup(&mut ctl, spec.setup()).await?;
    let (port, cert, token) = (admitted.data_port, admitted.cert, admitted.token);
    let peer = SocketAddr::new(addr.ip(), port);
    let sysctls = procnet::read_sysctls(procnet::CHURN_SYSCTLS);
    // QUIC: one UDP socket carries every connection; no port range applies.
    let range = (!spec.transport.is_quic())
        .then(|| port_range(options, &sysctls))
        .transpose()?;
    let control_port = ctl.stream().local_addr()?.port();
    let zero_rtt = spec.transport.capabilities().zero_rtt;
    let mut endpoint = None;
    let caps = spec.transport.capabilities();
    let dialer = match caps.carrier {
        Carrier::Quic => {
            let pin = transport::pinned(cert.clone())?;
            let cc = spec.congestion.as_deref();
            let e = transport::quic_client(local_ip, cert, cc, token)?;
            endpoint = Some(e.clone());
            Dialer::Quic {
                endpoint: e,
                zero_rtt: zero_rtt
                    .then(|| tls::ZeroRttClient::new(&pin, cc, token).map(Box::new))
                    .transpose()?,
            }
        }
        Carrier::Tcp => Dialer::Tcp {
            congestion: (!congestion::is_namespace_default(spec.congestion.as_deref()))
                .then(|| spec.congestion.clone()),
            tls: caps.tls.then(|| transport::tls_connector(cert)).transpose()?,
            token,
            ports: match (&range, options.port_cycle) {
                (Some(range), true) => PortChoice::Cycle {
                    range: (range.lo, range.hi),
                    next: Default::default(),
                    skip: control_port,
                },
                _ => PortChoice::Kernel {
                    socket_range: range
                        .as_ref()
                        .filter(|r| r.set_by == PortRangeSource::Socket)
                        .map(|r| (r.lo, r.hi)),
                },
            },
            pinned: Default::default(),
        },
        Carrier::Udp => anyhow::bail!(
            "{} opens no connections: churn needs a connection per transaction",
            spec.transport
        ),
    };
    let dialer = Arc::new(dialer);
    if zero_rtt {
        // The session ticket every later connection resumes with.
        dialer
            .transaction(
                peer,
                local_ip,
                MessageHeader::request(token, 0, u64::MAX, mono_now_ns()),
                spec.size,
                CloseMode::Client,
                spec.loss_timeout,
                // No trial's end yet: the wait for its ticket has its own bound.
                tokio::time::Instant::now() + spec.loss_timeout + CLOSE_WAIT,
            )
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "the first QUIC connection, for a session ticket, failed: {}",
                    f.cause
                )
            })?;
    }
    ctl.send(&ControlMsg::Start).await?;
    let start_mono = mono_now_ns();
    let trial_sockets = spec
        .transport
        .is_tcp()
        .then_some(procnet::PortFilter::Remote(port));
    let watch = NamespaceWatch::start(trial_sockets).context("starting the TIME_WAIT sampler")?;
    let cpu_start = thread_cpu_ns();
    let plan = Plan {
        rate,
        warmup: spec.warmup,
        duration: spec.duration,
        timeout: spec.loss_timeout,
        max_inflight: options.max_inflight,
        close: options.close,
        size: spec.size,
        token,
        window_opens: spec.window_opens.clone(),
    };
    let limit = schedule::data_plane_limit(spec.warmup, spec.duration, spec.loss_timeout);
    let outcome = session::while_receiver_quiet(
        &mut ctl,
        limit,
        run_schedule(dialer.clone(), peer, local_ip, plan),
    )
    .await;
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    let (sender_ns, sender_samples) = watch.finish();
    let outcome = outcome?;
    if let Some(e) = endpoint {
        transport::quic_close(&e, None).await;
    }
    session::wait_while_rejecting(spec).await;
    ctl.send(&ControlMsg::Stop {
        expect: None,
        wait_ns: 0,
    })
    .await?;
    let collected = session::collect(&mut ctl, Duration::ZERO).await?;
    let (receiver_samples, mut receiver) = (collected.time_wait, collected.report);
    let receiver_ns = receiver.namespace.take();
    // One host, one clock; across hosts, line the receiver's start up
    // with the Start frame's.
    let shift = match (&receiver_ns, boot_id == crate::host::boot_id()) {
        (Some(r), false) => start_mono as i64 - r.start_mono_ns as i64,
        _ => 0,
    };
    let tcp_congestion = match &*dialer {
        Dialer::Tcp { pinned, .. } => pinned.get().cloned(),
        Dialer::Quic { .. } => None,
    };
    let rows = theory::merge_time_wait(
        outcome.t0,
        SAMPLE_INTERVAL_NS,
        &sender_samples,
        &receiver_samples,
        shift,
        &outcome.completions,
        &outcome.failures,
    );
    let sides = Sides {
        sender: sender_ns,
        receiver: receiver_ns,
        port,
    };
    build_result(
        spec,
        churn,
        addr,
        id,
        outcome,
        rows,
        sides,
        range,
        receiver,
        cpu_ns,
        tcp_congestion,
    )
}

/// Both agents' namespaces, and the data port that picks the trial's
/// sockets out of them.
struct Sides {
    sender: NamespaceReport,
    receiver: Option<NamespaceReport>,
    port: u16,
}

#[allow(clippy::too_many_arguments)]
fn build_result(
    spec: &TrialSpec,
    churn: &ChurnSpec,
    addr: SocketAddr,
    id: String,
    mut o: Outcome,
    rows: Vec<theory::TimeWaitRow>,
    sides: Sides,
    port_range: Option<PortRange>,
    receiver: transbench_wire::ReceiverReport,
    cpu_ns: u64,
    tcp_congestion: Option<String>,
) -> anyhow::Result<TrialResult> {
    let measured_s = o.measured_ns as f64 / 1e9;
    let txn_lat = LatencySummary::from_histogram(&o.txn_lat)?;
    let send_lag = LatencySummary::from_histogram(&o.send_lag)?;
    let ttfb = LatencySummary::from_histogram(&o.ttfb)?;
    let closer = match churn.options.close {
        CloseMode::Client => Closer::Client,
        CloseMode::Server => Closer::Server,
        CloseMode::Rst => Closer::Rst,
    };
    let sysctl = |side: &NamespaceReport, name: &str| side.sysctls.get(name).cloned();
    let closing_side = match closer {
        Closer::Server => sides.receiver.as_ref().unwrap_or(&sides.sender),
        _ => &sides.sender,
    };
    let pressure = theory::port_pressure(&ChurnPath {
        ports: port_range.as_ref().map_or(0, |r| r.ports),
        offered_rate: churn.rate,
        elapsed_s: (spec.warmup + spec.duration).as_secs_f64(),
        closer,
        tw_reuse: sysctl(&sides.sender, "net.ipv4.tcp_tw_reuse").and_then(|v| v.parse().ok()),
        loopback: addr.ip().is_loopback(),
        quic: spec.transport.is_quic(),
        max_tw_buckets: sysctl(closing_side, "net.ipv4.tcp_max_tw_buckets").and_then(|v| v.parse().ok()),
        port_cycle: churn.options.port_cycle,
        timestamps: sysctl(&sides.sender, "net.ipv4.tcp_timestamps").map(|v| v != "0"),
    });
    let setup = setup_of(spec.transport)?;
    let rtt_ns = spec.path_rtt_ns;
    let expectation = ChurnExpectation {
        time_wait_s: theory::TIME_WAIT_S,
        sustainable_rate: pressure.sustainable_rate,
        exhaustion_after_ns: pressure.exhaustion_after_s.map(|s| (s * 1e9) as u64),
        time_wait_side: match pressure.side {
            theory::TimeWaitSide::Sender => TimeWaitSide::Sender,
            theory::TimeWaitSide::Receiver => TimeWaitSide::Receiver,
            theory::TimeWaitSide::Neither => TimeWaitSide::None,
        },
        time_wait_expected: pressure.time_wait_expected,
        port_note: pressure.note,
        ttfb_rtts: setup.ttfb_rtts(),
        rtt_ns,
        ttfb_ns: rtt_ns.map(|r| (setup.ttfb_rtts() * r as f64) as u64),
        ttfb_measured_rtts: rtt_ns
            .filter(|&r| r > 0 && ttfb.count > 0)
            .map(|r| ttfb.p50 as f64 / r as f64),
    };
    let zero_rtt = (spec.transport == Transport::Quic0Rtt).then(|| {
        o.zero_rtt.connections = o.completed;
        o.zero_rtt.ratio = if o.zero_rtt.attempted > 0 {
            o.zero_rtt.accepted as f64 / o.zero_rtt.attempted as f64
        } else {
            0.0
        };
        o.zero_rtt
    });
    let mut tcp_ext = BTreeMap::new();
    let mut sysctls = BTreeMap::new();
    for (name, side) in [
        ("sender", Some(&sides.sender)),
        ("receiver", sides.receiver.as_ref()),
    ] {
        if let Some(side) = side {
            tcp_ext.insert(
                name.to_string(),
                CounterDelta {
                    before: side.tcp_ext_before.clone(),
                    after: side.tcp_ext_after.clone(),
                },
            );
            sysctls.insert(name.to_string(), side.sysctls.clone());
        }
    }
    let churn = ChurnMetrics {
        data_port: sides.port,
        close: churn.options.close,
        port_choice: if churn.options.port_cycle {
            transbench_reports::PortChoice::Cycle
        } else {
            transbench_reports::PortChoice::Kernel
        },
        port_range,
        max_inflight: churn.options.max_inflight,
        offered: o.offered,
        started: o.started,
        completed: o.completed,
        failed: o.failed,
        offered_rate: o.offered as f64 / measured_s,
        achieved_rate: o.completed as f64 / measured_s,
        errors: o.errors,
        first_eaddrnotavail_ns: o.first_eaddrnotavail.map(|t| t.saturating_sub(o.t0)),
        first_eaddrinuse_ns: o.first_eaddrinuse.map(|t| t.saturating_sub(o.t0)),
        connect_lat: LatencySummary::from_histogram(&o.connect_lat)?,
        handshake_lat: LatencySummary::from_histogram(&o.handshake_lat)?,
        ttfb,
        txn_lat: txn_lat.clone(),
        zero_rtt,
        time_wait: TimeWaitSeries {
            interval_ns: SAMPLE_INTERVAL_NS,
            samples: rows
                .into_iter()
                .map(|r| TimeWaitPoint {
                    t_ns: r.t_ns,
                    sender: r.sender,
                    receiver: r.receiver.map(|x| x.0),
                    sender_trial: r.sender_trial,
                    receiver_trial: r.receiver.and_then(|x| x.1),
                    completed: r.completed,
                    failed: r.failed,
                    connect_p99_ns: r.connect_p99_ns,
                })
                .collect(),
        },
        tcp_ext,
        sysctls,
        expectation,
    };
    let mut result = super::trial_result(
        spec,
        id,
        super::Measured {
            peer: addr,
            start: wall_at(o.measured_start),
            measured_ns: o.measured_ns,
            counters: transbench_reports::Counters {
                sent: o.started,
                received: o.completed,
                lost: o.failed,
                late: 0,
                duplicates: 0,
                errors: o.failed,
                icmp_errors: 0,
            },
            // What never started is counted in `churn` as offered, not started.
            unsent: 0,
            latency_kind: LatencyKind::Rtt,
            lat: txn_lat,
            send_lag,
            cpu_ns,
            pacer_busy_ns: o.pacer_busy_ns,
            messages: o.transactions,
            // Failed connections are this workload's findings, not a broken trial.
            errors: ErrorLog::default(),
            receiver,
            tcp_congestion,
        },
    );
    result.churn = Some(churn);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_says_who_set_it() {
        let sysctls: BTreeMap<String, String> = [(
            "net.ipv4.ip_local_port_range".to_string(),
            "1000 1999".to_string(),
        )]
        .into();
        let mut options = ChurnOptions::default();
        let system = port_range(&options, &sysctls).unwrap();
        assert_eq!(
            (system.lo, system.hi, system.ports, system.set_by.name()),
            (1000, 1999, 1000, "system")
        );
        // Per socket: only the part inside the namespace's range counts...
        options.port_range = Some((1900, 2099));
        let socket = port_range(&options, &sysctls).unwrap();
        assert_eq!(
            (socket.lo, socket.hi, socket.ports, socket.set_by.name()),
            (1900, 1999, 100, "socket")
        );
        // ...and one outside it is refused.
        options.port_range = Some((40000, 40199));
        assert!(port_range(&options, &sysctls)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        options.port_cycle = true;
        assert_eq!(port_range(&options, &sysctls).unwrap().set_by.name(), "bind");
        options.port_cycle = false;
        options.port_range_in_namespace = true;
        let ns = port_range(&options, &sysctls).unwrap();
        assert_eq!((ns.ports, ns.set_by.name()), (200, "sysctl"));
    }

    #[test]
    fn outcomes_count_measured_transactions_and_time_every_end() {
        let mut o = Outcome::new(0, 0, 1, 3);
        (o.started, o.transactions) = (3, 3);
        let timings = Timings {
            connect_start: 100,
            connected: 200,
            secured: 300,
            first_byte: 400,
            done: 500,
            zero_rtt: Some(true),
        };
        let fail = |cause: &str, at_ns| Failure {
            cause: cause.into(),
            at_ns,
        };
        o.add(false, 50, Err(fail("EADDRNOTAVAIL", 900)));
        o.add(true, 50, Ok(timings));
        o.add(true, 60, Err(fail("EADDRNOTAVAIL", 700)));
        o.add(true, 60, Err(fail("ECONNRESET", 800)));
        assert_eq!((o.completed, o.failed), (1, 2));
        assert_eq!(o.errors["EADDRNOTAVAIL"], 1, "warm-up failures are not counted");
        assert_eq!(o.first_eaddrnotavail, Some(700), "but they are timed");
        assert_eq!((o.failures.len(), o.completions.len()), (3, 1));
        assert_eq!(o.txn_lat.max(), 450);
        assert_eq!(o.ttfb.max(), 300);
        assert_eq!((o.zero_rtt.attempted, o.zero_rtt.accepted), (1, 1));
    }
}
