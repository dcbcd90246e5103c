//! Server-side search (spec: client-server-api/#server-side-search): how
//! text becomes index terms, what a search term asks for, and how a result
//! is ranked. This file is pure (no store, no HTTP); [`run`] walks the
//! index in the store, and the client API's search handler answers requests.
//!
//! # Tokenizing
//!
//! Text is split on every character that is not a letter or digit
//! (`char::is_alphanumeric`, so Cyrillic, Greek, Arabic, Devanagari … are
//! words like Latin), and each word is lowercased with Unicode's full
//! lowercase mapping (`str::to_lowercase`; Greek final sigma is folded to
//! σ so `ΟΔΟΣ`, `οδος` and `οδοσ` meet). Combining marks that
//! `is_alphanumeric` does not count (U+0301 in decomposed Latin, the Indic
//! virama and nukta, ZWJ/ZWNJ) continue a word instead of splitting it.
//!
//! Scripts written without spaces between words — Han, Hiragana, Katakana
//! and Thai — have no words to split on. Their runs are indexed as every
//! single character (unigram) and every pair of neighbouring characters
//! (bigram); a query run of two or more characters asks for its bigrams, a
//! lone character for its unigram. `東京タワー` is thus found by `東京`,
//! `タワー` or `京`, and a query matches wherever all its bigrams occur (a
//! close approximation of a substring match, without a dictionary).
//!
//! There is no stemming, no prefix matching and no Unicode normalisation
//! (text is taken as clients send it, which is NFC in practice).
//!
//! # Matching and rank
//!
//! A result must contain *every* term of the search (as Synapse does:
//! `martians and men` does not return every message with `and`). The rank
//! is the share of the text's tokens that are query terms — a short
//! message that is mostly the query outranks a long one that mentions it
//! once — in `(0, 1]`; equal ranks are ordered newest first.

pub mod run;

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

/// The longest term kept, in bytes: longer words (URLs, hashes) are cut at
/// a character boundary, the same way at index and at query time, so index
/// keys stay small.
pub const MAX_TERM_BYTES: usize = 64;

/// The most distinct terms one event adds to the index: bounds the write
/// cost of a huge message (its first terms are still searchable).
pub const MAX_TERMS_PER_EVENT: usize = 1024;

/// The most distinct terms one search may ask for (each costs an index seek
/// per candidate).
pub const MAX_QUERY_TERMS: usize = 64;

/// The searchable keys (spec: `room_events.keys`), one per event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// `content.body` of `m.room.message`.
    Body,
    /// `content.name` of `m.room.name`.
    Name,
    /// `content.topic` (and the `text/plain` `m.topic`) of `m.room.topic`.
    Topic,
}

impl SearchKey {
    pub const ALL: [SearchKey; 3] = [SearchKey::Body, SearchKey::Name, SearchKey::Topic];

    /// The key as the spec names it in `keys`.
    pub fn parse(key: &str) -> Option<SearchKey> {
        match key {
            "content.body" => Some(SearchKey::Body),
            "content.name" => Some(SearchKey::Name),
            "content.topic" => Some(SearchKey::Topic),
            _ => None,
        }
    }

    /// The bit of this key in a key mask (stored with every index entry).
    pub fn bit(self) -> u8 {
        match self {
            SearchKey::Body => 1,
            SearchKey::Name => 2,
            SearchKey::Topic => 4,
        }
    }

    /// The event type whose content carries this key.
    pub fn event_type(self) -> &'static str {
        match self {
            SearchKey::Body => "m.room.message",
            SearchKey::Name => "m.room.name",
            SearchKey::Topic => "m.room.topic",
        }
    }
}

/// The searchable key and texts of an event, if it has any. Encrypted
/// events (`m.room.encrypted`) have none: the server cannot read them.
pub fn searchable_text<'a>(
    event_type: &str,
    content: &'a Value,
) -> Option<(SearchKey, Vec<&'a str>)> {
    let s = |k: &str| content.get(k).and_then(Value::as_str);
    let (key, texts) = match event_type {
        "m.room.message" => (SearchKey::Body, s("body").into_iter().collect()),
        "m.room.name" => (SearchKey::Name, s("name").into_iter().collect()),
        "m.room.topic" => {
            let mut texts: Vec<&str> = s("topic").into_iter().collect();
            // spec (v1.15): `m.topic` holds representations by mimetype; the
            // plain one usually repeats `topic` (terms are deduplicated).
            let reps =
                content.get("m.topic").and_then(|t| t.get("m.text")).and_then(Value::as_array);
            for rep in reps.into_iter().flatten() {
                let plain =
                    rep.get("mimetype").and_then(Value::as_str).is_none_or(|m| m == "text/plain");
                if let (true, Some(body)) = (plain, rep.get("body").and_then(Value::as_str)) {
                    texts.push(body);
                }
            }
            (SearchKey::Topic, texts)
        }
        _ => return None,
    };
    if texts.iter().all(|t| t.trim().is_empty()) { None } else { Some((key, texts)) }
}

