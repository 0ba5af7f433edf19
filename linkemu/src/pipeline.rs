//! One direction of an emulated link, as sch_netem.c runs it, without I/O:
//! [`Pipeline::enqueue`] takes a packet and the time, [`Pipeline::dequeue`]
//! hands out what is due, [`Pipeline::next_due`] says when to ask again.
//!
//! The order of decisions follows `netem_enqueue()` (Linux 6.1.192):
//! 1. duplication is decided first; then loss (or an ECN mark instead);
//! 2. a duplicate is cloned before the original can be corrupted;
//! 3. the original may be corrupted (one random bit flipped, anywhere in
//!    the frame netem sees on an Ethernet link: the 14-byte header too);
//! 4. `limit` drops at the tail when the queue is full, the copy with it;
//!    otherwise the copy goes through the pipeline again on its own (its
//!    own loss, corruption, limit, delay, reordering), never duplicated
//!    again, and queues ahead of the original;
//! 5. reordering: unless inside the gap, a packet may be sent at once,
//!    ahead of delayed ones; otherwise it gets delay + jitter, and with a
//!    rate its serialization time, counted from the last queued packet's
//!    send time (delay and serialization overlap);
//! 6. the queue is ordered by send time, so jitter without a rate reorders.
//!
//! [`Pipeline::set_spec`] changes the spec mid-run, as `tc qdisc change`
//! does (`netem_change()`): see there for what carries over.

use std::collections::BTreeMap;

use crate::dist::{self, Distribution};
use crate::rng::{scaled, Correlated, Prng, Taus113};
use crate::spec::{Chance, Loss, NetemSpec, Slot, SlotInterval};

/// What tc's rate counts per packet beyond the IP packet: the Ethernet
/// header a veth would carry (TUN frames have none).
pub const L2_HEADER_LEN: usize = 14;

