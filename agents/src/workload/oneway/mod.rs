//! The one-way workloads (multistream, stream), both sides. The receiver
//! records when each message reached its application and hands the
//! records back; both agents share CLOCK_MONOTONIC, so `lat` is the
//! one-way delivery time.
//!
//! - `multistream`: N logical streams of S-byte messages at R messages/s
//!   each, open-loop, phases staggered (stream k sends at k/(N R) past each
//!   period start) so streams interleave on the wire; head-of-line blocking
//!   is read from the per-message timeline.
//! - `stream` (UDP): datagrams at a target bit rate, optionally many per
//!   system call with GSO; offered against received rate, and the sequence
//!   tracker's loss, reordering, jitter and IPDV.

mod records;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use transbench_analysis::clock_offset::{OffsetEstimate, MAX_BOUND_SHARE_OF_ONE_WAY};
use transbench_reports::{
    human_ns, new_histogram, ClockComparison, LatencyKind, LatencySummary, TrialResult,
};
use transbench_wire::delivery;
use transbench_wire::{
    Carrier, ControlMsg, MessageHeader, MessageKind, ReceiverReport, Streams, TrialSetup, TrialToken,
    WorkloadSetup,
};

use super::records::{DatagramTally, NoRecords, TrialRecords};
use super::TrialServer;
use crate::clock::wall_at;
use crate::clock::{mono_now_ns, thread_cpu_ns, Pacer};
use crate::control_io::ControlChannel;
use crate::dataplane::listen::{self, ServerTls};
use crate::dataplane::multi::{self, DeliveryLog, Recording, Writers};
use crate::dataplane::quic_dgram::{self, DatagramLedger};
use crate::dataplane::udp::{self, DatagramBatcher};
use crate::dataplane::{ErrorLog, ServeCounters, TrialPeer};
use crate::measure::oneway::{self as analysis, HolReference, Sent};
use crate::measure::outage::{outage_metrics, Blackout};
use crate::measure::tracker::Sample;
use crate::schedule::{self, OpenLoopSchedule, START_LEAD_NS};
use crate::session;
use crate::spec::{HolInputs, TrialSpec, WorkloadSpec};
use crate::transport::{self, congestion};
use records::DeliveryRecords;
use transbench_reports::record;

/// TCP_NOTSENT_LOWAT of `tcp-mux` connections: the kernel holds at most
/// this much unsent data, so frames wait in the round-robin writer (where
/// every stream gets its turn), not in the socket buffer.
const MUX_NOTSENT_LOWAT: u32 = 16 * 1024;

/// The schedule as it ran.
pub(super) struct Paced {
    pub sent: Vec<Sent>,
    pub send_lag: Histogram<u64>,
    pub pacer_busy_ns: u64,
    /// The measured window's start on the monotonic clock: schedule time 0.
    pub measured_start_ns: u64,
    pub measured_ns: u64,
    /// When the last message (of any) was sent, and the last one's
    /// intended time.
    pub last_sent_ns: Option<u64>,
    pub last_intended_ns: u64,
    /// When the sender fell silent, if it was told to.
    pub silent_from_ns: Option<u64>,
    /// Measured messages never sent: the pacer fell so far behind that
    /// the window was over.
    pub unsent: u64,
}