/// Whether a run of this character is a script written without spaces.
fn is_spaceless(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0E3E | 0x0E40..=0x0E4E | 0x0E50..=0x0E59 // Thai, without ฿ ๏ ๚ ๛
        | 0x3005..=0x3007 // 々 〆 〇
        | 0x3040..=0x309F // Hiragana
        | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F // Katakana (+ half-width)
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // Han
        | 0x20000..=0x3134F)
}

/// Marks that continue the word before them although `is_alphanumeric`
/// says no (combining diacritics, ZWNJ/ZWJ, Indic virama and nukta).
fn is_joining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
        | 0x200C..=0x200D)
        || (matches!(c as u32, 0x0900..=0x0DFF) && !matches!(c as u32, 0x0964 | 0x0965 | 0x0970))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// A word of a script that separates words (Latin, Cyrillic, …).
    Word,
    /// A run of Han, Hiragana, Katakana or Thai.
    Spaceless,
}

/// Splits text into runs: words, and runs of spaceless scripts.
fn runs(text: &str) -> Vec<(Run, &str)> {
    let mut out = Vec::new();
    let mut current: Option<(Run, usize)> = None;
    for (i, c) in text.char_indices() {
        let kind = if is_spaceless(c) {
            Some(Run::Spaceless)
        } else if c.is_alphanumeric() {
            Some(Run::Word)
        } else if is_joining_mark(c) && current.is_some() {
            // Continue whatever run is open.
            continue;
        } else {
            None
        };
        match (current, kind) {
            (Some((open, _)), Some(k)) if open == k => {}
            (Some((open, start)), k) => {
                out.push((open, &text[start..i]));
                current = k.map(|k| (k, i));
            }
            (None, k) => current = k.map(|k| (k, i)),
        }
    }
    if let Some((open, start)) = current {
        out.push((open, &text[start..]));
    }
    out
}

/// The index term of a word: lowercased, final sigma folded, length-capped.
fn fold(word: &str) -> String {
    let mut term = word.to_lowercase().replace('ς', "σ");
    if term.len() > MAX_TERM_BYTES {
        let mut cut = MAX_TERM_BYTES;
        while !term.is_char_boundary(cut) {
            cut -= 1;
        }
        term.truncate(cut);
    }
    term
}

/// Every term of a text with repeats, in order: words, and the unigrams and
/// bigrams of spaceless runs.
fn all_terms(text: &str, mut each: impl FnMut(String)) {
    for (kind, run) in runs(text) {
        match kind {
            Run::Word => each(fold(run)),
            Run::Spaceless => {
                let chars: Vec<char> = run.chars().collect();
                for (i, c) in chars.iter().enumerate() {
                    each(fold(&c.to_string()));
                    if let Some(next) = chars.get(i + 1) {
                        each(fold(&format!("{c}{next}")));
                    }
                }
            }
        }
    }
}

/// The distinct index terms of an event's texts (at most
/// [`MAX_TERMS_PER_EVENT`]), in first-seen order.
pub fn index_terms(texts: &[&str]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for text in texts {
        all_terms(text, |t| {
            if out.len() < MAX_TERMS_PER_EVENT && seen.insert(t.clone()) {
                out.push(t);
            }
        });
    }
    out
}

/// A parsed search term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Distinct index terms that must all occur.
    pub terms: Vec<String>,
    /// The spaceless runs as typed (highlighted where they occur verbatim).
    runs: Vec<String>,
}

impl Query {
    /// Parses a search term. `None` when it has more than
    /// [`MAX_QUERY_TERMS`] terms; an empty `terms` when it has no word.
    pub fn parse(search_term: &str) -> Option<Query> {
        let mut terms: Vec<String> = Vec::new();
        let mut spaceless = Vec::new();
        let mut push = |t: String| {
            if !terms.contains(&t) {
                terms.push(t);
            }
        };
        for (kind, run) in runs(search_term) {
            match kind {
                Run::Word => push(fold(run)),
                Run::Spaceless => {
                    let chars: Vec<char> = run.chars().collect();
                    if let [c] = chars.as_slice() {
                        push(fold(&c.to_string()));
                    }
                    for pair in chars.windows(2) {
                        push(fold(&format!("{}{}", pair[0], pair[1])));
                    }
                    spaceless.push(run.to_owned());
                }
            }
        }
        if terms.len() > MAX_QUERY_TERMS {
            return None;
        }
        Some(Query { terms, runs: spaceless })
    }

