//! A user's membership in a room: `content.membership` of `m.room.member`
//! events (spec: client-server-api/#mroommember).
//!
//! The five values the spec defines, parsed once where a member event or a
//! stored membership row is read, so the rest of the code matches on an enum
//! instead of comparing strings. The authorisation rules refuse any other
//! value (rule 4.8), so nothing outside these five is ever stored. This sits
//! below `store`, which keeps membership rows in their string form
//! ([`Membership::as_str`]).

use std::fmt;

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Membership {
    Join,
    Leave,
    Invite,
    Ban,
    Knock,
}

impl Membership {
    /// The spec's string for this membership, as sent and stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Membership::Join => "join",
            Membership::Leave => "leave",
            Membership::Invite => "invite",
            Membership::Ban => "ban",
            Membership::Knock => "knock",
        }
    }

    /// One of the five spec values; `None` for anything else.
    pub fn parse(s: &str) -> Option<Membership> {
        match s {
            "join" => Some(Membership::Join),
            "leave" => Some(Membership::Leave),
            "invite" => Some(Membership::Invite),
            "ban" => Some(Membership::Ban),
            "knock" => Some(Membership::Knock),
            _ => None,
        }
    }

    /// `membership` of a member event's content; `None` when it is missing,
    /// not a string or not a spec value.
    pub fn of_content(content: &Value) -> Option<Membership> {
        content.get("membership").and_then(Value::as_str).and_then(Membership::parse)
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Membership {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ALL: [Membership; 5] = [
        Membership::Join,
        Membership::Leave,
        Membership::Invite,
        Membership::Ban,
        Membership::Knock,
    ];

    #[test]
    fn every_membership_parses_back_from_its_string() {
        for m in ALL {
            assert_eq!(Membership::parse(m.as_str()), Some(m), "{m}");
            assert_eq!(serde_json::to_value(m).ok(), Some(json!(m.as_str())));
        }
        let strings: Vec<&str> = ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(strings, ["join", "leave", "invite", "ban", "knock"]);
    }

    #[test]
    fn values_outside_the_spec_do_not_parse() {
        for bad in ["", "Join", "JOIN", "lurk", " join", "join "] {
            assert_eq!(Membership::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_membership_must_be_a_spec_string() {
        assert_eq!(Membership::of_content(&json!({"membership": "ban"})), Some(Membership::Ban));
        assert_eq!(Membership::of_content(&json!({"membership": "lurk"})), None);
        assert_eq!(Membership::of_content(&json!({"membership": 1})), None);
        assert_eq!(Membership::of_content(&json!({})), None);
    }
}
