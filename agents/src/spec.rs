//! A trial's options: the flags as given (`TrialArgs`, shared by the CLI
//! and scenario files), checked once into a typed [`TrialSpec`] with the
//! workload's defaults.

use anyhow::bail;
use clap::Args;
use std::time::Duration;
use transbench_wire::{CloseMode, QuicStreamMode, Transport, Workload, HEADER_LEN};

use crate::dataplane::multi;
use crate::transport::congestion;
use crate::transport::tls;
use crate::workload::churn::{self, ChurnOptions};
use crate::workload::oneway::HolInputs;

/// The longest `--loss-timeout` of one-way workloads: the receiver waits
/// this long at most for the last messages (receiver::MAX_DRAIN_NS).
pub const MAX_ONE_WAY_WAIT: Duration = Duration::from_secs(60);

#[derive(Args, Clone)]
pub struct TrialArgs {
    /// Workload: rr (request/response, round-trip latency), multistream (N
    /// streams of messages one way, for head-of-line blocking), stream
    /// (UDP datagrams one way at --bitrate), churn (a new connection per
    /// transaction: TIME_WAIT, ports) or handshake (the same, gently: time
    /// to first byte of each setup).
    #[arg(long, default_value = "rr")]
    pub workload: Workload,
    /// Offered rate, open-loop (each message has an intended send time fixed
    /// in advance, and latency counts from it): requests/s for rr, messages/s
    /// per stream for multistream [default: 1000 for rr, 125 for multistream].
    #[arg(long, conflicts_with = "closed_loop", allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Bytes per message, 24-byte header included (rr: request and response)
    /// [default: 64 for rr, churn and handshake, 1024 for multistream, 1200
    /// for stream].
    #[arg(long)]
    pub size: Option<usize>,
    /// Stream: offered bit rate, bits/s with an optional k, M or G (e.g.
    /// 200M); the datagram rate is this over --size [default: 100M].
    #[arg(long, value_parser = parse_bitrate, value_name = "BITS")]
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
    /// Measured time per trial (e.g. 3s, 500ms, 1m).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time before measuring, discarded.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Ping-pong at the maximum rate instead of a schedule (rr only; recorded as such).
    #[arg(long)]
    pub closed_loop: bool,
    /// A request unanswered (a message undelivered) this long after its
    /// intended send time is lost.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub loss_timeout: Duration,
    /// Congestion control. TCP transports: pinned per socket on both ends
    /// [default: cubic where permitted, else the system's], recorded as the
    /// kernel reports it. QUIC: quinn's controller, cubic [default], bbr or
    /// reno.
    #[arg(long, value_name = "NAME")]
    pub cc: Option<String>,
    /// QUIC rr only: a new stream per request [default], or one long-lived stream.
    #[arg(long, value_enum)]
    pub quic_stream: Option<QuicStreamArg>,
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
    #[arg(long, value_name = "LO-HI", value_parser = crate::workload::churn::parse_port_range)]
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientPortArg {
    /// connect() picks a free port.
    Kernel,
    /// The client binds each port of the range in turn.
    Cycle,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum QuicStreamArg {
    /// A new bidirectional stream per request.
    PerRequest,
    /// One long-lived bidirectional stream, like TCP.
    Single,
}

impl TrialArgs {
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

    /// The trial for `transport`; `all` are the transports of the whole
    /// command, to refuse options none of them uses.
    pub fn spec(&self, transport: Transport, all: &[Transport]) -> anyhow::Result<TrialSpec> {
        if self.quic_stream.is_some() && (!all.contains(&Transport::Quic) || self.workload != Workload::Rr) {
            bail!("--quic-stream applies only to --transport quic with --workload rr");
        }
        let multistream = self.workload == Workload::Multistream;
        if self.hol_base.is_some() && !multistream {
            bail!("--hol-base applies only to --workload multistream");
        }
        if self.round_trip && !multistream {
            bail!("--round-trip applies only to --workload multistream");
        }
        if self.streams.is_some() && !multistream {
            bail!("--streams applies only to --workload multistream");
        }
        let stream = self.workload == Workload::Stream;
        if self.bitrate.is_some() && !stream {
            bail!("--bitrate applies only to --workload stream");
        }
        if self.gso && !stream {
            bail!("--gso applies only to --workload stream");
        }
        if stream && self.rate.is_some() {
            bail!("--workload stream is paced by --bitrate (bits/s), not --rate");
        }
        let churn = self.workload.is_churn();
        if churn && self.rate.is_some() {
            bail!(
                "--workload {} is paced by --conn-rate (connections/s), not --rate",
                self.workload
            );
        }
        if churn && self.closed_loop {
            bail!(
                "--workload {} is open-loop only: drop --closed-loop",
                self.workload
            );
        }
        for (given, flag) in [
            (self.conn_rate.is_some(), "--conn-rate"),
            (self.max_inflight.is_some(), "--max-inflight"),
            (self.close.is_some(), "--close"),
            (self.port_range.is_some(), "--port-range"),
            (self.tw_reuse.is_some(), "--tw-reuse"),
            (self.client_port.is_some(), "--client-port"),
        ] {
            if given && !churn {
                bail!("{flag} applies only to --workload churn or handshake");
            }
        }
        let size = self.size.unwrap_or(match self.workload {
            Workload::Rr => 64,
            Workload::Multistream => 1024,
            Workload::Stream => 1200,
            Workload::Churn | Workload::Handshake => 64,
        });
        let rate = match self.workload {
            Workload::Rr => self.rate.unwrap_or(1000.0),
            Workload::Multistream => self.rate.unwrap_or(125.0),
            Workload::Stream => self.bitrate.unwrap_or(DEFAULT_BITRATE) / (8.0 * size.max(1) as f64),
            Workload::Churn => self.conn_rate.unwrap_or(200.0),
            Workload::Handshake => self.conn_rate.unwrap_or(20.0),
        };
        Ok(TrialSpec {
            transport,
            workload: self.workload,
            rate: (!self.closed_loop).then_some(rate),
            gso: self.gso,
            round_trip: self.round_trip,
            streams: if multistream { self.streams.unwrap_or(8) } else { 1 },
            hol: HolInputs {
                base: self
                    .hol_base
                    .map(|d| (d.as_nanos() as u64, "--hol-base".to_string())),
                ..Default::default()
            },
            size,
            duration: self.duration,
            warmup: self.warmup,
            loss_timeout: self.loss_timeout,
            congestion: self.cc.clone(),
            quic_stream: match self.quic_stream {
                None | Some(QuicStreamArg::PerRequest) => QuicStreamMode::PerRequest,
                Some(QuicStreamArg::Single) => QuicStreamMode::Single,
            },
            churn: churn::ChurnOptions {
                close: self.close.unwrap_or_default(),
                max_inflight: self.max_inflight.unwrap_or(churn::DEFAULT_MAX_INFLIGHT),
                port_cycle: self.client_port == Some(ClientPortArg::Cycle),
                port_range: self.port_range,
                port_range_in_namespace: false,
                tw_reuse: self.tw_reuse,
            },
        })
    }
}

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
        let max = crate::transport::max_message(self.transport);
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
}

/// The stream workload's offered rate unless --bitrate says.
pub const DEFAULT_BITRATE: f64 = 100e6;

/// Bits per second: a number with an optional k, M or G (powers of 1000).
pub fn parse_bitrate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{s:?} is not a bit rate: expected a positive number of bits/s, e.g. 500k, 200M or 1.5G"
        )),
    }
}
