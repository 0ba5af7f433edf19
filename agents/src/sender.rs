//! The sender agent: connects to a receiver, authenticates, runs one trial
//! and turns what it measured into a [`TrialResult`].

use anyhow::{bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpStream, UdpSocket};
use transbench_reports::{LatencyKind, LatencySummary, TrialParams, TrialResult};
use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role, Secret, NONCE_LEN};
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::delivery;
use transbench_wire::{
    CloseMode, ControlMsg, QuicStreamMode, ReceiverReport, TimeWaitSample, Transport, TrialSetup, Workload,
    HEADER_LEN,
};

use crate::churn::{self, ChurnOptions};
use crate::clock::thread_cpu_ns;
use crate::congestion;
use crate::control_io::ControlChannel;
use crate::dataplane::{multi, quic, stream, udp, ErrorLog, RequestSink, ResponseSource};
use crate::oneway_sender::{self, HolInputs};
use crate::rr::{self, RrOutcome, RrPlan};
use crate::tls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `--loss-timeout` of one-way workloads: the receiver waits
/// this long at most for the last messages (receiver::MAX_DRAIN_NS).
pub const MAX_ONE_WAY_WAIT: Duration = Duration::from_secs(60);
/// A trial whose send lag p99 exceeds this could not keep its schedule.
pub const MAX_SEND_LAG_P99_NS: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct TrialSpec {
    pub transport: Transport,
    pub workload: Workload,
    /// Requests per second (multistream: messages per second per stream);
    /// `None` runs closed-loop.
    pub rate: Option<f64>,
    /// Multistream: logical streams.
    pub streams: u32,
    /// Multistream: what head-of-line blocking is measured against.
    pub hol: HolInputs,
    /// Stream: send with UDP GSO.
    pub gso: bool,
    /// Multistream: measure round trips (the receiver echoes) even when
    /// both agents share a clock.
    pub round_trip: bool,
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub loss_timeout: Duration,
    pub quic_stream: QuicStreamMode,
    /// TCP congestion control to pin, or `None` for the preferred one
    /// where permitted (see `congestion`).
    pub congestion: Option<String>,
    /// Churn and handshake: how connections open and close.
    pub churn: ChurnOptions,
}

impl TrialSpec {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.workload.transports().contains(&self.transport) {
            let names: Vec<&str> = self.workload.transports().iter().map(|t| t.name()).collect();
            bail!(
                "transport {} does not run workload {}: it runs on {}",
                self.transport,
                self.workload,
                names.join(", ")
            );
        }
        if self.workload == Workload::Multistream && !(1..=multi::MAX_STREAMS).contains(&self.streams) {
            bail!(
                "--streams {} is out of range: 1 to {}",
                self.streams,
                multi::MAX_STREAMS
            );
        }
        if self.workload != Workload::Rr && self.rate.is_none() {
            bail!("{} is open-loop only: drop --closed-loop", self.workload);
        }
        if self.workload.is_churn() {
            if self.churn.close == CloseMode::Rst && self.transport.is_quic() {
                bail!(
                    "--close rst is TCP's abortive close (SO_LINGER 0); QUIC has none: use --close client or \
                     server, or leave QUIC out (--transport tcp,tcp+tls)"
                );
            }
            if !(1..=churn::MAX_INFLIGHT).contains(&self.churn.max_inflight) {
                bail!(
                    "--max-inflight {} is out of range: 1 to {}",
                    self.churn.max_inflight,
                    churn::MAX_INFLIGHT
                );
            }
            if self.churn.port_cycle && self.transport.is_quic() {
                bail!(
                    "--client-port cycle binds TCP client ports; QUIC uses one UDP socket for every connection: \
                     leave QUIC out (--transport tcp,tcp+tls)"
                );
            }
        }
        if matches!(self.workload, Workload::Multistream | Workload::Stream)
            && self.loss_timeout > MAX_ONE_WAY_WAIT
        {
            bail!(
                "--loss-timeout {:?} is longer than a receiver waits for a one-way trial's last messages: \
                 use at most {:?}",
                self.loss_timeout,
                MAX_ONE_WAY_WAIT
            );
        }
        if let (
            Workload::Multistream | Workload::Stream | Workload::Churn | Workload::Handshake,
            Some(rate),
        ) = (self.workload, self.rate)
        {
            let messages = rate * self.streams.max(1) as f64 * (self.warmup + self.duration).as_secs_f64();
            if messages > multi::MAX_RECORDS as f64 {
                let what = if self.workload.is_churn() {
                    "connections, more than a trial records"
                } else {
                    "messages, more than the receiver records"
                };
                bail!(
                    "this trial would send {messages:.0} {what} ({}): shorten --duration or lower the rate",
                    multi::MAX_RECORDS
                );
            }
        }
        if let Some(cc) = &self.congestion {
            if self.transport == Transport::Udp {
                bail!("--cc {cc}: udp has no congestion control");
            }
            if self.transport.is_tcp() {
                congestion::check_available(cc)?;
            }
        }
        if let (true, Some(cc)) = (self.transport.is_quic(), &self.congestion) {
            if !tls::QUIC_CONGESTION.contains(&cc.as_str()) {
                bail!(
                    "--cc {cc}: QUIC runs quinn's congestion controllers: {}",
                    tls::QUIC_CONGESTION.join(", ")
                );
            }
        }
        let max = match self.transport {
            Transport::Udp => udp::MAX_DATAGRAM,
            _ => stream::MAX_MESSAGE,
        };
        if !(HEADER_LEN..=max).contains(&self.size) {
            bail!(
                "--size {} is out of range for {}: messages carry a {HEADER_LEN}-byte header and may be at most {max} bytes",
                self.size,
                self.transport
            );
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                match self.workload {
                    Workload::Rr => bail!(
                        "--rate {rate} must be a positive number of messages per second (or use --closed-loop)"
                    ),
                    Workload::Churn | Workload::Handshake => {
                        bail!("--conn-rate {rate} must be a positive number of connections per second")
                    }
                    _ => bail!("--rate {rate} must be a positive number of messages per second"),
                }
            }
        }
        if self.duration.is_zero() {
            bail!("--duration must be longer than zero");
        }
        if self.loss_timeout.is_zero() {
            bail!("--loss-timeout must be longer than zero");
        }
        Ok(())
    }
}

