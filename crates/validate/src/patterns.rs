//! Regular expressions in profiles: compiling them, and proving a parameter pattern safe to
//! put in a URL.

use crate::memo::Memo;
use regex::{Regex, RegexBuilder};
use regex_automata::nfa::thompson::{self, pikevm, pikevm::PikeVM};
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use std::sync::{Arc, Mutex};

/// Compiled patterns are bounded so a hostile profile cannot make one expensive.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a profile's regular expression with keyway's limits (kept by pattern). The kept
/// regex is shared, not cloned: a clone starts with empty match caches, which are costly to fill.
pub fn compile(pattern: &str, case_insensitive: bool) -> Result<Arc<Regex>, String> {
    COMPILED[usize::from(case_insensitive)].get(pattern, || build(pattern, case_insensitive).map(Arc::new))
}

/// A pattern as validation needs it, from one parse: compiled to its NFA within the same
/// limits as [`compile`] (so it compiles exactly when [`compile`] succeeds), with the simplest
/// matcher to test examples against, and its [`url_safety`] verdict. Building the full
/// [`Regex`] (a reverse NFA, literal prefilters, a one-pass DFA) costs about three times as
/// much and pays only when matching often: that is the runtime's job.
pub(crate) struct CheckedPattern {
    /// The matcher, or the error [`compile`] would give.
    pub(crate) compiled: Result<Checked, String>,
    /// Why the pattern is unsafe for a value that lands in a URL ([`url_safety`]).
    pub(crate) url_safety: Option<String>,
}

/// A pattern that compiles, ready to test examples against.
pub(crate) struct Checked {
    vm: PikeVM,
    /// Kept for the next match: making one costs more than most matches of a short example.
    cache: Mutex<pikevm::Cache>,
}

impl Checked {
    /// Whether the pattern matches somewhere in `text`, as [`Regex::is_match`] does.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        match self.cache.try_lock() {
            Ok(mut cache) => self.vm.is_match(&mut cache, text),
            // Another thread is matching with it: no waiting, a cache of its own.
            Err(_) => self.vm.is_match(&mut self.vm.create_cache(), text),
        }
    }
}

/// Checks a profile's regular expression (kept by pattern).
pub(crate) fn check_pattern(pattern: &str, case_insensitive: bool) -> Arc<CheckedPattern> {
    CHECKED[usize::from(case_insensitive)].get(pattern, || Arc::new(check_uncached(pattern, case_insensitive)))
}

// One memo for each case setting.
static COMPILED: [Memo<Result<Arc<Regex>, String>>; 2] = [Memo::new(), Memo::new()];
static CHECKED: [Memo<Arc<CheckedPattern>>; 2] = [Memo::new(), Memo::new()];

/// Forgets every kept pattern and verdict.
pub(crate) fn forget() {
    COMPILED.iter().for_each(Memo::clear);
    CHECKED.iter().for_each(Memo::clear);
}

fn check_uncached(pattern: &str, case_insensitive: bool) -> CheckedPattern {
    // The regex crate's own syntax defaults, as `build` uses them.
    let hir = match regex_syntax::ParserBuilder::new().case_insensitive(case_insensitive).build().parse(pattern) {
        Ok(hir) => hir,
        // Reported as an invalid regex, not as an unsafe one.
        Err(e) => return CheckedPattern { compiled: Err(syntax_message(&e.to_string())), url_safety: None },
    };
    let url_safety = unsafe_for_urls(&hir);
    let compiled = thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)))
        .build_from_hir(&hir)
        .map_err(|e| match e.size_limit() {
            Some(_) => TOO_LARGE.to_owned(),
            None => e.to_string(),
        })
        .and_then(|nfa| PikeVM::new_from_nfa(nfa).map_err(|e| e.to_string()))
        .map(|vm| Checked { cache: Mutex::new(vm.create_cache()), vm });
    CheckedPattern { compiled, url_safety }
}

const TOO_LARGE: &str = "the pattern is too large once compiled";

/// The line of a syntax error that says what is wrong (the others draw the pattern).
fn syntax_message(error: &str) -> String {
    error.lines().last().unwrap_or(error).trim().to_owned()
}

