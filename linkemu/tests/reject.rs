//! A rejecting link's answers, built from synthetic IPv4 and IPv6 packets
//! and read back field by field. Checksums are checked the way a
//! receiver checks them: the one's complement sum over the covered bytes,
//! the checksum included, is all ones (summed here 32 bits at a time,
//! folding at the end, not as the code under test sums).

use linkemu::reject::{answer, Reject};
use std::net::{Ipv4Addr, Ipv6Addr};

const SENDER4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const RECEIVER4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const SENDER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const RECEIVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// True if the one's complement sum of `bytes` is all ones: a checksum
/// over them (its own field included) is right.
fn sums_to_all_ones(bytes: &[u8]) -> bool {
    let mut sum: u64 = 0;
    for chunk in bytes.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        sum += u64::from(u32::from_be_bytes(word));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, protocol, 0, 0];
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn udp(data: &[u8]) -> Vec<u8> {
    let mut u = vec![0xa0, 0x00, 0x1f, 0x90, 0, 0, 0, 0];
    u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(data);
    u
}

/// A TCP segment from port 40000 to 8080 (checksum left 0: a rejecting
/// link does not check it).
fn tcp(seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut t = vec![0x9c, 0x40, 0x1f, 0x90];
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    t
}

fn pseudo_v4(src: &[u8], dst: &[u8], protocol: u8, len: usize) -> Vec<u8> {
    [src, dst, &[0, protocol], &(len as u16).to_be_bytes()].concat()
}

fn pseudo_v6(src: &[u8], dst: &[u8], protocol: u8, len: usize) -> Vec<u8> {
    [src, dst, &(len as u32).to_be_bytes()[..], &[0, 0, 0, protocol]].concat()
}

/// An IPv4 answer's header, checked, and its payload.
fn check_v4_header(a: &[u8], protocol: u8) -> &[u8] {
    assert_eq!(a[0], 0x45, "IPv4, 20-byte header");
    assert_eq!(
        usize::from(u16::from_be_bytes([a[2], a[3]])),
        a.len(),
        "total length"
    );
    assert_eq!(a[8], 64, "TTL");
    assert_eq!(a[9], protocol);
    assert!(sums_to_all_ones(&a[..20]), "IPv4 header checksum");
    assert_eq!(
        a[12..16],
        RECEIVER4.octets(),
        "from the rejected packet's destination"
    );
    assert_eq!(a[16..20], SENDER4.octets(), "to its sender");
    &a[20..]
}

fn check_v6_header(a: &[u8], next: u8) -> &[u8] {
    assert_eq!(a[0] >> 4, 6);
    assert_eq!(
        usize::from(u16::from_be_bytes([a[4], a[5]])),
        a.len() - 40,
        "payload length"
    );
    assert_eq!(a[6], next);
    assert_eq!(a[7], 64, "hop limit");
    assert_eq!(a[8..24], RECEIVER6.octets());
    assert_eq!(a[24..40], SENDER6.octets());
    &a[40..]
}

#[test]
fn a_udp_datagram_over_ipv4_gets_host_unreachable_quoting_it() {
    let packet = ipv4(SENDER4, RECEIVER4, 17, &udp(b"a request of the trial"));
    for how in [Reject::Icmp, Reject::TcpReset] {
        let a = answer(&packet, how).expect("answered");
        let icmp = check_v4_header(&a, 1);
        assert_eq!(
            (icmp[0], icmp[1]),
            (3, 1),
            "destination unreachable, host unreachable"
        );
        assert_eq!(icmp[4..8], [0, 0, 0, 0], "unused");
        assert_eq!(
            &icmp[8..],
            &packet[..],
            "the whole packet quoted: it fits in 576 bytes"
        );
        assert!(sums_to_all_ones(icmp), "ICMP checksum");
        assert_eq!(a[1], 0xc0, "internetwork control, as Linux marks ICMP errors");
    }
}

#[test]
fn an_ipv4_quote_stops_at_576_bytes_and_keeps_at_least_the_header_and_8_bytes() {
    let packet = ipv4(SENDER4, RECEIVER4, 17, &udp(&[7u8; 1400]));
    let a = answer(&packet, Reject::Icmp).unwrap();
    assert_eq!(a.len(), 576);
    let icmp = check_v4_header(&a, 1);
    assert_eq!(&icmp[8..], &packet[..548]);
    assert!(sums_to_all_ones(icmp));
}

