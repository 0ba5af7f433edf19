//! The control protocol: length-prefixed JSON frames over TCP.
//!
//! One control connection runs one session:
//!
//! ```text
//! sender                                  receiver
//!   Hello{magic, version, client_nonce} ->
//!                         <- Challenge{server_nonce, auth_required}
//!                                        (or Refused: wrong version/magic)
//!   Auth{client_proof}                  ->
//!                         <- Welcome{server_proof}  (or Refused: wrong secret)
//!
//! The sender proves it holds the secret first: the receiver reveals
//! nothing computed from the secret to a peer that has not proved it, so
//! reaching the control port gives no way to test guesses offline.
//!   then any number of trials, and between them clock probes:
//!   ClockProbe{t1}                      ->
//!                         <- ClockEcho{t1, t2, t3}
//!   Setup{..}                           ->
//!                         <- Ready{data_port, cert_sha256, token}  (or Refused)
//!   Start                               ->
//!   ... data plane ...
//!   Stop                                ->
//!                         <- Deliveries* / TimeWait* / FlowBins* / Processed*
//!                         <- Report{..}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

use crate::frame::{FrameError, LengthPrefix};
use crate::token::TrialToken;
pub use crate::transport::{Capabilities, Carrier, Streams, Transport};

/// Bumped on any incompatible change to the frames below.
pub const PROTOCOL_VERSION: u32 = 9;
pub const MAGIC: &str = "transbench";
/// Control frames are small; anything larger is garbage.
pub const CONTROL_FRAMING: LengthPrefix = LengthPrefix::new(64 * 1024);

/// What a trial does with its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Request/response: latency is the round trip.
    #[default]
    Rr,
    /// N logical streams of messages, one way, for head-of-line blocking.
    Multistream,
    /// Datagrams at a target bit rate, one way (UDP).
    Stream,
    /// A new connection per transaction (connect, request, response,
    /// close), open-loop at an offered connection rate: TIME_WAIT and
    /// ephemeral-port pressure.
    Churn,
    /// Like churn, at a gentle rate: what setting up a connection costs
    /// (time to first response byte, handshake time, 0-RTT acceptance).
    Handshake,
    /// N flows, each an open byte stream written as fast as the transport
    /// takes it: goodput, fairness, and what the congestion controller did.
    Bulk,
    /// Bulk flows and, on the same path, an open-loop request/response
    /// probe before, during and after them: the latency the load adds.
    /// The sender runs it as two trials, a bulk one and an rr one, so a
    /// receiver never sees this workload in a setup.
    Load,
    /// Small numbered heartbeats one way at a fixed interval, to a
    /// monitor that records when each arrived: how fast a fixed timeout
    /// and the φ accrual detector suspect a peer that falls silent, and
    /// how often they suspect a live one.
    Heartbeat,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::Rr,
        Workload::Multistream,
        Workload::Stream,
        Workload::Churn,
        Workload::Handshake,
        Workload::Bulk,
        Workload::Load,
        Workload::Heartbeat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Rr => "rr",
            Workload::Multistream => "multistream",
            Workload::Stream => "stream",
            Workload::Churn => "churn",
            Workload::Handshake => "handshake",
            Workload::Bulk => "bulk",
            Workload::Load => "load",
            Workload::Heartbeat => "heartbeat",
        }
    }

    /// Whether this workload runs on a transport with these capabilities.
    pub fn runs_on(self, caps: Capabilities) -> bool {
        let connection = caps.carrier != Carrier::Udp;
        match self {
            // One long-lived flow or connection carries every request.
            Workload::Rr => {
                !caps.zero_rtt
                    && matches!(
                        caps.streams,
                        Streams::Single | Streams::FlowPerStream | Streams::Native
                    )
            }
            Workload::Multistream => !caps.zero_rtt && caps.streams != Streams::Single,
            // Datagrams at a bit rate: what gets lost stays lost.
            Workload::Stream => !caps.reliable,
            // A connection per transaction, one request on it.
            Workload::Churn | Workload::Handshake => {
                connection && matches!(caps.streams, Streams::Single | Streams::Native)
            }
            // Byte streams, congestion controlled: a TCP connection or a
            // QUIC stream per flow.
            Workload::Bulk | Workload::Load => {
                caps.reliable && !caps.zero_rtt && matches!(caps.streams, Streams::Single | Streams::Native)
            }
            // One flow, connection or stream of each carrier as an
            // application's heartbeats use it: TLS adds nothing to when a
            // heartbeat arrives over TCP, and QUIC's datagrams are not
            // what its applications send heartbeats on.
            Workload::Heartbeat => match caps.carrier {
                Carrier::Udp => caps.streams == Streams::FlowPerStream,
                Carrier::Tcp => caps.streams == Streams::Single && !caps.tls,
                Carrier::Quic => caps.streams == Streams::Native && !caps.zero_rtt,
            },
        }
    }

    /// The transports this workload runs on, as their capabilities say;
    /// multistream's with the most head-of-line blocking first.
    pub fn transports(self) -> Vec<Transport> {
        let mut all: Vec<Transport> = Transport::ALL
            .into_iter()
            .filter(|t| self.runs_on(t.capabilities()))
            .collect();
        if self == Workload::Multistream {
            all.sort_by_key(|t| t.capabilities().streams.isolation());
        }
        all
    }

    /// The transports `run` takes when none are given: churn leaves out
    /// the resuming ones (`handshake` compares every setup); QUIC
    /// datagrams are asked for by name.
    pub fn default_transports(self) -> Vec<Transport> {
        self.transports()
            .into_iter()
            .filter(|t| !(self == Workload::Churn && t.capabilities().zero_rtt))
            .filter(|t| !t.is_quic_datagram())
            .collect()
    }

    /// Whether each transaction opens a connection of its own.
    pub fn is_churn(self) -> bool {
        matches!(self, Workload::Churn | Workload::Handshake)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("unknown workload {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// How QUIC carries request/response pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuicStreamMode {
    /// A new bidirectional stream per request (QUIC's natural unit).
    #[default]
    PerRequest,
    /// One long-lived bidirectional stream with length-prefixed messages.
    Single,
}

impl QuicStreamMode {
    pub fn name(self) -> &'static str {
        match self {
            QuicStreamMode::PerRequest => "per-request",
            QuicStreamMode::Single => "single",
        }
    }
}

