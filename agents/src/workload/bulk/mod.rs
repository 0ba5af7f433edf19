//! The bulk workload, both sides: `--flows` byte streams written as fast
//! as the transport takes them for warm-up and duration, up (sender to
//! receiver), down, or both at once (TCP and TCP+TLS: a connection per
//! flow; QUIC: a stream per flow, unidirectional up and bidirectional
//! down, on one connection or spread over `--quic-connections`). Each
//! side counts what its application read or wrote per flow in bins of
//! [`BIN_NS`]; the sender samples TCP_INFO of every up flow's connection,
//! or quinn's statistics of every QUIC connection, once a bin.

mod records;

use anyhow::{bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use transbench_analysis::bulk as analysis;
use transbench_reports::{
    new_histogram, BulkMetrics, Counters, DirectionGoodput, ExpectedGoodput, FlowMetrics, LatencyKind,
    LatencySummary, QuicConnectionStats, QuicStatsSample, TcpInfoSample, TrialResult,
};
use transbench_wire::control::BIN_NS;
use transbench_wire::{BulkDirection, Carrier, ControlMsg, TrialSetup};

use super::TrialServer;
use crate::clock::{mono_now_ns, thread_cpu_ns, wall_at};
use crate::control_io::ControlChannel;
use crate::dataplane::bulk::{self as flows, BulkFlows, FlowMeter};
use crate::dataplane::listen::{self, ConnectionRole, ServerTls};
use crate::dataplane::{ErrorLog, ServeCounters, TrialPeer};
use crate::schedule;
use crate::session;
use crate::spec::bulk::LinkShape;
use crate::spec::{BulkSpec, TrialSpec};
use crate::transport::{self, congestion, tcp_info};
use records::FlowRecords;

/// The most bins a receiver keeps per flow (an hour); later bytes count in
/// the last.
pub const MAX_BINS: usize = 36_000;

/// Bins a trial of `setup` needs per flow: its warm-up, duration and loss
/// timeout, and one more for the end.
pub fn bins(setup: &TrialSetup) -> usize {
    let ns = setup.plan.offered_ns().saturating_add(setup.plan.loss_timeout_ns);
    ((ns / BIN_NS) as usize + 2).min(MAX_BINS)
}

/// The receiver's side: every up flow read to its end and counted, every
/// down flow written for the trial and counted.
pub async fn serve(
    setup: &TrialSetup,
    flows: u32,
    direction: BulkDirection,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
) -> anyhow::Result<TrialServer> {
    let bulk = Arc::new(BulkFlows {
        meter: FlowMeter::new(direction.total_flows(flows), bins(setup)),
        flows,
        direction,
        size: setup.size as usize,
        write_ns: setup.plan.offered_ns(),
    });
    let counters = Arc::new(ServeCounters::default());
    let mut tasks = JoinSet::new();
    let mut quic = None;
    let token = peer.token;
    let data_port = match setup.transport.capabilities().carrier {
        Carrier::Tcp => {
            let role = ConnectionRole::Bulk(bulk.clone());
            listen::serve_tcp(setup, ctx, local_ip, peer, counters.clone(), role, &mut tasks).await?
        }
        Carrier::Quic => {
            let (endpoint, port) = listen::bind_quic(setup, ctx, local_ip)?;
            tasks.spawn(serve_quic(endpoint.clone(), peer, bulk.clone(), counters.clone()));
            quic = Some(endpoint);
            port
        }
        Carrier::Udp => bail!("{} has no bulk data plane", setup.transport),
    };
    Ok(TrialServer {
        tasks,
        counters,
        cpu_start: thread_cpu_ns(),
        quic,
        records: Box::new(FlowRecords::new(bulk)),
        data_port,
        token,
    })
}

async fn serve_quic(
    endpoint: quinn::Endpoint,
    peer: TrialPeer,
    bulk: Arc<BulkFlows>,
    counters: Arc<ServeCounters>,
) {
    let shared = counters.clone();
    crate::dataplane::quic::accept_from(endpoint, peer, &counters, move |incoming| {
        let (bulk, counters) = (bulk.clone(), shared.clone());
        async move {
            let Ok(conn) = incoming.await else { return };
            counters.connection();
            let mut streams = JoinSet::new();
            loop {
                // Up flows arrive as unidirectional streams, down flows as
                // bidirectional ones.
                let (recv, send) = tokio::select! {
                    uni = conn.accept_uni() => match uni {
                        Ok(recv) => (recv, None),
                        Err(_) => break,
                    },
                    bi = conn.accept_bi() => match bi {
                        Ok((send, recv)) => (recv, Some(send)),
                        Err(_) => break,
                    },
                };
                let (bulk, counters) = (bulk.clone(), counters.clone());
                streams.spawn(async move {
                    if let Err(e) = bulk.serve_quic(recv, send, &counters).await {
                        tracing::debug!("QUIC flow ended: {}", transbench_wire::printable(&e.to_string()));
                    }
                });
            }
            while streams.join_next().await.is_some() {}
        }
    })
    .await
}

/// A flow's connection, open, and what to sample of it.
enum Probe {
    /// A duplicate of the TCP socket's descriptor, for TCP_INFO.
    Tcp(OwnedFd),
    Quic(quinn::Connection),
}

/// The sender's flows, open and not yet written, in the order of their
/// indices: up flows first.
struct OpenFlows {
    flows: Vec<Flow>,
    /// Up flows' TCP connections in flow order, then QUIC connections:
    /// the data's sender is the one whose state says something. A down
    /// flow's is the receiver's, and is not sampled.
    probes: Vec<Probe>,
    quic: Option<(quinn::Endpoint, Vec<quinn::Connection>)>,
    tcp_congestion: Option<String>,
}

enum Flow {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    QuicUp(quinn::Connection, quinn::SendStream),
    QuicDown(quinn::SendStream, quinn::RecvStream),
}

async fn open_flows(
    spec: &TrialSpec,
    bulk: &BulkSpec,
    peer: SocketAddr,
    local_ip: IpAddr,
    admitted: session::Admitted,
) -> anyhow::Result<OpenFlows> {
    let caps = spec.transport.capabilities();
    let all = bulk.direction.total_flows(bulk.flows);
    let mut open = OpenFlows {
        flows: Vec::new(),
        probes: Vec::new(),
        quic: None,
        tcp_congestion: None,
    };
    match caps.carrier {
        Carrier::Tcp => {
            let connector = caps
                .tls
                .then(|| transport::tls_connector(admitted.cert))
                .transpose()?;
            for f in 0..all {
                let tcp = transport::connect_tcp(peer, spec.congestion.as_deref(), admitted.token)
                    .await
                    .with_context(|| format!("connecting flow {} of {all}", f + 1))?;
                open.tcp_congestion = congestion::get(&tcp).ok();
                if bulk.direction.of_flow(f, bulk.flows) == BulkDirection::Up {
                    open.probes.push(Probe::Tcp(
                        tcp.as_fd().try_clone_to_owned().context("duplicating a socket")?,
                    ));
                }
                open.flows.push(match &connector {
                    Some(c) => Flow::Tls(Box::new(transport::tls_handshake(c, tcp).await?)),
                    None => Flow::Tcp(tcp),
                });
            }
        }
        Carrier::Quic => {
            let endpoint = transport::quic_client(
                local_ip,
                admitted.cert,
                spec.congestion.as_deref(),
                admitted.token,
            )?;
            let mut conns = Vec::new();
            for c in 0..bulk.quic_connections {
                let conn = transport::quic_connect(&endpoint, peer)
                    .await
                    .with_context(|| format!("QUIC connection {} of {}", c + 1, bulk.quic_connections))?;
                open.probes.push(Probe::Quic(conn.clone()));
                conns.push(conn);
            }
            for f in 0..all {
                let conn = &conns[(f % bulk.quic_connections) as usize];
                let opening = format!("opening QUIC stream {} of {all}", f + 1);
                open.flows.push(match bulk.direction.of_flow(f, bulk.flows) {
                    BulkDirection::Down => {
                        let (send, recv) = conn.open_bi().await.context(opening)?;
                        Flow::QuicDown(send, recv)
                    }
                    _ => Flow::QuicUp(conn.clone(), conn.open_uni().await.context(opening)?),
                });
            }
            open.quic = Some((endpoint, conns));
        }
        Carrier::Udp => bail!("{} has no bulk data plane", spec.transport),
    }
    Ok(open)
}

/// Writes a TCP (or TLS) flow, ends it, and waits (at most `wait`) for the
/// receiver to close its side: it has read every byte.
async fn byte_stream_flow<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    flow: u32,
    size: usize,
    end_ns: u64,
    wait: Duration,
) -> std::io::Result<u64> {
    let written = flows::write_flow(&mut flows::Copying(&mut io), flow, size, end_ns).await?;
    io.shutdown().await?;
    let mut rest = [0u8; 64];
    let drained = tokio::time::timeout(wait, async {
        while io.read(&mut rest).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    match drained {
        Ok(r) => r.map(|()| written),
        Err(_) => Err(not_closed(wait)),
    }
}

/// A flow's error: the run names the flow before it.
fn not_closed(wait: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the receiver did not close it within {wait:?} of its end"),
    )
}

/// Writes a QUIC flow, finishes its stream, and waits (at most `wait`)
/// until the receiver acknowledged every byte of it. A flow still
/// unacknowledged then says what its connection's recovery looked like,
/// which tells a stalled congestion controller from a starved process.
async fn quic_flow(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    flow: u32,
    size: usize,
    end_ns: u64,
    wait: Duration,
) -> std::io::Result<u64> {
    let written = flows::write_flow(&mut send, flow, size, end_ns).await?;
    send.finish().map_err(std::io::Error::other)?;
    match tokio::time::timeout(wait, send.stopped()).await {
        Ok(Ok(None)) => Ok(written),
        Ok(Ok(Some(code))) => Err(std::io::Error::other(format!("the receiver stopped it ({code})"))),
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(_) => {
            let path = conn.stats().path;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "not acknowledged within {wait:?} of its end (its connection then: \
                     rtt {:?}, cwnd {} B, {} of {} packets lost, {} congestion events)",
                    path.rtt, path.cwnd, path.lost_packets, path.sent_packets, path.congestion_events
                ),
            ))
        }
    }
}

