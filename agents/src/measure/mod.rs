//! Pure analyses of what a trial recorded, in the results' terms: the
//! request/response accounting (`tracker`), rr's retries and delivery
//! semantics (`delivery`: retry timers, the receiver's per-id counts and
//! their join) and the one-way deliveries
//! matched against the schedule (`oneway`: latency, head-of-line
//! blocking, the UDP sequence metrics), a probe split at the moments a
//! load ran (`load`), an outage of an impairment schedule (`outage`) and
//! a trial binned through its schedule (`timeline`). No clock, no I/O.

pub mod delivery;
pub mod load;
pub mod oneway;
pub mod outage;
pub mod timeline;
pub mod tracker;