/// Churn: which side closes a connection once its response is through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseMode {
    /// The client closes first (FIN): TIME_WAIT lands on the client.
    #[default]
    Client,
    /// The receiver closes first: TIME_WAIT lands on the receiver.
    Server,
    /// The client aborts with RST (SO_LINGER 0): no TIME_WAIT anywhere.
    Rst,
}

impl CloseMode {
    pub const ALL: [CloseMode; 3] = [CloseMode::Client, CloseMode::Server, CloseMode::Rst];

    pub fn name(self) -> &'static str {
        match self {
            CloseMode::Client => "client",
            CloseMode::Server => "server",
            CloseMode::Rst => "rst",
        }
    }
}

impl fmt::Display for CloseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CloseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CloseMode::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| format!("unknown close mode {s:?}: expected client, server or rst"))
    }
}

/// What the receiver needs to know to serve one trial: what every trial
/// has, and the workload's own part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialSetup {
    pub transport: Transport,
    /// Bytes per message, header included; responses are the same size.
    pub size: u32,
    /// TCP congestion control the sender pinned; the receiver pins the same.
    #[serde(default)]
    pub tcp_congestion: Option<String>,
    /// QUIC congestion controller (quinn's) for both ends.
    #[serde(default)]
    pub quic_congestion: Option<String>,
    /// How long and how fast: what the receiver's limits are checked
    /// against, and how long it waits for the trial to end.
    pub plan: TrialPlan,
    /// Across hosts: the netem profile of the path receiver -> sender,
    /// which the receiver puts on its own egress for the trial (only on an
    /// interface it was started allowed to impair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_impair: Option<String>,
    #[serde(flatten)]
    pub workload: WorkloadSetup,
}

