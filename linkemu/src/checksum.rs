//! The Internet checksum (RFC 1071) over one or more byte ranges.

/// The one's-complement sum of `parts` read as one run of big-endian
/// 16-bit words, folded to 16 bits and inverted: the value a header's
/// checksum field holds. Only the last part may have an odd length.
pub fn internet(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        // 32-bit words sum to the same folded result as 16-bit ones (the
        // end-around carry), at half the additions.
        let mut words = part.chunks_exact(4);
        for w in &mut words {
            sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        for pair in rest.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fills in an IPv4 header's own checksum, whatever its field held:
/// `header` is the header alone (IHL words).
pub fn fill_ipv4_header(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum = internet(&[header]);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn matches_the_rfc_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet(&[&data]), !0xddf2);
        assert_eq!(internet(&[&data[..4], &data[4..]]), !0xddf2);
    }

    #[test]
    fn an_odd_tail_is_padded_with_zero() {
        assert_eq!(internet(&[&[0x12, 0x34, 0x56]]), !(0x1234u16 + 0x5600));
    }

    /// A header holding its own checksum sums to zero.
    #[test]
    fn a_checked_header_verifies() {
        let mut ip = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
            0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet(&[&ip]), 0xb861);
        ip[10] = 0xaa;
        fill_ipv4_header(&mut ip);
        assert_eq!(ip[10..12], [0xb8, 0x61]);
        assert_eq!(internet(&[&ip]), 0);
    }
}
