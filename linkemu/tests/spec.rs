//! The netem grammar: what tc-netem(8) shows (and tc accepts) parses; what
//! tc refuses is refused, naming the word.

use linkemu::dist::Distribution;
use linkemu::spec::{Loss, NetemSpec, SlotInterval};

const MS: u64 = 1_000_000;

#[test]
fn examples_from_the_man_page_parse() {
    for profile in [
        "delay 100ms",
        "delay 100ms 10ms",
        "delay 100ms 10ms 25%",
        "delay 100ms 20ms distribution normal",
        "loss 0.1%",
        "loss 0.3% 25%",
        "duplicate 1%",
        "corrupt 0.1%",
        "delay 10ms reorder 25% 50%",
        "delay 10ms reorder 25% 50% gap 5",
        "rate 256kbit",
        "delay 100ms rate 256kbit",
        "rate 1kbit 20",
        "rate 100kbit 20 100",
        "rate 1000kbit 20 100 5",
        "loss state 1% 30% 5% 40% 2%",
        "loss gemodel 1% 30% 100% 0%",
        "delay 20ms 5ms 25% distribution normal loss gemodel 1% 30% duplicate 1% corrupt 0.1% \
         reorder 25% 50% gap 5 rate 100mbit limit 10000 seed 7",
        "slot 800us 1ms packets 32 bytes 64kb",
        "slot distribution pareto 1ms 200us packets 8",
        "loss random 2% ecn",
        "limit 100000 delay 50ms",
    ] {
        NetemSpec::parse(profile).unwrap_or_else(|e| panic!("{profile}: {e}"));
    }
}

#[test]
fn the_issue_example_reads_as_meant() {
    let s = NetemSpec::parse(
        "delay 20ms 5ms 25% distribution normal loss gemodel 1% 30% duplicate 1% corrupt 0.1% \
         reorder 25% 50% gap 5 rate 100mbit limit 10000 seed 7",
    )
    .unwrap();
    let d = s.delay.unwrap();
    assert_eq!((d.latency_ns, d.jitter_ns), (20 * MS, 5 * MS));
    assert!((d.correlation - 0.25).abs() < 1e-12);
    assert_eq!(d.distribution, Distribution::Normal);
    assert_eq!(
        s.loss,
        Some(Loss::GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 1.0,
            good_loss: 0.0
        })
    );
    let r = s.reorder.unwrap();
    assert_eq!(
        (r.chance.probability, r.chance.correlation, r.gap),
        (0.25, 0.5, 5)
    );
    assert_eq!(s.rate.unwrap().bytes_per_sec, 12_500_000);
    assert_eq!((s.limit, s.seed), (Some(10_000), Some(7)));
    assert!((s.corrupt.unwrap().probability - 0.001).abs() < 1e-12);
}