impl TrialSpec {
    /// QUIC: the congestion controller both ends run.
    pub fn quic_congestion(&self) -> Option<String> {
        self.transport
            .is_quic()
            .then(|| self.congestion.clone().unwrap_or_else(|| "cubic".into()))
    }
}

/// Resolves `HOST:PORT` (a name or an address).
pub async fn resolve(connect: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(connect)
        .await
        .with_context(|| format!("cannot resolve --connect {connect:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--connect {connect:?} resolves to no address"))
}

pub(crate) async fn expect_reply(ctl: &mut ControlChannel, what: &str) -> anyhow::Result<ControlMsg> {
    let msg = tokio::time::timeout(REPLY_TIMEOUT, ctl.recv())
        .await
        .with_context(|| format!("receiver did not answer within {REPLY_TIMEOUT:?} (waiting for {what})"))?
        .with_context(|| format!("waiting for {what}"))?;
    if let ControlMsg::Refused { reason } = &msg {
        bail!("receiver refused: {reason}");
    }
    Ok(msg)
}

/// Opens an authenticated control session; returns it with the receiver's
/// kernel boot id.
pub async fn connect(
    addr: SocketAddr,
    secret: Option<&Secret>,
) -> anyhow::Result<(ControlChannel, Option<String>)> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to the receiver at {addr} timed out"))?
        .with_context(|| {
            format!("cannot connect to the receiver at {addr}: is `transbench receiver` running there?")
        })?;
    let mut ctl = ControlChannel::new(stream);
    let client_nonce = random_nonce();
    ctl.send(&ControlMsg::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION,
        client_nonce: to_hex(&client_nonce),
    })
    .await?;
    let ControlMsg::Challenge {
        server_nonce,
        auth_required,
        server_proof,
    } = expect_reply(&mut ctl, "the challenge").await?
    else {
        bail!("receiver at {addr} broke the protocol: expected a challenge");
    };
    let server_nonce = from_hex(&server_nonce)
        .filter(|n| n.len() == NONCE_LEN)
        .context("receiver sent a malformed nonce")?;
    let client_proof = match (secret, auth_required) {
        (None, false) => None,
        (None, true) => bail!(
            "receiver at {addr} requires a shared secret: pass --secret-file FILE (or set TRANSBENCH_SECRET)"
        ),
        (Some(_), false) => bail!(
            "receiver at {addr} has no secret configured, so it cannot prove who it is; \
             start it with the same --secret-file, or drop the secret on this side"
        ),
        (Some(s), true) => {
            let proof = server_proof.context("receiver sent no proof of the secret")?;
            s.verify(Role::Receiver, &client_nonce, &server_nonce, &proof)
                .map_err(|_| {
                    anyhow::anyhow!("authentication failed: receiver at {addr} holds a different secret")
                })?;
            Some(s.prove(Role::Sender, &client_nonce, &server_nonce))
        }
    };
    ctl.send(&ControlMsg::Auth { client_proof }).await?;
    if let Some(s) = secret {
        ctl.authenticate(FrameMac::new(s, Role::Sender, &client_nonce, &server_nonce));
    }
    match expect_reply(&mut ctl, "the welcome").await? {
        ControlMsg::Welcome { boot_id, .. } => Ok((ctl, boot_id)),
        other => bail!(
            "receiver broke the protocol: expected welcome, got {}",
            other.name()
        ),
    }
}

