//! One plugin budget per operation (`[pipeline] budget-ms`): every plugin call of one
//! operation — a `run` is its name policy, placement and every hook — draws on it. A call gets
//! the smaller of its plugin's `timeout-ms` and what is left; once it is gone, the plugins
//! still to be asked fail at once (their `on-error` decides what that means).
//!
//! The budget travels with the operation's task (`tokio::task_local!`), so operations running
//! side by side in one process (the CRI server) each have their own, and nothing in between
//! has to carry it. Only time spent in plugin calls counts: a backend's work does not.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

tokio::task_local! {
    static BUDGET: Budget;
}

/// The plugin time one operation may still spend.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: Duration,
    used_us: AtomicU64,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                total,
                used_us: AtomicU64::new(0),
            }),
        }
    }

    pub fn total(&self) -> Duration {
        self.inner.total
    }

    /// What is left of it.
    pub fn left(&self) -> Duration {
        let used = Duration::from_micros(self.inner.used_us.load(Ordering::Relaxed));
        self.inner.total.saturating_sub(used)
    }

    /// Takes `spent` off it.
    pub fn spend(&self, spent: Duration) {
        let us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.inner.used_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Runs `operation` with a budget of `total` for its plugin calls, unless it is part of an
/// operation that already has one (a `run`'s create and start share the run's).
pub async fn within<F: Future>(total: Duration, operation: F) -> F::Output {
    if current().is_some() {
        operation.await
    } else {
        BUDGET.scope(Budget::new(total), operation).await
    }
}

/// The budget of the operation this task runs, if it has one.
pub fn current() -> Option<Budget> {
    BUDGET.try_with(Budget::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_shares_one_budget_with_the_operations_inside_it() {
        assert!(current().is_none());
        within(Duration::from_millis(100), async {
            current().unwrap().spend(Duration::from_millis(30));
            within(Duration::from_secs(10), async {
                let inner = current().unwrap();
                assert_eq!(inner.total(), Duration::from_millis(100), "the outer one");
                inner.spend(Duration::from_millis(80));
            })
            .await;
            assert_eq!(
                current().unwrap().left(),
                Duration::ZERO,
                "never below zero"
            );
        })
        .await;
        // Side by side, each its own.
        let (a, b) = tokio::join!(
            within(Duration::from_millis(50), async {
                current().unwrap().spend(Duration::from_millis(20));
                tokio::task::yield_now().await;
                current().unwrap().left()
            }),
            within(Duration::from_millis(50), async {
                tokio::task::yield_now().await;
                current().unwrap().left()
            }),
        );
        assert_eq!(
            (a, b),
            (Duration::from_millis(30), Duration::from_millis(50))
        );
    }
}
