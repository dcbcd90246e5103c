//! Glob-style matching for push rule patterns and display names.
//!
//! spec: appendices/#glob-style-matching. `*` matches zero or more
//! characters, `?` exactly one; matching is case-insensitive. Over
//! `content.body` a pattern matches any run of words, elsewhere the whole
//! value.

/// What part of a value a glob must cover.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Span {
    /// The entire value.
    Whole,
    /// Any substring that starts and ends at a word boundary.
    Words,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// `*`: zero or more characters.
    Any,
    /// `?`: exactly one character.
    One,
    Char(char),
}

/// Case-insensitive by Unicode lowercasing, character by character; the spec
/// leaves the exact meaning of "case-insensitive" to the server.
pub(super) fn lowercase(s: &str) -> Vec<char> {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn glob_tokens(pattern: &str) -> Vec<Token> {
    lowercase(pattern).into_iter().map(glob_token).collect()
}

pub(super) fn literal_tokens(s: &str) -> Vec<Token> {
    lowercase(s).into_iter().map(Token::Char).collect()
}

/// The lowercased characters of `s`, without collecting them.
fn lowered(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn glob_token(c: char) -> Token {
    match c {
        '*' => Token::Any,
        '?' => Token::One,
        c => Token::Char(c),
    }
}

/// Patterns up to this many (lowercased) characters run without allocating:
/// the NFA's states fit in the bits of a `u64`.
pub(super) const SMALL_PATTERN: usize = 63;

pub(super) fn glob_matches(pattern: &str, value: &str, span: Span) -> bool {
    // Most patterns of the default rules are plain words ("m.notice",
    // "m.room.member") matched against a whole value.
    if span == Span::Whole && !pattern.contains(['*', '?']) {
        return lowered(pattern).eq(lowered(value));
    }
    let mut tokens = [Token::Any; SMALL_PATTERN];
    let mut len = 0;
    for c in lowered(pattern) {
        let Some(slot) = tokens.get_mut(len) else {
            return find(&glob_tokens(pattern), &lowercase(value), span);
        };
        *slot = glob_token(c);
        len += 1;
    }
    find_small(&tokens[..len], lowered(value), span)
}

/// [`find`] for at most [`SMALL_PATTERN`] tokens, reading `text` as it
/// goes: bit `j` of `states` means "the first `j` tokens have matched".
fn find_small(tokens: &[Token], text: impl Iterator<Item = char>, span: Span) -> bool {
    debug_assert!(tokens.len() <= SMALL_PATTERN);
    let accepting = 1u64 << tokens.len();
    let any = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Token::Any)
        .fold(0u64, |mask, (j, _)| mask | (1 << j));
    let mut text = text.peekable();
    let mut states = 0u64;
    let mut previous: Option<char> = None;
    loop {
        let current = text.peek().copied();
        let boundary = span == Span::Words
            && match (previous, current) {
                (Some(p), Some(c)) => !is_word_char(p) || !is_word_char(c),
                _ => true,
            };
        if previous.is_none() || boundary {
            states |= 1;
        }
        // `*` may match nothing; states only move forward, so one pass in
        // order closes over chains of `*`.
        for j in 0..tokens.len() {
            if states & any & (1 << j) != 0 {
                states |= 1 << (j + 1);
            }
        }
        if states & accepting != 0 && (current.is_none() || boundary) {
            return true;
        }
        let Some(c) = text.next() else { return false };
        let mut next = states & any;
        for (j, token) in tokens.iter().enumerate() {
            if states & (1 << j) == 0 {
                continue;
            }
            match *token {
                Token::One => next |= 1 << (j + 1),
                Token::Char(t) if t == c => next |= 1 << (j + 1),
                Token::Any | Token::Char(_) => {}
            }
        }
        states = next;
        previous = Some(c);
        // A whole-value match cannot restart: nothing left to find.
        if states == 0 && span == Span::Whole {
            return false;
        }
    }
}

/// Word characters are `[A-Za-z0-9_]`; every other character, and either end
/// of the value, bounds a word.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A position between characters is a word boundary at either end of the
/// text or next to a non-word character, so that in "a-b" a match may start
/// at the '-' or after it.
fn is_boundary(text: &[char], at: usize) -> bool {
    at == 0 || at == text.len() || !is_word_char(text[at - 1]) || !is_word_char(text[at])
}

/// Runs the pattern as an NFA over `text`: state `j` means "the first `j`
/// tokens have matched". Checking every start position at once keeps this
/// O(text × pattern) even for word matches on long bodies, where trying each
/// start separately with backtracking would be quadratic or worse.
pub(super) fn find(tokens: &[Token], text: &[char], span: Span) -> bool {
    let accepting = tokens.len();
    let mut states = vec![false; accepting + 1];
    let mut next = vec![false; accepting + 1];
    for at in 0..=text.len() {
        let boundary = span == Span::Words && is_boundary(text, at);
        if at == 0 || boundary {
            states[0] = true;
        }
        // `*` may match nothing: skipping it is free. States only move
        // forward, so one pass in order closes over chains of `*`.
        for j in 0..accepting {
            if states[j] && tokens[j] == Token::Any {
                states[j + 1] = true;
            }
        }
        if states[accepting] && (at == text.len() || boundary) {
            return true;
        }
        let Some(&c) = text.get(at) else { break };
        next.fill(false);
        for j in 0..accepting {
            if !states[j] {
                continue;
            }
            match tokens[j] {
                Token::Any => next[j] = true,
                Token::One => next[j + 1] = true,
                Token::Char(t) if t == c => next[j + 1] = true,
                Token::Char(_) => {}
            }
        }
        std::mem::swap(&mut states, &mut next);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_star_and_question_mark() {
        assert!(glob_matches("lunc?*", "Lunch plans", Span::Whole));
        assert!(glob_matches("lunc?*", "LUNCH", Span::Whole));
        assert!(!glob_matches("lunc?*", " lunch", Span::Whole));
        assert!(!glob_matches("lunc?*", "lunc", Span::Whole));
        assert!(glob_matches("*", "", Span::Whole));
        assert!(glob_matches("", "", Span::Whole));
        assert!(!glob_matches("", "x", Span::Whole));
        assert!(glob_matches("a**b", "ab", Span::Whole));
        assert!(glob_matches("*a*a*a*", "banana a", Span::Whole));
    }

    #[test]
    fn word_globs_match_substrings_at_word_boundaries() {
        assert!(glob_matches("ex*ple", "An example event.", Span::Words));
        assert!(glob_matches("ex*ple", "exple", Span::Words));
        assert!(glob_matches("ex*ple", "An exciting triple-whammy", Span::Words));
        assert!(!glob_matches("cake", "pancakes", Span::Words));
        assert!(!glob_matches("cake", "cakes", Span::Words));
        assert!(glob_matches("cake", "I like CAKE!", Span::Words));
        assert!(glob_matches("cake", "snake_case cake", Span::Words));
        assert!(!glob_matches("snake", "snake_case", Span::Words), "_ is a word character");
        // Non-ASCII letters are outside the spec's word characters.
        assert!(glob_matches("caf", "café", Span::Words));
    }

    #[test]
    fn word_globs_stay_linear_on_long_bodies() {
        let body = "a".repeat(200_000);
        assert!(!glob_matches("*a*b*", &body, Span::Words));
    }

    #[test]
    fn small_pattern_matcher_agrees_with_the_general_one() {
        let patterns = [
            "", "*", "?", "a", "ab", "a*", "*a", "a?b", "*a*b*", "?*", "a**b", "x.y", "ÄB*", "İ*",
            "m.notice", "ca?e", "*-*", "é",
        ];
        let texts = [
            "",
            "a",
            "ab",
            "AB",
            "a b",
            "b a",
            "aab",
            "x.y",
            "xay",
            "äb",
            "äbc",
            "i̇x",
            "İx",
            "m.notice",
            "M.NOTICE",
            "cake cafe",
            "a-b",
            "snake_case a",
            "café",
            "-",
            "é",
        ];
        for pattern in patterns {
            for text in texts {
                for span in [Span::Whole, Span::Words] {
                    let general = find(&glob_tokens(pattern), &lowercase(text), span);
                    assert_eq!(
                        glob_matches(pattern, text, span),
                        general,
                        "{pattern:?} against {text:?}"
                    );
                }
            }
        }
        let long = "a".repeat(SMALL_PATTERN + 1);
        assert!(glob_matches(&long, &long.to_uppercase(), Span::Whole));
        assert!(!glob_matches(&long, "a", Span::Whole));
    }
}
