//! Room versions Hearth supports and the rule switches that differ between them.
//!
//! spec: rooms/ (v10, v11, v12). Every rule that changes between versions is a
//! method here, so the auth rules, redaction and event formats ask the version
//! instead of comparing version strings.

use std::fmt;

/// A room version Hearth can create and serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomVersion {
    V10,
    V11,
    V12,
}

impl RoomVersion {
    /// The version new rooms get when the client does not ask for one.
    pub const DEFAULT: RoomVersion = RoomVersion::V12;

    /// Every supported version, oldest first.
    pub const ALL: [RoomVersion; 3] = [RoomVersion::V10, RoomVersion::V11, RoomVersion::V12];

    /// Parses the identifier used in `m.room.create` and `/capabilities`.
    pub fn parse(s: &str) -> Option<RoomVersion> {
        match s {
            "10" => Some(RoomVersion::V10),
            "11" => Some(RoomVersion::V11),
            "12" => Some(RoomVersion::V12),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomVersion::V10 => "10",
            RoomVersion::V11 => "11",
            RoomVersion::V12 => "12",
        }
    }

    /// v11 moved `redacts` from the top level of `m.room.redaction` into `content`
    /// and dropped `creator` from `m.room.create` (the sender is the creator).
    pub fn redacts_in_content(self) -> bool {
        !matches!(self, RoomVersion::V10)
    }

    /// v11 stopped requiring (and generating) `content.creator` in `m.room.create`.
    pub fn create_has_creator(self) -> bool {
        matches!(self, RoomVersion::V10)
    }

    /// v12: the room ID is derived from the create event's reference hash
    /// (`!` + unpadded URL-safe base64), the create event has no `room_id`, and
    /// the create event is not listed in any event's `auth_events`.
    pub fn room_id_from_create_event(self) -> bool {
        matches!(self, RoomVersion::V12)
    }

    /// v12: the create event's sender and `content.additional_creators` are
    /// "creators" with infinite power level; they may not appear in
    /// `m.room.power_levels` `users`.
    pub fn privileged_creators(self) -> bool {
        matches!(self, RoomVersion::V12)
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_supported_version() {
        for v in RoomVersion::ALL {
            assert_eq!(RoomVersion::parse(v.as_str()), Some(v));
        }
    }

    #[test]
    fn unsupported_versions_do_not_parse() {
        for s in ["1", "9", "13", "", "v12", "org.matrix.msc"] {
            assert_eq!(RoomVersion::parse(s), None, "{s}");
        }
    }
}