/// Sends `streams` streams of `rate` messages a second each through
/// `writers` on the open-loop schedule. With `silent_after` the sender
/// falls silent that far into the window but keeps its connections open
/// to the window's end, so the transport says nothing a detector could
/// use instead (heartbeat's failure).
pub(super) async fn pace(
    spec: &TrialSpec,
    rate: f64,
    streams: u32,
    token: TrialToken,
    writers: &Writers,
    silent_after: Option<Duration>,
) -> std::io::Result<Paced> {
    let n = streams as u64;
    let mut pacer = Pacer::new()?;
    let t0 = mono_now_ns() + START_LEAD_NS;
    // All streams together: message j is stream j mod N's (j div N)-th.
    let schedule = OpenLoopSchedule::new(t0, rate * n as f64, spec.warmup, spec.duration);
    let measured_start = schedule.intended_ns(schedule.warmup_count());
    spec.window_opens.tell(measured_start);
    let planned_end = measured_start + spec.duration.as_nanos() as u64;
    let silent_from_ns = silent_after.map(|d| measured_start + d.as_nanos() as u64);
    let mut sent = Vec::with_capacity(schedule.total() as usize);
    let mut send_lag = new_histogram();
    let mut measured_end = planned_end;
    let mut last_sent_ns = None;
    let mut last_intended_ns = t0;
    let mut unsent = 0;
    for j in 0..schedule.total() {
        let intended = schedule.intended_ns(j);
        if silent_from_ns.is_some_and(|from| intended >= from) {
            break;
        }
        pacer.wait_until(intended).await?;
        let now = mono_now_ns();
        // So far behind that the window is over: the rest are never sent.
        if now >= schedule.cutoff_ns() {
            unsent = schedule.measured_from(j);
            break;
        }
        let measured = schedule.is_measured(j);
        if measured {
            record(&mut send_lag, now.saturating_sub(intended));
        }
        let (stream, seq) = ((j % n) as u32, j / n);
        let header = MessageHeader::request(token, stream, seq, intended);
        if !writers.offer(stream, multi::message(header, spec.size)) {
            // A writer failed: its error is collected when writers finish.
            measured_end = mono_now_ns().clamp(measured_start, planned_end);
            break;
        }
        last_sent_ns = Some(now);
        last_intended_ns = intended;
        sent.push(Sent {
            stream,
            seq,
            intended_ns: intended,
            measured,
        });
    }
    if silent_from_ns.is_some() {
        pacer.wait_until(planned_end).await?;
    }
    Ok(Paced {
        sent,
        send_lag,
        pacer_busy_ns: pacer.busy_ns(),
        measured_start_ns: measured_start,
        measured_ns: measured_end - measured_start,
        last_sent_ns,
        last_intended_ns,
        silent_from_ns,
        unsent,
    })
}

/// Batches no datagram waits longer than this for the rest of its GSO batch.
const GSO_BATCH_WAIT_NS: u64 = 200_000;

/// The stream workload's schedule: datagram i intended at t0 + i/rate. The
/// pacer wakes for the first datagram of a batch (with GSO: for the last,
/// or at most [`GSO_BATCH_WAIT_NS`] after the first) and sends everything
/// then due in one call.
async fn pace_datagrams(
    spec: &TrialSpec,
    rate: f64,
    token: TrialToken,
    batcher: &DatagramBatcher,
    errors: &mut ErrorLog,
) -> std::io::Result<Paced> {
    let mut pacer = Pacer::new()?;
    let t0 = mono_now_ns() + START_LEAD_NS;
    let schedule = OpenLoopSchedule::new(t0, rate, spec.warmup, spec.duration);
    let measured_start = schedule.intended_ns(schedule.warmup_count());
    spec.window_opens.tell(measured_start);
    let total = schedule.total();
    let mut sent = Vec::with_capacity(total as usize);
    let mut send_lag = new_histogram();
    let mut batch = Vec::new();
    let mut i = 0;
    let mut unsent = 0;
    let mut last_sent_ns = None;
    while i < total {
        // Read each time: quinn-udp turns GSO off when the kernel refuses it.
        let max_batch = batcher.max_batch(spec.size) as u64;
        let last = (i + max_batch - 1).min(total - 1);
        let wake = schedule
            .intended_ns(last)
            .min(schedule.intended_ns(i) + GSO_BATCH_WAIT_NS)
            .max(schedule.intended_ns(i));
        pacer.wait_until(wake).await?;
        let now = mono_now_ns();
        // So far behind that the window is over: the rest are never sent.
        if now >= schedule.cutoff_ns() {
            unsent = schedule.measured_from(i);
            break;
        }
        batch.clear();
        let first = i;
        while i < total && i - first < max_batch && schedule.intended_ns(i) <= now {
            let intended = schedule.intended_ns(i);
            let start = batch.len();
            batch.resize(start + spec.size, 0);
            MessageHeader::request(token, 0, i, intended).encode(&mut batch[start..]);
            let measured = schedule.is_measured(i);
            if measured {
                record(&mut send_lag, now.saturating_sub(intended));
            }
            sent.push(Sent {
                stream: 0,
                seq: i,
                intended_ns: intended,
                measured,
            });
            i += 1;
        }
        // A datagram the kernel refuses is lost, as on the wire.
        if let Err(e) = batcher.send(&batch, spec.size).await {
            errors.note("send", &e);
        }
        last_sent_ns = Some(now);
    }
    Ok(Paced {
        sent,
        send_lag,
        pacer_busy_ns: pacer.busy_ns(),
        measured_start_ns: measured_start,
        measured_ns: spec.duration.as_nanos() as u64,
        last_sent_ns,
        last_intended_ns: schedule.intended_ns(i.saturating_sub(1)),
        silent_from_ns: None,
        unsent,
    })
}