/// A trial's length and load, as the sender scheduled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialPlan {
    pub warmup_ns: u64,
    pub duration_ns: u64,
    /// How long the sender waits for a message or connection before it
    /// counts it lost.
    pub loss_timeout_ns: u64,
    /// Messages (for churn and handshake, connections) scheduled over
    /// warm-up and duration; `None` for a closed loop, whose rate only its
    /// round trips bound.
    pub messages: Option<u64>,
}

impl TrialPlan {
    /// Warm-up and duration: how long the sender offers load.
    pub fn offered_ns(&self) -> u64 {
        self.warmup_ns.saturating_add(self.duration_ns)
    }

    /// Scheduled messages (or connections) per second; `None` for a closed loop.
    pub fn rate(&self) -> Option<f64> {
        let secs = self.offered_ns() as f64 / 1e9;
        self.messages.map(|m| {
            if secs > 0.0 {
                m as f64 / secs
            } else {
                f64::INFINITY
            }
        })
    }
}

/// Each workload's part of a trial's setup, tagged by the workload's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "snake_case")]
pub enum WorkloadSetup {
    Rr {
        /// UDP: the sender's data port. The receiver answers only this
        /// port at the control connection's peer address.
        udp_peer_port: Option<u16>,
        quic_stream: QuicStreamMode,
        /// Count, per request id, arrivals and processings (the sender
        /// runs a retry policy, or measures delivery without one); absent:
        /// the receiver keeps no per-id state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliveryCounting>,
    },
    Multistream {
        /// Logical streams (for `tcp-n`, connections; for `udp`, flows).
        streams: u32,
        /// Across hosts (no shared clock): the receiver echoes each
        /// message's header at once, and the sender measures the round
        /// trip.
        echo: bool,
    },
    /// One flow of datagrams.
    Stream {},
    Churn {
        /// Who closes each connection.
        close: CloseMode,
        /// Most transactions the sender has in flight at once.
        max_inflight: u32,
    },
    Handshake {
        close: CloseMode,
        max_inflight: u32,
    },
    Bulk {
        /// Flows in each direction the trial runs: TCP connections, or
        /// QUIC streams.
        flows: u32,
        /// QUIC: connections the flows are spread over (flow i on
        /// connection i mod this).
        quic_connections: u32,
        /// Which way the flows carry their bytes.
        direction: BulkDirection,
    },
    /// One flow (UDP), connection (TCP) or stream (QUIC) of heartbeats,
    /// each a message whose delivery the receiver records.
    Heartbeat {},
}

/// rr: what the receiver keeps per request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCounting {
    /// Keep each id's response and answer a repeat of the id (a retry, or
    /// a copy the path made) from it, without processing it again.
    pub idempotency_keys: bool,
}

/// Which way a bulk trial's flows carry their bytes. The sender opens
/// every flow either way; a flow's first 4 bytes, its index, tell the
/// receiver whether to read it or to write it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkDirection {
    /// Sender to receiver.
    #[default]
    Up,
    /// Receiver to sender, as iperf3 -R.
    Down,
    /// `flows` each way at once, as RRUL: flows `0..flows` up, the rest down.
    Both,
}

impl BulkDirection {
    pub const ALL: [BulkDirection; 3] = [BulkDirection::Up, BulkDirection::Down, BulkDirection::Both];

    pub fn name(self) -> &'static str {
        match self {
            BulkDirection::Up => "up",
            BulkDirection::Down => "down",
            BulkDirection::Both => "both",
        }
    }

    /// Every flow of a trial of `flows` per direction.
    pub fn total_flows(self, flows: u32) -> u32 {
        match self {
            BulkDirection::Both => flows.saturating_mul(2),
            BulkDirection::Up | BulkDirection::Down => flows,
        }
    }

    /// Which way flow `flow` of `flows` per direction runs: `Up` or `Down`.
    pub fn of_flow(self, flow: u32, flows: u32) -> BulkDirection {
        match self {
            BulkDirection::Both if flow < flows => BulkDirection::Up,
            BulkDirection::Both => BulkDirection::Down,
            one => one,
        }
    }
}

impl fmt::Display for BulkDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BulkDirection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BulkDirection::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown direction {s:?}: up, down or both"))
    }
}