/// Asks for down flow `flow` over a TCP (or TLS) connection and reads it
/// into `meter` until the receiver ends it, at most `wait` after `end_ns`;
/// then closes, which tells the receiver every byte was read.
async fn byte_stream_download<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    flow: u32,
    meter: &FlowMeter,
    end_ns: u64,
    wait: Duration,
) -> std::io::Result<u64> {
    io.write_u32(flow).await?;
    io.flush().await?;
    read_down(&mut flows::Buffered::new(&mut io), flow, meter, end_ns, wait).await?;
    io.shutdown().await?;
    Ok(0)
}

/// [`byte_stream_download`] over a bidirectional QUIC stream.
async fn quic_download(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    flow: u32,
    meter: &FlowMeter,
    end_ns: u64,
    wait: Duration,
) -> std::io::Result<u64> {
    send.write_u32(flow).await?;
    send.finish().map_err(std::io::Error::other)?;
    read_down(&mut recv, flow, meter, end_ns, wait).await?;
    Ok(0)
}

/// Reads down flow `flow` into `meter` to its end, which the receiver
/// makes at `end_ns`; at most `wait` after that.
async fn read_down(
    source: &mut impl flows::FlowSource,
    flow: u32,
    meter: &FlowMeter,
    end_ns: u64,
    wait: Duration,
) -> std::io::Result<()> {
    let left = Duration::from_nanos(end_ns.saturating_sub(mono_now_ns())) + wait;
    tokio::time::timeout(left, flows::count_flow(source, flow, meter, None))
        .await
        .map_err(|_| not_closed(wait))?
}

