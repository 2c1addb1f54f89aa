//! The run's per-second curves: gauges (connected users, ...), counter deltas (connects/s, ...)
//! and error/close codes per second, stored in columns so that a long run stays compact in
//! `summary.json`, and merged across shards by aligning seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CodeCounts;

/// How many times one code was seen in one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePoint {
    /// End of the interval, milliseconds since the run's start.
    pub t_ms: u64,
    /// The code; `None` for codes counted as "other" (past the table's capacity).
    pub code: Option<u32>,
    /// Occurrences in the interval.
    pub count: u64,
}

/// Per-second curves. Column `i` of every vector belongs to `t_ms[i]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// End of each interval, milliseconds since the run's start (about one per second).
    pub t_ms: Vec<u64>,
    /// Gauge levels at `t_ms`, by gauge name (`connected`, `longpolling`, `users`).
    pub gauges: BTreeMap<String, Vec<i64>>,
    /// Counter increments during the interval ending at `t_ms`, by counter name.
    pub counters: BTreeMap<String, Vec<u64>>,
    /// Error codes seen per interval (sparse: only non-zero counts).
    pub error_codes: Vec<CodePoint>,
    /// Close codes seen per interval (sparse).
    pub close_codes: Vec<CodePoint>,
}

/// One side's columns, keyed by whole second.
struct Slots {
    gauges: BTreeMap<u64, BTreeMap<String, i64>>,
    counters: BTreeMap<u64, BTreeMap<String, u64>>,
}