impl WorkloadSetup {
    pub fn kind(&self) -> Workload {
        match self {
            WorkloadSetup::Rr { .. } => Workload::Rr,
            WorkloadSetup::Multistream { .. } => Workload::Multistream,
            WorkloadSetup::Stream {} => Workload::Stream,
            WorkloadSetup::Churn { .. } => Workload::Churn,
            WorkloadSetup::Handshake { .. } => Workload::Handshake,
            WorkloadSetup::Bulk { .. } => Workload::Bulk,
            WorkloadSetup::Heartbeat {} => Workload::Heartbeat,
        }
    }
}

/// The receiver's side of a trial, sent after Stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverReport {
    /// Well-formed requests received.
    pub requests: u64,
    /// Responses sent.
    pub responses: u64,
    /// Payload bytes received, headers included (bulk: read of up flows,
    /// written of down flows).
    pub bytes: u64,
    /// Traffic that did not show it belongs to the trial: datagrams
    /// without its token, data connections that did not open with it or
    /// came from another address. Never answered, never counted as the
    /// trial's.
    pub rejected: u64,
    /// The trial's own messages (they showed its token) that the receiver
    /// could not use: malformed, of a stream the trial does not have, or
    /// past its record limit.
    #[serde(default)]
    pub discarded: u64,
    /// Data connections accepted (TCP, TLS, QUIC).
    pub connections: u64,
    /// Failures of the receiver's own data plane (an accept that found no
    /// file descriptor left, ...): how many, and the first few in words.
    /// Any makes the trial invalid.
    #[serde(default)]
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<String>,
    /// CPU time of the receiver process over the trial, ns (user + system).
    pub cpu_ns: u64,
    /// TCP congestion control of the receiver's data connection.
    #[serde(default)]
    pub tcp_congestion: Option<String>,
    /// Churn and handshake: the receiver's network namespace over the
    /// trial (its TIME_WAIT samples travel in `TimeWait` frames before
    /// this report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NamespaceReport>,
    /// The receiver's network namespace as the kernel names it
    /// (`net:[INODE]`), to tell which one served the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// quic-dgram: the receiver's side of its DATAGRAM frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_datagrams: Option<DatagramCounts>,
    /// The receiver's host, with the interface its traffic to the sender
    /// left by, taken as the trial ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Box<crate::HostInfo>>,
    /// rr with delivery counting: what the per-id counts (sent in
    /// `Processed` frames before this report) cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<ReceiverDelivery>,
}

/// What the receiver's per-id counts of an rr trial cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReceiverDelivery {
    /// Ids counted one by one: `0..tracked_ids`, the trial's scheduled
    /// requests and a margin.
    pub tracked_ids: u64,
    /// Requests that arrived with an id past them: answered and processed
    /// every time (no stored response to answer from), counted only here.
    pub beyond_ids: u64,
    /// Whether repeats were answered from the stored response.
    pub idempotency_keys: bool,
}

/// One side's QUIC DATAGRAM frames over a trial: what its application
/// handed to quinn and read from it, and the frames quinn sent and
/// received. quinn sends a datagram when the congestion window lets it
/// and drops the oldest queued one when its send buffer is full; it drops
/// the oldest received one when the application reads too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatagramCounts {
    /// Datagrams the application handed to quinn.
    pub offered: u64,
    /// Of those refused at once: larger than the path's
    /// `max_datagram_size` (never sent, never counted in `offered`).
    pub too_large: u64,
    /// DATAGRAM frames quinn sent (`frame_tx.datagram`).
    pub sent: u64,
    /// DATAGRAM frames quinn received (`frame_rx.datagram`).
    pub received: u64,
    /// Datagrams the application read.
    pub read: u64,
}

impl DatagramCounts {
    /// Offered but never sent: dropped from quinn's send buffer while the
    /// congestion window held them back.
    pub fn dropped_sending(&self) -> u64 {
        self.offered.saturating_sub(self.sent)
    }

    /// Received but never read: dropped from quinn's receive buffer.
    pub fn dropped_receiving(&self) -> u64 {
        self.received.saturating_sub(self.read)
    }
}

