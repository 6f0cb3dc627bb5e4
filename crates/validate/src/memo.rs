//! A bounded, thread-safe memo for what the rules compute from a piece of profile text: a
//! compiled pattern, a pattern's URL safety, a parsed template. Profiles repeat these (an
//! alias shares its parent's templates; imported host parameters share one pattern), and
//! computing them is most of what checking a profile costs.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

/// Past this many entries results are computed and not kept, so a service that loads many
/// different profiles over its life does not grow without bound.
const LIMIT: usize = 4096;

/// Results of a pure function of a string, kept for reuse.
#[derive(Debug)]
pub(crate) struct Memo<V> {
    entries: OnceLock<RwLock<HashMap<String, V, foldhash::fast::RandomState>>>,
}

impl<V: Clone> Memo<V> {
    pub(crate) const fn new() -> Self {
        Memo { entries: OnceLock::new() }
    }

    /// Forgets every kept result.
    pub(crate) fn clear(&self) {
        if let Some(entries) = self.entries.get() {
            entries.write().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// The result for `key`: kept, or computed by `compute` (and kept while there is room).
    pub(crate) fn get(&self, key: &str, compute: impl FnOnce() -> V) -> V {
        let entries = self.entries.get_or_init(Default::default);
        if let Some(found) = entries.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return found.clone();
        }
        let value = compute();
        let mut entries = entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() < LIMIT {
            entries.insert(key.to_owned(), value.clone());
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_per_key_and_stops_keeping_at_the_limit() {
        let memo: Memo<usize> = Memo::new();
        let mut calls = 0;
        for _ in 0..3 {
            assert_eq!(
                memo.get("a", || {
                    calls += 1;
                    1
                }),
                1
            );
        }
        assert_eq!(calls, 1);
        for i in 0..LIMIT + 10 {
            memo.get(&i.to_string(), || i);
        }
        let kept = memo.entries.get().map(|e| e.read().map(|m| m.len()).unwrap_or(0));
        assert_eq!(kept, Some(LIMIT));
        // Past the limit a result is still right, only not kept.
        let mut late = 0;
        assert_eq!(
            memo.get("late", || {
                late += 1;
                7
            }),
            7
        );
        assert_eq!(
            memo.get("late", || {
                late += 1;
                7
            }),
            7
        );
        assert_eq!(late, 2);
        // Cleared, it computes again.
        memo.clear();
        let mut again = 0;
        memo.get("a", || {
            again += 1;
            1
        });
        assert_eq!(again, 1);
    }
}
