//! Which SDK profile a measurement belongs to: every user task is polled inside [`profiled`],
//! which tags the polling thread with the user's profile for the length of each poll, and the
//! [`Recorder`](super::Recorder) (and the conformance observer) read that tag to file what they
//! count under the profile as well as in the run's totals.
//!
//! Why a thread tag and not a field in the user's context: the context is one `Arc` shared by
//! every user of a process, and the tag costs one thread-local read on the hot path (next to the
//! shard slot the recorder already reads), no per-user memory and no change to how users
//! record. Anything recorded outside a user's poll (the scheduler-lag probe, delivery accounting
//! at the end, tasks a user spawns) carries slot 0: measured in the totals, belonging to no
//! profile.

use std::cell::Cell;
use std::future::Future;

use chatstorm_protocol::Profile;

/// Number of tag slots: 0 (no profile) and one per [`Profile`].
pub const PROFILE_SLOTS: usize = 1 + Profile::ALL.len();

thread_local! {
    static CURRENT: Cell<u8> = const { Cell::new(0) };
}

/// The tag slot of a profile, `1..PROFILE_SLOTS`.
pub const fn slot_of(profile: Profile) -> usize {
    match profile {
        Profile::Js => 1,
        Profile::Android => 2,
        Profile::Swift => 3,
        Profile::Flutter => 4,
        Profile::Unity => 5,
    }
}

/// The profile of a tag slot; `None` for slot 0 (and anything out of range).
pub fn profile_of_slot(slot: usize) -> Option<Profile> {
    slot.checked_sub(1).and_then(|i| Profile::ALL.get(i).copied())
}

/// The tag of the calling thread: the profile of the user task being polled, 0 if none.
#[inline]
pub fn current_slot() -> usize {
    usize::from(CURRENT.with(Cell::get))
}

/// Restores the previous tag when a poll ends, also when it unwinds.
struct Restore(u8);

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.0;
        CURRENT.with(|c| c.set(prev));
    }
}

/// Runs `f` with every one of its polls tagged as `profile`'s (see the module header).
///
/// A plain struct rather than an `async fn`: an `async fn` keeps its argument beside the pinned
/// copy it polls, which would double the size of every user's task.
pub fn profiled<F: Future>(profile: Profile, f: F) -> Profiled<F> {
    Profiled {
        slot: slot_of(profile) as u8,
        inner: f,
    }
}

/// The future [`profiled`] returns.
#[derive(Debug)]
pub struct Profiled<F> {
    slot: u8,
    inner: F,
}

impl<F: Future> Future for Profiled<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is only ever reached through this pinned
        // reference, never moved out or swapped, and `Profiled` implements neither `Drop` nor
        // `Unpin` by hand (it is `Unpin` only when `F` is).
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { std::pin::Pin::new_unchecked(&mut this.inner) };
        let _restore = Restore(CURRENT.with(|c| c.replace(this.slot)));
        inner.poll(cx)
    }
}

/// Runs `f` synchronously tagged as `profile`'s (for tests and benchmarks of the tagged path).
pub fn with_profile<T>(profile: Profile, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(CURRENT.with(|c| c.replace(slot_of(profile) as u8)));
    f()
}

/// The name of each profile's connected-users gauge column in the timeline (written only when
/// a run mixes several profiles), by slot.
pub(crate) const CONNECTED_COLUMN: [&str; PROFILE_SLOTS] = [
    "connected",
    "connected.js",
    "connected.android",
    "connected.swift",
    "connected.flutter",
    "connected.unity",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_columns_match_names() {
        for p in Profile::ALL {
            assert_eq!(profile_of_slot(slot_of(p)), Some(p));
            assert_eq!(CONNECTED_COLUMN[slot_of(p)], format!("connected.{}", p.name()));
        }
        assert_eq!(profile_of_slot(0), None);
        assert_eq!(profile_of_slot(PROFILE_SLOTS), None);
    }

    #[tokio::test]
    async fn the_tag_holds_only_during_the_polls_of_the_wrapped_future() {
        assert_eq!(current_slot(), 0);
        let inner = async {
            let before = current_slot();
            tokio::task::yield_now().await;
            (before, current_slot())
        };
        let (before, after) = profiled(Profile::Swift, inner).await;
        let big = async {
            let buf = [0u8; 2048];
            tokio::task::yield_now().await;
            buf.len()
        };
        let bare = std::mem::size_of_val(&big);
        let wrapped = profiled(Profile::Js, big);
        assert!(
            std::mem::size_of_val(&wrapped) <= bare + 8,
            "the tag costs a byte per user task, not a second copy of it"
        );
        assert_eq!(wrapped.await, 2048);
        assert_eq!((before, after), (slot_of(Profile::Swift), slot_of(Profile::Swift)));
        assert_eq!(current_slot(), 0, "restored after the last poll");
        let nested = with_profile(Profile::Unity, || {
            with_profile(Profile::Js, current_slot) * 10 + current_slot()
        });
        assert_eq!(nested, slot_of(Profile::Js) * 10 + slot_of(Profile::Unity));
        assert_eq!(current_slot(), 0);
    }
}