/// What one agent saw of its network namespace during a churn trial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceReport {
    /// CLOCK_MONOTONIC at the trial's start on this agent, ns: sample
    /// times count from it.
    pub start_mono_ns: u64,
    /// The sysctls that shape TIME_WAIT and port choice, as in force.
    pub sysctls: BTreeMap<String, String>,
    /// `TcpExt` counters (TW, TWRecycled, TCPTimeWaitOverflow, ...)
    /// before and after the trial.
    pub tcp_ext_before: BTreeMap<String, u64>,
    pub tcp_ext_after: BTreeMap<String, u64>,
}

/// One TIME_WAIT sample: `[mono_ns, namespace total, this trial's]`, the
/// last `null` when not counted that time.
pub type TimeWaitSample = (u64, u64, Option<u64>);

/// Samples per `TimeWait` frame: at most 64 bytes each as JSON, so a full
/// frame stays well inside [`CONTROL_FRAMING`]'s limit.
pub const SAMPLES_PER_FRAME: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMsg {
    Hello {
        magic: String,
        version: u32,
        client_nonce: String,
    },
    Challenge {
        server_nonce: String,
        auth_required: bool,
    },
    Auth {
        client_proof: Option<String>,
    },
    Welcome {
        receiver_version: String,
        /// With a secret: the receiver's proof, sent only once the
        /// sender's own has checked out.
        #[serde(default)]
        server_proof: Option<String>,
        /// The receiver's kernel boot id: equal to the sender's when both
        /// share one CLOCK_MONOTONIC, so one-way delays are exact.
        #[serde(default)]
        boot_id: Option<String>,
    },
    Refused {
        reason: String,
    },
    Setup(TrialSetup),
    Ready {
        data_port: u16,
        cert_sha256: Option<String>,
        /// What the trial's data-plane traffic shows to be served
        /// ([`crate::token`]).
        token: TrialToken,
    },
    Start,
    /// Ends the trial. One-way workloads say how many messages were sent,
    /// and the receiver waits up to `wait_ns` for them before it reports.
    Stop {
        #[serde(default)]
        expect: Option<u64>,
        #[serde(default)]
        wait_ns: u64,
    },
    /// One-way workloads: a batch of what the receiver delivered, sent
    /// after Stop and before the Report (see [`crate::delivery`]).
    Deliveries {
        records: String,
    },
    /// Churn: a batch of the receiver's TIME_WAIT samples, sent after Stop
    /// and before the Report.
    TimeWait {
        samples: Vec<TimeWaitSample>,
    },
    /// Bulk: bytes one flow's application read per bin (see
    /// [`BIN_NS`]), from bin `first` on, sent after Stop and before the
    /// Report; a flow's bins may take several frames.
    FlowBins {
        flow: u32,
        first: u32,
        bins: Vec<u64>,
    },
    /// rr with delivery counting: ids `first..` of the receiver's per-id
    /// counts (see [`crate::processed`]), sent after Stop and before the
    /// Report; the ids of a trial may take several frames.
    Processed {
        first: u64,
        counts: String,
    },
    Report(ReceiverReport),
    /// Between trials: a probe of the receiver's clock, sent at `t1` on
    /// the sender's (CLOCK_MONOTONIC ns).
    ClockProbe {
        t1: u64,
    },
    /// The probe's echo: its `t1`, and on the receiver's clock when the
    /// probe was read (`t2`) and when this was sent (`t3`).
    ClockEcho {
        t1: u64,
        t2: u64,
        t3: u64,
    },
}

/// Bulk: how long a bin of [`ControlMsg::FlowBins`] is, from the moment
/// the receiver took the Start.
pub const BIN_NS: u64 = 100_000_000;

/// Bins in one [`ControlMsg::FlowBins`] frame: 2,000 of 20 digits each
/// stay within a control frame.
pub const BINS_PER_FRAME: usize = 2_000;

#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("malformed control frame: {0}")]
    Malformed(String),
}

