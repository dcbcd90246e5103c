//! Canonical JSON: the one byte encoding of a JSON value that Matrix hashes and
//! signs.
//!
//! spec: appendices/#canonical-json. This module owns the encoder and the
//! number rules that go with it (integers only, within
//! `[-(2**53)+1, (2**53)-1]`). It does not parse JSON text; callers hand it an
//! already parsed [`Value`], so rejecting malformed *text* (for example
//! `M_BAD_JSON` on the client API) stays with the caller.
//!
//! The encoder is written out here instead of relying on `serde_json`'s
//! serializer so the output cannot drift with that crate's features: key
//! order does not depend on whether `preserve_order` got switched on
//! somewhere in the dependency graph, and the escaping is exactly the
//! appendix grammar.

use std::fmt;

use serde_json::{Number, Value};

/// The largest integer canonical JSON allows, `(2**53)-1`.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The smallest integer canonical JSON allows, `-(2**53)+1`.
pub const MIN_SAFE_INTEGER: i64 = -MAX_SAFE_INTEGER;

/// Why a value has no canonical JSON encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CanonicalJsonError {
    /// A number with a fractional part, or a non-finite one. Floats are not
    /// part of canonical JSON.
    Float(Number),
    /// An integer outside `[-(2**53)+1, (2**53)-1]`.
    IntegerOutOfRange(Number),
}

impl fmt::Display for CanonicalJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanonicalJsonError::Float(n) => {
                write!(f, "{n} is not an integer; canonical JSON has no floats")
            }
            CanonicalJsonError::IntegerOutOfRange(n) => write!(
                f,
                "{n} is outside the canonical JSON integer range [{MIN_SAFE_INTEGER}, {MAX_SAFE_INTEGER}]"
            ),
        }
    }
}

impl std::error::Error for CanonicalJsonError {}

/// Encodes `value` as canonical JSON text.
pub fn canonical_json(value: &Value) -> Result<String, CanonicalJsonError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Encodes `value` as canonical JSON, as the UTF-8 bytes that get hashed and
/// signed.
pub fn canonical_json_bytes(value: &Value) -> Result<Vec<u8>, CanonicalJsonError> {
    canonical_json(value).map(String::into_bytes)
}

/// Encodes `value` as canonical JSON bytes as if the listed top-level keys
/// were absent.
///
/// Hashing and signing always leave out a few top-level keys (`signatures`,
/// `unsigned`, `hashes`); skipping them while encoding spares a copy of the
/// whole event. `excluded` is ignored when `value` is not an object.
pub fn canonical_json_bytes_without(
    value: &Value,
    excluded: &[&str],
) -> Result<Vec<u8>, CanonicalJsonError> {
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            write_object(&mut out, map.iter().filter(|(key, _)| !excluded.contains(&key.as_str())))?
        }
        _ => write_value(&mut out, value)?,
    }
    Ok(out.into_bytes())
}

/// Checks that `value` has a canonical encoding without building it, for
/// validating incoming events and request bodies.
pub fn validate_canonical(value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
        Value::Number(n) => canonical_integer(n).map(drop),
        Value::Array(items) => items.iter().try_for_each(validate_canonical),
        Value::Object(map) => map.values().try_for_each(validate_canonical),
    }
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&canonical_integer(n)?.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map.iter())?,
    }
    Ok(())
}

fn write_object<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Result<(), CanonicalJsonError> {
    // Byte order of UTF-8 strings is code point order, which is what the
    // spec asks for. Sorting here (rather than trusting the map's own order)
    // keeps this right even with `preserve_order`.
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item)?;
    }
    out.push('}');
    Ok(())
}

/// The integer a JSON number stands for, if canonical JSON can carry it.
///
/// `serde_json` parses `-0` and `1e10` as floats, yet the appendix's own
/// examples expect them to encode as `0` and `10000000000`. So a float that
/// holds an exact integer within range is accepted as that integer (which
/// also turns `-0` into `0`, as the spec requires); any fractional or
/// non-finite value is still refused.
fn canonical_integer(n: &Number) -> Result<i64, CanonicalJsonError> {
    let out_of_range = || CanonicalJsonError::IntegerOutOfRange(n.clone());
    if let Some(i) = n.as_i64() {
        return if (MIN_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
            Ok(i)
        } else {
            Err(out_of_range())
        };
    }
    if n.as_u64().is_some() {
        // Only values above i64::MAX reach here, which are all too large.
        return Err(out_of_range());
    }
    let f = n.as_f64().ok_or_else(|| CanonicalJsonError::Float(n.clone()))?;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(CanonicalJsonError::Float(n.clone()));
    }
    // Every integer in the safe range is exactly representable as an f64, so
    // comparing as floats is exact and the cast below cannot truncate.
    if f < MIN_SAFE_INTEGER as f64 || f > MAX_SAFE_INTEGER as f64 {
        return Err(out_of_range());
    }
    Ok(f as i64)
}

