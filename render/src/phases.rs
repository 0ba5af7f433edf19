//! An impairment schedule's phases as a timeline shades them: the
//! stretches of schedule time in which the round trip's path was not what
//! it was at time 0.

use linkemu::{ImpairSchedule, NetemSpec};
use transbench_reports::cell::profiles_label;
use transbench_reports::ScheduleRecord;

use crate::chart::Shade;

/// A stretch of schedule time `[from_ns, to_ns)` with one profile each way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub from_ns: u64,
    pub to_ns: u64,
    /// Dark where either direction dropped every packet, light where the
    /// profiles differ from the first ones.
    pub shade: Shade,
    /// Which way was dark, or the profiles in netem words.
    pub label: String,
}

/// The phases of `schedules` over `[0, until_ns)` that differ from time
/// 0's profiles, in order; neighbours with the same shade and label are
/// one. `None` when a schedule does not parse.
pub fn phases(schedules: &ScheduleRecord, until_ns: u64) -> Option<Vec<Phase>> {
    let forward = ImpairSchedule::parse(&schedules.forward).ok()?;
    let reverse = ImpairSchedule::parse(&schedules.reverse).ok()?;
    let first = (forward.at(0), reverse.at(0));
    let mut out: Vec<Phase> = Vec::new();
    let mut t = 0;
    while t < until_ns {
        let next = [forward.next_change_after(t), reverse.next_change_after(t)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
            .min(until_ns);
        let now = (forward.at(t), reverse.at(t));
        if let Some((shade, label)) = shade_of(&now, &first) {
            match out.last_mut() {
                Some(last) if last.to_ns == t && last.shade == shade && last.label == label => {
                    last.to_ns = next
                }
                _ => out.push(Phase {
                    from_ns: t,
                    to_ns: next,
                    shade,
                    label,
                }),
            }
        }
        t = next;
    }
    Some(out)
}

/// How the profiles `now` (forward, reverse) are shaded against the
/// `first` ones; `None`: as at time 0, not shaded.
fn shade_of(now: &(NetemSpec, NetemSpec), first: &(NetemSpec, NetemSpec)) -> Option<(Shade, String)> {
    let dark = match (now.0.drops_everything(), now.1.drops_everything()) {
        (true, true) => "dark",
        (true, false) => "requests dark",
        (false, true) => "responses dark",
        (false, false) if now == first => return None,
        (false, false) => {
            return Some((
                Shade::Light,
                profiles_label(&now.0.to_string(), &now.1.to_string()),
            ))
        }
    };
    Some((Shade::Dark, dark.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn record(forward: &str, reverse: &str) -> ScheduleRecord {
        ScheduleRecord {
            forward: forward.into(),
            reverse: reverse.into(),
            changes: Vec::new(),
        }
    }

    fn spans(phases: &[Phase]) -> Vec<(u64, u64, Shade, &str)> {
        phases
            .iter()
            .map(|p| {
                (
                    p.from_ns / (S / 10),
                    p.to_ns / (S / 10),
                    p.shade,
                    p.label.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn a_partition_is_dark_and_a_later_step_light_until_the_end() {
        let both = "0s: limit 100000 delay 5ms seed 7; partition 2s 1s; 5s: limit 100000 delay 50ms seed 7";
        let p = phases(&record(both, both), 7 * S).unwrap();
        assert_eq!(
            spans(&p),
            [
                (20, 30, Shade::Dark, "dark"),
                (50, 70, Shade::Light, "delay 50ms")
            ]
        );
    }

    /// Profiles as `run` records them: with its queue limit.
    #[test]
    fn one_way_outages_say_which_way_and_directions_differing_say_both() {
        let p = phases(
            &record(
                "0s: limit 100000 delay 5ms",
                "0s: limit 100000 delay 5ms; partition 1s 1s; 3s: limit 100000 delay 20ms; 4s: limit 100000 delay 5ms",
            ),
            6 * S,
        )
        .unwrap();
        assert_eq!(
            spans(&p),
            [
                (10, 20, Shade::Dark, "responses dark"),
                (30, 40, Shade::Light, "delay 5ms / back: delay 20ms")
            ]
        );
    }

    #[test]
    fn a_flap_is_dark_every_other_period_and_phases_end_with_the_window() {
        let p = phases(&record("0s: none; flap 1s", "0s: none"), 4500 * S / 1000).unwrap();
        assert_eq!(
            spans(&p),
            [
                (10, 20, Shade::Dark, "requests dark"),
                (30, 40, Shade::Dark, "requests dark")
            ]
        );
        let p = phases(&record("0s: none; flap 1s", "0s: none; flap 1s"), 3500 * S / 1000).unwrap();
        assert_eq!(
            spans(&p),
            [(10, 20, Shade::Dark, "dark"), (30, 35, Shade::Dark, "dark")]
        );
    }

    #[test]
    fn a_constant_schedule_has_no_phases_and_a_broken_one_none_at_all() {
        assert_eq!(
            phases(&record("0s: delay 5ms", "0s: delay 5ms"), 5 * S),
            Some(Vec::new())
        );
        assert_eq!(phases(&record("0s: delay", "0s: delay 5ms"), 5 * S), None);
    }
}