/// Per-packet events since the pipeline started (results record them per
/// trial, see [`LinkCounters::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkCounters {
    pub arrived: u64,
    pub dropped_loss: u64,
    pub dropped_limit: u64,
    /// Corrupted in the Ethernet header's destination or EtherType, where
    /// no receiver would take the frame.
    #[serde(default)]
    pub dropped_corrupt: u64,
    /// Copies made; each is then delivered or dropped like any packet.
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    pub ecn_marked: u64,
    pub delivered: u64,
    /// Dropped where an impairment schedule rejects (never in a
    /// [`Pipeline`]: a [`crate::ScheduledPipeline`] counts them). Left
    /// out of results when 0, as before there were rejects.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: u64,
    /// Of those, answered toward their sender (ICMP or a TCP reset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reject_answers: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl LinkCounters {
    /// The events between `earlier` and `self`.
    pub fn since(&self, earlier: &LinkCounters) -> LinkCounters {
        LinkCounters {
            arrived: self.arrived - earlier.arrived,
            dropped_loss: self.dropped_loss - earlier.dropped_loss,
            dropped_limit: self.dropped_limit - earlier.dropped_limit,
            dropped_corrupt: self.dropped_corrupt - earlier.dropped_corrupt,
            duplicated: self.duplicated - earlier.duplicated,
            corrupted: self.corrupted - earlier.corrupted,
            reordered: self.reordered - earlier.reordered,
            ecn_marked: self.ecn_marked - earlier.ecn_marked,
            delivered: self.delivered - earlier.delivered,
            rejected: self.rejected - earlier.rejected,
            reject_answers: self.reject_answers - earlier.reject_answers,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeState {
    Good,
    Bad,
}

/// States of the 4-state model, numbered as in the literature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FourState {
    TxGap = 1,
    TxBurst = 2,
    LostBurst = 3,
    LostGap = 4,
}

#[derive(Debug, Clone, Copy)]
struct SlotState {
    next_ns: u64,
    packets_left: i64,
    bytes_left: i64,
}

/// A queued packet. One whose Ethernet header was corrupted still takes
/// its place in the queue and its time on the link, as in netem; only the
/// receiver would drop it, so it is dropped on the way out.
struct Frame {
    packet: Vec<u8>,
    deliverable: bool,
}

pub struct Pipeline {
    spec: NetemSpec,
    /// The seed given to [`Pipeline::new`]: each change's randomness is
    /// derived from it (see [`Pipeline::set_spec`]).
    seed: u64,
    /// What netem draws its decisions from (`q->prng`), seeded as netem
    /// seeds it: the same seed, the same decisions as a kernel whose netem
    /// takes `seed` (6.12 does; 6.1 does not).
    draws: Taus113,
    /// What netem takes from the kernel's unseeded entropy instead: the
    /// correlations' first values, where a corruption falls, uniform slot
    /// gaps. Seeded too, so linkemu repeats itself.
    entropy: Prng,
    delay_cor: Correlated,
    loss_cor: Correlated,
    dup_cor: Correlated,
    reorder_cor: Correlated,
    corrupt_cor: Correlated,
    ge: GeState,
    four: FourState,
    /// Packets since the last reordered one (netem's `counter`).
    since_reorder: u32,
    /// Queued frames by (send time, arrival order).
    queue: BTreeMap<(u64, u64), Frame>,
    arrivals: u64,
    /// The current slot, once the first one has started.
    slot: Option<SlotState>,
    counters: LinkCounters,
    /// Nothing configured can hold, drop, copy, change or reorder a packet,
    /// nor draws a random number: see [`Pipeline::deliver_at_once`].
    transparent: bool,
}

impl Pipeline {
    /// `seed` is used when the spec has none.
    pub fn new(spec: &NetemSpec, seed: u64) -> Self {
        let given_seed = seed;
        let seed = spec.seed.unwrap_or(seed);
        let mut entropy = Prng::new(seed);
        let mut cor = |c: Option<f64>| Correlated::new(c.unwrap_or(0.0), entropy.next_u32());
        let loss_corr = match spec.loss {
            Some(Loss::Random(c)) => Some(c.correlation),
            _ => None,
        };
        // tc sends the delay, loss and duplicate correlations together, and
        // only when a delay, loss, reorder or corrupt correlation is given
        // (iproute2 6.1): a duplicate correlation alone never reaches the
        // kernel, so it is not applied here either.
        let correlations_sent = [
            spec.delay.map(|d| d.correlation),
            loss_corr,
            spec.reorder.map(|r| r.chance.correlation),
            spec.corrupt.map(|c| c.correlation),
        ]
        .iter()
        .any(|c| c.is_some_and(|c| c > 0.0));
        let dup_corr = spec
            .duplicate
            .map(|c| c.correlation)
            .filter(|_| correlations_sent);
        Pipeline {
            delay_cor: cor(spec.delay.map(|d| d.correlation)),
            loss_cor: cor(loss_corr),
            dup_cor: cor(dup_corr),
            reorder_cor: cor(spec.reorder.map(|r| r.chance.correlation)),
            corrupt_cor: cor(spec.corrupt.map(|c| c.correlation)),
            spec: spec.clone(),
            seed: given_seed,
            draws: Taus113::from_netem_seed(seed),
            entropy,
            ge: GeState::Good,
            four: FourState::TxGap,
            since_reorder: 0,
            queue: BTreeMap::new(),
            arrivals: 0,
            slot: None,
            counters: LinkCounters::default(),
            transparent: is_transparent(spec),
        }
    }

    /// Puts `spec` in force from `now_ns` on, as `tc qdisc change` does
    /// to a running netem (`netem_change()` in sch_netem.c, as remembered
    /// from the source when this was written: not checked against the
    /// source nor a kernel yet):
    /// - queued packets stay queued and keep the send times they were
    ///   given, so a packet that arrived before the change leaves with the
    ///   old delay; packets arriving from `now_ns` on get the new spec;
    /// - the new limit applies to arrivals only: a queue above it is not
    ///   trimmed;
    /// - a rate counts from the last queued packet's send time, as always,
    ///   so serialization carries on across the change;
    /// - what netem resets is reset: the reordering gap count, the loss
    ///   model's state (4-state and Gilbert-Elliott start over in their
    ///   good state), the correlations' previous values, the slot (a new
    ///   one opens at `now_ns` with its full budget) and the random
    ///   generator, reseeded as netem reseeds it: from the spec's `seed`,
    ///   else (where netem takes fresh entropy) from the seed given to
    ///   [`Pipeline::new`] and `now_ns`. So what follows a change depends
    ///   on the queue, the spec and the time of the change, not on earlier
    ///   changes: a caller may skip to the latest of several changes that
    ///   passed while it slept and get the same pipeline;
    /// - counters carry on.
    ///
    /// One difference from the kernel (as remembered), on purpose: the new
    /// spec applies whole. netem keeps the old rate, slot, ECN, corruption,
    /// delay distribution and correlations when the netlink message leaves
    /// them out, and tc leaves out what the profile does not set: a `tc
    /// qdisc change` from `rate 1mbit` to `delay 10ms` keeps the rate. A
    /// netem backend has to make up for that (state such fields, or
    /// replace the qdisc) to match linkemu.
    pub fn set_spec(&mut self, spec: &NetemSpec, now_ns: u64) {
        let change_seed = self.seed ^ now_ns.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        *self = Pipeline {
            seed: self.seed,
            queue: std::mem::take(&mut self.queue),
            arrivals: self.arrivals,
            counters: self.counters,
            slot: spec.slot.map(|slot| {
                let (packets_left, bytes_left) = slot_budget(&slot);
                SlotState {
                    next_ns: now_ns,
                    packets_left,
                    bytes_left,
                }
            }),
            ..Pipeline::new(spec, change_seed)
        };
    }

    /// For a packet arriving now: true if [`Pipeline::enqueue`] would
    /// queue it due at once and untouched, with nothing queued ahead of
    /// it, so the next [`Pipeline::dequeue`] would hand it straight back.
    /// Then it is counted arrived and delivered, and the caller sends it
    /// from its own buffer, without the copy and the queue. False: the
    /// caller enqueues it. `packets` is how many wire packets it stands
    /// for: a super-packet that crosses a transparent link whole counts
    /// as the packets it carries.
    pub fn deliver_at_once(&mut self, packets: u64) -> bool {
        if !self.transparent || !self.queue.is_empty() {
            return false;
        }
        self.counters.arrived += packets;
        self.counters.delivered += packets;
        true
    }

    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes a packet arriving at `now_ns`.
    pub fn enqueue(&mut self, mut packet: Vec<u8>, now_ns: u64) {
        self.counters.arrived += 1;
        let mut count = 1;
        if let Some(dup) = self.spec.duplicate {
            if dup.probability > 0.0 && scaled(dup.probability) >= self.dup_cor.blend(self.draws.next_u32()) {
                count += 1;
            }
        }
        if self.loss_event() {
            if self.spec.ecn && set_ce(&mut packet) {
                self.counters.ecn_marked += 1;
            } else {
                count -= 1;
            }
        }
        if count == 0 {
            self.counters.dropped_loss += 1;
            return;
        }
        let copy = (count > 1).then(|| packet.clone());
        // Counted when made: a full queue drops it (below) like any other.
        self.counters.duplicated += copy.is_some() as u64;
        let deliverable = self.maybe_corrupt(&mut packet);
        if self.queue_full() {
            self.counters.dropped_limit += 1 + copy.is_some() as u64;
            return;
        }
        if let Some(copy) = copy {
            self.enqueue_duplicate(copy, now_ns);
        }
        self.schedule(Frame { packet, deliverable }, now_ns);
    }

    fn queue_full(&self) -> bool {
        self.queue.len() >= self.spec.effective_limit() as usize
    }

    /// The copy's own trip through netem_enqueue, minus duplication.
    fn enqueue_duplicate(&mut self, mut packet: Vec<u8>, now_ns: u64) {
        if self.loss_event() {
            if self.spec.ecn && set_ce(&mut packet) {
                self.counters.ecn_marked += 1;
            } else {
                self.counters.dropped_loss += 1;
                return;
            }
        }
        let deliverable = self.maybe_corrupt(&mut packet);
        if self.queue_full() {
            self.counters.dropped_limit += 1;
            return;
        }
        self.schedule(Frame { packet, deliverable }, now_ns);
    }

    /// Flips one random bit, with the corrupt probability. netem flips a
    /// bit of the frame it holds, and on an Ethernet link (a veth, a NIC)
    /// that begins with a 14-byte header TUN packets lack: a flip there
    /// leaves the IP packet intact, and the frame is delivered if it hit
    /// the source address or the destination's group bit, and dropped by
    /// the receiver otherwise (another destination, another EtherType).
    /// False when the receiver would drop the frame.
    fn maybe_corrupt(&mut self, packet: &mut [u8]) -> bool {
        let Some(corrupt) = self.spec.corrupt else {
            return true;
        };
        if corrupt.probability == 0.0
            || packet.is_empty()
            || scaled(corrupt.probability) < self.corrupt_cor.blend(self.draws.next_u32())
        {
            return true;
        }
        self.counters.corrupted += 1;
        let byte = self.entropy.below((packet.len() + L2_HEADER_LEN) as u32) as usize;
        let bit = self.entropy.below(8);
        match byte.checked_sub(L2_HEADER_LEN) {
            Some(at) => {
                packet[at] ^= 1 << bit;
                true
            }
            None => matches!((byte, bit), (0, 0) | (6..=11, _)),
        }
    }

    fn schedule(&mut self, frame: Frame, now_ns: u64) {
        let order = self.arrivals;
        self.arrivals += 1;
        let reorder_now = match self.spec.reorder {
            Some(r) => {
                self.since_reorder + 1 >= r.gap
                    && scaled(r.chance.probability) >= self.reorder_cor.blend(self.draws.next_u32())
            }
            None => false,
        };
        if reorder_now {
            // Sent at once, ahead of everything still delayed.
            self.since_reorder = 0;
            self.counters.reordered += 1;
            self.queue.insert((now_ns, order), frame);
            return;
        }
        let (latency, jitter, distribution) = match self.spec.delay {
            Some(d) => (d.latency_ns as i64, d.jitter_ns as i64, d.distribution),
            None => (0, 0, Distribution::Uniform),
        };
        // As tabledist: no draw without jitter.
        let rnd = if jitter > 0 {
            self.delay_cor.blend(self.draws.next_u32())
        } else {
            0
        };
        let mut delay = dist::sample(distribution, latency, jitter, rnd);
        let mut from = now_ns as i64;
        if let Some(rate) = self.spec.rate {
            if let Some((&(last, _), _)) = self.queue.last_key_value() {
                // The last queued packet is the reference: what is left of
                // its wait counts towards this one's delay.
                delay = delay.saturating_sub(last as i64 - from).max(0);
                from = last as i64;
            }
            let mut len = (frame.packet.len() + L2_HEADER_LEN) as i64 + rate.packet_overhead as i64;
            if rate.cell_size > 0 {
                let cell = rate.cell_size as i64;
                let cells = (len + cell - 1) / cell;
                len = cells * (cell + rate.cell_overhead as i64);
            }
            // Saturating, here and below: a slow enough rate with large
            // overheads takes centuries a packet, and the times would wrap.
            let serialization = len.max(0) as u128 * 1_000_000_000 / rate.bytes_per_sec as u128;
            delay = delay.saturating_add(i64::try_from(serialization).unwrap_or(i64::MAX));
        }
        self.since_reorder = self.since_reorder.saturating_add(1);
        let send_at = from.saturating_add(delay).max(0) as u64;
        self.queue.insert((send_at, order), frame);
    }

    /// When the next packet may leave, if any is queued.
    pub fn next_due(&self) -> Option<u64> {
        let (&(send_at, _), _) = self.queue.first_key_value()?;
        Some(match self.slot {
            Some(s) if s.next_ns >= send_at => s.next_ns,
            _ => send_at,
        })
    }

    /// A packet due at `now_ns`, if any (call until `None`).
    pub fn dequeue(&mut self, now_ns: u64) -> Option<Vec<u8>> {
        loop {
            let frame = self.dequeue_frame(now_ns)?;
            if frame.deliverable {
                self.counters.delivered += 1;
                return Some(frame.packet);
            }
            self.counters.dropped_corrupt += 1;
        }
    }

    fn dequeue_frame(&mut self, now_ns: u64) -> Option<Frame> {
        let (&(send_at, order), _) = self.queue.first_key_value()?;
        // As netem: a slot that ended before this packet was due is over;
        // the next starts now (and so does the very first).
        if self.spec.slot.is_some() && self.slot.is_none_or(|s| s.next_ns < send_at) {
            self.start_slot(now_ns);
        }
        let slot_open = self.slot.is_none_or(|s| s.next_ns <= now_ns);
        if send_at > now_ns || !slot_open {
            return None;
        }
        let frame = self.queue.remove(&(send_at, order)).expect("first key exists");
        if let Some(s) = &mut self.slot {
            s.packets_left -= 1;
            s.bytes_left -= (frame.packet.len() + L2_HEADER_LEN) as i64;
            if s.packets_left <= 0 || s.bytes_left <= 0 {
                self.start_slot(now_ns);
            }
        }
        Some(frame)
    }

    fn start_slot(&mut self, now_ns: u64) {
        let Some(slot) = self.spec.slot else { return };
        let gap = match slot.interval {
            SlotInterval::Range { min_ns, max_ns } => {
                // Uniform in [min, max): a 32-bit draw times the spread,
                // in 128 bits (in 64 it overflows past a 4.3 s spread).
                let spread = u128::from(max_ns - min_ns);
                min_ns + ((u128::from(self.entropy.next_u32()) * spread) >> 32) as u64
            }
            SlotInterval::Distributed {
                distribution,
                delay_ns,
                jitter_ns,
            } => dist::sample(
                distribution,
                delay_ns as i64,
                jitter_ns as i64,
                if jitter_ns > 0 { self.draws.next_u32() } else { 0 },
            )
            .max(0) as u64,
        };
        let (packets_left, bytes_left) = slot_budget(&slot);
        self.slot = Some(SlotState {
            next_ns: now_ns + gap,
            packets_left,
            bytes_left,
        });
    }

    fn loss_event(&mut self) -> bool {
        let Some(loss) = self.spec.loss else {
            return false;
        };
        match loss {
            Loss::Random(c) => {
                c.probability > 0.0 && scaled(c.probability) >= self.loss_cor.blend(self.draws.next_u32())
            }
            Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            } => {
                // The packet's fate is that of the state it arrived in; the
                // transition drawn first applies to the next packet.
                match self.ge {
                    GeState::Good => {
                        if self.draws.next_u32() < scaled(p) {
                            self.ge = GeState::Bad;
                        }
                        self.draws.next_u32() < scaled(good_loss)
                    }
                    GeState::Bad => {
                        if self.draws.next_u32() < scaled(r) {
                            self.ge = GeState::Good;
                        }
                        // tc sends "1-h" as h = max - (1-h).
                        self.draws.next_u32() > u32::MAX - scaled(bad_loss)
                    }
                }
            }
            Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => {
                let rnd = self.draws.next_u32() as u64;
                let (a1, a2, a3, a4, a5) = (
                    scaled(p13) as u64,
                    scaled(p31) as u64,
                    scaled(p32) as u64,
                    scaled(p14) as u64,
                    scaled(p23) as u64,
                );
                match self.four {
                    FourState::TxGap => {
                        if rnd < a4 {
                            self.four = FourState::LostGap;
                            true
                        } else if a4 < rnd && rnd < a1 + a4 {
                            self.four = FourState::LostBurst;
                            true
                        } else {
                            false
                        }
                    }
                    FourState::TxBurst => {
                        if rnd < a5 {
                            self.four = FourState::LostBurst;
                            true
                        } else {
                            false
                        }
                    }
                    FourState::LostBurst => {
                        if rnd < a3 {
                            self.four = FourState::TxBurst;
                            false
                        } else if a2 + a3 > rnd && rnd > a3 {
                            self.four = FourState::TxGap;
                            false
                        } else {
                            a2 + a3 < rnd
                        }
                    }
                    FourState::LostGap => {
                        self.four = FourState::TxGap;
                        false
                    }
                }
            }
        }
    }
}

