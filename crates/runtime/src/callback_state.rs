//! The one judgement of a callback's `state` (RFC 6749 §10.12): issued to the session the
//! callback arrives in, and not older than [`STATE_TTL`]. The connector's own pending
//! authorizations (the CLI, a library's single process) and the server's stored ones are
//! both judged here; each keeps its states where it likes.

use crate::errors::StateError;
use std::time::Duration;

/// How long an authorization may wait for its callback.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// Judges a state that was issued (the caller found it) to `issued_to`, expiring at
/// `expires_at_ms`, against the session the callback came in (`None`: no session) at
/// `now_ms`. [`StateError::WrongSession`] means: leave the state in place (refusing a stranger
/// must not cancel the rightful user's authorization); any other answer consumes it.
pub fn check_state(issued_to: &str, expires_at_ms: u64, session: Option<&str>, now_ms: u64) -> Result<(), StateError> {
    if session != Some(issued_to) {
        return Err(StateError::WrongSession);
    }
    if now_ms >= expires_at_ms {
        return Err(StateError::Expired);
    }
    Ok(())
}

/// When a state issued at `issued_at_ms` expires.
pub fn state_expiry(issued_at_ms: u64) -> u64 {
    issued_at_ms.saturating_add(STATE_TTL.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_good_for_its_session_until_it_expires() {
        let expires = state_expiry(1_000);
        assert_eq!(check_state("s1", expires, Some("s1"), 1_000), Ok(()));
        assert_eq!(check_state("s1", expires, Some("s2"), 1_000), Err(StateError::WrongSession));
        assert_eq!(check_state("s1", expires, None, 1_000), Err(StateError::WrongSession));
        assert_eq!(check_state("s1", expires, Some("s1"), expires), Err(StateError::Expired));
        assert_eq!(check_state("s1", expires, Some("s1"), expires - 1), Ok(()));
    }
}