pub(crate) async fn setup(
    ctl: &mut ControlChannel,
    setup: TrialSetup,
) -> anyhow::Result<(u16, Option<String>)> {
    ctl.send(&ControlMsg::Setup(setup)).await?;
    match expect_reply(ctl, "ready").await? {
        ControlMsg::Ready {
            data_port,
            cert_sha256,
        } => Ok((data_port, cert_sha256)),
        other => bail!(
            "receiver broke the protocol: expected ready, got {}",
            other.name()
        ),
    }
}

async fn drive<S: RequestSink, R: ResponseSource>(
    ctl: &mut ControlChannel,
    plan: RrPlan,
    sink: S,
    source: R,
) -> anyhow::Result<(RrOutcome, ReceiverReport)> {
    ctl.send(&ControlMsg::Start).await?;
    // The receiver says nothing between start and stop: anything on the
    // control connection meanwhile (above all its end) aborts the trial.
    let outcome = tokio::select! {
        outcome = rr::run(plan, sink, source) => outcome.context("running the request/response workload")?,
        msg = ctl.recv() => match msg {
            Ok(ControlMsg::Refused { reason }) => bail!("receiver aborted the trial: {reason}"),
            Ok(other) => bail!("receiver broke the protocol: {} during a trial", other.name()),
            Err(e) => return Err(anyhow::Error::new(e).context("lost the receiver mid-trial; no result written")),
        },
    };
    ctl.send(&ControlMsg::Stop {
        expect: None,
        wait_ns: 0,
    })
    .await?;
    let report = expect_reply(ctl, "the receiver's report")
        .await
        .context("lost the receiver before its report; no result written")?;
    match report {
        ControlMsg::Report(report) => Ok((outcome, report)),
        other => bail!(
            "receiver broke the protocol: expected report, got {}",
            other.name()
        ),
    }
}

/// After Stop: what the receiver sends back before its report (one-way
/// deliveries, churn's TIME_WAIT samples), and the report. The first frame
/// may take `drain` longer while the receiver waits for stragglers.
pub(crate) async fn collect(
    ctl: &mut ControlChannel,
    drain: Duration,
) -> anyhow::Result<(Vec<delivery::Delivery>, Vec<TimeWaitSample>, ReceiverReport)> {
    let mut deliveries = Vec::new();
    let mut samples = Vec::new();
    let mut within = drain + REPLY_TIMEOUT;
    loop {
        let reply = tokio::time::timeout(within, expect_reply(ctl, "the receiver's records and report"))
            .await
            .with_context(|| format!("receiver sent no report within {within:?} of the trial's end"))?;
        within = REPLY_TIMEOUT;
        match reply.context("lost the receiver before its report; no result written")? {
            ControlMsg::Deliveries { records } => deliveries
                .extend(delivery::decode(&records).context("receiver sent malformed delivery records")?),
            ControlMsg::TimeWait { samples: batch } => samples.extend(batch),
            ControlMsg::Report(report) => return Ok((deliveries, samples, report)),
            other => bail!(
                "receiver broke the protocol: expected records or a report, got {}",
                other.name()
            ),
        }
    }
}

pub(crate) fn pinned(cert: Option<String>) -> anyhow::Result<String> {
    cert.context("receiver sent no certificate fingerprint for a TLS transport")
}

/// A TCP connection with TCP_NODELAY and its congestion control pinned
/// before the handshake.
pub(crate) async fn connect_tcp(addr: SocketAddr, congestion: Option<&str>) -> anyhow::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    congestion::pin(&socket, congestion)?;
    socket.set_nodelay(true)?;
    Ok(socket.connect(addr).await?)
}