/// Opens the data plane of `spec.transport` and a writer per stream (one in
/// all for `tcp-mux`). Returns the QUIC endpoint and connection to close
/// after the trial, and the congestion control the kernel reports.
pub(super) async fn open_writers(
    spec: &TrialSpec,
    streams: u32,
    peer: SocketAddr,
    local_ip: IpAddr,
    admitted: session::Admitted,
    echoes: Option<&Recording>,
) -> anyhow::Result<OpenWriters> {
    let (cert, token) = (admitted.cert, admitted.token);
    let mut writers = Writers::default();
    let mut readers = JoinSet::new();
    let size = spec.size;
    let cc = spec.congestion.as_deref();
    let mut quic = None;
    let mut tcp_congestion = None;
    let mut datagrams = None;
    let caps = spec.transport.capabilities();
    let connector = (caps.tls && caps.carrier == Carrier::Tcp)
        .then(|| transport::tls_connector(cert.clone()))
        .transpose()?;
    match (caps.streams, caps.carrier) {
        (Streams::Multiplexed, Carrier::Tcp) => {
            let tcp = transport::connect_tcp(peer, cc, token)
                .await
                .context("connecting the multiplexed TCP connection")?;
            socket2::SockRef::from(&tcp)
                .set_tcp_notsent_lowat(MUX_NOTSENT_LOWAT)
                .context("setting TCP_NOTSENT_LOWAT")?;
            tcp_congestion = congestion::get(&tcp).ok();
            if let Some(connector) = &connector {
                let tls = transport::tls_handshake(connector, tcp).await?;
                let (r, w) = tokio::io::split(tls);
                writers.spawn(|rx| multi::mux_writer(w, streams, rx));
                read_echoes(&mut readers, echoes, |rec| multi::read_mux(r, NO_ECHO, rec));
            } else {
                let (r, w) = tcp.into_split();
                writers.spawn(|rx| multi::mux_writer(w, streams, rx));
                read_echoes(&mut readers, echoes, |rec| multi::read_mux(r, NO_ECHO, rec));
            }
        }
        // One TCP connection of a single stream (heartbeat) is tcp-n's one.
        (Streams::ConnectionPerStream | Streams::Single, Carrier::Tcp) => {
            for s in 0..streams {
                let tcp = transport::connect_tcp(peer, cc, token)
                    .await
                    .with_context(|| format!("connecting TCP connection {} of {streams}", s + 1))?;
                tcp_congestion = congestion::get(&tcp).ok();
                if let Some(connector) = &connector {
                    let tls = transport::tls_handshake(connector, tcp).await?;
                    let (r, w) = tokio::io::split(tls);
                    writers.spawn(|rx| multi::framed_writer(w, size, rx));
                    read_echoes(&mut readers, echoes, |rec| multi::read_framed(r, NO_ECHO, rec));
                } else {
                    let (r, w) = tcp.into_split();
                    writers.spawn(|rx| multi::framed_writer(w, size, rx));
                    read_echoes(&mut readers, echoes, |rec| multi::read_framed(r, NO_ECHO, rec));
                }
            }
        }
        (Streams::Native, Carrier::Quic) => {
            let endpoint = transport::quic_client(local_ip, cert, spec.congestion.as_deref(), token)?;
            let conn = transport::quic_connect(&endpoint, peer).await?;
            for s in 0..streams {
                let (send, recv) = conn
                    .open_bi()
                    .await
                    .with_context(|| format!("opening QUIC stream {} of {streams}", s + 1))?;
                writers.spawn(|rx| multi::framed_writer(send, size, rx));
                read_echoes(&mut readers, echoes, |rec| multi::read_framed(recv, NO_ECHO, rec));
            }
            quic = Some((endpoint, conn));
        }
        (Streams::FlowPerStream, Carrier::Quic) => {
            let endpoint = transport::quic_client(local_ip, cert, spec.congestion.as_deref(), token)?;
            let conn = transport::quic_connect(&endpoint, peer).await?;
            let ledger = Arc::new(DatagramLedger::default());
            ledger.watch(&conn);
            // One connection: every stream's datagrams through one writer, in the order offered.
            let (c, l) = (conn.clone(), ledger.clone());
            writers.spawn(|rx| quic_dgram::writer(c, l, rx));
            if let Some(rec) = echoes {
                let (c, l, rec) = (conn.clone(), ledger.clone(), rec.clone());
                readers.spawn(async move { quic_dgram::read_into(&c, &rec, &l).await });
            }
            datagrams = Some(ledger);
            quic = Some((endpoint, conn));
        }
        (Streams::FlowPerStream, Carrier::Udp) => {
            for _ in 0..streams {
                let sock = UdpSocket::bind((local_ip, 0))
                    .await
                    .context("binding a UDP data socket")?;
                sock.connect(peer).await?;
                let sock = Arc::new(sock);
                let from = sock.clone();
                writers.spawn(|rx| multi::datagram_writer(sock, rx));
                read_echoes(&mut readers, echoes, |rec| {
                    multi::read_datagrams(from, peer.ip(), rec)
                });
            }
        }
        (streams_kind, carrier) => bail!(
            "{} ({streams_kind:?} streams over {carrier:?}) has no multistream data plane here",
            spec.transport
        ),
    }
    Ok(OpenWriters {
        writers,
        readers,
        quic,
        tcp_congestion,
        datagrams,
    })
}

