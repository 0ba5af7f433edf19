//! The request/response workload, both sides: requests on an open-loop
//! schedule (or ping-pong), each answered by the receiver, latency the
//! round trip from the intended send time; turned into a [`TrialResult`].

pub mod engine;

use crate::measure::outage::{
    outage_metrics, quic_timer_in, tcp_timer_before, QuicReading, RtoReading, SEND_READING_EVERY_NS,
};
use crate::measure::timeline::schedule_timeline;
use transbench_analysis::recovery::theory::{Blackholed, LINUX_TCP_RETRIES2, QUINN_DEFAULT_IDLE_TIMEOUT_NS};
use transbench_reports::{OutageMetrics, ReconnectRecord};

use anyhow::{bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::UdpSocket;
use transbench_reports::{LatencyKind, LatencySummary, TrialResult};
use transbench_wire::processed::{self, IDS_PER_FRAME};
use transbench_wire::{
    Carrier, ControlMsg, QuicStreamMode, ReceiverDelivery, ReceiverReport, TrialSetup, WorkloadSetup,
};

use super::records::{DatagramTally, NoRecords, TrialRecords, Waiting};
use super::TrialServer;
use crate::clock::thread_cpu_ns;
use crate::control_io::ControlChannel;
use crate::dataplane::listen::{self, ServerTls};
use crate::dataplane::quic_dgram::{self, DatagramLedger};
use crate::dataplane::ErrorLog;
use crate::dataplane::{quic, stream, udp, RequestSink, ResponseSource};
use crate::dataplane::{ServeCounters, TrialPeer};
use crate::fault::FaultKind;
use crate::measure::delivery::{self, ProcessLog};
use crate::schedule;
use crate::session;
use crate::spec::{RrSpec, TrialSpec};
use crate::transport::{self, congestion};
use engine::{Reconnect, Redial, RrOutcome, RrPlan};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::task::JoinSet;
use transbench_wire::auth::Secret;
use transbench_wire::TrialToken;

/// Counting delivery, the longest the receiver waits after Stop for the
/// trial's sends to arrive (what is in flight when the sender stops): a
/// loss timeout, at most this. On a path that loses requests it waits all
/// of it.
const SETTLE: Duration = Duration::from_secs(1);

/// The sessions reconnects set the trial up on, each with its token: the
/// trial ends on the one whose plane the engine used last.
type Sessions = Arc<Mutex<Vec<(TrialToken, ControlChannel)>>>;

/// Runs the data plane from Start to the receiver's records. A trial
/// whose receiver crashes loses its session with it: its records are then
/// the last session's (the receiver started again saw only what came
/// after the reconnect), or `None` when that session is gone too.
async fn drive<S: RequestSink, R: ResponseSource>(
    mut ctl: ControlChannel,
    spec: &TrialSpec,
    plan: RrPlan,
    sink: S,
    source: R,
    reconnect: Option<(Reconnect<S, R>, Sessions)>,
) -> anyhow::Result<(RrOutcome, Option<session::Collected>)> {
    ctl.send(&ControlMsg::Start).await?;
    let limit = schedule::data_plane_limit(plan.warmup, plan.duration, plan.loss_timeout);
    // Counting delivery: the receiver waits for every send to arrive.
    let settle = plan.loss_timeout.min(SETTLE);
    let crash = spec.receiver_fault.is_some_and(|f| f.kind == FaultKind::Crash);
    let (reconnect, sessions) = reconnect.unzip();
    // A session may be lost with its receiver, in a crash this run makes
    // or one a reconnect outlives.
    let session_may_die = crash || sessions.is_some();
    let engine = engine::run(plan, sink, source, reconnect);
    let outcome = if session_may_die {
        // Only the limit stops the data plane, not the session's end.
        session::within_limit(limit, engine).await?
    } else {
        session::while_receiver_quiet(&mut ctl, limit, engine).await?
    };
    // A connection reset by a rejecting path ends the data plane inside
    // the reject.
    session::wait_while_rejecting(spec).await;
    // A redial that finished after the last request set up a session that
    // saw nothing: the trial ends on the one its last plane used.
    let redialed = sessions.map(|l| std::mem::take(&mut *l.lock().expect("sessions lock")));
    let used = outcome.reconnects.as_ref().and_then(|r| r.last_token);
    if let Some((_, last)) = redialed
        .into_iter()
        .flatten()
        .find(|(token, _)| Some(*token) == used)
    {
        ctl = last;
    }
    let (expect, drain) = match &outcome.sent_log {
        Some(sent) => (Some(sent.sends), settle),
        None => (None, Duration::ZERO),
    };
    let stop = ControlMsg::Stop {
        expect,
        wait_ns: drain.as_nanos() as u64,
    };
    let collected = async {
        ctl.send(&stop).await?;
        session::collect(&mut ctl, drain).await
    }
    .await;
    match collected {
        Ok(c) => Ok((outcome, Some(c))),
        Err(e) if session_may_die && session::lost_session(&e) => {
            tracing::warn!("no report from the receiver: its session was lost ({e:#})");
            Ok((outcome, None))
        }
        Err(e) => Err(e),
    }
}

/// The receiver's side: answers every request with a response of the
/// same size, on the transport the sender asked for.
pub async fn serve(
    setup: &TrialSetup,
    udp_peer_port: Option<u16>,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
) -> anyhow::Result<TrialServer> {
    let size = setup.size as usize;
    let process_log = match (&setup.workload, tracked_ids(setup)) {
        (
            WorkloadSetup::Rr {
                delivery: Some(d), ..
            },
            Some(ids),
        ) => Some(Arc::new(Mutex::new(ProcessLog::new(ids, d.idempotency_keys)))),
        _ => None,
    };
    let counters = Arc::new(match &process_log {
        Some(log) => ServeCounters::counting_delivery(log.clone()),
        None => ServeCounters::default(),
    });
    let mut tasks = JoinSet::new();
    let mut quic_endpoint = None;
    let mut records: Box<dyn TrialRecords> = Box::new(NoRecords);
    let caps = setup.transport.capabilities();
    let data_port = match caps.carrier {
        Carrier::Udp => {
            let port = udp_peer_port.context("UDP setup without the sender's data port")?;
            let sock = UdpSocket::bind((local_ip, 0)).await?;
            // Connected: the kernel drops datagrams from anyone else.
            sock.connect((peer.ip, port)).await?;
            let data_port = sock.local_addr()?.port();
            let c = counters.clone();
            tasks.spawn(async move {
                if let Err(e) = udp::serve(sock, size, peer.token, c).await {
                    tracing::warn!("UDP data plane failed: {e}");
                }
            });
            data_port
        }
        Carrier::Tcp => {
            let role = listen::ConnectionRole::Serve(size);
            listen::serve_tcp(setup, ctx, local_ip, peer, counters.clone(), role, &mut tasks).await?
        }
        Carrier::Quic => {
            let (endpoint, data_port) = listen::bind_quic(setup, ctx, local_ip)?;
            if setup.transport.is_quic_datagram() {
                let ledger = Arc::new(DatagramLedger::default());
                tasks.spawn(quic_dgram::serve(
                    endpoint.clone(),
                    peer,
                    size,
                    counters.clone(),
                    ledger.clone(),
                ));
                records = Box::new(DatagramTally::new(ledger));
            } else {
                tasks.spawn(quic::serve(endpoint.clone(), peer, size, counters.clone()));
            }
            quic_endpoint = Some(endpoint);
            data_port
        }
    };
    if let Some(log) = process_log {
        records = Box::new(ProcessedRecords { log, inner: records });
    }
    Ok(TrialServer {
        tasks,
        counters,
        cpu_start: thread_cpu_ns(),
        quic: quic_endpoint,
        records,
        data_port,
        token: peer.token,
    })
}

/// Ids beyond a trial's scheduled requests a receiver counting delivery
/// still counts one by one: the sender's schedule and the setup's
/// `messages` round the same window apart.
pub const ID_MARGIN: u64 = 16;

/// Request ids a receiver counting delivery for `setup` counts one by
/// one (and reserves 3 bytes each for): the trial's scheduled requests,
/// at most [`crate::spec::MAX_MESSAGES`], and a margin; `None` when it
/// counts none.
pub fn tracked_ids(setup: &TrialSetup) -> Option<usize> {
    match setup.workload {
        WorkloadSetup::Rr {
            delivery: Some(_), ..
        } => {
            let scheduled = setup.plan.messages.unwrap_or(0).min(crate::spec::MAX_MESSAGES);
            Some((scheduled + ID_MARGIN) as usize)
        }
        _ => None,
    }
}

/// rr counting delivery: the receiver's per-id counts, sent in
/// `Processed` frames after Stop (with whatever the transport records
/// besides, `inner`).
struct ProcessedRecords {
    log: Arc<Mutex<ProcessLog>>,
    inner: Box<dyn TrialRecords>,
}

impl TrialRecords for ProcessedRecords {
    fn start(&mut self) {
        self.inner.start();
    }

    /// Waits until `expect` sends (first sends and retries) have arrived.
    fn await_done(&self, expect: u64, wait: Duration) -> Waiting<'_> {
        let log = self.log.clone();
        Box::pin(async move {
            crate::dataplane::poll_until(wait, || {
                log.lock().expect("process log lock").arrivals() >= expect
            })
            .await;
        })
    }

    fn stop(&mut self) {
        self.inner.stop();
    }

    fn finish(self: Box<Self>, report: &mut ReceiverReport) -> Vec<ControlMsg> {
        let log = self.log.lock().expect("process log lock");
        report.delivery = Some(ReceiverDelivery {
            tracked_ids: log.tracked(),
            beyond_ids: log.beyond_ids(),
            idempotency_keys: log.idempotency_keys(),
        });
        let mut frames: Vec<ControlMsg> = log
            .counts()
            .chunks(IDS_PER_FRAME)
            .enumerate()
            .map(|(i, batch)| ControlMsg::Processed {
                first: (i * IDS_PER_FRAME) as u64,
                counts: processed::encode(batch),
            })
            .collect();
        drop(log);
        frames.extend(self.inner.finish(report));
        frames
    }
}

