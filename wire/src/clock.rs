//! The time base of every timestamp transbench puts on the wire or in a
//! result: CLOCK_MONOTONIC in nanoseconds. Every process on a host reads
//! the same clock, so one-way delays between two local processes (agents in
//! two namespaces, a probe and its echo) are exact.

pub fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_goes_backwards() {
        let a = super::mono_now_ns();
        let b = super::mono_now_ns();
        assert!(a > 0 && b >= a);
    }
}
