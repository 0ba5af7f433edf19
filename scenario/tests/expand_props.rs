//! Properties of scenario expansion over arbitrary small matrices, written
//! as TOML and parsed: every combination once, every trial `trials` times,
//! one order per seed, and another seed only permutes it.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::RngSeed;
use transbench_scenario::{parse, Cell, Order, Scenario, TrialPlan};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x7363_656e_6172_696f),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One `[[matrix]]` entry as generated: its workload, transports, profiles
/// (`None`: the key left out) and parameter axes, each value as the cell
/// shows it.
#[derive(Debug, Clone)]
struct Matrix {
    workload: &'static str,
    transports: Vec<&'static str>,
    profiles: Option<Vec<(&'static str, &'static str)>>,
    axes: Vec<(&'static str, Vec<String>, bool)>,
}

/// Profiles as written in TOML, and the name the cell gets.
const PROFILES: [(&str, &str); 5] = [
    ("\"none\"", "none"),
    ("\"lan\"", "lan"),
    ("\"delay 1ms\"", "delay 1ms"),
    ("\"delay 2ms loss 1%\"", "delay 2ms loss 1%"),
    ("{ forward = \"lan\", reverse = \"none\" }", "lan/none"),
];

/// A few distinct values of one parameter; `scalar` writes a single one
/// without brackets.
fn axis(name: &'static str, pool: Vec<String>) -> impl Strategy<Value = (&'static str, Vec<String>, bool)> {
    let most = pool.len().min(3);
    (subsequence(pool, 1..=most).prop_shuffle(), any::<bool>())
        .prop_map(move |(values, scalar)| (name, values.clone(), scalar && values.len() == 1))
}

fn numbers(pool: &[u32]) -> Vec<String> {
    pool.iter().map(|n| n.to_string()).collect()
}

fn matrix(workload: &'static str) -> BoxedStrategy<Matrix> {
    let (transports, axes): (Vec<&'static str>, BoxedStrategy<Vec<_>>) = match workload {
        "rr" => (
            vec!["udp", "tcp", "tcp+tls", "quic"],
            (
                proptest::option::of(axis("rate", numbers(&[100, 500, 1000, 2000]))),
                proptest::option::of(axis("size", numbers(&[32, 64, 1200]))),
                proptest::option::of(axis("cc", vec!["cubic".into(), "bbr".into(), "reno".into()])),
            )
                .prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().collect())
                .boxed(),
        ),
        "multistream" => (
            vec!["tcp-mux", "tcp+tls-mux", "tcp-n", "quic", "udp"],
            (
                proptest::option::of(axis("rate", numbers(&[50, 100]))),
                proptest::option::of(axis("streams", numbers(&[1, 4, 16]))),
            )
                .prop_map(|(a, b)| [a, b].into_iter().flatten().collect())
                .boxed(),
        ),
        _ => (
            vec!["tcp", "tcp+tls", "quic", "quic-0rtt"],
            (
                proptest::option::of(axis("conn_rate", numbers(&[10, 100]))),
                proptest::option::of(axis(
                    "close",
                    vec!["client".into(), "server".into(), "rst".into()],
                )),
            )
                .prop_map(|(a, b)| [a, b].into_iter().flatten().collect())
                .boxed(),
        ),
    };
    (
        subsequence(transports, 1..=3).prop_shuffle(),
        proptest::option::of(subsequence(PROFILES.to_vec(), 1..=3).prop_shuffle()),
        axes,
    )
        .prop_map(move |(transports, profiles, axes)| Matrix {
            workload,
            transports,
            profiles,
            axes,
        })
        .boxed()
}

/// One to three matrices, one per workload so no cell repeats.
fn matrices() -> impl Strategy<Value = Vec<Matrix>> {
    subsequence(vec!["rr", "multistream", "churn"], 1..=3)
        .prop_shuffle()
        .prop_flat_map(|workloads| workloads.into_iter().map(matrix).collect::<Vec<_>>())
}

fn toml(matrices: &[Matrix], trials: u32, seed: u64, order: Option<&str>) -> String {
    let mut t = format!("name = \"p\"\nduration = \"1s\"\ntrials = {trials}\nseed = {seed}\n");
    if let Some(order) = order {
        t += &format!("order = \"{order}\"\n");
    }
    let quoted = |v: &str, name: &str| {
        if matches!(name, "cc" | "close") {
            format!("\"{v}\"")
        } else {
            v.to_string()
        }
    };
    for m in matrices {
        t += &format!("\n[[matrix]]\nworkload = \"{}\"\n", m.workload);
        let transports: Vec<String> = m.transports.iter().map(|t| format!("\"{t}\"")).collect();
        t += &format!("transports = [{}]\n", transports.join(", "));
        if let Some(profiles) = &m.profiles {
            let written: Vec<&str> = profiles.iter().map(|p| p.0).collect();
            t += &format!("profiles = [{}]\n", written.join(", "));
        }
        for (name, values, scalar) in &m.axes {
            let values: Vec<String> = values.iter().map(|v| quoted(v, name)).collect();
            if *scalar {
                t += &format!("{name} = {}\n", values[0]);
            } else {
                t += &format!("{name} = [{}]\n", values.join(", "));
            }
        }
    }
    t
}