/// Runs one request/response trial on an authenticated control session
/// (`secret` authenticates the sessions of a reconnect).
pub async fn run_trial(
    ctl: ControlChannel,
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    rr: &RrSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    // Outages and the timeline are measured from every request's fate
    // (open-loop only).
    let keep_samples = (spec.link_changes || !spec.blackouts.is_empty()) && rr.rate.is_some();
    let rejoin = rr.reconnect.map(|every| Rejoin {
        addr,
        secret: secret.cloned(),
        every,
        sessions: Sessions::default(),
    });
    Ok(run_keeping_samples(ctl, addr, rejoin, spec, rr, id, keep_samples)
        .await?
        .0)
}

/// What a reconnect needs to set the trial up again on a new session.
#[derive(Clone)]
pub struct Rejoin {
    addr: SocketAddr,
    secret: Option<Secret>,
    every: Duration,
    sessions: Sessions,
}

/// A data plane on a session: sets the trial up on `ctl` (it gets
/// `Ready`), connects, and gives the session back with the sink, the
/// source and the session's token. Made once, and again for each
/// reconnect.
trait MakePlane<S, R>: Fn(ControlChannel) -> Making<S, R> + Clone + Send + 'static {}

impl<S, R, F> MakePlane<S, R> for F where F: Fn(ControlChannel) -> Making<S, R> + Clone + Send + 'static {}