/// A multistream data plane, open: writers, the readers of echoes (round
/// trips), the QUIC endpoint and connection to close after the trial, and
/// the congestion control the kernel reports.
pub(super) struct OpenWriters {
    pub(super) writers: Writers,
    pub(super) readers: JoinSet<()>,
    pub(super) quic: Option<(quinn::Endpoint, quinn::Connection)>,
    pub(super) tcp_congestion: Option<String>,
    /// quic-dgram: the sender's datagrams.
    pub(super) datagrams: Option<Arc<DatagramLedger>>,
}

/// Readers of echoes never echo.
const NO_ECHO: Option<tokio::io::Sink> = None;

/// Starts a reader of the receiver's echoes, when the trial measures round
/// trips.
fn read_echoes<F>(readers: &mut JoinSet<()>, echoes: Option<&Recording>, reader: impl FnOnce(Recording) -> F)
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    if let Some(rec) = echoes {
        let read = reader(rec.clone());
        readers.spawn(async move {
            if let Err(e) = read.await {
                tracing::debug!(
                    "echo reader ended: {}",
                    transbench_wire::printable(&e.to_string())
                );
            }
        });
    }
}

/// The receiver's side, the data plane of one-way workloads (multistream; stream, one UDP
/// flow): every stream read concurrently, every message's delivery
/// recorded.
pub async fn serve(
    setup: &TrialSetup,
    streams: u32,
    echo: bool,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
) -> anyhow::Result<TrialServer> {
    let rec = Recording {
        streams: streams.max(1),
        size: setup.size as usize,
        kind: transbench_wire::MessageKind::Request,
        echo,
        token: peer.token,
        // What the admission reserved memory for; beyond, counted as discarded.
        log: Arc::new(DeliveryLog::sized(
            setup.plan.messages.unwrap_or(0) as usize,
            crate::admission::record_cap(setup),
        )),
        counters: Arc::new(ServeCounters::default()),
    };
    let mut tasks = JoinSet::new();
    let mut quic_endpoint = None;
    let mut transport_records: Box<dyn TrialRecords> = Box::new(NoRecords);
    let caps = setup.transport.capabilities();
    let data_port = match (caps.streams, caps.carrier) {
        (Streams::FlowPerStream, Carrier::Quic) => {
            let (endpoint, data_port) = listen::bind_quic(setup, ctx, local_ip)?;
            let ledger = Arc::new(DatagramLedger::default());
            tasks.spawn(quic_dgram::record(
                endpoint.clone(),
                peer,
                rec.clone(),
                ledger.clone(),
            ));
            transport_records = Box::new(DatagramTally::new(ledger));
            quic_endpoint = Some(endpoint);
            data_port
        }
        (Streams::FlowPerStream, Carrier::Udp) => {
            let sock = UdpSocket::bind((local_ip, 0)).await?;
            udp::enlarge_receive_buffer(&sock, udp::RECEIVE_BUFFER);
            let data_port = sock.local_addr()?.port();
            let rec = rec.clone();
            tasks.spawn(async move {
                if let Err(e) = multi::read_datagrams(Arc::new(sock), peer.ip, rec).await {
                    tracing::warn!("UDP data plane failed: {e}");
                }
            });
            data_port
        }
        (Streams::Native, Carrier::Quic) => {
            let (endpoint, data_port) = listen::bind_quic(setup, ctx, local_ip)?;
            tasks.spawn(multi::serve_quic(endpoint.clone(), peer, rec.clone()));
            quic_endpoint = Some(endpoint);
            data_port
        }
        (streams @ (Streams::Multiplexed | Streams::ConnectionPerStream | Streams::Single), Carrier::Tcp) => {
            let role = if streams == Streams::Multiplexed {
                listen::ConnectionRole::ReadMux(rec.clone())
            } else {
                listen::ConnectionRole::ReadFramed(rec.clone())
            };
            listen::serve_tcp(setup, ctx, local_ip, peer, rec.counters.clone(), role, &mut tasks).await?
        }
        (streams, carrier) => {
            bail!(
                "{} ({streams:?} streams over {carrier:?}) has no one-way data plane here",
                setup.transport
            )
        }
    };
    Ok(TrialServer {
        tasks,
        counters: rec.counters,
        cpu_start: thread_cpu_ns(),
        quic: quic_endpoint,
        records: Box::new(DeliveryRecords::new(rec.log, transport_records)),
        data_port,
        token: peer.token,
    })
}

