//! Override matching: which of a namespace's overrides applies to an identifier.
//!
//! Unkey looks for an exact identifier first and then for wildcard patterns, but leaves open
//! which wildcard wins when several match. Here the most specific one does (most literal
//! characters), with ties broken by the pattern's text, so the answer never depends on the
//! order overrides were created or listed in.

use std::collections::HashMap;

/// A namespace's overrides, indexed for matching identifiers against them.
#[derive(Debug, Clone)]
pub struct OverrideSet<T> {
    exact: HashMap<Box<str>, T>,
    /// Ordered by precedence, so the first match is the winner.
    wildcards: Vec<WildcardOverride<T>>,
}

#[derive(Debug, Clone)]
struct WildcardOverride<T> {
    pattern: Box<str>,
    payload: T,
}

impl<T> OverrideSet<T> {
    /// Takes (identifier pattern, payload) pairs; a pattern given twice keeps its last payload,
    /// as an upsert would.
    pub fn new(items: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = HashMap::new();
        for (pattern, payload) in items {
            let pattern = pattern.into_boxed_str();
            if pattern.contains('*') {
                wildcards.insert(pattern, payload);
            } else {
                exact.insert(pattern, payload);
            }
        }
        let mut wildcards: Vec<_> = wildcards
            .into_iter()
            .map(|(pattern, payload)| WildcardOverride { pattern, payload })
            .collect();
        wildcards.sort_by(|a, b| {
            literal_chars(&b.pattern)
                .cmp(&literal_chars(&a.pattern))
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        Self { exact, wildcards }
    }

    /// The payload of the override that applies to `identifier`: an exact pattern equal to it,
    /// else the most specific matching wildcard pattern.
    pub fn matching(&self, identifier: &str) -> Option<&T> {
        if let Some(payload) = self.exact.get(identifier) {
            return Some(payload);
        }
        self.wildcards
            .iter()
            .find(|w| wildcard_matches(&w.pattern, identifier))
            .map(|w| &w.payload)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How specific a pattern is: the characters it pins down.
fn literal_chars(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}

/// Whether `identifier` matches `pattern`, where `*` stands for any run of characters (also
/// none) and every other character for itself.
///
/// Identifiers and patterns come from clients, so this must stay linear: the literal pieces
/// between stars are found left to right, each at its leftmost place, which is enough because
/// a star can always absorb whatever lies between two pieces. Nothing is ever retried.
pub fn wildcard_matches(pattern: &str, identifier: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = identifier.strip_prefix(first) else {
        return false;
    };
    let Some(last) = pieces.next_back() else {
        // No star at all: the pattern is the identifier.
        return rest.is_empty();
    };
    for piece in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> OverrideSet<String> {
        OverrideSet::new(patterns.iter().map(|p| (p.to_string(), p.to_string())))
    }

    fn winner<'a>(overrides: &'a OverrideSet<String>, identifier: &str) -> Option<&'a str> {
        overrides.matching(identifier).map(String::as_str)
    }

    #[test]
    fn a_trailing_star_matches_any_remainder() {
        assert!(wildcard_matches("premium_*", "premium_user_1"));
        assert!(wildcard_matches("premium_*", "premium_"));
        assert!(!wildcard_matches("premium_*", "premium"));
        assert!(!wildcard_matches("premium_*", "free_premium_user"));
    }

    #[test]
    fn a_lone_star_matches_everything() {
        assert!(wildcard_matches("*", ""));
        assert!(wildcard_matches("*", "anything at all"));
        assert!(wildcard_matches("**", "x"));
    }

    #[test]
    fn several_stars_match_pieces_in_order() {
        assert!(wildcard_matches("a*b*c", "abc"));
        assert!(wildcard_matches("a*b*c", "aXXbYYc"));
        assert!(wildcard_matches("a*b*c", "abcbc"));
        assert!(wildcard_matches("a*b*c", "acbc"));
        assert!(!wildcard_matches("a*b*c", "acb"));
        assert!(!wildcard_matches("a*b*c", "abcx"));
        assert!(wildcard_matches("*user*", "rlns_1:user_7"));
        assert!(wildcard_matches("*_7", "rlns_1:user_7"));
        assert!(!wildcard_matches("*_7", "rlns_1:user_77"));
    }

    #[test]
    fn prefix_and_suffix_may_not_share_characters() {
        assert!(!wildcard_matches("ab*ba", "aba"));
        assert!(wildcard_matches("ab*ba", "abba"));
        assert!(!wildcard_matches("a*a", "a"));
    }

    #[test]
    fn a_pattern_without_stars_matches_only_itself() {
        assert!(wildcard_matches("user_1", "user_1"));
        assert!(!wildcard_matches("user_1", "user_12"));
        assert!(!wildcard_matches("user_1", "user_"));
        assert!(wildcard_matches("", ""));
        assert!(!wildcard_matches("", "x"));
    }

    #[test]
    fn stars_match_characters_not_bytes() {
        assert!(wildcard_matches("ü*ß", "üxyß"));
        assert!(wildcard_matches("*é", "café"));
        assert!(!wildcard_matches("*é", "cafe"));
    }

    #[test]
    fn adversarial_patterns_stay_fast() {
        // A backtracking matcher takes exponential time here.
        let identifier = "a".repeat(512);
        let pattern = format!("{}b", "*a".repeat(200));
        assert!(!wildcard_matches(&pattern, &identifier));
        assert!(wildcard_matches(&"*a".repeat(200), &identifier));
    }

    #[test]
    fn an_exact_pattern_beats_every_wildcard() {
        let overrides = set(&["user_1*", "*", "user_*", "user_1"]);
        assert_eq!(winner(&overrides, "user_1"), Some("user_1"));
    }

    #[test]
    fn the_most_specific_wildcard_wins() {
        let overrides = set(&["*", "prem*", "premium_*", "*_user"]);
        assert_eq!(winner(&overrides, "premium_user"), Some("premium_*"));
        assert_eq!(winner(&overrides, "premier"), Some("prem*"));
        assert_eq!(winner(&overrides, "free_user"), Some("*_user"));
        assert_eq!(winner(&overrides, "other"), Some("*"));
    }

    #[test]
    fn ties_go_to_the_smallest_pattern_whatever_the_order() {
        // Both pin down two characters; "a*c" < "ab*" because '*' sorts before 'b'.
        for patterns in [["ab*", "a*c"], ["a*c", "ab*"]] {
            let overrides = set(&patterns);
            assert_eq!(winner(&overrides, "abc"), Some("a*c"));
        }
    }

    #[test]
    fn specificity_counts_characters_not_bytes() {
        // "é*" pins one character in two bytes, "*b" one in one byte: a tie, broken by text
        // ('*' sorts before 'é'). Counting bytes would make "é*" win.
        let overrides = set(&["é*", "*b"]);
        assert_eq!(winner(&overrides, "éb"), Some("*b"));
        // "üü*" pins two characters in four bytes, "*bcd" three in three bytes.
        let overrides = set(&["üü*", "*bcd"]);
        assert_eq!(winner(&overrides, "üübcd"), Some("*bcd"));
    }

    #[test]
    fn no_match_and_empty_sets_give_nothing() {
        let overrides = set(&["premium_*", "user_1"]);
        assert_eq!(winner(&overrides, "free_1"), None);
        assert_eq!(winner(&overrides, "user_10"), None);
        let empty: OverrideSet<String> = OverrideSet::new([]);
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(winner(&empty, "anyone"), None);
    }

    #[test]
    fn a_repeated_pattern_keeps_its_last_payload() {
        let overrides = OverrideSet::new([
            ("user_1".to_string(), 1),
            ("user_*".to_string(), 2),
            ("user_1".to_string(), 3),
            ("user_*".to_string(), 4),
        ]);
        assert_eq!(overrides.len(), 2);
        assert!(!overrides.is_empty());
        assert_eq!(overrides.matching("user_1"), Some(&3));
        assert_eq!(overrides.matching("user_2"), Some(&4));
    }
}
