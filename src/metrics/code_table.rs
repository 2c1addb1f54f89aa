//! A bounded, lock-free count per code: failures by API error code and by WebSocket close code.
//!
//! Codes come from the target, so the key space is not ours to trust: the table has a fixed
//! number of slots, and codes that find no free slot are counted together as "other" rather than
//! growing memory or being dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Distinct codes tracked exactly; the protocol uses a few dozen error codes and close codes.
const SLOTS: usize = 64;
const EMPTY: u32 = 0;

/// Counts per code, for at most 64 distinct codes plus an overflow count.
pub(crate) struct CodeTable {
    /// `code + 1`, so that code 0 is a valid key and 0 marks a free slot.
    keys: [AtomicU32; SLOTS],
    counts: [AtomicU64; SLOTS],
    other: AtomicU64,
}

/// What a [`CodeTable`] held at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodeCounts {
    /// Count per code.
    pub by_code: BTreeMap<u32, u64>,
    /// Codes that arrived after the table's 64 slots were taken.
    pub other: u64,
}

impl CodeCounts {
    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.by_code.values().sum::<u64>() + self.other
    }

    /// `self - earlier`, per code (for per-interval figures); saturates at zero.
    pub fn since(&self, earlier: &CodeCounts) -> CodeCounts {
        let by_code = self
            .by_code
            .iter()
            .filter_map(|(code, n)| {
                let d = n.saturating_sub(earlier.by_code.get(code).copied().unwrap_or(0));
                (d > 0).then_some((*code, d))
            })
            .collect();
        CodeCounts {
            by_code,
            other: self.other.saturating_sub(earlier.other),
        }
    }

    /// Adds another set of counts into this one.
    pub fn merge(&mut self, other: &CodeCounts) {
        for (code, n) in &other.by_code {
            *self.by_code.entry(*code).or_insert(0) += n;
        }
        self.other += other.other;
    }
}

impl CodeTable {
    pub(crate) fn new() -> CodeTable {
        CodeTable {
            keys: std::array::from_fn(|_| AtomicU32::new(EMPTY)),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            other: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence of `code`.
    pub(crate) fn add(&self, code: u32) {
        let Some(key) = code.checked_add(1) else {
            self.other.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let start = (key.wrapping_mul(0x9E37_79B9) >> 26) as usize % SLOTS;
        for probe in 0..SLOTS {
            let slot = (start + probe) % SLOTS;
            let found = match self.keys[slot].load(Ordering::Acquire) {
                EMPTY => match self.keys[slot].compare_exchange(EMPTY, key, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => true,
                    Err(current) => current == key,
                },
                current => current == key,
            };
            if found {
                self.counts[slot].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.other.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts at this moment.
    pub(crate) fn read(&self) -> CodeCounts {
        let mut by_code = BTreeMap::new();
        for (key, count) in self.keys.iter().zip(&self.counts) {
            let key = key.load(Ordering::Acquire);
            let n = count.load(Ordering::Relaxed);
            if key != EMPTY && n > 0 {
                by_code.insert(key - 1, n);
            }
        }
        CodeCounts {
            by_code,
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_code_and_overflows_into_other() {
        let t = CodeTable::new();
        for code in [0, 40, 40, 1000, 1011, u32::MAX] {
            t.add(code);
        }
        let r = t.read();
        assert_eq!(r.by_code.get(&0), Some(&1));
        assert_eq!(r.by_code.get(&40), Some(&2));
        assert_eq!(r.by_code.get(&1000), Some(&1));
        assert_eq!(r.by_code.get(&1011), Some(&1));
        assert_eq!(r.other, 1, "u32::MAX has no key");

        let t = CodeTable::new();
        for code in 0..(SLOTS as u32 + 10) {
            t.add(code);
        }
        let r = t.read();
        assert_eq!(r.by_code.len(), SLOTS);
        assert_eq!(r.other, 10);
        assert_eq!(r.total(), SLOTS as u64 + 10);
    }

    #[test]
    fn since_and_merge() {
        let mut a = CodeCounts::default();
        a.by_code.insert(40, 5);
        a.other = 2;
        let mut b = a.clone();
        b.by_code.insert(40, 7);
        b.by_code.insert(4, 1);
        b.other = 3;
        let d = b.since(&a);
        assert_eq!(d.by_code, BTreeMap::from([(4, 1), (40, 2)]));
        assert_eq!(d.other, 1);
        a.merge(&d);
        assert_eq!(a, b);
    }

    #[test]
    fn concurrent_adds_are_counted() {
        let t = std::sync::Arc::new(CodeTable::new());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        t.add(i % 20);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        let r = t.read();
        assert_eq!(r.by_code.len(), 20);
        assert!(r.by_code.values().all(|&n| n == 2_000));
    }
}