/// A plane being made: the session back, the sink, the source, the token.
type Making<S, R> = Pin<Box<dyn Future<Output = anyhow::Result<(ControlChannel, S, R, TrialToken)>> + Send>>;

/// A [`MakePlane`]'s future, boxed.
fn plane<S, R>(
    making: impl Future<Output = anyhow::Result<(ControlChannel, S, R, TrialToken)>> + Send + 'static,
) -> Making<S, R> {
    Box::pin(making)
}

/// Makes the data plane on `ctl` with `make`, and drives the trial on it;
/// with `rejoin`, on the planes `make` makes on new sessions after a lost
/// connection too.
async fn drive_made<S: RequestSink, R: ResponseSource>(
    ctl: ControlChannel,
    spec: &TrialSpec,
    plan: impl FnOnce(TrialToken) -> RrPlan,
    rejoin: Option<Rejoin>,
    make: impl MakePlane<S, R>,
) -> anyhow::Result<(RrOutcome, Option<session::Collected>)> {
    let (ctl, sink, source, token) = make(ctl).await?;
    let reconnect = rejoin.map(|join| {
        let sessions = join.sessions.clone();
        let every = join.every;
        let redial: Redial<S, R> = Box::new(move || {
            let (join, make) = (join.clone(), make.clone());
            Box::pin(async move {
                let (ctl, _) = session::connect(join.addr, join.secret.as_ref()).await?;
                let (mut ctl, sink, source, token) = make(ctl).await?;
                ctl.send(&ControlMsg::Start).await?;
                join.sessions.lock().expect("sessions lock").push((token, ctl));
                Ok((sink, source, token))
            })
        });
        (Reconnect { redial, every }, sessions)
    });
    drive(ctl, spec, plan(token), sink, source, reconnect).await
}