/// What the sender saw of its flows.
struct Written {
    t0_ns: u64,
    /// When the flows stopped writing: warm-up and duration after `t0_ns`.
    end_ns: u64,
    /// Bytes each up flow wrote (0 for a down flow: the receiver counts those).
    bytes: Vec<u64>,
    /// Bytes each down flow read, per bin from `t0_ns`.
    read: Vec<Vec<u64>>,
    /// When the last flow ended, since `t0_ns`.
    ran_ns: u64,
    tcp_info: Vec<Vec<TcpInfoSample>>,
    quic: Vec<Vec<QuicStatsSample>>,
    errors: ErrorLog,
}

/// Runs every flow to the end of warm-up and duration, sampling each
/// connection once a bin meanwhile.
async fn run_flows(open: OpenFlows, spec: &TrialSpec, bulk: &BulkSpec) -> std::io::Result<Written> {
    let meter = Arc::new(FlowMeter::new(open.flows.len() as u32, bins(&spec.setup())));
    meter.start();
    let t0_ns = mono_now_ns();
    spec.window_opens.tell(t0_ns + spec.warmup.as_nanos() as u64);
    let end_ns = t0_ns + (spec.warmup + spec.duration).as_nanos() as u64;
    let (size, wait) = (spec.size, spec.loss_timeout);
    let mut running = JoinSet::new();
    for (flow, io) in open.flows.into_iter().enumerate() {
        let flow = flow as u32;
        let down = bulk.direction.of_flow(flow, bulk.flows) == BulkDirection::Down;
        let meter = meter.clone();
        running.spawn(async move {
            let written = match (io, down) {
                (Flow::Tcp(tcp), false) => byte_stream_flow(tcp, flow, size, end_ns, wait).await,
                (Flow::Tls(tls), false) => byte_stream_flow(tls, flow, size, end_ns, wait).await,
                (Flow::Tcp(tcp), true) => byte_stream_download(tcp, flow, &meter, end_ns, wait).await,
                (Flow::Tls(tls), true) => byte_stream_download(tls, flow, &meter, end_ns, wait).await,
                (Flow::QuicUp(conn, send), _) => quic_flow(&conn, send, flow, size, end_ns, wait).await,
                (Flow::QuicDown(send, recv), _) => {
                    quic_download(send, recv, flow, &meter, end_ns, wait).await
                }
            };
            (flow, written)
        });
    }
    let flow_count = running.len();
    let mut written = Written {
        t0_ns,
        end_ns,
        bytes: vec![0; flow_count],
        read: Vec::new(),
        ran_ns: 0,
        tcp_info: vec![Vec::new(); open.probes.iter().filter(|p| matches!(p, Probe::Tcp(_))).count()],
        quic: vec![Vec::new(); open.probes.iter().filter(|p| matches!(p, Probe::Quic(_))).count()],
        errors: ErrorLog::default(),
    };
    let mut ticks = tokio::time::interval(Duration::from_nanos(BIN_NS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            done = running.join_next() => match done {
                Some(Ok((flow, Ok(bytes)))) => written.bytes[flow as usize] = bytes,
                Some(Ok((flow, Err(e)))) => written.errors.note(&format!("flow {flow}"), &e),
                Some(Err(e)) => written.errors.note("a flow's task", &e),
                None => break,
            },
            _ = ticks.tick() => sample(&open.probes, mono_now_ns() - t0_ns, &mut written),
        }
    }
    written.ran_ns = mono_now_ns() - t0_ns;
    sample(&open.probes, written.ran_ns, &mut written);
    written.read = meter.take();
    Ok(written)
}