/// Runs a one-way trial (multistream, or stream on UDP) on an
/// authenticated control session.
pub async fn run_trial(
    mut ctl: ControlChannel,
    shared_clock: bool,
    clock_before: Option<&OffsetEstimate>,
    addr: SocketAddr,
    spec: &TrialSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    let (rate, streams, gso, hol) = match &spec.workload {
        WorkloadSpec::Multistream(m) => (m.rate, m.streams, None, Some(&m.hol)),
        WorkloadSpec::Stream(s) => (s.rate, 1, Some(s.gso), None),
        other => bail!("{} is not a one-way workload", other.kind()),
    };
    let asked = matches!(&spec.workload, WorkloadSpec::Multistream(m) if m.round_trip);
    let mut round_trip = asked || !shared_clock;
    if round_trip && gso.is_some() {
        bail!(
            "the stream workload measures one-way delivery and needs both agents on one host (one \
             CLOCK_MONOTONIC), but the receiver at {addr} runs on another kernel (or did not say); \
             run both on one machine, e.g. `transbench run --impair ...` across namespaces"
        );
    }
    let local_ip = ctl.stream().local_addr()?.ip();
    let mut setup = spec.setup();
    if let WorkloadSetup::Multistream { echo, .. } = &mut setup.workload {
        *echo = round_trip;
    }
    let admitted = session::setup(&mut ctl, setup).await?;
    let token = admitted.token;
    let cpu_start = thread_cpu_ns();
    let peer = SocketAddr::new(addr.ip(), admitted.data_port);
    let echoes = round_trip.then(|| Recording {
        streams,
        size: spec.size,
        kind: MessageKind::Response,
        echo: false,
        token,
        log: Arc::new(DeliveryLog::default()),
        counters: Arc::new(ServeCounters::default()),
    });
    let limit = schedule::data_plane_limit(spec.warmup, spec.duration, spec.loss_timeout);
    // Raw UDP's stream goes out in batches; quic-dgram's through quinn.
    let batched = gso.filter(|_| spec.transport.capabilities().carrier == Carrier::Udp);
    let (paced, errors, readers, quic, tcp_congestion, datagrams) = if let Some(gso) = batched {
        let sock = UdpSocket::bind((local_ip, 0))
            .await
            .context("binding the UDP data socket")?;
        sock.connect(peer).await?;
        let batcher = DatagramBatcher::new(sock, peer, gso).context("preparing the UDP socket")?;
        let mut errors = ErrorLog::default();
        ctl.send(&ControlMsg::Start).await?;
        let paced = session::while_receiver_quiet(
            &mut ctl,
            limit,
            pace_datagrams(spec, rate, token, &batcher, &mut errors),
        )
        .await?;
        (paced, errors, JoinSet::new(), None, None, None)
    } else {
        let open = open_writers(spec, streams, peer, local_ip, admitted, echoes.as_ref()).await?;
        ctl.send(&ControlMsg::Start).await?;
        let paced = session::while_receiver_quiet(
            &mut ctl,
            limit,
            pace(spec, rate, streams, token, &open.writers, None),
        )
        .await?;
        (
            paced,
            open.writers.finish(spec.loss_timeout).await,
            open.readers,
            open.quic,
            open.tcp_congestion,
            open.datagrams,
        )
    };
    let wait_ns = spec.loss_timeout.as_nanos() as u64;
    // Every message, or until the last one's wait is over: the receiver
    // waits for deliveries, or (round trip) the sender for echoes.
    let remaining = (paced.last_intended_ns + wait_ns).saturating_sub(mono_now_ns());
    let expect = paced.sent.len() as u64;
    if let Some(rec) = &echoes {
        rec.log
            .await_distinct(expect, Duration::from_nanos(remaining))
            .await;
    }
    drop(readers);
    session::wait_while_rejecting(spec).await;
    ctl.send(&ControlMsg::Stop {
        expect: echoes.is_none().then_some(expect),
        wait_ns: if echoes.is_none() { remaining } else { 0 },
    })
    .await?;
    let collected = session::collect(&mut ctl, Duration::from_nanos(remaining)).await?;
    let (mut deliveries, report) = (collected.deliveries, collected.report);
    let mut clock = None;
    if let Some(rec) = &echoes {
        // Across hosts, the receiver's own times on this host's clock give
        // the way out, if the clocks' offset is known closely enough.
        let one_way = match (asked, clock_before) {
            (false, Some(before)) => {
                let wait_ns = spec.loss_timeout.as_nanos() as u64;
                let (one_way, comparison) =
                    one_way_across_hosts(&mut ctl, before, streams, &paced.sent, &deliveries, wait_ns).await;
                clock = Some(comparison);
                one_way
            }
            _ => None,
        };
        match one_way {
            Some(on_our_clock) => {
                deliveries = on_our_clock;
                round_trip = false;
            }
            // Round trip: when each echo came back, on this host's clock.
            None => deliveries = rec.log.take(),
        }
    }
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    if let Some((endpoint, conn)) = quic {
        transport::quic_close(&endpoint, Some(&conn)).await;
    }
    let mut result = build_result(
        spec,
        (rate, streams, hol),
        addr,
        id,
        paced,
        deliveries,
        report,
        errors,
        cpu_ns,
        tcp_congestion,
        round_trip,
    )?;
    result.quic_datagrams = datagrams.map(|d| d.counts());
    result.clock = clock;
    Ok(result)
}