/// Runs one trial against the receiver at `addr`.
pub async fn run_trial(
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    spec.validate()?;
    let (mut ctl, boot_id) = connect(addr, secret).await?;
    match spec.workload {
        Workload::Rr => {}
        Workload::Churn | Workload::Handshake => return churn::run_trial(ctl, boot_id, addr, spec, id).await,
        Workload::Multistream | Workload::Stream => {
            return oneway_sender::run_trial(ctl, boot_id, addr, spec, id).await
        }
    }
    let peer_ip: IpAddr = addr.ip();
    let local_ip = ctl.stream().local_addr()?.ip();
    let plan = RrPlan {
        rate: spec.rate,
        warmup: spec.warmup,
        duration: spec.duration,
        loss_timeout: spec.loss_timeout,
        log_sequence: spec.transport == Transport::Udp,
    };
    let mut trial_setup = TrialSetup {
        transport: spec.transport,
        workload: Workload::Rr,
        size: spec.size as u32,
        streams: 0,
        udp_peer_port: None,
        quic_stream: spec.quic_stream,
        tcp_congestion: None,
        quic_congestion: spec.quic_congestion(),
        echo: false,
        close: CloseMode::Client,
    };
    let mut tcp_congestion = None;
    let cpu_start = thread_cpu_ns();
    let (outcome, report) = match spec.transport {
        Transport::Udp => {
            let sock = UdpSocket::bind((local_ip, 0))
                .await
                .context("binding the UDP data socket")?;
            trial_setup.udp_peer_port = Some(sock.local_addr()?.port());
            let (port, _) = setup(&mut ctl, trial_setup).await?;
            sock.connect((peer_ip, port)).await?;
            let (sink, source) = udp::client(sock, spec.size);
            drive(&mut ctl, plan, sink, source).await?
        }
        Transport::Tcp => {
            trial_setup.tcp_congestion =
                Some(spec.congestion.clone().unwrap_or(congestion::PREFERRED.into()));
            let (port, _) = setup(&mut ctl, trial_setup).await?;
            let tcp = connect_tcp(SocketAddr::new(peer_ip, port), spec.congestion.as_deref())
                .await
                .context("connecting the TCP data connection")?;
            tcp_congestion = congestion::get(&tcp).ok();
            let (r, w) = tcp.into_split();
            let (sink, source) = stream::client(r, w, spec.size);
            drive(&mut ctl, plan, sink, source).await?
        }
        Transport::TcpTls => {
            trial_setup.tcp_congestion =
                Some(spec.congestion.clone().unwrap_or(congestion::PREFERRED.into()));
            let (port, cert) = setup(&mut ctl, trial_setup).await?;
            let connector = tokio_rustls::TlsConnector::from(tls::tls_client_config(&pinned(cert)?)?);
            let tcp = connect_tcp(SocketAddr::new(peer_ip, port), spec.congestion.as_deref())
                .await
                .context("connecting the TLS data connection")?;
            tcp_congestion = congestion::get(&tcp).ok();
            let tls = connector
                .connect(tls::server_name(), tcp)
                .await
                .context("TLS handshake with the receiver (certificate pinned from the control channel)")?;
            let (r, w) = tokio::io::split(tls);
            let (sink, source) = stream::client(r, w, spec.size);
            drive(&mut ctl, plan, sink, source).await?
        }
        Transport::Quic => {
            let (port, cert) = setup(&mut ctl, trial_setup).await?;
            let mut endpoint =
                quinn::Endpoint::client(SocketAddr::new(local_ip, 0)).context("opening the QUIC endpoint")?;
            endpoint.set_default_client_config(tls::quic_client_config(
                &pinned(cert)?,
                spec.congestion.as_deref(),
            )?);
            let conn = endpoint
                .connect(SocketAddr::new(peer_ip, port), tls::SERVER_NAME)?
                .await
                .context("QUIC handshake with the receiver (certificate pinned from the control channel)")?;
            let result = match spec.quic_stream {
                QuicStreamMode::PerRequest => {
                    let (sink, source, stream_errors) = quic::per_request_client(conn.clone(), spec.size);
                    let (mut outcome, report) = drive(&mut ctl, plan, sink, source).await?;
                    // Taken before the close below: streams it cuts were
                    // already counted lost, and are no transport error.
                    let failed = std::mem::take(&mut *stream_errors.lock().expect("error log lock"));
                    outcome.errors.merge(failed);
                    (outcome, report)
                }
                QuicStreamMode::Single => {
                    let (send, recv) = conn.open_bi().await.context("opening the QUIC stream")?;
                    let (sink, source) = stream::client(recv, send, spec.size);
                    drive(&mut ctl, plan, sink, source).await?
                }
            };
            conn.close(0u32.into(), b"trial over");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            result
        }
        other => bail!("{other} does not run the request/response workload"),
    };
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    build_result(spec, addr, id, outcome, report, cpu_ns, tcp_congestion)
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
    let per_request = |ns: u64| {
        if outcome.requests_total > 0 {
            ns as f64 / outcome.requests_total as f64
        } else {
            0.0
        }
    };
    let totals = outcome.totals;
    let udp = totals
        .sequence
        .as_ref()
        .map(|flow| {
            crate::oneway::udp_metrics(
                std::slice::from_ref(flow),
                spec.loss_timeout.as_nanos() as u64,
                spec.size,
                outcome.measured_ns,
            )
        })
        .transpose()?;
    let mut counters = totals.counters;
    counters.errors = outcome.errors.count;
    let lat = LatencySummary::from_histogram(&totals.lat)?;
    let send_lag = LatencySummary::from_histogram(&totals.send_lag)?;
    let invalid_reasons = invalid_reasons(
        spec,
        &send_lag,
        outcome.measured_ns,
        counters.sent,
        &outcome.errors,
        &receiver,
    );
    Ok(TrialResult {
        id,
        transport: spec.transport,
        workload: Workload::Rr.name().into(),
        params: TrialParams {
            rate: spec.rate,
            size: spec.size as u32,
            duration_ns: spec.duration.as_nanos() as u64,
            warmup_ns: spec.warmup.as_nanos() as u64,
            closed_loop: spec.rate.is_none(),
            loss_timeout_ns: spec.loss_timeout.as_nanos() as u64,
            quic_stream: (spec.transport == Transport::Quic).then(|| spec.quic_stream.name().to_string()),
            peer: addr.to_string(),
            tcp_congestion,
            quic_congestion: spec.quic_congestion(),
            streams: None,
            bitrate: None,
            gso: None,
        },
        start_time: humantime::format_rfc3339_millis(outcome.measured_start).to_string(),
        duration_ns: outcome.measured_ns,
        valid: invalid_reasons.is_empty(),
        invalid_reasons,
        counters,
        latency_kind: LatencyKind::Rtt,
        lat,
        send_lag,
        cpu_ns_per_msg: per_request(cpu_ns),
        pacer_busy_ns_per_msg: per_request(outcome.pacer_busy_ns),
        receiver,
        impairment: None,
        hol: None,
        udp,
        churn: None,
        cell: None,
        repetition: None,
        baseline: false,
        sender_netns: testbed::netns::current().ok(),
    })
}