fn sample(probes: &[Probe], t_ns: u64, into: &mut Written) {
    let (mut tcp, mut quic) = (0, 0);
    for probe in probes {
        match probe {
            Probe::Tcp(fd) => {
                // A socket already closed has nothing more to say.
                if let Ok(info) = tcp_info::read(fd, t_ns) {
                    into.tcp_info[tcp].push(info);
                }
                tcp += 1;
            }
            Probe::Quic(conn) => {
                let path = conn.stats().path;
                into.quic[quic].push(QuicStatsSample {
                    t_ns,
                    rtt_ns: path.rtt.as_nanos() as u64,
                    cwnd: path.cwnd,
                    congestion_events: path.congestion_events,
                    lost_packets: path.lost_packets,
                    lost_bytes: path.lost_bytes,
                    sent_packets: path.sent_packets,
                    current_mtu: path.current_mtu,
                });
                quic += 1;
            }
        }
    }
}

/// Runs a bulk trial on an authenticated control session.
pub async fn run_trial(
    ctl: ControlChannel,
    addr: SocketAddr,
    spec: &TrialSpec,
    bulk: &BulkSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    Ok(run_timed(ctl, addr, spec, bulk, id).await?.0)
}

/// When a bulk trial's flows wrote: from their start until warm-up and
/// duration were over, CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Copy)]
pub struct Writing {
    pub from_ns: u64,
    pub to_ns: u64,
}