/// Across hosts: the receiver's delivery times put on this host's clock
/// through the offset bracketed by `before` and probes taken now (drift
/// corrected), when its bound is within the share of the one-way p50 they
/// give that [`OffsetEstimate::one_way_reportable`] allows; and, for the
/// result's `clock`, what was found either way.
async fn one_way_across_hosts(
    ctl: &mut ControlChannel,
    before: &OffsetEstimate,
    streams: u32,
    sent: &[Sent],
    deliveries: &[delivery::Delivery],
    wait_ns: u64,
) -> (Option<Vec<delivery::Delivery>>, ClockComparison) {
    let line = match session::estimate_clock_offset(ctl, session::CLOCK_PROBES).await {
        Ok(after) => match OffsetEstimate::bracketing(before, &after) {
            Ok(line) => line,
            Err(e) => {
                return round_trip(
                    before,
                    format!("the clocks' offset before and after the trial: {e}"),
                )
            }
        },
        Err(e) => return round_trip(before, format!("the clocks' offset after the trial: {e:#}")),
    };
    one_way_through(line, streams, sent, deliveries, wait_ns)
}

fn round_trip(estimate: &OffsetEstimate, why: String) -> (Option<Vec<delivery::Delivery>>, ClockComparison) {
    (
        None,
        ClockComparison {
            estimate: Some(*estimate),
            latency: format!("round trip: {why}"),
        },
    )
}

