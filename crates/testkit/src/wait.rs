//! The one way tests wait: for a condition, polled at a short interval, up to a limit past
//! which the test fails naming what it waited for. A slow machine only makes a test slower;
//! nothing is ever concluded from how long something took.
//!
//! ```no_run
//! # async fn demo(provider: &keyway_testkit::TestProvider) {
//! use std::time::Duration;
//! keyway_testkit::wait_until("the first token request", Duration::from_secs(30), || async {
//!     provider.counts().token > 0
//! })
//! .await;
//! # }
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is evaluated again.
const INTERVAL: Duration = Duration::from_millis(20);

/// What a condition answers: `true` or `Some(value)` when it holds.
pub trait Satisfied {
    /// What the wait returns once the condition holds.
    type Value;
    /// `Some` when the condition holds.
    fn satisfied(self) -> Option<Self::Value>;
}

impl Satisfied for bool {
    type Value = ();
    fn satisfied(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Satisfied for Option<T> {
    type Value = T;
    fn satisfied(self) -> Option<T> {
        self
    }
}

/// Evaluates `condition` until it holds and returns what it gave; panics with `what` once
/// `limit` has passed without it holding (a single evaluation that outlasts the limit fails
/// too, so the wait is bounded even when the condition itself hangs).
///
/// # Panics
/// When `limit` passes before the condition holds.
pub async fn wait_until<F, Fut, R>(what: &str, limit: Duration, mut condition: F) -> R::Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
    R: Satisfied,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, condition()).await {
            Ok(answer) => {
                if let Some(value) = answer.satisfied() {
                    return value;
                }
            }
            Err(_) => gave_up(what, limit),
        }
        if tokio::time::Instant::now() >= deadline {
            gave_up(what, limit);
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// [`wait_until`] for code off the async runtime: the thread sleeps between evaluations.
///
/// # Panics
/// When `limit` passes before the condition holds.
pub fn wait_until_blocking<F, R>(what: &str, limit: Duration, mut condition: F) -> R::Value
where
    F: FnMut() -> R,
    R: Satisfied,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition().satisfied() {
            return value;
        }
        if Instant::now() >= deadline {
            gave_up(what, limit);
        }
        std::thread::sleep(INTERVAL);
    }
}

fn gave_up(what: &str, limit: Duration) -> ! {
    panic!("waited {limit:?} for {what}, in vain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_what_the_condition_gave_once_it_holds() {
        let mut asked = 0;
        let value = wait_until("the third evaluation", Duration::from_secs(30), || {
            asked += 1;
            let now = asked;
            async move { (now == 3).then_some(now * 10) }
        })
        .await;
        assert_eq!(value, 30);
    }

    #[tokio::test]
    #[should_panic(expected = "waited 50ms for something that never happens, in vain")]
    async fn fails_naming_what_it_waited_for() {
        wait_until("something that never happens", Duration::from_millis(50), || async { false }).await;
    }

    #[tokio::test]
    #[should_panic(expected = "for an answer that never comes, in vain")]
    async fn a_condition_that_hangs_fails_too() {
        wait_until("an answer that never comes", Duration::from_millis(50), std::future::pending::<bool>).await;
    }

    #[test]
    fn the_blocking_variant_waits_the_same_way() {
        let mut asked = 0;
        wait_until_blocking("the second evaluation", Duration::from_secs(30), || {
            asked += 1;
            asked == 2
        });
        assert_eq!(asked, 2);
        let gave_up = std::panic::catch_unwind(|| {
            wait_until_blocking("nothing", Duration::from_millis(50), || None::<()>);
        });
        assert!(gave_up.is_err());
    }
}