fn build(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => syntax_message(&s),
            regex::Error::CompiledTooBig(_) => TOO_LARGE.to_owned(),
            other => other.to_string(),
        })
}

/// Characters that end or change a URL's host, plus whitespace.
const URL_DELIMITERS: [char; 8] = ['/', '@', ':', '#', '?', '\\', '%', ' '];

/// Why a pattern is unsafe for a value that lands in a URL, or `None` when it is safe: it must
/// be anchored at both ends (no top-level alternation escaping an anchor) and no character it
/// can match may be a URL delimiter, whitespace, a control character or non-ASCII (a
/// look-alike). The check is over the pattern's syntax, so it is exact for what each
/// position can match: a pattern that passes cannot match a value containing such a
/// character.
pub fn url_safety(pattern: &str, case_insensitive: bool) -> Option<String> {
    check_pattern(pattern, case_insensitive).url_safety.clone()
}

fn unsafe_for_urls(hir: &Hir) -> Option<String> {
    if !anchored(hir) {
        return Some("it is not anchored: start it with `^` and end it with `$`, around any alternation".to_owned());
    }
    let mut bad = Vec::new();
    collect_unsafe(hir, &mut bad);
    // Delimiters first: they are what an attacker uses.
    bad.sort_unstable_by_key(|c| (!URL_DELIMITERS.contains(c), !c.is_whitespace(), *c));
    bad.dedup();
    if bad.is_empty() {
        return None;
    }
    let (ascii, other): (Vec<char>, Vec<char>) = bad.iter().partition(|c| c.is_ascii() && !c.is_control());
    let mut shown: Vec<String> = ascii.iter().map(|c| describe(*c)).collect();
    let codes = |chars: Vec<&char>| {
        let mut list: Vec<String> = chars.iter().take(3).map(|c| format!("U+{:04X}", **c as u32)).collect();
        if chars.len() > 3 {
            list.push("...".to_owned());
        }
        list.join(", ")
    };
    let controls: Vec<&char> = other.iter().filter(|c| c.is_control()).collect();
    let unicode: Vec<&char> = other.iter().filter(|c| !c.is_control()).collect();
    if !controls.is_empty() {
        shown.push(format!("control characters ({})", codes(controls)));
    }
    if !unicode.is_empty() {
        shown.push(format!("non-ASCII characters ({}), look-alikes among them", codes(unicode)));
    }
    Some(format!("it can match {}", shown.join(", ")))
}

fn anchored(hir: &Hir) -> bool {
    starts_anchored(hir) && ends_anchored(hir)
}

/// Every match starts at the start of the text.
fn starts_anchored(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(Look::Start) => true,
        HirKind::Capture(c) => starts_anchored(&c.sub),
        HirKind::Concat(parts) => parts.first().is_some_and(starts_anchored),
        HirKind::Alternation(branches) => branches.iter().all(starts_anchored),
        _ => false,
    }
}

/// Every match ends at the end of the text.
fn ends_anchored(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(Look::End) => true,
        HirKind::Capture(c) => ends_anchored(&c.sub),
        HirKind::Concat(parts) => parts.last().is_some_and(ends_anchored),
        HirKind::Alternation(branches) => branches.iter().all(ends_anchored),
        _ => false,
    }
}