/// [`run_trial`], and when its flows wrote.
pub async fn run_timed(
    mut ctl: ControlChannel,
    addr: SocketAddr,
    spec: &TrialSpec,
    bulk: &BulkSpec,
    id: String,
) -> anyhow::Result<(TrialResult, Writing)> {
    let local_ip = ctl.stream().local_addr()?.ip();
    let admitted = session::setup(&mut ctl, spec.setup()).await?;
    let peer = SocketAddr::new(addr.ip(), admitted.data_port);
    let cpu_start = thread_cpu_ns();
    let open = open_flows(spec, bulk, peer, local_ip, admitted).await?;
    let quic = open.quic.clone();
    let tcp_congestion = open.tcp_congestion.clone();
    ctl.send(&ControlMsg::Start).await?;
    let limit = schedule::data_plane_limit(spec.warmup, spec.duration, spec.loss_timeout);
    let written = session::while_receiver_quiet(&mut ctl, limit, run_flows(open, spec, bulk)).await?;
    session::wait_while_rejecting(spec).await;
    ctl.send(&ControlMsg::Stop {
        expect: Some(u64::from(bulk.direction.total_flows(bulk.flows))),
        wait_ns: spec.loss_timeout.as_nanos() as u64,
    })
    .await?;
    let collected = session::collect(&mut ctl, spec.loss_timeout).await?;
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    if let Some((endpoint, conns)) = quic {
        for c in &conns {
            c.close(0u32.into(), b"trial over");
        }
        transport::quic_close(&endpoint, None).await;
    }
    let writing = Writing {
        from_ns: written.t0_ns,
        to_ns: written.end_ns,
    };
    let result = build_result(
        spec,
        bulk,
        addr,
        id,
        written,
        collected.flows,
        collected.report,
        cpu_ns,
        tcp_congestion,
    )?;
    Ok((result, writing))
}