/// Why a trial's numbers cannot be trusted; empty if they can.
pub(crate) fn invalid_reasons(
    spec: &TrialSpec,
    send_lag: &LatencySummary,
    measured_ns: u64,
    sent: u64,
    errors: &ErrorLog,
    receiver: &ReceiverReport,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if receiver.rejected > 0 {
        reasons.push(format!(
            "the receiver rejected {} messages or connections (garbage, a stranger's address, or past its \
             record limit): they count as lost here",
            receiver.rejected
        ));
    }
    // Churn's connection setups share the sender's thread with its pacer
    // (a TLS or QUIC handshake is hundreds of microseconds of CPU): a lag
    // within one period still offers the rate asked for, and every
    // transaction's latency counts from its intended start anyway.
    let lag_bound = match (spec.workload.is_churn(), spec.rate) {
        (true, Some(rate)) => MAX_SEND_LAG_P99_NS.max((1e9 / rate) as u64),
        _ => MAX_SEND_LAG_P99_NS,
    };
    if spec.rate.is_some() && send_lag.p99 > lag_bound {
        let advice = match spec.workload {
            Workload::Rr => "lower --rate, or use --closed-loop",
            Workload::Multistream => "lower --rate or --streams",
            Workload::Stream => "lower --bitrate, or add --gso",
            Workload::Churn | Workload::Handshake => "lower --conn-rate, or raise --max-inflight",
        };
        reasons.push(format!(
            "send_lag p99 {:.3} ms exceeds {:.3} ms: the sender could not keep its schedule ({advice})",
            send_lag.p99 as f64 / 1e6,
            lag_bound as f64 / 1e6
        ));
    }
    if measured_ns < spec.duration.as_nanos() as u64 {
        reasons.push(format!(
            "the data plane failed after {:.3} s of the {:.3} s measured window",
            measured_ns as f64 / 1e9,
            spec.duration.as_secs_f64()
        ));
    }
    if sent == 0 {
        reasons.push("no message was sent in the measured window".into());
    }
    if errors.count > 0 {
        reasons.push(format!(
            "{} data-plane errors, first: {}",
            errors.count,
            errors.messages.join("; ")
        ));
    }
    reasons
}
