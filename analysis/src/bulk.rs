//! Bulk transfer: goodput of each flow from the bytes its receiver's
//! application read in fixed bins, Jain's fairness index over the flows,
//! and the goodput a rate-limited link leaves a transport once its headers
//! are paid for.

/// Bytes read per bin, for one flow; bin `i` covers
/// `[i * bin_ns, (i + 1) * bin_ns)` from the receiver's start.
pub type Bins = [u64];

/// The bins of the measured window: those from `warmup_ns` on, for
/// `duration_ns`, as whole bins (a window that ends inside a bin takes
/// it whole only when it covers at least half of it).
pub fn window(bin_ns: u64, warmup_ns: u64, duration_ns: u64) -> std::ops::Range<usize> {
    let bin = bin_ns.max(1);
    let round = |ns: u64| ((ns + bin / 2) / bin) as usize;
    let from = round(warmup_ns);
    from..round(warmup_ns + duration_ns).max(from + 1)
}

/// Goodput of one flow over `window`, bits/s: the bytes of its bins there
/// over the window's length.
pub fn goodput_bps(bins: &Bins, bin_ns: u64, window: std::ops::Range<usize>) -> f64 {
    let len_ns = (window.len() as u64 * bin_ns) as f64;
    if len_ns == 0.0 {
        return 0.0;
    }
    let bytes: u64 = bins
        .get(window.start.min(bins.len())..window.end.min(bins.len()))
        .unwrap_or(&[])
        .iter()
        .sum();
    bytes as f64 * 8.0 / (len_ns / 1e9)
}

/// Each bin as bits/s.
pub fn series_bps(bins: &Bins, bin_ns: u64) -> Vec<f64> {
    let per_s = 1e9 / bin_ns.max(1) as f64;
    bins.iter().map(|&b| b as f64 * 8.0 * per_s).collect()
}

/// The bins of all flows added up, as long as the longest.
pub fn total(flows: &[Vec<u64>]) -> Vec<u64> {
    let len = flows.iter().map(Vec::len).max().unwrap_or(0);
    (0..len)
        .map(|i| flows.iter().filter_map(|f| f.get(i)).sum())
        .collect()
}

/// Jain's fairness index, (sum x)^2 / (n sum x^2): 1 when every flow got
/// the same, 1/n when one got everything. `None` for no flows, or when
/// none got anything.
pub fn jain(xs: &[f64]) -> Option<f64> {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    (!xs.is_empty() && squares > 0.0).then(|| sum * sum / (xs.len() as f64 * squares))
}

/// What a transport's packets carry besides the application's bytes, and
/// what a rate limiter counts per packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketCost {
    /// Application bytes per full packet.
    pub payload: f64,
    /// Bytes the rate limiter counts per full packet.
    pub wire: f64,
}

/// What tc's and linkemu's rate count per packet beyond the IP packet:
/// the Ethernet header.
pub const L2_HEADER: f64 = 14.0;

impl PacketCost {
    /// TCP in full segments of an `mtu`-byte path: IPv4 (20) and TCP (20)
    /// headers with the timestamp option (12); TLS records of 16 KiB add
    /// 22 bytes each (5 header, 1 content type, 16 tag).
    pub fn tcp(mtu: u32, tls: bool) -> PacketCost {
        let segment = f64::from(mtu) - 20.0 - 20.0 - 12.0;
        let record = 16_384.0;
        let payload = if tls {
            segment * record / (record + 22.0)
        } else {
            segment
        };
        PacketCost {
            payload,
            wire: f64::from(mtu) + L2_HEADER,
        }
    }

    /// QUIC in full packets of `udp_payload` bytes (quinn's current MTU):
    /// IPv4 (20) and UDP (8) outside; inside a short header (1 + the
    /// 8-byte connection ID quinn uses + a 2-byte packet number, quinn's
    /// at these rates), the 16-byte AEAD tag, and a STREAM frame header
    /// (type 1, stream ID 1, offset 4 under 1 GiB of the stream, no length:
    /// the packet's last frame).
    pub fn quic(udp_payload: u32) -> PacketCost {
        let inside = 1.0 + 8.0 + 2.0 + 16.0 + 1.0 + 1.0 + 4.0;
        PacketCost {
            payload: f64::from(udp_payload) - inside,
            wire: f64::from(udp_payload) + 28.0 + L2_HEADER,
        }
    }

    /// The application's share of a link of `rate_bps`, bits/s.
    pub fn goodput_bps(&self, rate_bps: f64) -> f64 {
        rate_bps * self.payload / self.wire
    }
}

/// How long a full queue of `limit` packets of `packet_bytes` (as the
/// rate limiter counts them) takes to drain at `rate_bps`: the most the
/// queue can add to a packet's delay.
pub fn queue_drain_ns(limit: u32, packet_bytes: f64, rate_bps: f64) -> u64 {
    (f64::from(limit) * packet_bytes * 8.0 / rate_bps * 1e9) as u64
}

/// What one Reno-like TCP flow carries at random loss `p`, bits/s, as
/// Mathis, Semke, Mahdavi and Ott (1997) give it: MSS / RTT x C / sqrt(p),
/// C = sqrt(3/2) (one ACK a segment, periodic loss).
pub fn mathis_bps(mss_bytes: f64, rtt_s: f64, p: f64) -> f64 {
    mss_bytes * 8.0 / rtt_s * (1.5f64).sqrt() / p.sqrt()
}