/// Adds each unsafe character some position of `hir` can match (one representative for
/// ranges of non-ASCII or control characters).
fn collect_unsafe(hir: &Hir, out: &mut Vec<char>) {
    match hir.kind() {
        HirKind::Literal(lit) => {
            for c in String::from_utf8_lossy(&lit.0).chars() {
                if is_unsafe(c) {
                    out.push(c);
                }
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            for range in class.iter() {
                for c in URL_DELIMITERS.iter().copied().chain(['\t', '\n', '\r']) {
                    if range.start() <= c && c <= range.end() {
                        out.push(c);
                    }
                }
                if range.start() < ' ' {
                    out.push(range.start());
                }
                if range.end() >= '\u{a0}' {
                    // The first printable non-ASCII character of the range stands for it.
                    out.push(range.start().max('\u{a0}'));
                } else if range.end() > '\u{7e}' {
                    out.push(range.start().max('\u{7f}'));
                }
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            for range in class.iter() {
                for b in range.start()..=range.end() {
                    if is_unsafe(char::from(b)) {
                        out.push(char::from(b));
                    }
                }
            }
        }
        HirKind::Repetition(r) => collect_unsafe(&r.sub, out),
        HirKind::Capture(c) => collect_unsafe(&c.sub, out),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => {
            for p in parts {
                collect_unsafe(p, out);
            }
        }
        HirKind::Empty | HirKind::Look(_) => {}
    }
}

fn is_unsafe(c: char) -> bool {
    URL_DELIMITERS.contains(&c) || c.is_whitespace() || c.is_control() || !c.is_ascii()
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation checks patterns without building the full regex; it must accept, refuse and
    /// match exactly as the regex the runtime builds.
    #[test]
    fn checking_agrees_with_compiling() {
        let patterns = [
            r"^[a-z0-9-]+\.my\.salesforce\.com$",
            r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$",
            r"(?i)invalid_grant|expired",
            r"^\d{3,5}$",
            r"^[a-z]+$",
            r"\bword\b",
            "(unclosed",
            "[z-a]",
            r"(?<=look)behind",
            r"\1",
            r"a{1000000}",
            r"\w{300}",
            r"\w{100}",
            "",
        ];
        let texts = ["acme.my.salesforce.com", "ACME", "abc", "Invalid_Grant", "12345", "a word here", "", "x.y-z"];
        for pattern in patterns {
            for case_insensitive in [false, true] {
                let compiled = compile(pattern, case_insensitive);
                let checked = check_pattern(pattern, case_insensitive);
                match (&compiled, &checked.compiled) {
                    (Ok(re), Ok(checked)) => {
                        for text in texts {
                            assert_eq!(re.is_match(text), checked.is_match(text), "{pattern:?} on {text:?}");
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "{pattern:?}"),
                    _ => panic!(
                        "{pattern:?} (case-insensitive: {case_insensitive}): compile {:?}, check {:?}",
                        compiled.is_ok(),
                        checked.compiled.is_ok()
                    ),
                }
            }
        }
        assert_eq!(check_pattern(r"a{1000000}", false).compiled.as_ref().err().map(String::as_str), Some(TOO_LARGE));
    }

    #[test]
    fn a_pattern_in_use_elsewhere_matches_with_a_cache_of_its_own() {
        let pattern = check_pattern(r"^[a-z]+\.example\.com$", false);
        let Ok(checked) = &pattern.compiled else { panic!("compiles") };
        assert!(checked.is_match("acme.example.com"));
        let held = checked.cache.lock().expect("not poisoned");
        assert!(checked.is_match("acme.example.com"), "while another holds the kept cache");
        assert!(!checked.is_match("acme.example.org"));
        drop(held);
        assert!(!checked.is_match("ACME.example.com"));
    }

    #[test]
    fn strict_host_patterns_pass() {
        assert_eq!(url_safety(r"^[a-z0-9-]+\.my\.salesforce\.com$", false), None);
        assert_eq!(url_safety(r"^(?-u:[a-z0-9-]+\.(?:my|test)\.example\.com)$", true), None);
    }

    #[test]
    fn unanchored_or_escaping_alternations_fail() {
        assert!(url_safety(r"[a-z]+\.example\.com", false).is_some());
        assert!(url_safety(r"^a\.example\.com|b\.example\.com$", false).is_some());
        assert_eq!(url_safety(r"^[a-z]+\.example\.com$|^[a-z]+\.example\.org$", false), None, "each branch anchored");
    }

    #[test]
    fn delimiters_and_lookalikes_fail() {
        let found = url_safety(r"^.+\.example\.com$", false).expect("dot matches anything");
        assert!(found.contains("`/`") && found.contains("`@`"), "{found}");
        assert!(url_safety(r"^\S+$", false).is_some());
        // Unicode case folding lets [a-z] match U+212A (Kelvin sign) and U+017F (long s).
        let found = url_safety(r"^[a-z]+\.example\.com$", true).expect("case folding");
        assert!(found.contains("non-ASCII"), "{found}");
    }
}
