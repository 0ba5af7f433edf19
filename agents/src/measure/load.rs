//! Latency under load: a probe's round trips split at the moments the
//! load started and stopped writing, all on one clock (CLOCK_MONOTONIC of
//! the sender, where both the probe and the load run).

use hdrhistogram::Histogram;
use transbench_reports::{new_histogram, record};

use super::tracker::Sample;

/// The probe in one phase: its requests due then, those lost, and the
/// round trips of the rest.
pub struct Phase {
    pub name: &'static str,
    pub from_ns: u64,
    pub to_ns: u64,
    pub sent: u64,
    pub lost: u64,
    pub lat: Histogram<u64>,
}

/// The probe's samples before `load_from_ns`, from then until `load_to_ns`,
/// and after, by intended send time; the phases' bounds count from
/// `probe_from_ns` and the last ends at `probe_to_ns`.
pub fn phases(
    samples: &[Sample],
    probe_from_ns: u64,
    probe_to_ns: u64,
    load_from_ns: u64,
    load_to_ns: u64,
) -> [Phase; 3] {
    let rel = |ns: u64| ns.saturating_sub(probe_from_ns);
    let bounds = [
        ("before", 0, rel(load_from_ns)),
        ("during", rel(load_from_ns), rel(load_to_ns)),
        ("after", rel(load_to_ns), rel(probe_to_ns).max(rel(load_to_ns))),
    ];
    let mut out = bounds.map(|(name, from_ns, to_ns)| Phase {
        name,
        from_ns,
        to_ns,
        sent: 0,
        lost: 0,
        lat: new_histogram(),
    });
    for s in samples {
        let t = rel(s.intended_ns);
        let i = match t {
            t if t < out[1].from_ns => 0,
            t if t < out[2].from_ns => 1,
            _ => 2,
        };
        let phase = &mut out[i];
        phase.sent += 1;
        match s.lat_ns {
            Some(lat) => record(&mut phase.lat, lat),
            None => phase.lost += 1,
        }
    }
    out
}

/// Every sample as `(t since probe_from_ns, round trip)`, in time order.
pub fn series(samples: &[Sample], probe_from_ns: u64) -> Vec<(u64, Option<u64>)> {
    let mut out: Vec<(u64, Option<u64>)> = samples
        .iter()
        .map(|s| (s.intended_ns.saturating_sub(probe_from_ns), s.lat_ns))
        .collect();
    out.sort_unstable_by_key(|s| s.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn s(t_ms: u64, lat_ms: Option<u64>) -> Sample {
        Sample {
            intended_ns: t_ms * MS,
            lat_ns: lat_ms.map(|l| l * MS),
        }
    }

    #[test]
    fn samples_fall_in_the_phase_their_request_was_due_in() {
        // Probe from 1000 ms to 1900 ms; load from 1300 ms to 1600 ms.
        let samples = [
            s(1650, Some(30)),
            s(1000, Some(10)),
            s(1299, Some(11)),
            s(1300, Some(200)),
            s(1450, None),
            s(1599, Some(250)),
            s(1600, Some(12)),
        ];
        let [before, during, after] = phases(&samples, 1000 * MS, 1900 * MS, 1300 * MS, 1600 * MS);
        assert_eq!(
            (before.name, before.from_ns, before.to_ns),
            ("before", 0, 300 * MS)
        );
        assert_eq!((during.from_ns, during.to_ns), (300 * MS, 600 * MS));
        assert_eq!((after.from_ns, after.to_ns), (600 * MS, 900 * MS));
        assert_eq!((before.sent, before.lost, before.lat.len()), (2, 0, 2));
        assert_eq!((during.sent, during.lost, during.lat.len()), (3, 1, 2));
        assert_eq!((after.sent, after.lost), (2, 0));
        assert!(during.lat.min() >= 199 * MS && before.lat.max() <= 12 * MS);
        let line = series(&samples, 1000 * MS);
        assert_eq!(line[0], (0, Some(10 * MS)));
        assert_eq!(line[3], (450 * MS, None));
        assert!(line.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