/// Writes a JSON string with the shortest escaping the appendix grammar
/// allows: only `"`, `\` and ASCII control characters are escaped; every
/// other code point (including U+007F and non-ASCII) is written as UTF-8.
fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{00}'..='\u{1F}' => {
                let byte = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0F)]));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Parses `input` as JSON text and returns its canonical form.
    fn canon(input: &str) -> String {
        let value: Value = serde_json::from_str(input).expect("test input is JSON");
        canonical_json(&value).expect("test input is canonicalisable")
    }

    // The "Examples" section of appendices/#canonical-json, in order.

    #[test]
    fn spec_example_empty_object() {
        assert_eq!(canon("{}"), "{}");
    }

    #[test]
    fn spec_example_whitespace_is_removed() {
        assert_eq!(
            canon("{\n    \"one\": 1,\n    \"two\": \"Two\"\n}"),
            r#"{"one":1,"two":"Two"}"#
        );
    }

    #[test]
    fn spec_example_keys_are_sorted() {
        assert_eq!(canon("{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}"), r#"{"a":"1","b":"2"}"#);
        assert_eq!(canon(r#"{"b":"2","a":"1"}"#), r#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn spec_example_nested_objects_and_arrays() {
        let input = r#"{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {
                            "medium": "email",
                            "address": "john.doe@example.org"
                        },
                        {
                            "medium": "msisdn",
                            "address": "123456789"
                        }
                    ]
                }
            }
        }"#;
        assert_eq!(
            canon(input),
            r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#
        );
    }

    #[test]
    fn spec_example_non_ascii_stays_utf8() {
        assert_eq!(canon(r#"{"a": "日本語"}"#), r#"{"a":"日本語"}"#);
    }

    #[test]
    fn spec_example_non_ascii_keys_sort_by_code_point() {
        assert_eq!(canon(r#"{"本": 2, "日": 1}"#), r#"{"日":1,"本":2}"#);
    }

    #[test]
    fn spec_example_unicode_escape_is_decoded() {
        assert_eq!(canon(r#"{"a": "\u65E5"}"#), r#"{"a":"日"}"#);
    }

    #[test]
    fn spec_example_null() {
        assert_eq!(canon(r#"{"a": null}"#), r#"{"a":null}"#);
    }

    #[test]
    fn spec_example_negative_zero_and_exponent_become_plain_integers() {
        assert_eq!(canon(r#"{"a": -0, "b": 1e10}"#), r#"{"a":0,"b":10000000000}"#);
    }

    #[test]
    fn canonical_bytes_are_the_utf8_of_the_text() {
        let value = json!({"a": "日"});
        assert_eq!(canonical_json_bytes(&value).expect("canonical"), "{\"a\":\"日\"}".as_bytes());
    }

    #[test]
    fn only_quote_backslash_and_controls_are_escaped() {
        let value = json!("q\" b\\ / \u{7f} é 😀");
        assert_eq!(canonical_json(&value).expect("canonical"), "\"q\\\" b\\\\ / \u{7f} é 😀\"");
    }

    #[test]
    fn control_characters_use_short_escapes_where_the_grammar_has_them() {
        let value = json!("\u{08}\t\n\u{0C}\r");
        assert_eq!(canonical_json(&value).expect("canonical"), r#""\b\t\n\f\r""#);
    }

    #[test]
    fn other_control_characters_use_lowercase_u00xx() {
        let value = json!("\u{00}\u{01}\u{0B}\u{0E}\u{1A}\u{1F}");
        assert_eq!(
            canonical_json(&value).expect("canonical"),
            r#""\u0000\u0001\u000b\u000e\u001a\u001f""#
        );
    }

    #[test]
    fn keys_are_escaped_like_strings() {
        let value = json!({"a\nb": 1});
        assert_eq!(canonical_json(&value).expect("canonical"), r#"{"a\nb":1}"#);
    }

    #[test]
    fn keys_sort_by_code_point_not_by_utf16() {
        // U+FF61 sorts before U+1F600 by code point, but after it in UTF-16
        // (where U+1F600 becomes a surrogate pair starting 0xD83D).
        let value = json!({"😀": 1, "｡": 2, "Z": 3, "a": 4});
        assert_eq!(canonical_json(&value).expect("canonical"), r#"{"Z":3,"a":4,"｡":2,"😀":1}"#);
    }

    #[test]
    fn array_order_is_kept() {
        let value = json!([3, "b", [], {}, null, false, true]);
        assert_eq!(canonical_json(&value).expect("canonical"), r#"[3,"b",[],{},null,false,true]"#);
    }

    #[test]
    fn integers_at_the_range_limits_are_accepted() {
        let value = json!([MAX_SAFE_INTEGER, MIN_SAFE_INTEGER, 0, -1]);
        assert_eq!(
            canonical_json(&value).expect("canonical"),
            "[9007199254740991,-9007199254740991,0,-1]"
        );
    }

    #[test]
    fn integers_outside_the_range_are_rejected() {
        for n in [
            json!(MAX_SAFE_INTEGER + 1),
            json!(MIN_SAFE_INTEGER - 1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e16),
        ] {
            assert!(
                matches!(
                    canonical_json(&json!({"n": n})),
                    Err(CanonicalJsonError::IntegerOutOfRange(_))
                ),
                "{n}"
            );
        }
    }

    #[test]
    fn fractional_numbers_are_rejected() {
        for text in ["1.5", "-0.25", "1e-3"] {
            let value: Value = serde_json::from_str(text).expect("JSON");
            assert!(
                matches!(canonical_json(&json!([value])), Err(CanonicalJsonError::Float(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn excluded_top_level_keys_are_skipped() {
        let value = json!({"b": 1, "signatures": {"x": 0.5}, "a": {"signatures": 2}});
        assert_eq!(
            canonical_json_bytes_without(&value, &["signatures"]).expect("canonical"),
            br#"{"a":{"signatures":2},"b":1}"#
        );
        assert_eq!(
            canonical_json_bytes_without(&json!([1]), &["signatures"]).expect("canonical"),
            b"[1]"
        );
    }

    #[test]
    fn validate_agrees_with_the_encoder() {
        assert_eq!(validate_canonical(&json!({"a": [1, {"b": "c"}]})), Ok(()));
        assert!(matches!(
            validate_canonical(&json!({"a": [1, {"b": 0.5}]})),
            Err(CanonicalJsonError::Float(_))
        ));
        assert!(matches!(
            validate_canonical(&json!({"a": u64::MAX})),
            Err(CanonicalJsonError::IntegerOutOfRange(_))
        ));
    }

    #[test]
    fn errors_display_the_offending_number() {
        let err = canonical_json(&json!(0.5)).expect_err("float");
        assert!(err.to_string().contains("0.5"), "{err}");
    }

    /// Any string, with the characters that need escaping (quote,
    /// backslash, controls) and DEL and non-ASCII made common.
    fn json_string() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{0,6}", "[\"\\\\\u{0}-\u{1f}\u{7f}é]{0,3}"]
    }

    /// Any JSON value canonical JSON can carry: integers in the safe range,
    /// any strings, nested arrays and objects.
    fn canonical_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (MIN_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::from),
            json_string().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(json_string(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn canonical_json_parses_back_to_the_value_and_is_a_fixed_point(v in canonical_value()) {
            let text = canonical_json(&v).expect("canonical");
            let parsed: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
            prop_assert_eq!(&parsed, &v);
            prop_assert_eq!(canonical_json(&parsed).expect("canonical"), text.clone());
            prop_assert_eq!(validate_canonical(&v), Ok(()));
            prop_assert_eq!(canonical_json_bytes(&v).expect("canonical"), text.into_bytes());
        }

        #[test]
        fn objects_are_written_with_their_keys_sorted_by_code_point(
            entries in prop::collection::vec((json_string(), canonical_value()), 0..6),
        ) {
            // Inserted in generated order; the later of two equal keys wins.
            let mut map = serde_json::Map::new();
            for (k, v) in &entries {
                map.insert(k.clone(), v.clone());
            }
            let mut sorted: Vec<(&String, &Value)> = map.iter().collect();
            // `str` orders by UTF-8 bytes, which is code point order.
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let members: Vec<String> = sorted
                .iter()
                .map(|(k, v)| {
                    let key = canonical_json(&Value::from(k.as_str())).expect("string");
                    format!("{key}:{}", canonical_json(v).expect("canonical"))
                })
                .collect();
            let expected = format!("{{{}}}", members.join(","));
            prop_assert_eq!(canonical_json(&Value::Object(map)).expect("canonical"), expected);
        }

        #[test]
        fn a_fraction_anywhere_is_refused(
            v in canonical_value(),
            f in prop::num::f64::NORMAL.prop_filter("has a fraction", |f| f.fract() != 0.0),
            path in prop::collection::vec(any::<bool>(), 0..3),
        ) {
            // The float, wrapped in arrays and objects beside a valid value.
            let mut bad = Value::from(f);
            for in_array in path {
                bad = if in_array { json!([v.clone(), bad]) } else { json!({ "a": v.clone(), "b": bad }) };
            }
            prop_assert!(matches!(canonical_json(&bad), Err(CanonicalJsonError::Float(_))));
            prop_assert!(matches!(validate_canonical(&bad), Err(CanonicalJsonError::Float(_))));
        }

        #[test]
        fn integers_beyond_the_safe_range_are_refused(
            n in prop_oneof![MAX_SAFE_INTEGER + 1..=i64::MAX, i64::MIN..MIN_SAFE_INTEGER],
        ) {
            let v = json!({ "n": n });
            prop_assert!(matches!(canonical_json(&v), Err(CanonicalJsonError::IntegerOutOfRange(_))));
            prop_assert!(matches!(
                validate_canonical(&v),
                Err(CanonicalJsonError::IntegerOutOfRange(_))
            ));
        }
    }
}