/// What one slot may send: packets and bytes.
fn slot_budget(slot: &Slot) -> (i64, i64) {
    (
        slot.packets.map_or(i32::MAX as i64, i64::from),
        // More bytes than an i64 holds are as good as no limit.
        slot.bytes
            .map_or(i32::MAX as i64, |b| i64::try_from(b).unwrap_or(i64::MAX)),
    )
}

/// Whether `spec` leaves every packet as [`Pipeline::enqueue`] got it,
/// due on arrival, and takes no random draw (which would move later
/// decisions): probabilities of exactly 0 draw nothing, but a reorder
/// does, whatever its probability.
fn is_transparent(spec: &NetemSpec) -> bool {
    let never = |c: Option<Chance>| c.is_none_or(|c| c.probability == 0.0);
    spec.delay.is_none_or(|d| d.latency_ns == 0 && d.jitter_ns == 0)
        && match spec.loss {
            None => true,
            Some(Loss::Random(c)) => c.probability == 0.0,
            Some(_) => false,
        }
        && never(spec.duplicate)
        && never(spec.corrupt)
        && spec.reorder.is_none()
        && spec.rate.is_none()
        && spec.slot.is_none()
        && spec.effective_limit() > 0
}

/// Marks an ECN-capable IPv4 or IPv6 packet Congestion Experienced; false
/// (and the packet untouched) if it is not ECN-capable.
pub fn set_ce(packet: &mut [u8]) -> bool {
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let ecn = packet[1] & 0x03;
            if ecn == 0 {
                return false;
            }
            if ecn != 0x03 {
                packet[1] |= 0x03;
                let ihl = ((packet[0] & 0x0f) as usize * 4).clamp(20, packet.len());
                crate::checksum::fill_ipv4_header(&mut packet[..ihl]);
            }
            true
        }
        Some(6) if packet.len() >= 40 => {
            let ecn = (packet[1] >> 4) & 0x03;
            if ecn == 0 {
                return false;
            }
            packet[1] |= 0x30;
            true
        }
        _ => false,
    }
}