/// [`one_way_across_hosts`] once the offset is known: `line` from before
/// the trial to after it.
fn one_way_through(
    line: OffsetEstimate,
    streams: u32,
    sent: &[Sent],
    deliveries: &[delivery::Delivery],
    wait_ns: u64,
) -> (Option<Vec<delivery::Delivery>>, ClockComparison) {
    if deliveries.is_empty() {
        return round_trip(&line, "the receiver recorded no deliveries".into());
    }
    let on_our_clock: Option<Vec<delivery::Delivery>> = deliveries
        .iter()
        .map(|d| {
            line.on_sender_clock(d.delivered_ns).map(|t| delivery::Delivery {
                stream: d.stream,
                seq: d.seq,
                delivered_ns: t,
            })
        })
        .collect();
    let Some(on_our_clock) = on_our_clock else {
        return round_trip(
            &line,
            "the receiver's times fall before this host's clock began".into(),
        );
    };
    let matched = analysis::match_deliveries(streams, sent, &on_our_clock, wait_ns);
    // Lost messages are recorded at the loss timeout: with half of them
    // lost the median would be that, not a delay.
    if matched.counters.received * 2 <= matched.counters.sent {
        return round_trip(&line, "half or more of the messages were lost or late".into());
    }
    let p50 = matched.lat.value_at_quantile(0.5);
    if line.one_way_reportable(&[p50 as i64]) {
        let latency = format!(
            "one way: the receiver's times put on this host's clock, whose offset is known to +-{}, within {} % \
             of the one-way p50 {}",
            human_ns(line.bound_ns),
            (MAX_BOUND_SHARE_OF_ONE_WAY * 100.0).round(),
            human_ns(p50)
        );
        return (
            Some(on_our_clock),
            ClockComparison {
                estimate: Some(line),
                latency,
            },
        );
    }
    let why = format!(
        "the clocks' offset is known to +-{} (half the least control round trip), more than {} % of the \
         one-way p50 of {} it would give",
        human_ns(line.bound_ns),
        (MAX_BOUND_SHARE_OF_ONE_WAY * 100.0).round(),
        human_ns(p50)
    );
    round_trip(&line, why)
}

#[allow(clippy::too_many_arguments)]
fn build_result(
    spec: &TrialSpec,
    (rate, streams, hol): (f64, u32, Option<&HolInputs>),
    addr: SocketAddr,
    id: String,
    paced: Paced,
    deliveries: Vec<delivery::Delivery>,
    receiver: ReceiverReport,
    errors: ErrorLog,
    cpu_ns: u64,
    tcp_congestion: Option<String>,
    round_trip: bool,
) -> anyhow::Result<TrialResult> {
    let wait_ns = spec.loss_timeout.as_nanos() as u64;
    let matched = analysis::match_deliveries(streams, &paced.sent, &deliveries, wait_ns);
    let mut counters = matched.counters.clone();
    counters.errors = errors.count;
    let lat = LatencySummary::from_histogram(&matched.lat)?;
    let send_lag = LatencySummary::from_histogram(&paced.send_lag)?;
    let base = match hol.and_then(|h| h.base.as_ref()) {
        Some((ns, source)) => (*ns, source.clone()),
        None => (matched.lat.value_at_quantile(0.01), "this trial".to_string()),
    };
    let (rtt_ns, rtt_source) = match (spec.path_rtt_ns, round_trip) {
        (Some(rtt), _) => (rtt, "probe"),
        (None, true) => (base.0, "base (round trip)"),
        (None, false) => (2 * base.0, "2 x base"),
    };
    let theory = analysis::expectation(
        spec.transport,
        streams,
        rate,
        spec.size,
        rtt_ns,
        hol.and_then(|h| h.loss_p).map(|p| (p, "configured")),
    );
    let reference = HolReference {
        base_ns: base.0,
        base_source: base.1,
        rtt_ns,
        rtt_source: rtt_source.into(),
    };
    let reliable = spec.transport.capabilities().reliable;
    let mut hol = hol
        .map(|_| analysis::hol_metrics(&matched.messages, streams, &reference, theory))
        .transpose()?;
    if let Some(h) = hol.as_mut() {
        // A reliable transport loses nothing: what never came was still queued.
        h.backlog = reliable && counters.lost > 0;
    }
    let udp = (!reliable)
        .then(|| analysis::udp_metrics(&matched.flows, wait_ns, spec.size, paced.measured_ns))
        .transpose()?;
    let mut result = super::trial_result(
        spec,
        id,
        super::Measured {
            peer: addr,
            start: wall_at(paced.measured_start_ns),
            measured_ns: paced.measured_ns,
            counters,
            unsent: paced.unsent,
            latency_kind: if round_trip {
                LatencyKind::Rtt
            } else {
                LatencyKind::OneWay
            },
            lat,
            send_lag,
            cpu_ns,
            pacer_busy_ns: paced.pacer_busy_ns,
            messages: paced.sent.len() as u64,
            errors,
            receiver,
            tcp_congestion,
        },
    );
    result.hol = hol;
    result.udp = udp;
    result.outages = outages(
        &matched.messages,
        paced.measured_start_ns,
        wait_ns,
        &spec.blackouts,
    );
    Ok(result)
}

