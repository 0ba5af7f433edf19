//! Offloaded packets: what a TUN device with a virtio-net header hands
//! over when the kernel may leave segmentation and checksums to its
//! reader (`IFF_VNET_HDR` with `TUNSETOFFLOAD`).
//!
//! A TCP or UDP super-packet (up to 64 KB) crosses a transparent link
//! whole, as a NIC's TSO would carry it. Before any impairment decides a
//! packet's fate it is split here into the wire-size packets the sender's
//! kernel would have made, checksums complete, so loss, delay, rate and
//! corruption act on real packets. (Kernel netem decides per GSO
//! super-packet, which is why netem users turn TSO and GSO off.)

use crate::checksum;

/// Bytes of the virtio-net header ahead of every packet.
pub const VNET_HDR_LEN: usize = 10;

/// The header of a packet that needs nothing done: no checksum left to
/// fill in, not a super-packet.
pub const PLAIN_HEADER: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const TCP: u8 = 6;
const UDP: u8 = 17;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OffloadError {
    #[error("a packet shorter than its virtio-net header")]
    NoHeader,
    #[error("segmentation kind {0} is not one this link asked the kernel for")]
    UnknownGso(u8),
    #[error("an offloaded packet whose headers do not fit it: {0}")]
    Malformed(&'static str),
}

/// The virtio-net header (little-endian, as the link sets its device up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub gso_size: u16,
    /// Where the transport header starts: the checksum's range.
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHeader {
    pub fn parse(bytes: &[u8]) -> Result<Self, OffloadError> {
        let b = bytes.get(..VNET_HDR_LEN).ok_or(OffloadError::NoHeader)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VnetHeader {
            flags: b[0],
            gso_type: b[1],
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Whether `packet` goes on the wire as it is: neither a super-packet
    /// nor waiting for its checksum.
    pub fn is_plain(&self) -> bool {
        self.gso_type == GSO_NONE && self.flags & F_NEEDS_CSUM == 0
    }
}

/// How many packets on the wire `packet` stands for.
pub fn wire_packets(header: &VnetHeader, packet: &[u8]) -> u64 {
    if header.gso_type == GSO_NONE || header.gso_size == 0 {
        return 1;
    }
    match Layout::of(header, packet) {
        Ok(l) => (packet.len() - l.payload)
            .div_ceil(usize::from(header.gso_size))
            .max(1) as u64,
        Err(_) => 1,
    }
}

/// Each wire packet of `packet`, in order, checksums complete, handed to
/// `emit`: a super-packet split at `gso_size` of payload, as the kernel's
/// own segmentation would (sequence numbers, IPv4 IDs, lengths; TCP's FIN
/// and PSH on the last segment only, CWR on the first only).
pub fn split(header: &VnetHeader, packet: &[u8], mut emit: impl FnMut(Vec<u8>)) -> Result<(), OffloadError> {
    if header.gso_type == GSO_NONE {
        let mut p = packet.to_vec();
        if header.flags & F_NEEDS_CSUM != 0 {
            complete_partial(header, &mut p)?;
        }
        emit(p);
        return Ok(());
    }
    let layout = Layout::of(header, packet)?;
    let mss = usize::from(header.gso_size);
    if mss == 0 {
        return Err(OffloadError::Malformed("a super-packet with no segment size"));
    }
    let (headers, payload) = packet.split_at(layout.payload);
    // A super-packet with no payload still goes out, as one packet.
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let mut seg = Vec::with_capacity(headers.len() + chunk.len());
        seg.extend_from_slice(headers);
        seg.extend_from_slice(chunk);
        let l4 = layout.transport;
        if layout.ipv4 {
            let total = seg.len() as u16;
            seg[2..4].copy_from_slice(&total.to_be_bytes());
            let id = u16::from_be_bytes([seg[4], seg[5]]).wrapping_add(i as u16);
            seg[4..6].copy_from_slice(&id.to_be_bytes());
            checksum::fill_ipv4_header(&mut seg[..layout.ip_header]);
        } else {
            let payload_len = (seg.len() - 40) as u16;
            seg[4..6].copy_from_slice(&payload_len.to_be_bytes());
        }
        if layout.protocol == TCP {
            let seq = u32::from_be_bytes([seg[l4 + 4], seg[l4 + 5], seg[l4 + 6], seg[l4 + 7]])
                .wrapping_add((i * mss) as u32);
            seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < count {
                seg[l4 + 13] &= !(0x01 | 0x08);
            }
            if i > 0 {
                seg[l4 + 13] &= !0x80;
            }
        } else {
            let udp_len = (seg.len() - l4) as u16;
            seg[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        }
        fill_transport_checksum(&mut seg, &layout);
        emit(seg);
    }
    Ok(())
}

/// Where a super-packet's parts are.
struct Layout {
    ipv4: bool,
    /// The IPv4 header's own length (its checksum's range).
    ip_header: usize,
    protocol: u8,
    transport: usize,
    checksum_at: usize,
    /// Where the payload starts, past every header.
    payload: usize,
}

impl Layout {
    fn of(header: &VnetHeader, packet: &[u8]) -> Result<Self, OffloadError> {
        let protocol = match header.gso_type {
            GSO_TCPV4 | GSO_TCPV6 => TCP,
            GSO_UDP_L4 => UDP,
            other => return Err(OffloadError::UnknownGso(other)),
        };
        let ipv4 = match packet.first().map(|b| b >> 4) {
            Some(4) if packet.len() >= 20 => true,
            Some(6) if packet.len() >= 40 => false,
            _ => return Err(OffloadError::Malformed("not an IP packet")),
        };
        let transport = usize::from(header.csum_start);
        let ip_header = if ipv4 {
            usize::from(packet[0] & 0x0f) * 4
        } else {
            40
        };
        if ip_header < 20 || transport < ip_header {
            return Err(OffloadError::Malformed(
                "the transport header starts inside the IP header",
            ));
        }
        let (header_len, checksum_at) = if protocol == TCP {
            let offset = packet
                .get(transport + 12)
                .ok_or(OffloadError::Malformed("a TCP header cut short"))?;
            (usize::from(offset >> 4) * 4, transport + 16)
        } else {
            (8, transport + 6)
        };
        let payload = transport + header_len;
        let least = if protocol == TCP { 20 } else { 8 };
        if header_len < least || payload > packet.len() {
            return Err(OffloadError::Malformed("a transport header cut short"));
        }
        Ok(Layout {
            ipv4,
            ip_header,
            protocol,
            transport,
            checksum_at,
            payload,
        })
    }
}

/// The transport checksum from scratch: pseudo-header, header, payload.
fn fill_transport_checksum(seg: &mut [u8], layout: &Layout) {
    let l4 = layout.transport;
    seg[layout.checksum_at..layout.checksum_at + 2].fill(0);
    let len = (seg.len() - l4) as u32;
    let (addrs, pseudo_tail): (&[u8], [u8; 8]) = if layout.ipv4 {
        let l = (len as u16).to_be_bytes();
        (&seg[12..20], [0, layout.protocol, l[0], l[1], 0, 0, 0, 0])
    } else {
        let l = len.to_be_bytes();
        (&seg[8..40], [l[0], l[1], l[2], l[3], 0, 0, 0, layout.protocol])
    };
    let tail = if layout.ipv4 {
        &pseudo_tail[..4]
    } else {
        &pseudo_tail[..]
    };
    let sum = checksum::internet(&[addrs, tail, &seg[l4..]]);
    // A computed zero is sent as all ones: zero in UDP means "none".
    let sum = if sum == 0 { 0xffff } else { sum };
    seg[layout.checksum_at..layout.checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// Fills in a checksum the kernel left partial: the field holds the
/// pseudo-header's sum, and the checksum runs from `csum_start` to the
/// end, as `skb_checksum_help` completes it.
fn complete_partial(header: &VnetHeader, packet: &mut [u8]) -> Result<(), OffloadError> {
    let start = usize::from(header.csum_start);
    let at = start + usize::from(header.csum_offset);
    if at + 2 > packet.len() {
        return Err(OffloadError::Malformed("a checksum field past the packet's end"));
    }
    let sum = checksum::internet(&[&packet[start..]]);
    let sum = if sum == 0 { 0xffff } else { sum };
    packet[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16) -> VnetHeader {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = flags;
        b[1] = gso_type;
        b[4..6].copy_from_slice(&gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&csum_offset.to_le_bytes());
        VnetHeader::parse(&b).unwrap()
    }

    fn ipv4(protocol: u8, id: u16, transport: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 10, 201, 0, 1, 10, 201, 0, 2,
        ];
        p[2..4].copy_from_slice(&((20 + transport.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let sum = checksum::internet(&[&p]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(transport);
        p
    }

    fn ipv6(protocol: u8, transport: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, protocol, 64];
        p[4..6].copy_from_slice(&(transport.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p.extend_from_slice(transport);
        p
    }

    fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![
            0x30, 0x39, 0x14, 0x51, 0, 0, 0, 0, 0, 0, 0, 7, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
        ];
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(payload);
        t
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0x30, 0x39, 0x14, 0x51, 0, 0, 0, 0];
        u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(payload);
        u
    }

    /// Zero when the transport checksum (and an IPv4 header's) is right.
    fn checksums_verify(seg: &[u8]) -> bool {
        let (l4, proto, pseudo_addrs) = if seg[0] >> 4 == 4 {
            if checksum::internet(&[&seg[..20]]) != 0 {
                return false;
            }
            (20, seg[9], &seg[12..20])
        } else {
            (40, seg[6], &seg[8..40])
        };
        let len = (seg.len() - l4) as u32;
        let tail = [
            (len >> 24) as u8,
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            0,
            0,
            0,
            proto,
        ];
        checksum::internet(&[pseudo_addrs, &tail, &seg[l4..]]) == 0
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn a_tcp_super_packet_splits_as_the_kernel_segments() {
        let data = payload(2500);
        // FIN, PSH and CWR on the super-packet.
        let packet = ipv4(TCP, 0xfffe, &tcp(u32::MAX - 100, 0x80 | 0x18 | 0x01, &data));
        let h = header(F_NEEDS_CSUM, GSO_TCPV4, 1000, 20, 16);
        assert_eq!(wire_packets(&h, &packet), 3);
        let mut segs = Vec::new();
        split(&h, &packet, |s| segs.push(s)).unwrap();
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(checksums_verify(s), "segment {i}'s checksums");
            assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0xfffeu16.wrapping_add(i as u16));
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, (u32::MAX - 100).wrapping_add(1000 * i as u32));
            let flags = s[33];
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & 0x09 != 0, i == 2, "FIN and PSH on the last only");
            assert_eq!(flags & 0x10, 0x10, "ACK on every one");
            joined.extend_from_slice(&s[40..]);
        }
        assert_eq!(segs[2].len(), 40 + 500);
        assert_eq!(joined, data);
    }

    #[test]
    fn a_udp_super_packet_over_ipv6_splits_into_datagrams() {
        let data = payload(3000);
        let packet = ipv6(UDP, &udp(&data));
        let h = header(F_NEEDS_CSUM, GSO_UDP_L4, 1200, 40, 6);
        assert_eq!(wire_packets(&h, &packet), 3);
        let mut segs = Vec::new();
        split(&h, &packet, |s| segs.push(s)).unwrap();
        let lens: Vec<usize> = segs.iter().map(|s| s.len() - 48).collect();
        assert_eq!(lens, [1200, 1200, 600]);
        for s in &segs {
            assert!(checksums_verify(s));
            assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), s.len() - 40);
            assert_eq!(usize::from(u16::from_be_bytes([s[44], s[45]])), s.len() - 40);
        }
        let joined: Vec<u8> = segs.iter().flat_map(|s| s[48..].to_vec()).collect();
        assert_eq!(joined, data);
    }

    /// The kernel leaves the pseudo-header's sum in the field and the rest
    /// to the device; completing it gives the checksum a sender would.
    #[test]
    fn a_partial_checksum_is_completed() {
        let mut packet = ipv4(UDP, 1, &udp(&payload(101)));
        let layout = Layout::of(&header(0, GSO_UDP_L4, 1000, 20, 6), &packet).unwrap();
        let mut whole = packet.clone();
        fill_transport_checksum(&mut whole, &layout);
        assert!(checksums_verify(&whole));
        let pseudo = [
            &packet[12..20],
            &[0, UDP],
            &((packet.len() - 20) as u16).to_be_bytes()[..],
        ]
        .concat();
        let partial = !checksum::internet(&[&pseudo]);
        packet[26..28].copy_from_slice(&partial.to_be_bytes());
        let h = header(F_NEEDS_CSUM, GSO_NONE, 0, 20, 6);
        assert!(!h.is_plain());
        let mut out = Vec::new();
        split(&h, &packet, |s| out.push(s)).unwrap();
        assert_eq!(out, [whole]);
    }

    /// A super-packet of headers alone is one packet on the wire.
    #[test]
    fn a_super_packet_with_no_payload_is_one_packet() {
        let packet = ipv4(TCP, 3, &tcp(77, 0x11, &[]));
        let h = header(F_NEEDS_CSUM, GSO_TCPV4, 1000, 20, 16);
        assert_eq!(wire_packets(&h, &packet), 1);
        let mut out = Vec::new();
        split(&h, &packet, |s| out.push(s)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 40);
        assert!(checksums_verify(&out[0]));
        assert_eq!(out[0][33], 0x11, "FIN kept on the only segment");
    }

    #[test]
    fn a_plain_packet_passes_unchanged() {
        let packet = ipv4(TCP, 9, &tcp(5, 0x10, b"hello"));
        let h = VnetHeader::parse(&PLAIN_HEADER).unwrap();
        assert!(h.is_plain());
        assert_eq!(wire_packets(&h, &packet), 1);
        let mut out = Vec::new();
        split(&h, &packet, |s| out.push(s)).unwrap();
        assert_eq!(out, [packet]);
    }

    #[test]
    fn what_does_not_fit_is_refused_not_split() {
        let packet = ipv4(TCP, 9, &tcp(5, 0x10, &payload(3000)));
        let mut out = 0;
        let mut count = |_| out += 1;
        assert_eq!(
            split(&header(1, 3, 1000, 20, 6), &packet, &mut count),
            Err(OffloadError::UnknownGso(3))
        );
        assert!(split(&header(1, GSO_TCPV4, 1000, 10, 16), &packet, &mut count).is_err());
        assert!(split(&header(1, GSO_TCPV4, 1000, 20, 16), &packet[..30], &mut count).is_err());
        assert!(split(&header(1, GSO_TCPV4, 0, 20, 16), &packet, &mut count).is_err());
        // A TCP data offset under five words would put the checksum in the payload.
        let mut short_offset = packet.clone();
        short_offset[32] = 0x20;
        assert!(split(&header(1, GSO_TCPV4, 1000, 20, 16), &short_offset, &mut count).is_err());
        assert!(VnetHeader::parse(&[0; 4]).is_err());
        assert_eq!(out, 0);
    }
}