    /// The rank of a text for this query (see the module doc), or `None`
    /// when the text lacks one of the terms.
    pub fn rank(&self, texts: &[&str]) -> Option<f64> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut total = 0u32;
        for text in texts {
            all_terms(text, |t| {
                total += 1;
                if self.terms.contains(&t) {
                    *counts.entry(t).or_default() += 1;
                }
            });
        }
        if self.terms.is_empty() || counts.len() < self.terms.len() || total == 0 {
            return None;
        }
        let hits: u32 = counts.values().sum();
        Some(f64::from(hits) / f64::from(total))
    }

    /// The words of `texts` that matched, as they appear there (spec:
    /// `highlights`, so a client can mark them), added to `out` once each.
    pub fn highlights(&self, texts: &[&str], out: &mut Vec<String>) {
        for text in texts {
            for (kind, run) in runs(text) {
                if kind == Run::Word
                    && self.terms.contains(&fold(run))
                    && !out.iter().any(|h| h == run)
                {
                    out.push(run.to_owned());
                }
            }
            for run in &self.runs {
                if text.contains(run.as_str()) && !out.contains(run) {
                    out.push(run.clone());
                }
            }
        }
    }
}

/// The order of results (spec: `order_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Rank,
    Recent,
}

/// A group restriction carried by a group's `next_batch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupScope {
    Room(String),
    Sender(String),
}

/// Where the next page starts: an opaque `next_batch` token.
///
/// The index is walked newest first; a page looks at the matches with a
/// stream position below `top`. Ranked pages sort a window of matches and
/// skip the `offset` already returned from it; recent pages start right
/// below their last result. `seen` counts results of earlier windows (for
/// `count`); `group` narrows a group's own token to that group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub order: Order,
    pub top: u64,
    pub offset: usize,
    pub seen: u64,
    pub group: Option<GroupScope>,
}