/// The same from Padhye, Firoiu, Towsley and Kurose (1998), with the
/// retransmission timeouts Mathis leaves out:
/// MSS / (RTT sqrt(2bp/3) + T0 min(1, 3 sqrt(3bp/8)) p (1 + 32 p^2)),
/// `b` segments acknowledged per ACK, `t0_s` the retransmission timeout.
pub fn padhye_bps(mss_bytes: f64, rtt_s: f64, p: f64, b: f64, t0_s: f64) -> f64 {
    let denominator = rtt_s * (2.0 * b * p / 3.0).sqrt()
        + t0_s * (3.0 * (3.0 * b * p / 8.0).sqrt()).min(1.0) * p * (1.0 + 32.0 * p * p);
    mss_bytes * 8.0 / denominator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_whole_bins_after_warm_up() {
        let ms = 1_000_000;
        assert_eq!(window(100 * ms, 1_000 * ms, 3_000 * ms), 10..40);
        // Half a bin or more counts; less does not.
        assert_eq!(window(100 * ms, 1_050 * ms, 3_000 * ms), 11..41);
        assert_eq!(window(100 * ms, 1_040 * ms, 3_000 * ms), 10..40);
        // Never empty.
        assert_eq!(window(100 * ms, 0, 10 * ms), 0..1);
    }

    #[test]
    fn goodput_counts_only_the_window() {
        let ms = 1_000_000;
        // 1,250 bytes a 100 ms bin is 100 kbit/s.
        let bins = [9_999, 1_250, 1_250, 1_250, 9_999];
        assert_eq!(goodput_bps(&bins, 100 * ms, 1..4), 100_000.0);
        // A window past the end counts what is there over its full length.
        assert_eq!(goodput_bps(&bins, 100 * ms, 4..6), 9_999.0 * 8.0 / 0.2);
        assert_eq!(goodput_bps(&bins, 100 * ms, 7..7), 0.0);
        assert_eq!(series_bps(&[1_250], 100 * ms), [100_000.0]);
    }

    #[test]
    fn totals_add_flows_of_any_length() {
        assert_eq!(total(&[vec![1, 2, 3], vec![10, 20]]), [11, 22, 3]);
        assert!(total(&[]).is_empty());
    }

    #[test]
    fn jain_is_one_when_fair_and_one_over_n_when_not() {
        assert_eq!(jain(&[5.0, 5.0, 5.0, 5.0]), Some(1.0));
        assert_eq!(jain(&[8.0, 0.0, 0.0, 0.0]), Some(0.25));
        // Two flows, one with twice the other: 9 / (2 * 5) = 0.9.
        assert!((jain(&[2.0, 1.0]).unwrap() - 0.9).abs() < 1e-12);
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[0.0, 0.0]), None);
    }

    #[test]
    fn loss_bounds_a_reno_flow_as_mathis_and_padhye_say() {
        // The profile's case: 1448-byte segments, 40 ms, 1 %: 3.55 Mbit/s.
        let m = mathis_bps(1448.0, 0.040, 0.01);
        assert!((m - 3.547e6).abs() < 0.01e6, "{m}");
        // Four times the loss, half the rate.
        assert!((mathis_bps(1448.0, 0.040, 0.04) * 2.0 - m).abs() < 1.0);
        // Padhye without timeouts and b = 1 is Mathis; timeouts only lower it.
        assert!((padhye_bps(1448.0, 0.040, 0.01, 1.0, 0.0) - m).abs() < 1.0);
        let with_timeouts = padhye_bps(1448.0, 0.040, 0.01, 2.0, 0.240);
        assert!(with_timeouts < m && with_timeouts > m / 2.0, "{with_timeouts}");
        // At heavy loss the timeouts dominate.
        assert!(padhye_bps(1448.0, 0.040, 0.2, 2.0, 0.240) < mathis_bps(1448.0, 0.040, 0.2) / 3.0);
    }

    #[test]
    fn a_full_queue_drains_at_the_rate() {
        // The arithmetic: 1000 packets of 1500 B at 50 Mbit/s.
        assert_eq!(queue_drain_ns(1000, 1500.0, 50e6), 240_000_000);
    }

    #[test]
    fn header_overhead_of_each_transport() {
        // TCP at MTU 1500: 1448 of every 1514 bytes the limiter counts.
        let tcp = PacketCost::tcp(1500, false);
        assert_eq!((tcp.payload, tcp.wire), (1448.0, 1514.0));
        assert!((tcp.goodput_bps(100e6) - 95.64e6).abs() < 0.01e6);
        // TLS records cost 22 bytes of 16 KiB more.
        let tls = PacketCost::tcp(1500, true);
        assert!(tls.payload < tcp.payload && tls.payload > 1446.0);
        // QUIC at quinn's 1452-byte UDP payload: 33 bytes inside, 42 out.
        let quic = PacketCost::quic(1452);
        assert_eq!((quic.payload, quic.wire), (1419.0, 1494.0));
    }
}
