//! User lanes: the users of a run spread over N single-threaded runtimes, one OS thread each
//! (thread per core), instead of one work-stealing runtime.
//!
//! Why: a user is a handful of sockets and timers that never need another thread. On tokio's
//! work-stealing runtime, every wake-up of a task while another worker is parked unparks that
//! worker to steal it (a futex wake and a context switch each time); in a connect burst that
//! cost a quarter of the harness's CPU (`benches/connect-rate.sh`: 0.20 CPU s per 1,000 connects
//! with two workers, 0.15 with one). A lane keeps each user, its sockets, its timers and the
//! tasks it spawns on one thread, so a wake-up stays on that thread, and N lanes still use N
//! cores. The main runtime keeps the control tasks (timeline, collector, probe) and the
//! embedded mock.
//!
//! Users go to lanes round-robin by index; nothing balances them later, which is fine for users
//! that all do the same thing. Each lane runs its own scheduler-lag probe
//! ([`super::lag::probe`]): the run's lag is the worst lane's, since a late lane makes its users'
//! timestamps late.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle as TaskHandle;
use tokio_util::task::TaskTracker;

/// How many lanes a run's users get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanePlan {
    /// No lanes: users run on the caller's runtime (tests with paused time, library callers
    /// that bring their own runtime).
    Caller,
    /// One per core, or half the cores when the run starts its own mock on this machine (the
    /// mock takes the other half).
    Auto,
    /// Exactly this many (`--threads`).
    Threads(usize),
}

impl LanePlan {
    /// The number of lanes to start, if any; `embedded_mock`: the run serves its own mock here.
    pub fn count(self, embedded_mock: bool) -> Option<usize> {
        match self {
            LanePlan::Caller => None,
            LanePlan::Threads(n) => Some(n.max(1)),
            LanePlan::Auto if embedded_mock => Some(half_the_cores()),
            LanePlan::Auto => Some(crate::sys::cores()),
        }
    }
}

/// Half the cores, at least one: the share of each side when the harness and its own mock run
/// on one machine.
pub fn half_the_cores() -> usize {
    (crate::sys::cores() / 2).max(1)
}

/// One lane: its thread, the handle to spawn onto it, and the sender that ends it.
struct Lane {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The lanes of a run. Dropping them stops every lane: tasks still on a lane are dropped with it.
pub struct Lanes {
    lanes: Vec<Lane>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").field("count", &self.lanes.len()).finish()
    }
}

impl Lanes {
    /// Starts `n` lanes (at least one), threads named `chatstorm-lane-I`.
    ///
    /// # Errors
    /// When a thread or its runtime cannot be created (out of threads or memory).
    pub fn start(n: usize) -> std::io::Result<Lanes> {
        let mut lanes = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("chatstorm-lane-{i}"))
                .spawn(move || {
                    // A current-thread runtime runs its spawned tasks only inside `block_on`.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    // Users still holding sockets: do not wait for them (as main does).
                    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
                })?;
            lanes.push(Lane {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Lanes { lanes })
    }

    /// How many lanes there are.
    pub fn count(&self) -> usize {
        self.lanes.len()
    }

    /// The lane of user `index`.
    pub fn of(&self, index: u32) -> &Handle {
        &self.lanes[index as usize % self.lanes.len()].handle
    }

    /// Spawns `task` on every lane, one copy each (made by `make`), and returns their handles.
    pub fn on_each<F, T>(&self, mut make: impl FnMut() -> F) -> Vec<TaskHandle<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.lanes.iter().map(|l| l.handle.spawn(make())).collect()
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            if let Some(stop) = lane.stop.take() {
                let _ = stop.send(());
            }
        }
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Where a user's task goes: onto its lane when there are lanes, else onto the calling runtime
/// (tests and library callers that bring their own runtime, e.g. with paused time).
pub fn spawn_user<F>(tracker: &TaskTracker, lanes: Option<&Lanes>, index: u32, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match lanes {
        Some(l) => {
            tracker.spawn_on(task, l.of(index));
        }
        None => {
            tracker.spawn(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_go_round_robin_and_lanes_stop_on_drop() {
        let lanes = Lanes::start(2).unwrap();
        let names = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let tracker = TaskTracker::new();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                for i in 0..4u32 {
                    let tx = tx.clone();
                    spawn_user(&tracker, Some(&lanes), i, async move {
                        let name = std::thread::current().name().unwrap_or("").to_owned();
                        let _ = tx.send((i, name));
                    });
                }
                tracker.close();
                tracker.wait().await;
                drop(tx);
                let mut names = Vec::new();
                while let Some(n) = rx.recv().await {
                    names.push(n);
                }
                names.sort();
                names
            });
        let lane: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            lane,
            [
                "chatstorm-lane-0",
                "chatstorm-lane-1",
                "chatstorm-lane-0",
                "chatstorm-lane-1"
            ]
        );
        drop(lanes);
    }
}