/// Each blackout as the messages around it saw it: a message's latency is
/// its delivery (or its echo's return) less its intended send. No timer
/// predicts these: a one-way workload's streams each back off their own.
fn outages(
    messages: &[transbench_analysis::hol::Message],
    window_ns: u64,
    wait_ns: u64,
    blackouts: &[Blackout],
) -> Vec<transbench_reports::OutageMetrics> {
    if blackouts.is_empty() {
        return Vec::new();
    }
    let samples: Vec<Sample> = messages
        .iter()
        .map(|m| Sample {
            intended_ns: m.intended_ns,
            lat_ns: m.delivered_ns.map(|d| d.saturating_sub(m.intended_ns)),
        })
        .collect();
    blackouts
        .iter()
        .filter_map(|b| outage_metrics(&samples, &[], window_ns, wait_ns, *b, None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use transbench_analysis::clock_offset::Exchange;

    /// The receiver's clock 7 s ahead; control round trips of `rtt`, the
    /// same both ways; a batch at `at` s on the sender's clock.
    fn batch(at: u64, rtt: u64) -> OffsetEstimate {
        let exchanges: Vec<Exchange> = (0..8u64)
            .map(|i| {
                let t1 = at * 1_000_000_000 + i * 1_000_000;
                Exchange {
                    t1,
                    t2: t1 + rtt / 2 + 7_000_000_000,
                    t3: t1 + rtt / 2 + 7_000_000_000,
                    t4: t1 + rtt,
                }
            })
            .collect();
        OffsetEstimate::from_exchanges(&exchanges).unwrap()
    }

    /// 100 messages on one stream from 2 s on, each reaching the
    /// receiver `one_way` later (on its clock, 7 s ahead).
    fn trial(one_way: u64) -> (Vec<Sent>, Vec<delivery::Delivery>) {
        (0..100u64)
            .map(|seq| {
                let intended_ns = 2_000_000_000 + seq * 10_000_000;
                (
                    Sent {
                        stream: 0,
                        seq,
                        intended_ns,
                        measured: true,
                    },
                    delivery::Delivery {
                        stream: 0,
                        seq,
                        delivered_ns: intended_ns + one_way + 7_000_000_000,
                    },
                )
            })
            .unzip()
    }

    #[test]
    fn one_way_across_hosts_only_where_the_offset_is_known_closely_enough() {
        let (sent, deliveries) = trial(50_000_000);
        // Control round trips of 200 us: the offset to +-100 us, within
        // 10 % of a 50 ms way out (a queued path).
        let line = OffsetEstimate::bracketing(&batch(1, 200_000), &batch(4, 200_000)).unwrap();
        let (one_way, clock) = one_way_through(line, 1, &sent, &deliveries, 1_000_000_000);
        let on_our_clock = one_way.expect("reportable");
        assert!(clock.latency.starts_with("one way"), "{}", clock.latency);
        for (s, d) in sent.iter().zip(&on_our_clock) {
            let delay = d.delivered_ns as i64 - s.intended_ns as i64;
            assert!((delay - 50_000_000).abs() <= 100_002, "{delay}");
        }
        // Most lost: their median would be the loss timeout, no delay.
        let (one_way, clock) = one_way_through(line, 1, &sent, &deliveries[..40], 1_000_000_000);
        assert!(
            one_way.is_none() && clock.latency.contains("half or more"),
            "{}",
            clock.latency
        );
        // Control round trips as long as the way out: the bound is half of
        // one, and the trial stays round trip.
        let line = OffsetEstimate::bracketing(&batch(1, 100_000_000), &batch(4, 100_000_000)).unwrap();
        let (one_way, clock) = one_way_through(line, 1, &sent, &deliveries, 1_000_000_000);
        assert!(one_way.is_none());
        assert!(
            clock.latency.starts_with("round trip") && clock.latency.contains("10 %"),
            "{}",
            clock.latency
        );
        assert!(clock.estimate.is_some());
    }
}
