//! Validated Matrix identifiers, parsed once at the edge.
//!
//! spec: appendices/#identifier-grammar. Each identifier is a newtype over its
//! full string form, so it can be used as a map key and printed without
//! allocation; accessors are named as in the spec (`localpart()`,
//! `server_name()`). Handlers never pass a bare `String` where one of these is
//! meant.

use std::fmt;

/// The spec's limit for user IDs, room IDs, event IDs and aliases.
const MAX_ID_BYTES: usize = 255;

/// Is `c` allowed in a user localpart that a server allocates now
/// (spec v1.8 grammar)?
fn is_user_localpart_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'=' | b'_' | b'/' | b'+')
}

/// Historical user IDs (created by older servers) may hold any printable
/// ASCII except `:`; we accept them where a user ID is only read, never
/// where one is allocated.
fn is_historical_localpart_char(c: u8) -> bool {
    matches!(c, 0x21..=0x39 | 0x3B..=0x7E)
}

/// Validates a server name: `hostname [":" port]` per the appendix grammar.
pub fn is_valid_server_name(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // IPv6 literal: "[" 2*45 IPv6char "]" [":" port]
        let Some(end) = rest.find(']') else { return false };
        let addr = &rest[..end];
        if addr.len() < 2
            || addr.len() > 45
            || !addr.bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (None, Some(p)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        }
    }
}

/// Why an identifier did not parse; the text goes into `M_INVALID_PARAM` errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError(pub &'static str);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for IdError {}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The ID as an owned string, without copying it.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// `@localpart:server_name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);
string_newtype!(UserId);

impl UserId {
    /// Parses any user ID a client or another server may send, including
    /// historical ones.
    pub fn parse(s: &str) -> Result<UserId, IdError> {
        if s.len() > MAX_ID_BYTES {
            return Err(IdError("user ID is longer than 255 bytes"));
        }
        let rest = s.strip_prefix('@').ok_or(IdError("user ID must start with '@'"))?;
        let (local, server) =
            rest.split_once(':').ok_or(IdError("user ID must have the form @localpart:server"))?;
        if local.is_empty() || !local.bytes().all(is_historical_localpart_char) {
            return Err(IdError("user ID localpart has invalid characters"));
        }
        if !is_valid_server_name(server) {
            return Err(IdError("user ID has an invalid server name"));
        }
        Ok(UserId(s.to_owned()))
    }

    /// Builds a user ID for a new local account, enforcing the strict
    /// (v1.8) localpart grammar.
    pub fn new_local(localpart: &str, server_name: &str) -> Result<UserId, IdError> {
        if localpart.is_empty() {
            return Err(IdError("username must not be empty"));
        }
        if !localpart.bytes().all(is_user_localpart_char) {
            return Err(IdError(
                "username may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
            ));
        }
        let id = format!("@{localpart}:{server_name}");
        if id.len() > MAX_ID_BYTES {
            return Err(IdError("user ID would be longer than 255 bytes"));
        }
        Ok(UserId(id))
    }

    pub fn localpart(&self) -> &str {
        let end = self.0.find(':').expect("a parsed user ID contains ':'");
        &self.0[1..end]
    }

    pub fn server_name(&self) -> &str {
        let start = self.0.find(':').expect("a parsed user ID contains ':'");
        &self.0[start + 1..]
    }
}

/// A device ID: opaque, chosen by the client or generated by us.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);
string_newtype!(DeviceId);

impl DeviceId {
    pub fn parse(s: &str) -> Result<DeviceId, IdError> {
        if s.is_empty() {
            return Err(IdError("device_id must not be empty"));
        }
        if s.len() > MAX_ID_BYTES {
            return Err(IdError("device_id is longer than 255 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(IdError("device_id contains control characters"));
        }
        Ok(DeviceId(s.to_owned()))
    }
}

/// `!opaque[:server_name]` (room v12 IDs have no server part).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);
string_newtype!(RoomId);

impl RoomId {
    pub fn parse(s: &str) -> Result<RoomId, IdError> {
        if s.len() > MAX_ID_BYTES {
            return Err(IdError("room ID is longer than 255 bytes"));
        }
        let rest = s.strip_prefix('!').ok_or(IdError("room ID must start with '!'"))?;
        if rest.is_empty() || rest.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(IdError("room ID is malformed"));
        }
        Ok(RoomId(s.to_owned()))
    }
}

/// `#alias:server_name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomAlias(String);
string_newtype!(RoomAlias);

impl RoomAlias {
    pub fn parse(s: &str) -> Result<RoomAlias, IdError> {
        if s.len() > MAX_ID_BYTES {
            return Err(IdError("room alias is longer than 255 bytes"));
        }
        let rest = s.strip_prefix('#').ok_or(IdError("room alias must start with '#'"))?;
        let (local, server) =
            rest.split_once(':').ok_or(IdError("room alias must have the form #alias:server"))?;
        if local.is_empty() || local.chars().any(|c| c.is_control() || c == ' ') {
            return Err(IdError("room alias localpart is malformed"));
        }
        if !is_valid_server_name(server) {
            return Err(IdError("room alias has an invalid server name"));
        }
        Ok(RoomAlias(s.to_owned()))
    }

