//! A firewall's REJECT in the middle of a path, as linkemu answers it:
//! every packet dropped and answered toward its sender, so that the
//! sender's stack learns at once that the path refuses it (where a
//! blackhole leaves it to its timers).
//!
//! - [`Reject::Icmp`]: ICMP destination unreachable, host unreachable for
//!   IPv4 (type 3 code 1, RFC 792) and address unreachable for IPv6 (type
//!   1 code 3, RFC 4443), quoting the rejected packet: as much of it as
//!   fits in 576 bytes for IPv4 (RFC 1812 §4.3.2.3; at least RFC 792's IP
//!   header and 8 bytes), in 1280 for IPv6 (RFC 4443 §3.1).
//! - [`Reject::TcpReset`]: a TCP segment other than a reset answered with
//!   the reset RFC 9293 §3.10.7.1 has a closed port send, other packets
//!   as [`Reject::Icmp`].
//!
//! The answer comes from the rejected packet's destination address (a
//! router in the middle would use its own; the testbed's two namespaces
//! have no third address, and both stacks take an ICMP error or a reset
//! from any source). Nothing is answered that RFC 1122 §3.2.2 and RFC
//! 4443 §2.4(e) say must not be: an ICMP error, a packet to a multicast
//! or broadcast address or from an address that names no single host,
//! a fragment other than the first; and never a reset (RFC 9293). Nor a
//! packet too short or inconsistent to read, which no stack would send.
//! So an answer meeting the same reject is not answered again (plain
//! `reject` answers a reset with ICMP, as it does any packet).
//!
//! Pure: bytes in, bytes out.

use crate::checksum;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// How a rejecting link answers what it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// ICMP destination unreachable for every packet.
    Icmp,
    /// A TCP reset for TCP segments, ICMP for the rest.
    TcpReset,
}

impl Reject {
    /// Its name in results: `icmp` or `tcp-reset`.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Icmp => "icmp",
            Reject::TcpReset => "tcp-reset",
        }
    }
}

/// The words of a schedule: `reject` or `reject tcp-reset`.
impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Icmp => f.write_str("reject"),
            Reject::TcpReset => f.write_str("reject tcp-reset"),
        }
    }
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_ICMPV6: u8 = 58;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// What an ICMPv4 error may fill, IP header included (RFC 1812 §4.3.2.3).
const ICMPV4_MAX: usize = 576;
/// What an ICMPv6 error may fill: the minimum IPv6 MTU (RFC 4443 §3.1).
const ICMPV6_MAX: usize = 1280;
/// The hop limit of an answer: Linux's default.
const HOP_LIMIT: u8 = 64;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The answer to `packet` (an IP packet as a TUN device carries it), or
/// `None` where nothing may be answered (see the module's notes).
pub fn answer(packet: &[u8], reject: Reject) -> Option<Vec<u8>> {
    match packet.first()? >> 4 {
        4 => answer_v4(packet, reject),
        6 => answer_v6(packet, reject),
        _ => None,
    }
}

/// A TCP segment's fields a reset is built from.
#[derive(Debug, Clone, Copy)]
struct Segment {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    /// SEG.LEN: data, plus one each for SYN and FIN.
    len: u32,
}

impl Segment {
    /// `tcp` is the segment from its header to the packet's end.
    fn read(tcp: &[u8]) -> Option<Segment> {
        let header = usize::from(*tcp.get(12)? >> 4) * 4;
        if header < TCP_HEADER || header > tcp.len() {
            return None;
        }
        let flags = tcp[13];
        let data = (tcp.len() - header) as u32;
        Some(Segment {
            src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
            dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
            seq: u32::from_be_bytes(tcp[4..8].try_into().expect("4 bytes")),
            ack: u32::from_be_bytes(tcp[8..12].try_into().expect("4 bytes")),
            flags,
            len: data + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0),
        })
    }

    /// The reset RFC 9293 §3.10.7.1 sends from a closed port: with the
    /// segment's ACK, `<SEQ=SEG.ACK><CTL=RST>`; without,
    /// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`. Its checksum is left
    /// for the caller, who knows the pseudo-header.
    fn reset(&self) -> [u8; TCP_HEADER] {
        let (seq, ack, flags) = if self.flags & TCP_ACK != 0 {
            (self.ack, 0, TCP_RST)
        } else {
            (0, self.seq.wrapping_add(self.len), TCP_RST | TCP_ACK)
        };
        let mut tcp = [0u8; TCP_HEADER];
        tcp[0..2].copy_from_slice(&self.dst_port.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.src_port.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = (TCP_HEADER as u8 / 4) << 4;
        tcp[13] = flags;
        tcp
    }
}

/// What a packet's payload is, as far as answering it goes.
enum Payload<'a> {
    /// An ICMP error, a reset, a later fragment, or unreadable: no answer.
    Unanswerable,
    /// A TCP segment (from its header to the packet's end).
    Tcp(&'a [u8]),
    Other,
}