/// A transport's retransmission timer, read periodically while the trial
/// runs, for the recovery its backoff predicts from each outage.
struct TimerWatch<T> {
    readings: Arc<Mutex<Vec<T>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Send + 'static> TimerWatch<T> {
    /// Calls `read` every `every` with the readings so far, for it to add
    /// one (or not); until it says there is nothing more to read.
    fn start(every: Duration, mut read: impl FnMut(&mut Vec<T>) -> bool + Send + 'static) -> Self {
        let readings = Arc::new(Mutex::new(Vec::new()));
        let shared = readings.clone();
        let task = tokio::spawn(async move {
            while read(&mut shared.lock().expect("timer readings")) {
                tokio::time::sleep(every).await;
            }
        });
        TimerWatch { readings, task }
    }

    fn finish(self) -> Vec<T> {
        self.task.abort();
        std::mem::take(&mut *self.readings.lock().expect("timer readings"))
    }
}

/// TCP's timer: `tcpi_rto` and its backoff from TCP_INFO every 10 ms.
fn watch_tcp_timer(socket: std::os::fd::OwnedFd) -> TimerWatch<RtoReading> {
    TimerWatch::start(Duration::from_millis(10), move |readings| {
        match crate::transport::tcp_info::retransmission_timer(&socket) {
            Ok(state) => {
                let t_ns = transbench_wire::clock::mono_now_ns();
                readings.push(RtoReading { t_ns, state });
                true
            }
            Err(_) => false,
        }
    })
}

/// quinn's timer, which it does not expose: what the connection sent and
/// received, each time that changes (read every
/// [`SEND_READING_EVERY_NS`]), from which the probes and their backoff
/// show.
fn watch_quic(conn: quinn::Connection) -> TimerWatch<QuicReading> {
    TimerWatch::start(Duration::from_nanos(SEND_READING_EVERY_NS), move |readings| {
        let stats = conn.stats();
        let sent_packets = stats.path.sent_packets - stats.path.sent_plpmtud_probes;
        let received_datagrams = stats.udp_rx.datagrams;
        if readings.last().is_none_or(|r: &QuicReading| {
            (r.sent_packets, r.received_datagrams) != (sent_packets, received_datagrams)
        }) {
            readings.push(QuicReading {
                t_ns: transbench_wire::clock::mono_now_ns(),
                sent_packets,
                received_datagrams,
                rtt_ns: stats.path.rtt.as_nanos() as u64,
            });
        }
        true
    })
}

/// The calling thread's namespace's `net.ipv4.tcp_retries2`, Linux's
/// default where it cannot be read.
fn tcp_retries2() -> u32 {
    procnet::read_sysctls(&["net.ipv4.tcp_retries2"])
        .values()
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(LINUX_TCP_RETRIES2)
}

/// What the data planes of a trial noted as they were made, for the
/// result: the first connection's congestion control and timer readings,
/// and every QUIC connection, to close at the end.
#[derive(Default)]
struct PlaneNotes {
    /// The first TCP connection was noted (its congestion control may
    /// not read).
    tcp_noted: bool,
    tcp_congestion: Option<String>,
    rto_watch: Option<TimerWatch<RtoReading>>,
    quic_watch: Option<TimerWatch<QuicReading>>,
    quic: Vec<(quinn::Endpoint, quinn::Connection)>,
}

/// The first TCP connection's congestion control, and its timer watched
/// where a blackhole's recovery is predicted.
fn note_tcp(shared: &SharedNotes, tcp: &tokio::net::TcpStream, predicts: bool) -> anyhow::Result<()> {
    let mut notes = notes(shared);
    if std::mem::replace(&mut notes.tcp_noted, true) {
        return Ok(());
    }
    notes.tcp_congestion = congestion::get(tcp).ok();
    if predicts {
        use std::os::fd::AsFd;
        let socket = tcp
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the data socket")?;
        notes.rto_watch = Some(watch_tcp_timer(socket));
    }
    Ok(())
}

