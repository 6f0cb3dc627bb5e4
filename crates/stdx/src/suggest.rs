//! Did-you-mean suggestions.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // The edit distance costs the product of the lengths: a typo of a real name is short, and
    // a megabyte-long unknown key must not cost seconds per candidate.
    const LONGEST_TYPO: usize = 128;
    let length = word.chars().count();
    if length > LONGEST_TYPO {
        return None;
    }
    candidates
        .into_iter()
        .filter_map(|c| {
            let other = c.chars().count();
            let allowed = (length.max(other) / 3).max(1);
            // The distance is at least the difference in length: skip what cannot be close.
            if other > LONGEST_TYPO || length.abs_diff(other) > allowed {
                return None;
            }
            let distance = strsim::damerau_levenshtein(word, c);
            (distance <= allowed).then_some((distance, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(closest("scoeps", ["name", "scopes", "path"]), Some("scopes"));
        assert_eq!(closest("zzzzzz", ["name", "scopes"]), None);
    }
}
