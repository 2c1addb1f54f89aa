//! The load plan turned into a schedule: the intended start time of every user index (and, in
//! the open model, its stop time), computed once from the stages alone, so the schedule is the
//! same whatever the number of shards or workers that run it.
//!
//! Stages run one after another:
//! - `ramp {to, over}` (closed model): the number of started users grows linearly from its
//!   current value to `to` over `over`; a ramp down stops the most recently started users.
//! - `hold {for}`: nothing starts or stops.
//! - `arrival {rate, for, max, session}` (open model): users arrive at `rate` per second at
//!   their intended times, whether or not earlier users are done; each leaves after `session`
//!   when one is set.

use std::time::Duration;

/// One normalized load stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Grow (or shrink) the number of started users linearly to `to` over `over`.
    Ramp {
        /// Target number of users.
        to: u32,
        /// Ramp length.
        over: Duration,
    },
    /// Keep the current users for a while.
    Hold {
        /// Hold length.
        duration: Duration,
    },
    /// Open model: new users at a fixed rate.
    Arrival {
        /// New users per second.
        rate: f64,
        /// Stage length.
        duration: Duration,
        /// At most this many arrivals in the stage.
        max: Option<u32>,
        /// Each arrival stops after this long; `None`: it stays until the run ends.
        session: Option<Duration>,
    },
}

/// When one user starts and (optionally) stops, as offsets from the run start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Intended start.
    pub start: Duration,
    /// Intended stop, when the plan stops it before the end of the run.
    pub stop: Option<Duration>,
}

/// The schedule of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// One slot per user index, in start order.
    pub slots: Vec<Slot>,
    /// The plan's total length.
    pub total: Duration,
}

impl Schedule {
    /// Builds the schedule for at most `max_users` users.
    pub fn build(stages: &[Stage], max_users: u32) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        // Indices of started users not yet stopped, in start order (ramp-downs pop from the end).
        let mut active: Vec<usize> = Vec::new();
        let mut t = Duration::ZERO;
        for stage in stages {
            match *stage {
                Stage::Ramp { to, over } => {
                    let to = to.min(max_users) as usize;
                    let from = active.len();
                    if to > from {
                        let n = (to - from) as u32;
                        for k in 0..n {
                            // Evenly spaced, the first one at the stage start (k/n of the way).
                            let start = t + over.mul_f64(f64::from(k) / f64::from(n));
                            if slots.len() >= max_users as usize {
                                break;
                            }
                            active.push(slots.len());
                            slots.push(Slot { start, stop: None });
                        }
                    } else {
                        let n = (from - to) as u32;
                        for k in 0..n {
                            let at = t + over.mul_f64(f64::from(k + 1) / f64::from(n));
                            if let Some(i) = active.pop() {
                                slots[i].stop = Some(at);
                            }
                        }
                    }
                    t += over;
                }
                Stage::Hold { duration } => t += duration,
                Stage::Arrival {
                    rate,
                    duration,
                    max,
                    session,
                } => {
                    let by_rate = (rate * duration.as_secs_f64()).floor().max(0.0) as u64;
                    let n = max.map_or(by_rate, |m| by_rate.min(u64::from(m)));
                    for k in 0..n {
                        if slots.len() >= max_users as usize || rate <= 0.0 {
                            break;
                        }
                        let start = t + Duration::from_secs_f64(k as f64 / rate);
                        let stop = session.map(|s| start + s);
                        if stop.is_none() {
                            active.push(slots.len());
                        }
                        slots.push(Slot { start, stop });
                    }
                    t += duration;
                }
            }
        }
        Self { slots, total: t }
    }

    /// The user indices one shard runs: every index `i` with `i % shards == shard`.
    pub fn shard_indices(&self, shard: u32, shards: u32) -> impl Iterator<Item = u32> + '_ {
        let shards = shards.max(1);
        (0..self.slots.len() as u32).filter(move |i| i % shards == shard)
    }

    /// How many users the plan has started (and not stopped) at offset `t`.
    pub fn active_at(&self, t: Duration) -> usize {
        self.slots
            .iter()
            .filter(|s| s.start <= t && s.stop.is_none_or(|e| e > t))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn ramp_then_hold() {
        let s = Schedule::build(
            &[Stage::Ramp { to: 4, over: S(4) }, Stage::Hold { duration: S(10) }],
            100,
        );
        let starts: Vec<_> = s.slots.iter().map(|x| x.start).collect();
        assert_eq!(starts, [S(0), S(1), S(2), S(3)]);
        assert_eq!(s.total, S(14));
        assert_eq!(s.active_at(S(5)), 4);
    }

    #[test]
    fn ramp_down_stops_newest_first() {
        let s = Schedule::build(
            &[Stage::Ramp { to: 4, over: S(4) }, Stage::Ramp { to: 2, over: S(2) }],
            100,
        );
        assert_eq!(s.slots[3].stop, Some(S(5)));
        assert_eq!(s.slots[2].stop, Some(S(6)));
        assert_eq!(s.slots[1].stop, None);
        assert_eq!(s.active_at(S(7)), 2);
    }

    #[test]
    fn arrivals_are_open_and_capped() {
        let s = Schedule::build(
            &[Stage::Arrival {
                rate: 2.0,
                duration: S(5),
                max: Some(7),
                session: Some(S(3)),
            }],
            100,
        );
        assert_eq!(s.slots.len(), 7);
        assert_eq!(s.slots[1].start, Duration::from_millis(500));
        assert_eq!(s.slots[1].stop, Some(Duration::from_millis(3500)));
        let capped = Schedule::build(&[Stage::Ramp { to: 50, over: S(1) }], 10);
        assert_eq!(capped.slots.len(), 10);
    }

    #[test]
    fn shards_partition_the_users() {
        let s = Schedule::build(&[Stage::Ramp { to: 10, over: S(1) }], 10);
        let mut all: Vec<u32> = (0..3).flat_map(|k| s.shard_indices(k, 3).collect::<Vec<_>>()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