type SharedNotes = Arc<Mutex<PlaneNotes>>;

fn notes(shared: &SharedNotes) -> std::sync::MutexGuard<'_, PlaneNotes> {
    shared.lock().expect("plane notes lock")
}

/// [`run_trial`], and with `keep_samples` (open-loop) every measured
/// request's round trip or loss, by its intended send time.
pub async fn run_keeping_samples(
    ctl: ControlChannel,
    addr: SocketAddr,
    rejoin: Option<Rejoin>,
    spec: &TrialSpec,
    rr: &RrSpec,
    id: String,
    keep_samples: bool,
) -> anyhow::Result<(TrialResult, Vec<crate::measure::tracker::Sample>)> {
    let peer_ip: IpAddr = addr.ip();
    let local_ip = ctl.stream().local_addr()?.ip();
    let plan = |token| RrPlan {
        rate: rr.rate,
        warmup: spec.warmup,
        duration: spec.duration,
        loss_timeout: spec.loss_timeout,
        // Datagrams: the sequence tracker's loss, reordering and jitter.
        log_sequence: !spec.transport.capabilities().reliable,
        keep_samples,
        token,
        window_opens: spec.window_opens.clone(),
        retry: rr.counts_delivery().then(|| rr.retry_policy()),
    };
    let caps = spec.transport.capabilities();
    let mut trial_setup = spec.setup();
    trial_setup.workload = WorkloadSetup::Rr {
        udp_peer_port: None,
        quic_stream: rr.quic_stream,
        delivery: rr.delivery_counting(),
    };
    let size = spec.size;
    let congestion = spec.congestion.clone();
    let mut datagrams = None;
    // A timer is read only where a blackhole's recovery can be predicted.
    let predicts = spec.blackouts.iter().any(|b| b.blackhole().is_some());
    let shared = SharedNotes::default();
    // Read before the connections close, which the readings would show.
    let mut quic_readings = None;
    let cpu_start = thread_cpu_ns();
    let (mut outcome, heard) = match caps.carrier {
        Carrier::Udp => {
            let make = move |mut ctl: ControlChannel| {
                let mut setup = trial_setup.clone();
                plane(async move {
                    let sock = UdpSocket::bind((local_ip, 0))
                        .await
                        .context("binding the UDP data socket")?;
                    if let WorkloadSetup::Rr { udp_peer_port, .. } = &mut setup.workload {
                        *udp_peer_port = Some(sock.local_addr()?.port());
                    }
                    let admitted = session::setup(&mut ctl, setup).await?;
                    sock.connect((peer_ip, admitted.data_port)).await?;
                    let (sink, source) =
                        udp::client(sock, size).context("asking the UDP socket for ICMP errors")?;
                    Ok((ctl, sink, source, admitted.token))
                })
            };
            drive_made(ctl, spec, plan, rejoin, make).await?
        }
        Carrier::Tcp => {
            let connect = {
                let (shared, congestion) = (shared.clone(), congestion.clone());
                move |mut ctl: ControlChannel| {
                    let (setup, shared, congestion) =
                        (trial_setup.clone(), shared.clone(), congestion.clone());
                    async move {
                        let admitted = session::setup(&mut ctl, setup).await?;
                        let tcp = transport::connect_tcp(
                            SocketAddr::new(peer_ip, admitted.data_port),
                            congestion.as_deref(),
                            admitted.token,
                        )
                        .await
                        .context("connecting the TCP data connection")?;
                        note_tcp(&shared, &tcp, predicts)?;
                        Ok::<_, anyhow::Error>((ctl, tcp, admitted))
                    }
                }
            };
            if caps.tls {
                let make = move |ctl: ControlChannel| {
                    let connect = connect.clone();
                    plane(async move {
                        let (ctl, tcp, admitted) = connect(ctl).await?;
                        let connector = transport::tls_connector(admitted.cert)?;
                        let tls = transport::tls_handshake(&connector, tcp).await?;
                        let (r, w) = tokio::io::split(tls);
                        let (sink, source) = stream::client(r, w, size);
                        Ok((ctl, sink, source, admitted.token))
                    })
                };
                drive_made(ctl, spec, plan, rejoin, make).await?
            } else {
                let make = move |ctl: ControlChannel| {
                    let connect = connect.clone();
                    plane(async move {
                        let (ctl, tcp, admitted) = connect(ctl).await?;
                        let (r, w) = tcp.into_split();
                        let (sink, source) = stream::client(r, w, size);
                        Ok((ctl, sink, source, admitted.token))
                    })
                };
                drive_made(ctl, spec, plan, rejoin, make).await?
            }
        }
        Carrier::Quic => {
            let dgram = spec.transport.is_quic_datagram();
            let connect = {
                let (shared, congestion) = (shared.clone(), congestion.clone());
                move |mut ctl: ControlChannel| {
                    let (setup, shared, congestion) =
                        (trial_setup.clone(), shared.clone(), congestion.clone());
                    async move {
                        let admitted = session::setup(&mut ctl, setup).await?;
                        let endpoint = transport::quic_client(
                            local_ip,
                            admitted.cert,
                            congestion.as_deref(),
                            admitted.token,
                        )?;
                        let conn =
                            transport::quic_connect(&endpoint, SocketAddr::new(peer_ip, admitted.data_port))
                                .await?;
                        let mut notes = notes(&shared);
                        // Datagrams are never retransmitted: no timer to predict from.
                        if predicts && !dgram && notes.quic.is_empty() {
                            notes.quic_watch = Some(watch_quic(conn.clone()));
                        }
                        notes.quic.push((endpoint, conn.clone()));
                        Ok::<_, anyhow::Error>((ctl, conn, admitted.token))
                    }
                }
            };
            let result = match rr.quic_stream {
                _ if dgram => {
                    let ledger = Arc::new(DatagramLedger::default());
                    let counted = ledger.clone();
                    let make = move |ctl: ControlChannel| {
                        let (connect, ledger) = (connect.clone(), ledger.clone());
                        plane(async move {
                            let (ctl, conn, token) = connect(ctl).await?;
                            let (sink, source) = quic_dgram::client(conn, size, ledger);
                            Ok((ctl, sink, source, token))
                        })
                    };
                    let driven = drive_made(ctl, spec, plan, rejoin, make).await?;
                    datagrams = Some(counted.counts());
                    driven
                }
                QuicStreamMode::PerRequest => {
                    let stream_errors = Arc::new(Mutex::new(ErrorLog::default()));
                    let failed_streams = stream_errors.clone();
                    let reconnecting = rejoin.is_some();
                    let make = move |ctl: ControlChannel| {
                        let (connect, stream_errors) = (connect.clone(), stream_errors.clone());
                        plane(async move {
                            let (ctl, conn, token) = connect(ctl).await?;
                            let (sink, source) =
                                quic::per_request_client(conn, size, stream_errors, reconnecting);
                            Ok((ctl, sink, source, token))
                        })
                    };
                    let (mut outcome, heard) = drive_made(ctl, spec, plan, rejoin, make).await?;
                    // Taken before the close below: streams it cuts were
                    // already counted lost, and are no transport error.
                    let failed = std::mem::take(&mut *failed_streams.lock().expect("error log lock"));
                    outcome.errors.merge(failed);
                    (outcome, heard)
                }
                QuicStreamMode::Single => {
                    let make = move |ctl: ControlChannel| {
                        let connect = connect.clone();
                        plane(async move {
                            let (ctl, conn, token) = connect(ctl).await?;
                            let (send, recv) = conn.open_bi().await.context("opening the QUIC stream")?;
                            let (sink, source) = stream::client(recv, send, size);
                            Ok((ctl, sink, source, token))
                        })
                    };
                    drive_made(ctl, spec, plan, rejoin, make).await?
                }
            };
            let (watch, connections) = {
                let mut notes = notes(&shared);
                (notes.quic_watch.take(), std::mem::take(&mut notes.quic))
            };
            quic_readings = watch.map(TimerWatch::finish);
            for (endpoint, conn) in connections {
                transport::quic_close(&endpoint, Some(&conn)).await;
            }
            result
        }
    };
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    let PlaneNotes {
        tcp_congestion,
        rto_watch,
        ..
    } = std::mem::take(&mut *notes(&shared));
    let samples = outcome.totals.samples.take().unwrap_or_default();
    // The tracker keeps a bounded number of fates: a timeline of some
    // requests would show the rest as never offered.
    let sent = outcome.totals.counters.sent;
    let schedule_timeline = match (spec.link_changes && keep_samples, samples.len() as u64 == sent) {
        (false, _) => None,
        (true, true) => Some(schedule_timeline(
            &samples,
            outcome.measured_start_ns,
            outcome.measured_ns,
        )),
        (true, false) => {
            tracing::warn!(
                "no schedule timeline: the fates of {} of {sent} requests were kept",
                samples.len()
            );
            None
        }
    };
    // TCP's timer as read during the trial, and when the namespace gives
    // a connection up: read only when there are outages to predict.
    let rto = rto_watch.map(|w: TimerWatch<RtoReading>| (w.finish(), tcp_retries2()));
    let window = outcome.measured_start_ns;
    let outages: Vec<OutageMetrics> = spec
        .blackouts
        .iter()
        .filter_map(|b| {
            let (start, end) = (window + b.start_ns, window + b.end_ns);
            let timer = match (&rto, &quic_readings, b.blackhole()) {
                (_, _, None) => None,
                (Some((readings, retries2)), _, _) => tcp_timer_before(readings, start, *retries2),
                // With only the responses dark, the server's timer counts,
                // which the client cannot read.
                (_, Some(readings), Some(dark)) if dark != Blackholed::Responses => {
                    quic_timer_in(readings, start, end, QUINN_DEFAULT_IDLE_TIMEOUT_NS)
                }
                _ => None,
            };
            outage_metrics(
                &samples,
                &outcome.errors.failures,
                window,
                spec.loss_timeout.as_nanos() as u64,
                *b,
                timer.as_ref(),
            )
        })
        .collect();
    let sent_log = outcome.sent_log.take();
    let reconnects = outcome.reconnects.take().map(|r| ReconnectRecord {
        every_ns: rr.reconnect.unwrap_or_default().as_nanos() as u64,
        lost: r.lost,
        failed_attempts: r.failed_attempts,
        unsendable: r.unsendable,
        up_ns: r.up_ns.iter().map(|&t| t as i64 - window as i64).collect(),
    });
    let (report, processed, report_missing) = match heard {
        Some(c) => (c.report, c.processed, false),
        None => (ReceiverReport::default(), Vec::new(), true),
    };
    let delivery = match sent_log {
        Some(sent) => {
            let Some(counted) = report.delivery else {
                bail!("receiver broke the protocol: no delivery counts for a trial that asked for them");
            };
            Some(delivery::account(
                rr.retry_policy(),
                counted.idempotency_keys,
                &sent.fates,
                sent.first_measured,
                &processed,
                counted.beyond_ids,
            ))
        }
        None => None,
    };
    let mut result = build_result(spec, addr, id, outcome, report, cpu_ns, tcp_congestion)?;
    result.quic_datagrams = datagrams;
    result.delivery = delivery;
    result.outages = outages;
    result.schedule_timeline = schedule_timeline;
    result.reconnects = reconnects;
    result.receiver_report_missing = report_missing;
    Ok((result, samples))
}

