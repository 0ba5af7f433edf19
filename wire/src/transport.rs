//! The transports a trial can run on, by name, and what each one is: the
//! protocol underneath, TLS, how it carries several streams, 0-RTT.
//! Workloads choose transports by these capabilities, never by name.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The protocol a transport's packets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// Datagrams: unreliable, unordered, no connection.
    Udp,
    /// The kernel's TCP: one ordered byte stream per connection, its
    /// congestion control pinned per socket.
    Tcp,
    /// QUIC (quinn): independent streams in one connection over UDP, with
    /// quinn's congestion control; or its unreliable DATAGRAM frames.
    Quic,
}

/// How a transport carries N logical streams, which decides what one lost
/// packet holds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Streams {
    /// One ordered connection, one sequence of messages (no logical streams).
    Single,
    /// Frames of every stream over one ordered connection: a loss stalls all.
    Multiplexed,
    /// A connection per stream: a loss stalls only its own.
    ConnectionPerStream,
    /// The protocol's own independent streams in one connection.
    Native,
    /// A datagram flow per stream: nothing waits for a loss.
    FlowPerStream,
}

impl Streams {
    /// How well streams are kept apart, least first (the order reports
    /// list multistream transports in).
    pub fn isolation(self) -> u8 {
        match self {
            Streams::Single => 0,
            Streams::Multiplexed => 1,
            Streams::ConnectionPerStream => 2,
            Streams::Native => 3,
            Streams::FlowPerStream => 4,
        }
    }
}

/// What a transport is, as workloads see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    pub carrier: Carrier,
    /// Runs inside TLS 1.3 (the receiver's certificate pinned).
    pub tls: bool,
    pub streams: Streams,
    /// Whether what is sent arrives (retransmitted when lost); UDP's
    /// datagrams do not.
    pub reliable: bool,
    /// Every connection resumes an earlier session and sends its request
    /// as 0-RTT data: meaningful only where connections come and go.
    pub zero_rtt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    #[serde(rename = "udp")]
    Udp,
    #[serde(rename = "tcp")]
    Tcp,
    #[serde(rename = "tcp+tls")]
    TcpTls,
    #[serde(rename = "quic")]
    Quic,
    /// Multistream: one TCP connection carrying every logical stream in
    /// HTTP/2-style frames.
    #[serde(rename = "tcp-mux")]
    TcpMux,
    /// `tcp-mux` inside TLS.
    #[serde(rename = "tcp+tls-mux")]
    TcpTlsMux,
    /// Multistream: one TCP connection per logical stream.
    #[serde(rename = "tcp-n")]
    TcpN,
    /// Churn and handshake: QUIC resuming an earlier session, the request
    /// sent as 0-RTT data in the client's first flight.
    #[serde(rename = "quic-0rtt")]
    Quic0Rtt,
    /// QUIC DATAGRAM frames (RFC 9221): a message per datagram inside a
    /// QUIC connection, encrypted and congestion controlled, never
    /// retransmitted.
    #[serde(rename = "quic-dgram")]
    QuicDgram,
}

impl Transport {
    pub const ALL: [Transport; 9] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::TcpTls,
        Transport::Quic,
        Transport::TcpMux,
        Transport::TcpTlsMux,
        Transport::TcpN,
        Transport::Quic0Rtt,
        Transport::QuicDgram,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::TcpTls => "tcp+tls",
            Transport::Quic => "quic",
            Transport::TcpMux => "tcp-mux",
            Transport::TcpTlsMux => "tcp+tls-mux",
            Transport::TcpN => "tcp-n",
            Transport::Quic0Rtt => "quic-0rtt",
            Transport::QuicDgram => "quic-dgram",
        }
    }

    /// What this transport is, as workloads see it: every other property
    /// of a transport (which workloads it runs, TLS, congestion control,
    /// its largest message) follows from these.
    pub fn capabilities(self) -> Capabilities {
        let (carrier, tls, streams, zero_rtt) = match self {
            Transport::Udp => (Carrier::Udp, false, Streams::FlowPerStream, false),
            Transport::Tcp => (Carrier::Tcp, false, Streams::Single, false),
            Transport::TcpTls => (Carrier::Tcp, true, Streams::Single, false),
            Transport::Quic => (Carrier::Quic, true, Streams::Native, false),
            Transport::TcpMux => (Carrier::Tcp, false, Streams::Multiplexed, false),
            Transport::TcpTlsMux => (Carrier::Tcp, true, Streams::Multiplexed, false),
            Transport::TcpN => (Carrier::Tcp, false, Streams::ConnectionPerStream, false),
            Transport::Quic0Rtt => (Carrier::Quic, true, Streams::Native, true),
            // A datagram per message: a logical stream is only a label.
            Transport::QuicDgram => (Carrier::Quic, true, Streams::FlowPerStream, false),
        };
        Capabilities {
            carrier,
            tls,
            streams,
            // Datagrams, over UDP or in QUIC's DATAGRAM frames, are never resent.
            reliable: streams != Streams::FlowPerStream,
            zero_rtt,
        }
    }

    /// Whether the data plane runs inside TLS (so the receiver sends its
    /// certificate fingerprint).
    pub fn uses_tls(self) -> bool {
        self.capabilities().tls
    }

    /// Whether the data plane is QUIC.
    pub fn is_quic(self) -> bool {
        self.capabilities().carrier == Carrier::Quic
    }

    /// Whether messages travel in QUIC DATAGRAM frames.
    pub fn is_quic_datagram(self) -> bool {
        let caps = self.capabilities();
        caps.carrier == Carrier::Quic && !caps.reliable
    }

    /// Whether data connections are TCP (so congestion control is pinned).
    pub fn is_tcp(self) -> bool {
        self.capabilities().carrier == Carrier::Tcp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Transport::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Transport::ALL.iter().map(|t| t.name()).collect();
            format!("unknown transport {s:?}: expected one of {}", names.join(", "))
        })
    }
}
