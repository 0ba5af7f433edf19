//! Properties of the recovery theory over arbitrary timers and outages:
//! the recovery after a heal lies between one answer delay and the
//! backed-off wait in force at the heal plus it, and the chart's curve is
//! the prediction.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use transbench_analysis::recovery::theory::{
    predict, recovery_curve, Backoff, GiveUp, QuinnPto, TimerModel, LINUX_TCP_RTO_MAX_NS,
};
use transbench_analysis::recovery::Outage;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const A: u64 = 10_000 * S;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x0072_6563_6f76_6572),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Linux's RTO from its floor to its cap, or quinn's PTO from a round
/// trip and a variance; never given up.
fn timer() -> impl Strategy<Value = TimerModel> {
    prop_oneof![
        (200 * MS..=LINUX_TCP_RTO_MAX_NS)
            .prop_map(|rto| { TimerModel::new(Backoff::linux_tcp(rto).unwrap(), GiveUp::Never) }),
        (0..2 * S, 0..S / 2).prop_map(|(rtt, var)| {
            let pto = QuinnPto {
                rttvar_ns: var,
                ..QuinnPto::steady(rtt)
            };
            TimerModel::quinn(pto, None)
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recovery_lies_within_the_wait_in_force_at_the_heal(
        model in timer(),
        len in 1..3_600 * S,
        start_share in 0.0..1.0f64,
        answer_delay in 0..2 * S,
    ) {
        let outage = Outage::new(A, A + len).unwrap();
        let start = A + (start_share * len as f64) as u64 % len;
        let recovery = *predict(&model, start, outage, answer_delay).unwrap().recovery().unwrap();
        let heal = outage.end_ns();
        prop_assert!(recovery.retransmission_ns >= heal);
        prop_assert!(recovery.recovery_after_heal_ns >= answer_delay);
        prop_assert!(recovery.recovery_after_heal_ns < recovery.interval_at_heal_ns + answer_delay);
        prop_assert!(recovery.interval_at_heal_ns <= model.backoff().max_interval_ns());
        prop_assert_eq!(recovery.recovery_after_heal_ns - recovery.silent_after_heal_ns, answer_delay);
        // The retransmission before it fell inside the outage.
        let sent: Vec<u64> = model.retransmissions(start).take(recovery.retransmission as usize).collect();
        prop_assert_eq!(sent.last(), Some(&recovery.retransmission_ns));
        prop_assert!(sent.len() < 2 || sent[sent.len() - 2] < heal);
        prop_assert_eq!(
            recovery.retransmission_ns - recovery.interval_at_heal_ns,
            if sent.len() < 2 { start } else { sent[sent.len() - 2] }
        );
    }

    #[test]
    fn the_curve_is_the_prediction(
        model in timer(),
        offset in 0..S,
        len_share in 0.0..1.0f64,
        answer_delay in 0..S,
    ) {
        let max = offset + 600 * S;
        let curve = recovery_curve(&model, offset, answer_delay, max);
        prop_assert_eq!(curve.recovers_up_to_ns, None);
        prop_assert!(curve.points_ns.windows(2).all(|w| w[0].0 <= w[1].0));
        let len = offset + 1 + (len_share * (max - offset - 1) as f64) as u64;
        let outage = Outage::new(A, A + len).unwrap();
        let expected = predict(&model, A + offset, outage, answer_delay)
            .unwrap()
            .recovery()
            .unwrap()
            .recovery_after_heal_ns;
        let i = curve.points_ns.windows(2).position(|w| w[0].0 < len && len <= w[1].0).unwrap();
        let ((x0, y0), (x1, y1)) = (curve.points_ns[i], curve.points_ns[i + 1]);
        // Every tooth falls one for one.
        prop_assert_eq!(y0 - y1, x1 - x0);
        prop_assert_eq!(y0 - (len - x0), expected);
    }
}