fn build_result(
    spec: &TrialSpec,
    addr: SocketAddr,
    id: String,
    outcome: RrOutcome,
    receiver: ReceiverReport,
    cpu_ns: u64,
    tcp_congestion: Option<String>,
) -> anyhow::Result<TrialResult> {
    let totals = outcome.totals;
    let udp = totals
        .sequence
        .as_ref()
        .map(|flow| {
            crate::measure::oneway::udp_metrics(
                std::slice::from_ref(flow),
                spec.loss_timeout.as_nanos() as u64,
                spec.size,
                outcome.measured_ns,
            )
        })
        .transpose()?;
    let mut counters = totals.counters;
    counters.errors = outcome.errors.count;
    counters.icmp_errors = outcome.errors.icmp_reports;
    let lat = LatencySummary::from_histogram(&totals.lat)?;
    let send_lag = LatencySummary::from_histogram(&totals.send_lag)?;
    let mut result = super::trial_result(
        spec,
        id,
        super::Measured {
            peer: addr,
            start: outcome.measured_start,
            measured_ns: outcome.measured_ns,
            counters,
            unsent: outcome.unsent,
            latency_kind: LatencyKind::Rtt,
            lat,
            send_lag,
            cpu_ns,
            pacer_busy_ns: outcome.pacer_busy_ns,
            messages: outcome.requests_total,
            errors: outcome.errors,
            receiver,
            tcp_congestion,
        },
    );
    result.udp = udp;
    Ok(result)
}