impl Timeline {
    /// Appends one interval's figures.
    pub(crate) fn push(
        &mut self,
        t_ms: u64,
        gauges: impl IntoIterator<Item = (&'static str, i64)>,
        counters: impl IntoIterator<Item = (&'static str, u64)>,
        errors: &CodeCounts,
        closes: &CodeCounts,
    ) {
        let row = self.t_ms.len();
        self.t_ms.push(t_ms);
        for (name, v) in gauges {
            let col = self.gauges.entry(name.to_owned()).or_default();
            col.resize(row, 0);
            col.push(v);
        }
        for (name, v) in counters {
            let col = self.counters.entry(name.to_owned()).or_default();
            col.resize(row, 0);
            col.push(v);
        }
        push_codes(&mut self.error_codes, t_ms, errors);
        push_codes(&mut self.close_codes, t_ms, closes);
    }

    fn slots(&self, shift_ms: u64) -> Slots {
        let mut slots = Slots {
            gauges: BTreeMap::new(),
            counters: BTreeMap::new(),
        };
        for (i, t) in self.t_ms.iter().enumerate() {
            let slot = second_of(t + shift_ms);
            let g = slots.gauges.entry(slot).or_default();
            for (name, col) in &self.gauges {
                // two ticks in one second: the later level stands
                g.insert(name.clone(), col.get(i).copied().unwrap_or(0));
            }
            let c = slots.counters.entry(slot).or_default();
            for (name, col) in &self.counters {
                *c.entry(name.clone()).or_insert(0) += col.get(i).copied().unwrap_or(0);
            }
        }
        slots
    }

    /// Two timelines on one time axis: `a` shifted by `a_shift_ms`, `b` by `b_shift_ms`, both
    /// re-sampled to whole seconds. Counters add; gauges add, each side holding its last level
    /// between its own samples (and counting zero outside its own time span).
    pub fn merge(a: &Timeline, a_shift_ms: u64, b: &Timeline, b_shift_ms: u64) -> Timeline {
        let sides = [a.slots(a_shift_ms), b.slots(b_shift_ms)];
        let seconds: std::collections::BTreeSet<u64> = sides.iter().flat_map(|s| s.gauges.keys().copied()).collect();
        let gauge_names: std::collections::BTreeSet<String> = a.gauges.keys().chain(b.gauges.keys()).cloned().collect();
        let counter_names: std::collections::BTreeSet<String> =
            a.counters.keys().chain(b.counters.keys()).cloned().collect();

        let mut out = Timeline::default();
        for &second in &seconds {
            out.t_ms.push(second * 1_000);
            for name in &gauge_names {
                let level: i64 = sides.iter().map(|s| level_at(s, second, name)).sum();
                out.gauges.entry(name.clone()).or_default().push(level);
            }
            for name in &counter_names {
                let n: u64 = sides
                    .iter()
                    .filter_map(|s| s.counters.get(&second).and_then(|c| c.get(name)))
                    .sum();
                out.counters.entry(name.clone()).or_default().push(n);
            }
        }
        out.error_codes = merge_codes(&a.error_codes, a_shift_ms, &b.error_codes, b_shift_ms);
        out.close_codes = merge_codes(&a.close_codes, a_shift_ms, &b.close_codes, b_shift_ms);
        out
    }
}

fn second_of(t_ms: u64) -> u64 {
    (t_ms + 500) / 1_000
}

/// A side's gauge level at `second`: its latest sample at or before it, within its own span.
fn level_at(side: &Slots, second: u64, name: &str) -> i64 {
    let last = side.gauges.keys().next_back().copied();
    if last.is_none_or(|last| second > last) {
        return 0;
    }
    side.gauges
        .range(..=second)
        .next_back()
        .and_then(|(_, g)| g.get(name).copied())
        .unwrap_or(0)
}

fn push_codes(out: &mut Vec<CodePoint>, t_ms: u64, counts: &CodeCounts) {
    for (code, count) in &counts.by_code {
        out.push(CodePoint {
            t_ms,
            code: Some(*code),
            count: *count,
        });
    }
    if counts.other > 0 {
        out.push(CodePoint {
            t_ms,
            code: None,
            count: counts.other,
        });
    }
}

fn merge_codes(a: &[CodePoint], a_shift: u64, b: &[CodePoint], b_shift: u64) -> Vec<CodePoint> {
    let mut by_key: BTreeMap<(u64, Option<u32>), u64> = BTreeMap::new();
    let shifted = a.iter().map(|p| (p, a_shift)).chain(b.iter().map(|p| (p, b_shift)));
    for (p, shift) in shifted {
        *by_key.entry((second_of(p.t_ms + shift), p.code)).or_insert(0) += p.count;
    }
    by_key
        .into_iter()
        .map(|((second, code), count)| CodePoint {
            t_ms: second * 1_000,
            code,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: &[(u64, i64, u64)], error: Option<(u64, u32)>) -> Timeline {
        let mut t = Timeline::default();
        for &(t_ms, connected, connects) in points {
            let mut errors = CodeCounts::default();
            if let Some((at, code)) = error
                && at == t_ms
            {
                errors.by_code.insert(code, 1);
            }
            t.push(
                t_ms,
                [("connected", connected)],
                [("connects", connects)],
                &errors,
                &CodeCounts::default(),
            );
        }
        t
    }

    #[test]
    fn merge_aligns_seconds_sums_counters_and_holds_gauges() {
        // a: starts at 0; b: started 2 s later, ticks drift by a few ms.
        let a = line(
            &[(1_000, 10, 10), (2_000, 20, 10), (3_000, 20, 0), (4_000, 5, 0)],
            Some((2_000, 40)),
        );
        let b = line(&[(1_004, 7, 7), (2_003, 9, 2)], Some((1_004, 40)));
        let m = Timeline::merge(&a, 0, &b, 2_000);
        assert_eq!(m.t_ms, vec![1_000, 2_000, 3_000, 4_000]);
        assert_eq!(m.gauges["connected"], vec![10, 20, 27, 14]);
        assert_eq!(m.counters["connects"], vec![10, 10, 7, 2]);
        assert_eq!(
            m.error_codes,
            vec![
                CodePoint {
                    t_ms: 2_000,
                    code: Some(40),
                    count: 1
                },
                CodePoint {
                    t_ms: 3_000,
                    code: Some(40),
                    count: 1
                }
            ]
        );
    }

    #[test]
    fn a_gap_in_one_side_keeps_its_last_level() {
        // b's tick for second 2 was late and landed in second 3 twice.
        let a = line(&[(1_000, 1, 1), (2_000, 1, 0), (3_000, 1, 0)], None);
        let b = line(&[(1_000, 5, 5), (2_600, 6, 1), (3_100, 7, 1)], None);
        let m = Timeline::merge(&a, 0, &b, 0);
        assert_eq!(m.t_ms, vec![1_000, 2_000, 3_000]);
        assert_eq!(m.gauges["connected"], vec![6, 6, 8]);
        assert_eq!(m.counters["connects"], vec![6, 0, 2]);
    }
}