#[test]
fn a_tcp_segment_with_ack_gets_a_reset_at_its_ack_number() {
    let packet = ipv4(SENDER4, RECEIVER4, 6, &tcp(1000, 777_000, ACK | PSH, &[1u8; 64]));
    let a = answer(&packet, Reject::TcpReset).unwrap();
    assert_eq!(a.len(), 40);
    let t = check_v4_header(&a, 6);
    assert_eq!(
        u16::from_be_bytes([t[0], t[1]]),
        8080,
        "from the port it was sent to"
    );
    assert_eq!(u16::from_be_bytes([t[2], t[3]]), 40000);
    assert_eq!(
        u32::from_be_bytes(t[4..8].try_into().unwrap()),
        777_000,
        "SEQ=SEG.ACK"
    );
    assert_eq!(t[13], RST, "RST alone");
    assert_eq!(t[12] >> 4, 5, "no options");
    let covered = [&pseudo_v4(&a[12..16], &a[16..20], 6, t.len())[..], t].concat();
    assert!(sums_to_all_ones(&covered), "TCP checksum over the pseudo-header");
}

#[test]
fn a_segment_without_ack_gets_a_reset_acknowledging_all_it_carried() {
    // SYN: SEG.LEN 1; SYN with 10 bytes and FIN: 12; a wrapping sequence.
    for (flags, data, seq, acked) in [
        (SYN, &[][..], 5000u32, 5001u32),
        (SYN | FIN, &[9u8; 10][..], u32::MAX - 1, 10),
    ] {
        let packet = ipv4(SENDER4, RECEIVER4, 6, &tcp(seq, 0, flags, data));
        let a = answer(&packet, Reject::TcpReset).unwrap();
        let t = check_v4_header(&a, 6);
        assert_eq!(u32::from_be_bytes(t[4..8].try_into().unwrap()), 0, "SEQ=0");
        assert_eq!(
            u32::from_be_bytes(t[8..12].try_into().unwrap()),
            acked,
            "ACK=SEG.SEQ+SEG.LEN"
        );
        assert_eq!(t[13], RST | ACK);
        let covered = [&pseudo_v4(&a[12..16], &a[16..20], 6, t.len())[..], t].concat();
        assert!(sums_to_all_ones(&covered));
    }
}

#[test]
fn a_reset_is_never_answered_by_a_reset_but_gets_icmp_where_all_is_icmp() {
    let packet = ipv4(SENDER4, RECEIVER4, 6, &tcp(1, 2, RST | ACK, &[]));
    assert_eq!(answer(&packet, Reject::TcpReset), None);
    let a = answer(&packet, Reject::Icmp).expect("plain reject answers any packet with ICMP");
    assert_eq!(check_v4_header(&a, 1)[..2], [3, 1]);
}

#[test]
fn tcp_under_plain_reject_gets_icmp() {
    let packet = ipv4(SENDER4, RECEIVER4, 6, &tcp(1, 2, ACK, b"data"));
    let a = answer(&packet, Reject::Icmp).unwrap();
    let icmp = check_v4_header(&a, 1);
    assert_eq!(&icmp[8..], &packet[..]);
    assert!(sums_to_all_ones(icmp));
}

#[test]
fn a_udp_datagram_over_ipv6_gets_address_unreachable_quoting_it() {
    let packet = ipv6(SENDER6, RECEIVER6, 17, &udp(b"a request"));
    for how in [Reject::Icmp, Reject::TcpReset] {
        let a = answer(&packet, how).unwrap();
        let icmp = check_v6_header(&a, 58);
        assert_eq!(
            (icmp[0], icmp[1]),
            (1, 3),
            "destination unreachable, address unreachable"
        );
        assert_eq!(&icmp[8..], &packet[..]);
        let covered = [&pseudo_v6(&a[8..24], &a[24..40], 58, icmp.len())[..], icmp].concat();
        assert!(
            sums_to_all_ones(&covered),
            "ICMPv6 checksum over the pseudo-header"
        );
    }
}

#[test]
fn an_ipv6_quote_stops_at_the_minimum_mtu() {
    let packet = ipv6(SENDER6, RECEIVER6, 17, &udp(&[3u8; 1400]));
    let a = answer(&packet, Reject::Icmp).unwrap();
    assert_eq!(a.len(), 1280);
    let icmp = check_v6_header(&a, 58);
    assert_eq!(&icmp[8..], &packet[..1232]);
    let covered = [&pseudo_v6(&a[8..24], &a[24..40], 58, icmp.len())[..], icmp].concat();
    assert!(sums_to_all_ones(&covered));
}