fn answer_v4(packet: &[u8], reject: Reject) -> Option<Vec<u8>> {
    let header = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() < IPV4_HEADER || header < IPV4_HEADER {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < header || total > packet.len() {
        return None;
    }
    let packet = &packet[..total];
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).expect("4 bytes"));
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).expect("4 bytes"));
    // RFC 1122 §3.2.2: a source that names no single host, a destination
    // that is not one.
    let single_host = |a: Ipv4Addr| {
        !(a.is_unspecified()
            || a.is_loopback()
            || a.is_multicast()
            || a.is_broadcast()
            || a.octets()[0] >= 240)
    };
    if !single_host(src) || dst.is_multicast() || dst.is_broadcast() {
        return None;
    }
    let later_fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff != 0;
    let payload = match (later_fragment, packet[9]) {
        (true, _) => Payload::Unanswerable,
        (false, PROTO_ICMP) => match packet.get(header) {
            // Destination unreachable, source quench, redirect, time
            // exceeded, parameter problem: the errors.
            Some(3 | 4 | 5 | 11 | 12) | None => Payload::Unanswerable,
            Some(_) => Payload::Other,
        },
        (false, PROTO_TCP) => Payload::Tcp(&packet[header..]),
        (false, _) => Payload::Other,
    };
    let (protocol, body) = match (payload, reject) {
        (Payload::Unanswerable, _) => return None,
        (Payload::Tcp(tcp), Reject::TcpReset) => (
            PROTO_TCP,
            reset_for(tcp, &pseudo_header_v4(dst, src, PROTO_TCP, TCP_HEADER))?,
        ),
        (Payload::Tcp(_) | Payload::Other, _) => {
            let quoted = &packet[..total.min(ICMPV4_MAX - IPV4_HEADER - ICMP_HEADER)];
            let mut icmp = vec![3, 1, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(quoted);
            let sum = checksum::internet(&[&icmp]);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (PROTO_ICMP, icmp)
        }
    };
    let mut ip = [0u8; IPV4_HEADER];
    ip[0] = 0x45;
    // Internetwork control, as Linux marks its ICMP errors; a reset
    // carries no class.
    ip[1] = if protocol == PROTO_ICMP { 0xc0 } else { 0 };
    ip[2..4].copy_from_slice(&((IPV4_HEADER + body.len()) as u16).to_be_bytes());
    ip[8] = HOP_LIMIT;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&dst.octets());
    ip[16..20].copy_from_slice(&src.octets());
    checksum::fill_ipv4_header(&mut ip);
    Some([&ip[..], &body].concat())
}

/// Extension headers a packet may carry before its upper layer:
/// hop-by-hop options, routing, fragment, destination options.
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DESTINATION_OPTIONS: u8 = 60;

fn answer_v6(packet: &[u8], reject: Reject) -> Option<Vec<u8>> {
    if packet.len() < IPV6_HEADER {
        return None;
    }
    let total = IPV6_HEADER + usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    if total > packet.len() {
        return None;
    }
    let packet = &packet[..total];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).expect("16 bytes"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).expect("16 bytes"));
    // RFC 4443 §2.4(e): a source that names no single node, a multicast
    // destination.
    if src.is_unspecified() || src.is_multicast() || dst.is_multicast() {
        return None;
    }
    let (mut next, mut at) = (packet[6], IPV6_HEADER);
    let payload = loop {
        match next {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
                next = packet[at];
                at += len;
            }
            FRAGMENT => {
                let offset = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]) >> 3;
                if offset != 0 {
                    break Payload::Unanswerable;
                }
                next = packet[at];
                at += 8;
            }
            PROTO_ICMPV6 => match packet.get(at) {
                // Types below 128 are the errors.
                Some(&t) if t >= 128 => break Payload::Other,
                _ => break Payload::Unanswerable,
            },
            PROTO_TCP => break packet.get(at..).map_or(Payload::Unanswerable, Payload::Tcp),
            _ if at > packet.len() => break Payload::Unanswerable,
            _ => break Payload::Other,
        }
    };
    let (protocol, body) = match (payload, reject) {
        (Payload::Unanswerable, _) => return None,
        (Payload::Tcp(tcp), Reject::TcpReset) => (
            PROTO_TCP,
            reset_for(tcp, &pseudo_header_v6(dst, src, PROTO_TCP, TCP_HEADER))?,
        ),
        (Payload::Tcp(_) | Payload::Other, _) => {
            let quoted = &packet[..total.min(ICMPV6_MAX - IPV6_HEADER - ICMP_HEADER)];
            let mut icmp = vec![1, 3, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(quoted);
            let sum = checksum::internet(&[&pseudo_header_v6(dst, src, PROTO_ICMPV6, icmp.len()), &icmp]);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (PROTO_ICMPV6, icmp)
        }
    };
    let mut ip = [0u8; IPV6_HEADER];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    ip[6] = protocol;
    ip[7] = HOP_LIMIT;
    ip[8..24].copy_from_slice(&dst.octets());
    ip[24..40].copy_from_slice(&src.octets());
    Some([&ip[..], &body].concat())
}

/// The reset answering TCP segment `tcp` (none to a reset), its checksum
/// over `pseudo_header` (the answer's addresses).
fn reset_for(tcp: &[u8], pseudo_header: &[u8]) -> Option<Vec<u8>> {
    let segment = Segment::read(tcp)?;
    if segment.flags & TCP_RST != 0 {
        return None;
    }
    let mut reset = segment.reset();
    let sum = checksum::internet(&[pseudo_header, &reset]);
    reset[16..18].copy_from_slice(&sum.to_be_bytes());
    Some(reset.to_vec())
}

fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, protocol]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, protocol]);
    p
}
