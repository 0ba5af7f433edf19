//! Offloaded packets: a TUN device's virtio-net header and the packet
//! after it, as linkemu reads them, split into wire packets.
//!
//! Holds: no panic; a split hands over as many packets as
//! `wire_packets` counts; and a super-packet's pieces each carry
//! checksums that verify (IPv4 header, and TCP or UDP over its
//! pseudo-header), their payloads laid end to end being the
//! super-packet's.

use linkemu::checksum;
use linkemu::offload::{self, VnetHeader, VNET_HDR_LEN};

const GSO_NONE: u8 = 0;
const GSO_UDP_L4: u8 = 5;
const TCP: u8 = 6;
const UDP: u8 = 17;

pub fn run(data: &[u8]) {
    let header = match VnetHeader::parse(data) {
        Ok(h) => h,
        Err(_) => {
            assert!(data.len() < VNET_HDR_LEN);
            return;
        }
    };
    let packet = &data[VNET_HDR_LEN..];
    let counted = offload::wire_packets(&header, packet);
    let mut pieces = Vec::new();
    if offload::split(&header, packet, |p| pieces.push(p)).is_err() {
        assert!(pieces.is_empty(), "a refused packet sends nothing");
        return;
    }
    assert_eq!(pieces.len() as u64, counted, "{header:?}");
    if header.gso_type == GSO_NONE {
        // Only a checksum the kernel left to the link may change.
        assert_eq!(pieces[0].len(), packet.len());
        return;
    }
    let l4 = usize::from(header.csum_start);
    let payload_at = if header.gso_type == GSO_UDP_L4 {
        l4 + 8
    } else {
        l4 + usize::from(packet[l4 + 12] >> 4) * 4
    };
    let mut joined = Vec::new();
    for p in &pieces {
        assert!(verifies(p, l4, header.gso_type), "{header:?}: {p:?}");
        joined.extend_from_slice(&p[payload_at..]);
    }
    assert_eq!(joined, &packet[payload_at..]);
}

/// Whether a piece's checksums are right: the IPv4 header's, and the
/// transport's over the pseudo-header with the piece's own length.
fn verifies(p: &[u8], l4: usize, gso_type: u8) -> bool {
    let transport = if gso_type == GSO_UDP_L4 { UDP } else { TCP };
    let len = (p.len() - l4) as u32;
    if p[0] >> 4 == 4 {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let tail = [0, transport, (len >> 8) as u8, len as u8];
        checksum::internet(&[&p[..ihl]]) == 0 && checksum::internet(&[&p[12..20], &tail, &p[l4..]]) == 0
    } else {
        let l = len.to_be_bytes();
        let tail = [l[0], l[1], l[2], l[3], 0, 0, 0, transport];
        checksum::internet(&[&p[8..40], &tail, &p[l4..]]) == 0
    }
}
