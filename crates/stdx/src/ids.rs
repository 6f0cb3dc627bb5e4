//! Random identifiers and secrets: the one generator keyway's crates use.

use rand::Rng as _;
use rand::distributions::Alphanumeric;

/// `len` random alphanumeric characters from the thread's CSPRNG (each carries about 5.95
/// bits: 22 characters exceed 128 bits).
pub fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_their_length_and_alphabet_and_differ() {
        let a = super::random_alphanumeric(22);
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, super::random_alphanumeric(22));
    }
}
