//! The scenarios shipped in `bench/scenarios/` parse, with the profiles
//! shipped in `netem-scripts/profiles/`, and expand as their comments say.

use std::path::Path;

fn load(name: &str) -> transbench_scenario::Scenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    transbench_scenario::load(
        &root.join("bench/scenarios").join(name),
        &root.join("netem-scripts/profiles"),
        &|_, _, _| Ok(()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_scenario_parses() {
    let quick = load("quick.toml");
    assert_eq!(quick.cells.len(), 8);
    assert!(
        quick
            .cells
            .iter()
            .all(|c| c.profile.link.is_none() || c.skip_without_root),
        "quick runs without root, leaving its emulated link out"
    );
    // Under a minute: 16 trials of 2 s (and, as root, a testbed for each
    // of the 8 on the emulated link).
    let secs = quick.trials().len() as f64 * (quick.duration + quick.warmup).as_secs_f64();
    assert!(secs <= 32.0, "{secs} s");

    let ci = load("ci.toml");
    assert!(ci.trials >= 10 && ci.cells.iter().all(|c| c.profile.link.is_none()));

    let hol = load("hol.toml");
    assert_eq!(hol.cells.len(), 4 * 3);
    let churn = load("churn.toml");
    assert_eq!(churn.cells.len(), 2 * 3 + 4);
    let wan = load("lossy-wan.toml");
    assert_eq!(wan.cells.len(), 4 * 4 * 2);
    // Partitions of 1, 4 and 16 s, both ways and the responses alone, per
    // transport; rejects of 4 s both ways and the responses alone, ICMP
    // per transport and resets on tcp and tcp+tls; a frozen receiver per
    // transport; a crashed one on udp, tcp and tcp+tls; heartbeats on udp,
    // tcp and quic under two profiles.
    let failures = load("failures.toml");
    assert_eq!(failures.cells.len(), 4 * 6 + 4 * 2 + 2 * 2 + 4 + 3 + 3 * 2);
    let rejecting = failures
        .cells
        .iter()
        .filter_map(|c| c.profile.schedules.as_ref())
        .filter(|(f, r)| f.rejects() || r.rejects())
        .count();
    assert_eq!(rejecting, 4 * 2 + 2 * 2);
    let one_way = failures
        .cells
        .iter()
        .filter_map(|c| c.profile.schedules.as_ref())
        .filter(|(f, r)| f.is_constant() && !r.is_constant())
        .count();
    assert_eq!(one_way, 4 * 3 + 4 + 2, "the responses' partitions and rejects");
    assert!(wan.cells.iter().all(|c| c.profile.link.is_some()));
}

#[test]
fn a_missing_file_says_which() {
    let e = transbench_scenario::load(Path::new("/nonexistent.toml"), Path::new("/"), &|_, _, _| Ok(()))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("/nonexistent.toml: cannot read it: "),
        "{e}"
    );
}
