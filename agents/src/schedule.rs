//! The open-loop schedule: request i has the intended send time
//! `t0 + i / rate`, fixed before the run starts, so a slow response never
//! delays the requests after it (no coordinated omission). What a pacer
//! can keep bounds the rate asked for.

use std::time::Duration;

/// Lead time between scheduling and the first intended send time.
pub const START_LEAD_NS: u64 = 5_000_000;

/// The shortest period between intended send times a trial may ask for,
/// all its streams together: 1 us, a million sends a second. Each one
/// costs the sender's single thread a clock read, a send-lag record, the
/// message's own record and (but for GSO batches) a system call, which
/// together take longer; and the pacer's last stretch spins from one
/// clock read to the next, yielding to the runtime between them, so it
/// cannot tell deadlines closer than that apart either. A shorter period
/// would only measure how far the sender falls behind.
pub const MIN_PERIOD_NS: f64 = 1_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenLoopSchedule {
    t0_ns: u64,
    period_ns: f64,
    warmup_count: u64,
    total: u64,
}

impl OpenLoopSchedule {
    /// Requests whose intended time falls in `[t0, t0 + warmup)` are warm-up;
    /// those in `[t0 + warmup, t0 + warmup + duration)` are measured.
    pub fn new(t0_ns: u64, rate: f64, warmup: Duration, duration: Duration) -> Self {
        assert!(
            rate.is_finite() && rate > 0.0,
            "rate is validated before scheduling"
        );
        let period_ns = 1e9 / rate;
        let count_before = |d: Duration| (d.as_nanos() as f64 / period_ns).ceil() as u64;
        OpenLoopSchedule {
            t0_ns,
            period_ns,
            warmup_count: count_before(warmup),
            total: count_before(warmup + duration),
        }
    }

    pub fn intended_ns(&self, i: u64) -> u64 {
        self.t0_ns + (i as f64 * self.period_ns).round() as u64
    }

    pub fn is_measured(&self, i: u64) -> bool {
        i >= self.warmup_count
    }

    /// Requests in the whole schedule, warm-up included.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn warmup_count(&self) -> u64 {
        self.warmup_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_from_t0() {
        let s = OpenLoopSchedule::new(1_000, 1000.0, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.total(), 1000);
        assert_eq!(s.intended_ns(0), 1_000);
        assert_eq!(s.intended_ns(1), 1_001_000);
        assert_eq!(s.intended_ns(999), 1_000 + 999_000_000);
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        let s = OpenLoopSchedule::new(0, 3.0, Duration::ZERO, Duration::from_secs(3000));
        assert_eq!(s.total(), 9000);
        // 8999 / 3 s, exact to the nanosecond despite the 333,333,333.3 ns period.
        assert_eq!(s.intended_ns(8999), 2_999_666_666_667);
    }

    #[test]
    fn warmup_requests_come_first_and_are_not_measured() {
        let s = OpenLoopSchedule::new(0, 100.0, Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(s.warmup_count(), 50);
        assert_eq!(s.total(), 250);
        assert!(!s.is_measured(49));
        assert!(s.is_measured(50));
        assert!(s.intended_ns(49) < 500_000_000 && s.intended_ns(50) >= 500_000_000);
    }
}