#[allow(clippy::too_many_arguments)]
fn build_result(
    spec: &TrialSpec,
    bulk: &BulkSpec,
    addr: SocketAddr,
    id: String,
    mut written: Written,
    mut receiver_bins: Vec<Vec<u64>>,
    receiver: transbench_wire::ReceiverReport,
    cpu_ns: u64,
    tcp_congestion: Option<String>,
) -> anyhow::Result<TrialResult> {
    let all = bulk.direction.total_flows(bulk.flows) as usize;
    receiver_bins.resize(all, Vec::new());
    written.read.resize(all, Vec::new());
    let window = analysis::window(
        BIN_NS,
        spec.warmup.as_nanos() as u64,
        spec.duration.as_nanos() as u64,
    );
    // What each flow's reading application read per bin, and what its
    // writing one wrote in all: the receiver's bins are the reads of up
    // flows and the writes of down flows.
    let ways: Vec<BulkDirection> = (0..all as u32)
        .map(|f| bulk.direction.of_flow(f, bulk.flows))
        .collect();
    let mut bins = Vec::with_capacity(all);
    let mut sent = Vec::with_capacity(all);
    for (f, way) in ways.iter().enumerate() {
        if *way == BulkDirection::Down {
            sent.push(receiver_bins[f].iter().sum::<u64>());
            bins.push(std::mem::take(&mut written.read[f]));
        } else {
            sent.push(written.bytes[f]);
            bins.push(std::mem::take(&mut receiver_bins[f]));
        }
    }
    let bytes_sent: u64 = sent.iter().sum();
    let bytes_received: u64 = bins.iter().flatten().sum();
    let goodputs: Vec<f64> = bins
        .iter()
        .map(|b| analysis::goodput_bps(b, BIN_NS, window.clone()))
        .collect();
    let total = analysis::total(&bins);
    // Up flows come first, and only they were sampled.
    let mut tcp_info = written.tcp_info.into_iter();
    let flows: Vec<FlowMetrics> = bins
        .iter()
        .enumerate()
        .map(|(f, b)| FlowMetrics {
            flow: f as u32,
            direction: ways[f],
            bytes_sent: sent[f],
            bytes_received: b.iter().sum(),
            goodput_bps: goodputs[f],
            series_bps: analysis::series_bps(b, BIN_NS),
            tcp_info: match ways[f] {
                BulkDirection::Down => Vec::new(),
                _ => tcp_info.next().unwrap_or_default(),
            },
        })
        .collect();
    let quic: Vec<QuicConnectionStats> = written
        .quic
        .into_iter()
        .enumerate()
        .map(|(c, samples)| QuicConnectionStats {
            connection: c as u32,
            samples,
        })
        .collect();
    let expected = |way| expected_goodput(spec, bulk.link(way), &quic);
    let directions: Vec<DirectionGoodput> = match bulk.direction {
        BulkDirection::Both => bulk
            .ways()
            .into_iter()
            .map(|way| {
                let of_way: Vec<usize> = (0..all).filter(|&f| ways[f] == way).collect();
                let way_bins: Vec<Vec<u64>> = of_way.iter().map(|&f| bins[f].clone()).collect();
                let way_total = analysis::total(&way_bins);
                let way_goodputs: Vec<f64> = of_way.iter().map(|&f| goodputs[f]).collect();
                DirectionGoodput {
                    direction: way,
                    flows: of_way.len() as u32,
                    goodput_bps: analysis::goodput_bps(&way_total, BIN_NS, window.clone()),
                    series_bps: analysis::series_bps(&way_total, BIN_NS),
                    jain: analysis::jain(&way_goodputs),
                    expected: expected(way),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let expected = match bulk.direction {
        BulkDirection::Both => None,
        one => expected(one),
    };
    let per_byte = |ns: u64| match bytes_received {
        0 => 0.0,
        b => ns as f64 / b as f64,
    };
    let size = spec.size as u64;
    let counters = Counters {
        sent: bytes_sent / size,
        received: bytes_received / size,
        ..Counters::default()
    };
    let empty = LatencySummary::from_histogram(&new_histogram())?;
    let measured_ns = spec.duration.as_nanos() as u64;
    let ran_short = written.t0_ns + written.ran_ns < written.end_ns;
    let metrics = BulkMetrics {
        direction: bulk.direction,
        bin_ns: BIN_NS,
        window: [window.start as u32, window.end as u32],
        goodput_bps: analysis::goodput_bps(&total, BIN_NS, window),
        series_bps: analysis::series_bps(&total, BIN_NS),
        jain: analysis::jain(&goodputs),
        bytes_sent,
        bytes_received,
        sender_cpu_ns_per_byte: per_byte(cpu_ns),
        receiver_cpu_ns_per_byte: per_byte(receiver.cpu_ns),
        quic_connections: spec.transport.is_quic().then_some(bulk.quic_connections),
        expected,
        directions,
        flows,
        quic,
    };
    let mut result = super::trial_result(
        spec,
        id,
        super::Measured {
            peer: addr,
            start: wall_at(written.t0_ns + spec.warmup.as_nanos() as u64),
            measured_ns: if ran_short {
                written.ran_ns.saturating_sub(spec.warmup.as_nanos() as u64)
            } else {
                measured_ns
            },
            counters,
            unsent: 0,
            latency_kind: LatencyKind::Rtt,
            lat: empty.clone(),
            send_lag: empty,
            cpu_ns,
            pacer_busy_ns: 0,
            messages: bytes_sent / size,
            errors: written.errors,
            receiver,
            tcp_congestion,
        },
    );
    if bytes_received < bytes_sent {
        result.valid = false;
        result.missed_schedule = false;
        result.invalid_reasons.push(format!(
            "the receiver's application read {bytes_received} of the {bytes_sent} bytes written: the flows \
             did not all end within --loss-timeout ({}) of the trial",
            humantime::format_duration(spec.loss_timeout)
        ));
    }
    result.bulk = Some(metrics);
    Ok(result)
}

/// What a rate-limited link's direction leaves the transport, when `run`
/// knows the link's rate and nothing but the Ethernet header is added per
/// packet.
fn expected_goodput(
    spec: &TrialSpec,
    link: Option<LinkShape>,
    quic: &[QuicConnectionStats],
) -> Option<ExpectedGoodput> {
    let rate = link?.rate.filter(|r| r.cell_size == 0)?;
    let rate_bps = rate.bytes_per_sec as f64 * 8.0;
    let (mut cost, basis) = if spec.transport.is_quic() {
        let mtu = quic
            .iter()
            .filter_map(|c| c.samples.last())
            .map(|s| s.current_mtu)
            .min()
            .unwrap_or(1200);
        (
            analysis::PacketCost::quic(u32::from(mtu)),
            format!("QUIC packets of {mtu} bytes of UDP payload (quinn's MTU at the end)"),
        )
    } else {
        let tls = spec.transport.uses_tls();
        (
            analysis::PacketCost::tcp(testbed::MTU, tls),
            format!(
                "full TCP segments of a {}-byte MTU with timestamps{}",
                testbed::MTU,
                if tls { ", in 16 KiB TLS records" } else { "" }
            ),
        )
    };
    cost.wire += f64::from(rate.packet_overhead);
    Some(ExpectedGoodput {
        rate_bps,
        payload_bytes: cost.payload,
        wire_bytes: cost.wire,
        goodput_bps: cost.goodput_bps(rate_bps),
        basis: format!("{basis}; the rate counts the IP packet and a 14-byte Ethernet header"),
    })
}
