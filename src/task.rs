//! One task type for every spawned future, for binary size.
//!
//! `LocalExecutor::spawn` is generic: each future type gets its own async-task `RawTask`
//! (run, wake, schedule, drop paths), about 1 KB of x86_64 code per spawn site on top of the
//! future itself. [`spawn`] boxes the future first, so every task in the agent shares the one
//! instantiation for `Pin<Box<dyn Future<Output = ()>>>`; the cost is one allocation per
//! spawn and one indirect call per poll, nothing on a per-sample path. Owns nothing else.

use async_executor::{LocalExecutor, Task};
use std::future::Future;
use std::pin::Pin;

/// A spawned future as every task holds it.
pub type BoxedTask<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Spawns `fut` on `ex` through the shared boxed task type.
pub fn spawn<'a>(ex: &LocalExecutor<'a>, fut: impl Future<Output = ()> + 'a) -> Task<()> {
    spawn_boxed(ex, Box::pin(fut))
}

/// The single instantiation of `LocalExecutor::spawn` (kept out of line on purpose).
#[inline(never)]
fn spawn_boxed<'a>(ex: &LocalExecutor<'a>, fut: BoxedTask<'a>) -> Task<()> {
    ex.spawn(fut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn spawned_future_runs_to_completion_on_the_executor() {
        let ex = LocalExecutor::new();
        let hit = Rc::new(Cell::new(0));
        let h = hit.clone();
        let task = spawn(&ex, async move { h.set(h.get() + 1) });
        futures_lite::future::block_on(ex.run(task));
        assert_eq!(hit.get(), 1);
    }

    #[test]
    fn dropping_the_task_cancels_the_future() {
        let ex = LocalExecutor::new();
        let hit = Rc::new(Cell::new(0));
        let h = hit.clone();
        drop(spawn(&ex, async move { h.set(1) }));
        while ex.try_tick() {}
        assert_eq!(hit.get(), 0);
    }
}