#[test]
fn a_tcp_segment_over_ipv6_gets_a_reset_past_its_extension_headers() {
    // A destination options header (8 bytes, padding) before TCP.
    let mut payload = vec![6, 0, 1, 4, 0, 0, 0, 0];
    payload.extend(tcp(42, 0, SYN, &[]));
    let packet = ipv6(SENDER6, RECEIVER6, 60, &payload);
    let a = answer(&packet, Reject::TcpReset).unwrap();
    let t = check_v6_header(&a, 6);
    assert_eq!(t.len(), 20);
    assert_eq!(u32::from_be_bytes(t[8..12].try_into().unwrap()), 43);
    assert_eq!(t[13], RST | ACK);
    let covered = [&pseudo_v6(&a[8..24], &a[24..40], 6, t.len())[..], t].concat();
    assert!(sums_to_all_ones(&covered));
}

#[test]
fn errors_multicast_later_fragments_and_garbage_are_not_answered() {
    let unreachable_v4 = ipv4(SENDER4, RECEIVER4, 1, &[3, 1, 0, 0, 0, 0, 0, 0]);
    let echo_v4 = ipv4(SENDER4, RECEIVER4, 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
    assert_eq!(answer(&unreachable_v4, Reject::Icmp), None, "an ICMP error");
    assert!(
        answer(&echo_v4, Reject::Icmp).is_some(),
        "an echo request is no error"
    );
    let multicast = ipv4(SENDER4, Ipv4Addr::new(224, 0, 0, 1), 17, &udp(b"x"));
    let broadcast = ipv4(SENDER4, Ipv4Addr::BROADCAST, 17, &udp(b"x"));
    let unspecified = ipv4(Ipv4Addr::UNSPECIFIED, RECEIVER4, 17, &udp(b"x"));
    let mut fragment = ipv4(SENDER4, RECEIVER4, 17, &udp(b"x"));
    fragment[6..8].copy_from_slice(&[0x00, 0x10]);
    let mut truncated = ipv4(SENDER4, RECEIVER4, 17, &udp(b"abc"));
    truncated.truncate(25);
    for (what, p) in [
        ("multicast", &multicast),
        ("broadcast", &broadcast),
        ("from 0.0.0.0", &unspecified),
        ("a later fragment", &fragment),
        ("shorter than its total length", &truncated),
    ] {
        assert_eq!(answer(p, Reject::Icmp), None, "{what}");
    }
    let error_v6 = ipv6(SENDER6, RECEIVER6, 58, &[1, 4, 0, 0, 0, 0, 0, 0]);
    let echo_v6 = ipv6(SENDER6, RECEIVER6, 58, &[128, 0, 0, 0, 0, 1, 0, 1]);
    let multicast_v6 = ipv6(SENDER6, "ff02::1".parse().unwrap(), 17, &udp(b"x"));
    let mut later = vec![17, 0, 0, 0x08, 0, 0, 0, 1];
    later.extend(udp(b"x"));
    let fragment_v6 = ipv6(SENDER6, RECEIVER6, 44, &later);
    assert_eq!(answer(&error_v6, Reject::Icmp), None, "an ICMPv6 error");
    assert!(answer(&echo_v6, Reject::Icmp).is_some());
    assert_eq!(answer(&multicast_v6, Reject::Icmp), None);
    assert_eq!(answer(&fragment_v6, Reject::Icmp), None, "a later IPv6 fragment");
    assert_eq!(answer(&[], Reject::Icmp), None);
    assert_eq!(answer(&[0x45, 0, 0], Reject::Icmp), None);
    let short_tcp = ipv4(SENDER4, RECEIVER4, 6, &tcp(1, 2, ACK, &[])[..12]);
    assert_eq!(
        answer(&short_tcp, Reject::TcpReset),
        None,
        "a TCP header cut short"
    );
}

/// An answer meeting the same reject again gets none: ICMP errors are
/// never answered, resets never by a reset. (Plain reject answers a reset
/// with ICMP, as any packet; linkemu sends answers past both pipelines.)
#[test]
fn an_answer_meeting_the_same_reject_is_not_answered() {
    let packets = [
        ipv4(SENDER4, RECEIVER4, 17, &udp(b"x")),
        ipv4(SENDER4, RECEIVER4, 6, &tcp(1, 2, ACK, b"y")),
        ipv6(SENDER6, RECEIVER6, 17, &udp(b"x")),
        ipv6(SENDER6, RECEIVER6, 6, &tcp(1, 0, SYN, &[])),
    ];
    for p in &packets {
        for how in [Reject::Icmp, Reject::TcpReset] {
            let a = answer(p, how).unwrap();
            assert_eq!(answer(&a, how), None, "{how:?}");
        }
    }
}