#[test]
fn units_as_tc_takes_them() {
    let rate = |p: &str| NetemSpec::parse(p).unwrap().rate.unwrap().bytes_per_sec;
    assert_eq!(rate("rate 8kbit"), 1_000);
    assert_eq!(rate("rate 1gbit"), 125_000_000);
    assert_eq!(rate("rate 2mbps"), 2_000_000, "mbps is megabytes per second");
    assert_eq!(rate("rate 8kibit"), 1_024);
    let delay = |p: &str| NetemSpec::parse(p).unwrap().delay.unwrap().latency_ns;
    assert_eq!(delay("delay 1.5ms"), 1_500_000);
    assert_eq!(delay("delay 250us"), 250_000);
    assert_eq!(delay("delay 2s"), 2_000_000_000);
    assert_eq!(delay("latency 7usec"), 7_000);
    assert_eq!(rate("rate 100Mbit"), 12_500_000, "as tc qdisc show prints it");
    // A bare number is a percentage, as in tc.
    assert_eq!(
        NetemSpec::parse("duplicate 3")
            .unwrap()
            .duplicate
            .unwrap()
            .probability,
        0.03
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let s = NetemSpec::parse("loss gemodel 2%").unwrap();
    assert_eq!(
        s.loss,
        Some(Loss::GilbertElliott {
            p: 0.02,
            r: 0.98,
            bad_loss: 1.0,
            good_loss: 0.0
        })
    );
    assert_eq!(
        NetemSpec::parse("delay 5ms reorder 10%")
            .unwrap()
            .reorder
            .unwrap()
            .gap,
        1
    );
    assert_eq!(NetemSpec::parse("delay 5ms").unwrap().effective_limit(), 1000);
    let slot = NetemSpec::parse("slot 1ms").unwrap().slot.unwrap();
    assert_eq!(
        slot.interval,
        SlotInterval::Range {
            min_ns: MS,
            max_ns: MS
        }
    );
}

#[test]
fn refusals_name_the_word_and_what_was_expected() {
    for (profile, word, expected) in [
        ("delay 10", "10", "a time with a unit"),
        ("delay 10ms 2", "2", "a time with a unit"),
        ("delay 3601s", "3601s", "at most an hour"),
        ("slot 800us 1e40us", "1e40us", "at most an hour"),
        ("rate 100", "100", "a rate with a unit"),
        ("rate 10%", "10%", "a rate with a unit"),
        ("loss 120%", "120%", "from 0 to 100"),
        ("loss -1%", "-1%", "from 0 to 100"),
        ("delay 10ms jitter 5ms", "jitter", "a netem keyword"),
        ("reorder 25%", "reorder", "a delay as well"),
        ("delay 10ms gap 5", "gap", "reorder as well"),
        ("delay 10ms distribution normal", "distribution", "a jitter"),
        (
            "delay 10ms 1ms distribution gaussian",
            "gaussian",
            "uniform, normal, pareto or paretonormal",
        ),
        ("ecn", "ecn", "a loss model"),
        ("limit", "", "limit: packets"),
        ("limit many", "many", "a whole number"),
        ("slot 2ms 1ms", "1ms", "at least the minimum"),
    ] {
        let e = NetemSpec::parse(profile).expect_err(profile);
        assert_eq!(e.word, word, "{profile}: {e}");
        let words: Vec<&str> = profile.split_whitespace().collect();
        assert_eq!(
            words.get(e.position - 1).copied().unwrap_or(""),
            word,
            "{profile}: position {}",
            e.position
        );
        assert!(e.to_string().contains(expected), "{profile}: {e}");
    }
}

#[test]
fn display_round_trips_through_the_parser() {
    for profile in [
        "delay 20ms 5ms 25% distribution normal loss gemodel 1% 30% duplicate 1% corrupt 0.1% \
         reorder 25% 50% gap 5 rate 100mbit limit 10000 seed 7",
        "loss state 1% 30% 5% 40% 2% ecn delay 1500us",
        "slot distribution pareto 1ms 200us packets 8 bytes 3000 rate 1kbit 20 100 5",
        "delay 1500ns 250ns",
        "",
    ] {
        let spec = NetemSpec::parse(profile).unwrap();
        let text = spec.to_string();
        assert!(!text.contains("ns "), "tc has no ns unit: {text}");
        let mut again = NetemSpec::parse(&text).unwrap_or_else(|e| panic!("{spec}: {e}"));
        // The rendering states netem's default limit explicitly.
        again.limit = again.limit.filter(|_| spec.limit.is_some());
        assert_eq!(again, spec, "{spec}");
    }
}

#[test]
fn every_shipped_profile_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../netem-scripts/profiles");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "netem") {
            let text = std::fs::read_to_string(&path).unwrap();
            let spec =
                NetemSpec::parse_profile_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                spec.delay.is_some(),
                "{}: every shipped profile has a delay",
                path.display()
            );
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "bursty",
            "lan",
            "lossy-1pct",
            "mobile",
            "reorder",
            "wan-100mbit",
            "wan-100mbit-lossy",
            "wan-50ms"
        ]
    );
}