impl ControlMsg {
    /// The frame for this message, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        CONTROL_FRAMING
            .encode(&self.to_payload(), &mut out)
            .expect("control messages are far below the frame limit");
        out
    }

    /// The frame's payload: the message as JSON.
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages always serialize")
    }

    /// Decodes a frame's payload (without its length prefix).
    pub fn decode(payload: &[u8]) -> Result<Self, ControlError> {
        serde_json::from_slice(payload).map_err(|e| ControlError::Malformed(e.to_string()))
    }

    /// Splits one message off the front of `buf`; `Ok(None)` if incomplete.
    pub fn split(buf: &[u8]) -> Result<Option<(Self, usize)>, ControlError> {
        match CONTROL_FRAMING.split(buf)? {
            None => Ok(None),
            Some((payload, used)) => Ok(Some((Self::decode(payload)?, used))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ControlMsg::Hello { .. } => "hello",
            ControlMsg::Challenge { .. } => "challenge",
            ControlMsg::Auth { .. } => "auth",
            ControlMsg::Welcome { .. } => "welcome",
            ControlMsg::Refused { .. } => "refused",
            ControlMsg::Setup(_) => "setup",
            ControlMsg::Ready { .. } => "ready",
            ControlMsg::Start => "start",
            ControlMsg::Stop { .. } => "stop",
            ControlMsg::Deliveries { .. } => "deliveries",
            ControlMsg::TimeWait { .. } => "time_wait",
            ControlMsg::FlowBins { .. } => "flow_bins",
            ControlMsg::Processed { .. } => "processed",
            ControlMsg::Report(_) => "report",
            ControlMsg::ClockProbe { .. } => "clock_probe",
            ControlMsg::ClockEcho { .. } => "clock_echo",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_put_the_first_flows_up_and_the_rest_down() {
        use BulkDirection::*;
        assert_eq!(Both.total_flows(3), 6);
        let ways: Vec<BulkDirection> = (0..6).map(|f| Both.of_flow(f, 3)).collect();
        assert_eq!(ways, [Up, Up, Up, Down, Down, Down]);
        assert_eq!(Down.total_flows(3), 3);
        assert!((0..3).all(|f| Down.of_flow(f, 3) == Down && Up.of_flow(f, 3) == Up));
        for d in BulkDirection::ALL {
            assert_eq!(d.name().parse::<BulkDirection>(), Ok(d));
        }
        assert!("sideways"
            .parse::<BulkDirection>()
            .unwrap_err()
            .contains("up, down or both"));
    }
    use proptest::prelude::*;

    const PLAN: TrialPlan = TrialPlan {
        warmup_ns: 1_000_000_000,
        duration_ns: 10_000_000_000,
        loss_timeout_ns: 2_000_000_000,
        messages: Some(11_000),
    };

    #[test]
    fn a_plans_rate_is_its_messages_over_its_offered_time() {
        assert_eq!(PLAN.rate(), Some(1000.0));
        let closed = TrialPlan {
            messages: None,
            ..PLAN
        };
        assert_eq!(closed.rate(), None);
    }

    fn samples() -> Vec<ControlMsg> {
        vec![
            ControlMsg::Hello {
                magic: MAGIC.into(),
                version: PROTOCOL_VERSION,
                client_nonce: "00ff".into(),
            },
            ControlMsg::Challenge {
                server_nonce: "ab".into(),
                auth_required: true,
            },
            ControlMsg::Auth { client_proof: None },
            ControlMsg::Welcome {
                receiver_version: "0.1.0".into(),
                server_proof: Some("cd".into()),
                boot_id: Some("b".into()),
            },
            ControlMsg::Refused { reason: "no".into() },
            ControlMsg::Setup(TrialSetup {
                transport: Transport::TcpTls,
                size: 64,
                tcp_congestion: Some("cubic".into()),
                quic_congestion: None,
                plan: PLAN,
                reverse_impair: None,
                workload: WorkloadSetup::Multistream {
                    streams: 8,
                    echo: true,
                },
            }),
            ControlMsg::Setup(TrialSetup {
                transport: Transport::Udp,
                size: 64,
                tcp_congestion: None,
                quic_congestion: None,
                plan: PLAN,
                reverse_impair: None,
                workload: WorkloadSetup::Rr {
                    udp_peer_port: Some(4000),
                    quic_stream: QuicStreamMode::Single,
                    delivery: Some(DeliveryCounting {
                        idempotency_keys: true,
                    }),
                },
            }),
            ControlMsg::Setup(TrialSetup {
                transport: Transport::Tcp,
                size: 64,
                tcp_congestion: None,
                quic_congestion: None,
                plan: PLAN,
                reverse_impair: None,
                workload: WorkloadSetup::Churn {
                    close: CloseMode::Server,
                    max_inflight: 1000,
                },
            }),
            ControlMsg::Ready {
                data_port: 5001,
                cert_sha256: Some("beef".into()),
                token: TrialToken::from_bytes(*b"trial-42"),
            },
            ControlMsg::Start,
            ControlMsg::Stop {
                expect: Some(9),
                wait_ns: 5,
            },
            ControlMsg::Deliveries {
                records: "AAAA".into(),
            },
            ControlMsg::TimeWait {
                samples: vec![(1, 2, Some(3)), (4, 5, None)],
            },
            ControlMsg::Setup(TrialSetup {
                transport: Transport::Quic,
                size: 65536,
                tcp_congestion: None,
                quic_congestion: Some("bbr".into()),
                plan: PLAN,
                reverse_impair: None,
                workload: WorkloadSetup::Bulk {
                    flows: 4,
                    quic_connections: 2,
                    direction: BulkDirection::Both,
                },
            }),
            ControlMsg::Setup(TrialSetup {
                transport: Transport::Udp,
                size: 64,
                tcp_congestion: None,
                quic_congestion: None,
                plan: PLAN,
                reverse_impair: None,
                workload: WorkloadSetup::Heartbeat {},
            }),
            ControlMsg::FlowBins {
                flow: 3,
                first: 2000,
                bins: vec![0, 125_000, 1 << 40],
            },
            ControlMsg::Report(ReceiverReport {
                requests: 5,
                responses: 5,
                bytes: 320,
                namespace: Some(NamespaceReport {
                    start_mono_ns: 7,
                    sysctls: [("net.ipv4.tcp_tw_reuse".to_string(), "2".to_string())].into(),
                    tcp_ext_before: [("TW".to_string(), 1)].into(),
                    tcp_ext_after: [("TW".to_string(), 9)].into(),
                }),
                ..Default::default()
            }),
            ControlMsg::Processed {
                first: 15_000,
                counts: "AQAB".into(),
            },
            ControlMsg::Report(ReceiverReport {
                requests: 7,
                delivery: Some(ReceiverDelivery {
                    tracked_ids: 1016,
                    beyond_ids: 0,
                    idempotency_keys: false,
                }),
                ..Default::default()
            }),
            ControlMsg::ClockProbe { t1: u64::MAX },
            ControlMsg::ClockEcho {
                t1: 1,
                t2: 259_200_123_456_789,
                t3: u64::MAX,
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for msg in samples() {
            let frame = msg.encode();
            let (back, used) = ControlMsg::split(&frame).unwrap().unwrap();
            assert_eq!(back, msg);
            assert_eq!(used, frame.len());
        }
    }

    #[test]
    fn transport_names_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>(), Ok(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.name()));
        }
        assert!("sctp".parse::<Transport>().unwrap_err().contains("tcp+tls"));
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
            assert_eq!(serde_json::to_string(&w).unwrap(), format!("\"{}\"", w.name()));
        }
        assert_eq!(" tcp".parse::<Transport>(), Ok(Transport::Tcp));
    }

    #[test]
    fn capabilities_decide_which_workload_runs_where() {
        use Transport::*;
        let runs = |w: Workload| w.transports();
        assert_eq!(runs(Workload::Rr), [Udp, Tcp, TcpTls, Quic, QuicDgram]);
        assert_eq!(
            runs(Workload::Multistream),
            [TcpMux, TcpTlsMux, TcpN, Quic, Udp, QuicDgram]
        );
        assert_eq!(runs(Workload::Stream), [Udp, QuicDgram]);
        assert_eq!(Workload::Rr.default_transports(), [Udp, Tcp, TcpTls, Quic]);
        assert_eq!(Workload::Stream.default_transports(), [Udp]);
        assert_eq!(runs(Workload::Bulk), [Tcp, TcpTls, Quic]);
        assert_eq!(runs(Workload::Load), [Tcp, TcpTls, Quic]);
        assert_eq!(runs(Workload::Heartbeat), [Udp, Tcp, Quic]);
        for w in [Workload::Churn, Workload::Handshake] {
            assert_eq!(runs(w), [Tcp, TcpTls, Quic, Quic0Rtt]);
        }
        assert_eq!(Workload::Churn.default_transports(), [Tcp, TcpTls, Quic]);
        assert_eq!(
            Workload::Handshake.default_transports(),
            runs(Workload::Handshake)
        );
        // Every transport runs something, and TLS/QUIC/TCP follow from the carrier.
        for t in Transport::ALL {
            assert!(Workload::ALL.iter().any(|w| w.runs_on(t.capabilities())), "{t}");
            assert!(!(t.is_quic() && t.is_tcp()), "{t}");
            assert!(!t.is_quic() || t.uses_tls(), "{t}: QUIC always runs TLS");
        }
    }

    #[test]
    fn close_modes_round_trip_and_a_full_time_wait_frame_fits() {
        for c in CloseMode::ALL {
            assert_eq!(c.name().parse::<CloseMode>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.name()));
        }
        assert!("fin".parse::<CloseMode>().unwrap_err().contains("rst"));
        let full = ControlMsg::TimeWait {
            samples: vec![(u64::MAX, u64::MAX, Some(u64::MAX)); SAMPLES_PER_FRAME],
        };
        let mut out = Vec::new();
        assert!(CONTROL_FRAMING.encode(&full.to_payload(), &mut out).is_ok());
        let full = ControlMsg::FlowBins {
            flow: u32::MAX,
            first: u32::MAX,
            bins: vec![u64::MAX; BINS_PER_FRAME],
        };
        assert!(CONTROL_FRAMING.encode(&full.to_payload(), &mut out).is_ok());
    }

    #[test]
    fn clock_messages_carry_their_timestamps_by_name() {
        let echo = ControlMsg::ClockEcho { t1: 1, t2: 2, t3: 3 };
        assert_eq!(
            String::from_utf8(echo.to_payload()).unwrap(),
            r#"{"type":"clock_echo","t1":1,"t2":2,"t3":3}"#
        );
        assert_eq!(echo.name(), "clock_echo");
        assert_eq!(
            ControlMsg::decode(br#"{"type":"clock_probe","t1":18446744073709551615}"#).unwrap(),
            ControlMsg::ClockProbe { t1: u64::MAX }
        );
    }

    #[test]
    fn a_bare_stop_still_decodes() {
        assert_eq!(
            ControlMsg::decode(br#"{"type":"stop"}"#).unwrap(),
            ControlMsg::Stop {
                expect: None,
                wait_ns: 0
            }
        );
    }

    #[test]
    fn http_request_is_refused_not_buffered() {
        // "GET " read as a length is ~1.2 GB: must be refused at once.
        assert!(matches!(
            ControlMsg::split(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ControlError::Frame(FrameError::TooLong { .. }))
        ));
    }

    proptest! {
        #[test]
        fn corrupted_frames_are_errors_not_panics(idx in 0..samples().len(), pos: usize, byte: u8) {
            let mut frame = samples()[idx].encode();
            let pos = pos % frame.len();
            frame[pos] ^= byte | 1;
            // Any outcome but a panic is fine; a clean decode must be a whole frame.
            if let Ok(Some((_, used))) = ControlMsg::split(&frame) {
                prop_assert!(used <= frame.len());
            }
        }

        #[test]
        fn truncated_frames_need_more(idx in 0..samples().len(), cut: usize) {
            let frame = samples()[idx].encode();
            let cut = cut % frame.len();
            prop_assert!(matches!(ControlMsg::split(&frame[..cut]), Ok(None)));
        }

        #[test]
        fn truncated_payload_is_malformed(idx in 0..samples().len(), cut: usize) {
            let frame = samples()[idx].encode();
            let payload = &frame[4..];
            let cut = cut % payload.len();
            prop_assert!(ControlMsg::decode(&payload[..cut]).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ControlMsg::split(&bytes);
        }
    }
}