    pub fn alias(&self) -> &str {
        let end = self.0.find(':').expect("a parsed alias contains ':'");
        &self.0[1..end]
    }

    pub fn server_name(&self) -> &str {
        let start = self.0.find(':').expect("a parsed alias contains ':'");
        &self.0[start + 1..]
    }
}

/// `$opaque` (room versions 4 and later).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);
string_newtype!(EventId);

impl EventId {
    pub fn parse(s: &str) -> Result<EventId, IdError> {
        if s.len() > MAX_ID_BYTES {
            return Err(IdError("event ID is longer than 255 bytes"));
        }
        let rest = s.strip_prefix('$').ok_or(IdError("event ID must start with '$'"))?;
        if rest.is_empty() || rest.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(IdError("event ID is malformed"));
        }
        Ok(EventId(s.to_owned()))
    }
}

// Trusted constructors

macro_rules! trusted_constructor {
    ($name:ident) => {
        impl $name {
            /// Wraps an ID read from the store or out of a stored event:
            /// it was validated before it was stored, so it is not parsed
            /// again (debug builds check it).
            pub fn from_trusted(s: String) -> $name {
                debug_assert!($name::parse(&s).is_ok(), "untrusted {}: {s:?}", stringify!($name));
                $name(s)
            }
        }
    };
}
trusted_constructor!(UserId);
trusted_constructor!(DeviceId);
trusted_constructor!(RoomId);
trusted_constructor!(EventId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn user_id_accessors_split_at_the_first_colon() {
        let u = UserId::parse("@alice:example.org:8448").expect("valid");
        assert_eq!(u.localpart(), "alice");
        assert_eq!(u.server_name(), "example.org:8448");
    }

    #[test]
    fn new_local_user_ids_follow_the_strict_grammar() {
        assert!(UserId::new_local("alice.b_c=d-e/f+g", "localhost").is_ok());
        for bad in ["Alice", "", "al ice", "al:ice", "émile", "a*b"] {
            assert!(UserId::new_local(bad, "localhost").is_err(), "{bad}");
        }
        let long = "a".repeat(250);
        assert!(UserId::new_local(&long, "localhost").is_err());
    }

    #[test]
    fn historical_user_ids_parse_but_malformed_ones_do_not() {
        assert!(UserId::parse("@Alice!:example.org").is_ok());
        for bad in ["alice:example.org", "@:example.org", "@alice", "@alice:", "@al ice:x"] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names_follow_the_appendix_grammar() {
        for good in [
            "matrix.org",
            "matrix.org:8888",
            "1.2.3.4",
            "1.2.3.4:1234",
            "[1234:5678::abcd]",
            "[1234:5678::abcd]:5678",
            "localhost",
        ] {
            assert!(is_valid_server_name(good), "{good}");
        }
        for bad in ["", "matrix.org:", "matrix.org:123456", "ma_trix.org", "[::1", "[zz]", "a:b:c"]
        {
            assert!(!is_valid_server_name(bad), "{bad}");
        }
    }

    #[test]
    fn room_aliases_and_ids_parse() {
        let a = RoomAlias::parse("#chat:localhost").expect("valid");
        assert_eq!(a.alias(), "chat");
        assert_eq!(a.server_name(), "localhost");
        assert!(RoomAlias::parse("chat:localhost").is_err());
        assert!(RoomId::parse("!abc:localhost").is_ok());
        assert!(RoomId::parse("!abcdef").is_ok());
        assert!(RoomId::parse("abc").is_err());
        assert!(EventId::parse("$abc").is_ok());
        assert!(EventId::parse("$").is_err());
    }

    /// A server name by the appendix grammar: a DNS name or IPv4 address,
    /// or a bracketed IPv6 literal, with an optional port.
    fn server_name() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            "[a-zA-Z0-9-]{1,12}(\\.[a-zA-Z0-9-]{1,12}){0,3}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "\\[[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,7}\\]",
        ];
        (host, prop::option::of("[0-9]{1,5}"))
            .prop_map(|(h, port)| port.map_or(h.clone(), |p| format!("{h}:{p}")))
    }

    /// A character a grammar refuses in an ID body: a control character or
    /// a space.
    fn refused_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just(' '),
            Just('\u{7f}'),
            "[\u{0}-\u{1f}]".prop_map(|s| { s.chars().next().expect("one char") })
        ]
    }

    /// `s` with `c` inserted at the char boundary nearest `at`.
    fn insert_at(s: &str, at: usize, c: char) -> String {
        let at = (0..=at.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        let mut out = s.to_owned();
        out.insert(at, c);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn valid_server_names_are_accepted(name in server_name()) {
            prop_assert!(is_valid_server_name(&name), "{}", name);
        }

        #[test]
        fn valid_user_ids_round_trip_and_split_into_their_parts(
            local in "[!-9;-~]{1,40}",
            server in server_name(),
        ) {
            let s = format!("@{local}:{server}");
            let id = UserId::parse(&s).expect("valid user ID");
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(id.to_string(), s.clone());
            prop_assert_eq!(UserId::parse(id.as_str()).expect("valid"), id.clone());
            prop_assert_eq!(id.localpart(), local.as_str());
            prop_assert_eq!(id.server_name(), server.as_str());
        }

        #[test]
        fn new_local_user_ids_parse_back_to_themselves(
            local in "[a-z0-9._=/+-]{1,40}",
            server in server_name(),
        ) {
            let id = UserId::new_local(&local, &server).expect("valid localpart");
            prop_assert_eq!(UserId::parse(id.as_str()).expect("valid"), id.clone());
            prop_assert_eq!(id.localpart(), local.as_str());
        }

        #[test]
        fn user_ids_outside_the_grammar_are_refused(
            // Historical localpart characters but '@', so that dropping the
            // sigil cannot leave another valid user ID.
            local in "[!-9;-?A-~]{1,20}",
            server in server_name(),
            bad in prop_oneof![refused_char(), Just('é')],
            at in 0usize..20,
        ) {
            let s = format!("@{}:{server}", insert_at(&local, at, bad));
            prop_assert!(UserId::parse(&s).is_err(), "{}", s);
            // No sigil, or the wrong one.
            let bad_id = format!("{local}:{server}");
            prop_assert!(UserId::parse(&bad_id).is_err(), "{}", bad_id);
            let bad_id = format!("#{local}:{server}");
            prop_assert!(UserId::parse(&bad_id).is_err(), "{}", bad_id);
            // No server name.
            let bad_id = format!("@{local}");
            prop_assert!(UserId::parse(&bad_id).is_err(), "{}", bad_id);
            let bad_id = format!("@{local}:");
            prop_assert!(UserId::parse(&bad_id).is_err(), "{}", bad_id);
            // Too long.
            let long = format!("@{}:{server}", "a".repeat(MAX_ID_BYTES));
            prop_assert!(UserId::parse(&long).is_err());
        }

        #[test]
        fn room_and_event_ids_round_trip_and_refuse_controls_and_spaces(
            opaque in "[!-~]{1,40}|\\PC{1,10}",
            bad in refused_char(),
            at in 0usize..40,
        ) {
            prop_assume!(!opaque.contains(' '));
            let room = format!("!{opaque}");
            let id = RoomId::parse(&room).expect("valid room ID");
            prop_assert_eq!(id.as_str(), room.as_str());
            prop_assert_eq!(RoomId::parse(id.as_str()).expect("valid"), id);
            let event = format!("${opaque}");
            let id = EventId::parse(&event).expect("valid event ID");
            prop_assert_eq!(id.as_str(), event.as_str());
            prop_assert_eq!(EventId::parse(id.as_str()).expect("valid"), id);

            let broken = insert_at(&opaque, at, bad);
            let bad_id = format!("!{broken}");
            prop_assert!(RoomId::parse(&bad_id).is_err(), "{}", bad_id);
            let bad_id = format!("${broken}");
            prop_assert!(EventId::parse(&bad_id).is_err(), "{}", bad_id);
            let bad_id = format!("${opaque}");
            prop_assert!(RoomId::parse(&bad_id).is_err(), "{}", bad_id);
            let bad_id = format!("!{opaque}");
            prop_assert!(EventId::parse(&bad_id).is_err(), "{}", bad_id);
        }

        #[test]
        fn room_aliases_round_trip_and_split_into_their_parts(
            alias in "[!-9;-~]{1,40}",
            server in server_name(),
            bad in refused_char(),
            at in 0usize..40,
        ) {
            let s = format!("#{alias}:{server}");
            let id = RoomAlias::parse(&s).expect("valid alias");
            prop_assert_eq!(RoomAlias::parse(id.as_str()).expect("valid"), id.clone());
            prop_assert_eq!(id.alias(), alias.as_str());
            prop_assert_eq!(id.server_name(), server.as_str());
            let broken = insert_at(&alias, at, bad);
            let bad_id = format!("#{broken}:{server}");
            prop_assert!(RoomAlias::parse(&bad_id).is_err(), "{}", bad_id);
        }

        #[test]
        fn device_ids_round_trip_and_refuse_controls(
            device in "\\PC{1,30}",
            bad in "[\u{0}-\u{1f}\u{7f}]",
            at in 0usize..30,
        ) {
            let id = DeviceId::parse(&device).expect("valid device ID");
            prop_assert_eq!(id.as_str(), device.as_str());
            prop_assert_eq!(DeviceId::parse(id.as_str()).expect("valid"), id);
            let bad = bad.chars().next().expect("one char");
            let broken = insert_at(&device, at, bad);
            prop_assert!(DeviceId::parse(&broken).is_err(), "{:?}", broken);
        }
    }
}