impl Batch {
    pub fn encode(&self) -> String {
        let order = match self.order {
            Order::Rank => "k",
            Order::Recent => "r",
        };
        let group = match &self.group {
            None => String::new(),
            Some(GroupScope::Room(r)) => format!("r{r}"),
            Some(GroupScope::Sender(s)) => format!("u{s}"),
        };
        let raw = format!("1|{order}|{}|{}|{}|{group}", self.top, self.offset, self.seen);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(token: &str) -> Option<Batch> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(6, '|');
        if parts.next()? != "1" {
            return None;
        }
        let order = match parts.next()? {
            "k" => Order::Rank,
            "r" => Order::Recent,
            _ => return None,
        };
        let top = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let seen = parts.next()?.parse().ok()?;
        let group = parts.next()?;
        let group = if group.is_empty() {
            None
        } else if let Some(r) = group.strip_prefix('r') {
            Some(GroupScope::Room(r.to_owned()))
        } else {
            Some(GroupScope::Sender(group.strip_prefix('u')?.to_owned()))
        };
        Some(Batch { order, top, offset, seen, group })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn terms(text: &str) -> Vec<String> {
        index_terms(&[text])
    }

    fn finds(text: &str, search: &str) -> bool {
        Query::parse(search).and_then(|q| q.rank(&[text])).is_some()
    }

    #[test]
    fn latin_text_splits_on_punctuation_and_lowercases() {
        assert_eq!(terms("Hello, World! hello-world 42"), ["hello", "world", "42"]);
        assert!(finds("Dinner is READY.", "ready dinner"));
        assert!(!finds("Dinner is ready", "dinner party"), "every term must occur");
    }

    #[test]
    fn cyrillic_and_greek_words_are_case_folded() {
        assert_eq!(terms("Привет, МИР"), ["привет", "мир"]);
        assert!(finds("Встреча ЗАВТРА в десять", "завтра"));
        assert!(finds("ΟΔΟΣ", "οδος"), "final sigma");
        assert!(finds("οδος", "ΟΔΟΣ"));
        assert!(finds("ÉCOLE", "école"));
    }

    #[test]
    fn japanese_runs_are_indexed_as_unigrams_and_bigrams() {
        assert_eq!(
            terms("東京タワー"),
            ["東", "東京", "京", "京タ", "タ", "タワ", "ワ", "ワー", "ー"]
        );
        assert!(finds("昨日、東京タワーに行きました。", "東京タワー"));
        assert!(finds("昨日、東京タワーに行きました。", "タワー"));
        assert!(finds("昨日、東京タワーに行きました。", "京"));
        assert!(!finds("昨日、東京タワーに行きました。", "大阪"));
        assert!(!finds("京都", "東京"), "a shared character is not enough");
    }

    #[test]
    fn chinese_and_thai_are_searchable_without_spaces() {
        assert!(finds("我们明天去北京吃烤鸭", "北京 烤鸭"));
        assert!(finds("我们明天去北京吃烤鸭", "北京吃烤鸭"));
        assert!(!finds("我们明天去北京吃烤鸭", "北京烤鸭"), "a run matches as a whole");
        assert!(finds("ฉันชอบกินข้าวผัดมาก", "ข้าวผัด"));
        assert!(!finds("ฉันชอบกินข้าวผัดมาก", "ต้มยำ"));
    }

    #[test]
    fn mixed_scripts_split_at_the_script_boundary() {
        let t = terms("iPhone買った");
        assert!(t.contains(&"iphone".to_owned()) && t.contains(&"買っ".to_owned()), "{t:?}");
        assert!(finds("新しいiPhoneを買った", "iphone"));
    }

    #[test]
    fn combining_marks_and_viramas_do_not_split_words() {
        assert_eq!(terms("cafe\u{301} noir"), ["cafe\u{301}", "noir"]);
        assert_eq!(terms("नमस्ते दुनिया"), ["नमस्ते", "दुनिया"]);
    }

    #[test]
    fn long_words_are_cut_at_a_char_boundary_the_same_way_for_queries() {
        let long = "я".repeat(100);
        let t = terms(&long);
        assert!(t[0].len() <= MAX_TERM_BYTES && t[0].chars().all(|c| c == 'я'));
        assert!(finds(&long, &long));
    }

    #[test]
    fn a_huge_text_adds_at_most_the_term_cap() {
        let text: String = (0..5000).map(|i| format!("w{i} ")).collect();
        assert_eq!(terms(&text).len(), MAX_TERMS_PER_EVENT);
    }

    #[test]
    fn queries_without_words_have_no_terms_and_huge_ones_are_refused() {
        assert_eq!(Query::parse("?!  …").map(|q| q.terms.len()), Some(0));
        assert!(!finds("anything", "!!!"));
        let many: String = (0..100).map(|i| format!("w{i} ")).collect();
        assert_eq!(Query::parse(&many), None);
    }

    #[test]
    fn rank_prefers_texts_that_are_mostly_the_query() {
        let q = Query::parse("dinner").expect("query");
        let short = q.rank(&["dinner!"]).expect("short");
        let long = q.rank(&["we talked about many things including dinner"]).expect("long");
        assert!(short > long, "{short} {long}");
        assert_eq!(short, 1.0);
        let twice = q.rank(&["dinner or more dinner"]).expect("twice");
        assert!(twice > long);
    }

    #[test]
    fn highlights_are_the_words_as_written() {
        let q = Query::parse("dinner 東京").expect("query");
        let mut out = Vec::new();
        q.highlights(&["Dinner in 東京, DINNER again, dinner"], &mut out);
        assert_eq!(out, ["Dinner", "DINNER", "dinner", "東京"]);
    }

    #[test]
    fn searchable_text_covers_body_name_and_topic_but_not_encrypted() {
        let body = json!({"msgtype": "m.text", "body": "hi there"});
        assert_eq!(
            searchable_text("m.room.message", &body),
            Some((SearchKey::Body, vec!["hi there"]))
        );
        assert_eq!(
            searchable_text("m.room.name", &json!({"name": "Kitchen"})).map(|t| t.0),
            Some(SearchKey::Name)
        );
        let topic = json!({"topic": "plain", "m.topic": {"m.text": [
            {"body": "<b>rich</b>", "mimetype": "text/html"}, {"body": "also plain"}]}});
        assert_eq!(
            searchable_text("m.room.topic", &topic),
            Some((SearchKey::Topic, vec!["plain", "also plain"]))
        );
        assert_eq!(searchable_text("m.room.encrypted", &json!({"ciphertext": "abc"})), None);
        assert_eq!(searchable_text("m.room.message", &json!({"body": 5})), None);
        assert_eq!(searchable_text("m.room.message", &json!({})), None);
    }

    #[test]
    fn batch_tokens_round_trip_and_reject_garbage() {
        let b = Batch {
            order: Order::Rank,
            top: 1234,
            offset: 10,
            seen: 500,
            group: Some(GroupScope::Sender("@a|b:x".into())),
        };
        assert_eq!(Batch::decode(&b.encode()), Some(b));
        let r = Batch { order: Order::Recent, top: 7, offset: 0, seen: 0, group: None };
        assert_eq!(Batch::decode(&r.encode()), Some(r));
        assert_eq!(Batch::decode("not a token"), None);
        assert_eq!(Batch::decode(""), None);
    }
}
