//! The netem grammar: the input as a profile string (`--impair`, a
//! scenario's profile) and as a profile file (`netem-scripts/profiles/`).
//! A profile that parses then configures linkemu, which takes a few
//! packets through it.
//!
//! Holds: no panic; an error names a word of the input (or the one past
//! its end); a spec renders as a profile that parses, and whose rendering
//! is that same text (the canonical form, which tc is given too); its mean
//! loss is a probability; linkemu keeps every packet it takes accounted
//! for (delivered, dropped or queued), and waiting for the time it says
//! the next one is due, a few times, lets every one go.

use linkemu::{NetemSpec, Pipeline};

/// When the packets arrive: a monotonic clock some days after boot.
const T0: u64 = 400_000 * 1_000_000_000;
const PACKETS: u64 = 8;
/// Rounds of "wait for the next due time, take what is due".
const ROUNDS: usize = 64;

pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    for (parsed, words) in [
        (NetemSpec::parse(text), text.split_whitespace().count()),
        (NetemSpec::parse_profile_file(text), profile_words(text)),
    ] {
        match parsed {
            Ok(spec) => check(&spec),
            Err(e) => {
                assert!((1..=words + 1).contains(&e.position), "{e} of {words} words");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

fn profile_words(text: &str) -> usize {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").split_whitespace().count())
        .sum()
}

fn check(spec: &NetemSpec) {
    let text = spec.to_string();
    let again =
        NetemSpec::parse(&text).unwrap_or_else(|e| panic!("{spec:?} renders as {text:?}, which fails: {e}"));
    assert_eq!(again.to_string(), text, "{spec:?}: the rendering is canonical");
    if let Some(loss) = spec.mean_loss() {
        assert!((0.0..=1.0).contains(&loss), "{spec:?}: mean loss {loss}");
    }
    link(spec);
}

/// A few packets through one direction of linkemu.
fn link(spec: &NetemSpec) {
    let mut link = Pipeline::new(spec, 1);
    for i in 0..PACKETS {
        // IPv4, ECN-capable (ECT(0)), of a few sizes.
        let mut packet = vec![0u8; 20 + 100 * i as usize];
        packet[0] = 0x45;
        packet[1] = 0x02;
        link.enqueue(packet, T0 + i * 1_000);
    }
    let mut now = T0 + PACKETS * 1_000;
    for _ in 0..ROUNDS {
        let Some(due) = link.next_due() else { break };
        now = now.max(due);
        while link.dequeue(now).is_some() {}
        let c = link.counters();
        let dropped = c.dropped_loss + c.dropped_limit + c.dropped_corrupt;
        assert_eq!(
            c.arrived + c.duplicated,
            c.delivered + dropped + link.queued() as u64,
            "{spec}: {c:?}"
        );
    }
    assert_eq!(link.queued(), 0, "{spec}: packets left after {ROUNDS} rounds");
}