/// A cell as (workload, transport, profile, parameter = value ...).
type Key = (String, String, String, BTreeMap<String, String>);

fn key(c: &Cell) -> Key {
    (
        c.workload.to_string(),
        c.transport.to_string(),
        c.profile.name.clone(),
        c.params.0.iter().cloned().collect(),
    )
}

/// Every combination the matrices ask for, computed directly.
fn expected_cells(matrices: &[Matrix]) -> Vec<Key> {
    let mut out = Vec::new();
    for m in matrices {
        let profiles: Vec<&str> = match &m.profiles {
            Some(p) => p.iter().map(|p| p.1).collect(),
            None => vec!["none"],
        };
        let mut combos = vec![BTreeMap::new()];
        for (name, values, _) in &m.axes {
            combos = combos
                .iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c: BTreeMap<String, String> = c.clone();
                        c.insert(name.to_string(), v.clone());
                        c
                    })
                })
                .collect();
        }
        for t in &m.transports {
            for p in &profiles {
                for c in &combos {
                    out.push((m.workload.to_string(), t.to_string(), p.to_string(), c.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

fn sorted(mut plan: Vec<TrialPlan>) -> Vec<TrialPlan> {
    plan.sort_by_key(|t| (t.cell, t.repetition));
    plan
}

fn lan(name: &str) -> Option<String> {
    (name == "lan").then(|| "delay 250us 50us\n".to_string())
}

proptest! {
    #![proptest_config(config())]

    // Cells = the product of the axes, each combination once; trials =
    // cells x trials, each cell exactly `trials` times; the same seed gives
    // the same order, another seed a permutation of it.
    #[test]
    fn expansion_is_the_product_and_the_order_a_seeded_permutation(
        matrices in matrices(),
        trials in 1u32..=6,
        seed in prop_oneof![0u64..=10, any::<u32>().prop_map(u64::from), 0..=i64::MAX as u64],
        other_seed in any::<u32>(),
        order in prop_oneof![Just(None), Just(Some("random")), Just(Some("as-written"))],
    ) {
        let text = toml(&matrices, trials, seed, order);
        let s = parse("p.toml", &text, &lan).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;

        let product: usize = matrices
            .iter()
            .map(|m| {
                m.transports.len()
                    * m.profiles.as_ref().map_or(1, |p| p.len())
                    * m.axes.iter().map(|a| a.1.len()).product::<usize>()
            })
            .sum();
        prop_assert_eq!(s.cells.len(), product);
        let mut got: Vec<Key> = s.cells.iter().map(key).collect();
        got.sort();
        prop_assert_eq!(got, expected_cells(&matrices));

        let plan = s.trials();
        prop_assert_eq!(plan.len(), product * trials as usize);
        let mut per_cell = vec![0u32; s.cells.len()];
        for t in &plan {
            prop_assert!(t.cell < s.cells.len() && t.repetition < trials, "{:?}", t);
            per_cell[t.cell] += 1;
        }
        prop_assert!(per_cell.iter().all(|&k| k == trials), "{:?}", per_cell);
        // Cell by cell as written: the plan's sorted form, and each
        // (cell, repetition) once.
        let written = Scenario { order: Order::AsWritten, ..s.clone() }.trials();
        let expected_written: Vec<TrialPlan> = (0..s.cells.len())
            .flat_map(|cell| (0..trials).map(move |repetition| TrialPlan { cell, repetition }))
            .collect();
        prop_assert_eq!(&written, &expected_written);
        prop_assert_eq!(sorted(plan.clone()), expected_written.clone());

        prop_assert_eq!(&plan, &s.trials(), "the same scenario, another order");
        let again = parse("p.toml", &text, &lan).unwrap();
        prop_assert_eq!(&plan, &again.trials(), "the same file, another order");

        let other = Scenario { seed: other_seed as u64, ..s.clone() };
        let reordered = other.trials();
        prop_assert_eq!(sorted(reordered.clone()), expected_written);
        match s.order {
            Order::AsWritten => prop_assert_eq!(&reordered, &plan, "as written, the seed must not matter"),
            // 10! orders: two seeds agreeing on one is a 1 in 3.6 million
            // chance per case, and these cases are fixed.
            Order::Random if plan.len() >= 10 && other_seed as u64 != s.seed => {
                prop_assert_ne!(&reordered, &plan, "seeds {} and {} give one order", s.seed, other_seed);
            }
            Order::Random => {}
        }
    }
}
