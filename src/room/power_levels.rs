//! Typed `m.room.power_levels`: reading the content, the spec defaults when
//! the event (or a key) is absent, and the "may this user do X" questions the
//! auth rules and the client API ask.
//!
//! spec: client-server-api/#mroompower_levels, client-server-api/#permissions,
//! rooms/v10 (integer-only values), rooms/v12 (creators have infinite power).
//!
//! This module owns *reading and comparing* levels. It does not decide whether
//! a new `m.room.power_levels` event may replace the current one (that is the
//! auth rules' job, `room::auth`), and it does not build the content of a new
//! room's first power levels event.
//!
//! User IDs are `&str`, not `UserId`: the auth rules ask about IDs read out
//! of event JSON (`sender`, `state_key`, `users` keys) that they validate
//! themselves.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::room::version::RoomVersion;

/// The largest magnitude a power level may have: integers in events must fit
/// the canonical JSON range `[-(2**53)+1, (2**53)-1]` (spec: appendices/#canonical-json).
pub const MAX_LEVEL: i64 = (1 << 53) - 1;

/// Spec default for `ban`, `kick`, `redact`, `state_default` and `notifications.room`.
const DEFAULT_MODERATOR_LEVEL: i64 = 50;
/// v1–v11: when the room has no power levels event, the creator has level 100.
const DEFAULT_CREATOR_LEVEL: i64 = 100;

/// The integer-valued top-level keys of the content (rooms/v10 rule 9.1).
pub const INTEGER_KEYS: [&str; 7] =
    ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"];

/// The keys whose values are maps of string → integer (rooms/v10 rule 9.2).
pub const INTEGER_MAP_KEYS: [&str; 2] = ["events", "notifications"];

/// A user's power level. Room creators in v12 rooms outrank every integer,
/// so the derived order (`Int(_) < Infinite`) is exactly the comparison the
/// auth rules need: two creators are equal, and no integer reaches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PowerLevel {
    Int(i64),
    /// v12: a room creator (create event sender or `additional_creators`).
    Infinite,
}

impl From<i64> for PowerLevel {
    fn from(level: i64) -> PowerLevel {
        PowerLevel::Int(level)
    }
}

impl fmt::Display for PowerLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerLevel::Int(level) => write!(f, "{level}"),
            PowerLevel::Infinite => f.write_str("infinite (room creator)"),
        }
    }
}

/// Why a power levels content is malformed. Each variant is one of the
/// validation rules at the start of the `m.room.power_levels` auth rule
/// (rooms/v10 9.1–9.3, rooms/v12 10.1–10.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PowerLevelsError {
    /// 9.1: one of [`INTEGER_KEYS`] is present and not an integer.
    NotInteger { key: &'static str },
    /// 9.2: `events` or `notifications` is present and not a map of integers.
    NotIntegerMap { key: &'static str },
    /// 9.3: `users` is not a map of valid user IDs to integers.
    InvalidUsers { reason: String },
    /// v12 10.4: a room creator is listed in `users`.
    CreatorInUsers { user_id: String },
}

impl fmt::Display for PowerLevelsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerLevelsError::NotInteger { key } => write!(f, "`{key}` must be an integer"),
            PowerLevelsError::NotIntegerMap { key } => {
                write!(f, "`{key}` must be an object whose values are integers")
            }
            PowerLevelsError::InvalidUsers { reason } => write!(f, "`users` is invalid: {reason}"),
            PowerLevelsError::CreatorInUsers { user_id } => {
                write!(f, "room creator {user_id} may not be listed in `users`")
            }
        }
    }
}

impl std::error::Error for PowerLevelsError {}

/// The users the room version treats as the room's creator(s), read from the
/// `m.room.create` event.
///
/// - v10: `content.creator` (required by rooms/v10 rule 1.4).
/// - v11: the create event's `sender` (rooms/v11 dropped `creator`).
/// - v12: the `sender` plus `content.additional_creators`.
///
/// In v10/v11 the creator only matters for the default level 100 when the room
/// has no power levels event; in v12 creators have [`PowerLevel::Infinite`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomCreators {
    version: RoomVersion,
    user_ids: Vec<String>,
}

impl RoomCreators {
    /// Reads the creators from an accepted create event. Entries of
    /// `additional_creators` that are not strings are skipped: the auth rules
    /// reject such create events in v12, so they only occur in v10/v11 where
    /// the field means nothing.
    pub fn from_create_event(
        version: RoomVersion,
        create_sender: &str,
        create_content: &Value,
    ) -> RoomCreators {
        let mut user_ids = Vec::new();
        if version.create_has_creator() {
            // Fall back to the sender for robustness; an accepted v10 create
            // event always has `creator` (rule 1.4).
            let creator =
                create_content.get("creator").and_then(Value::as_str).unwrap_or(create_sender);
            user_ids.push(creator.to_owned());
        } else {
            user_ids.push(create_sender.to_owned());
        }
        if version.privileged_creators()
            && let Some(additional) =
                create_content.get("additional_creators").and_then(Value::as_array)
        {
            for user_id in additional.iter().filter_map(Value::as_str) {
                if !user_ids.iter().any(|u| u == user_id) {
                    user_ids.push(user_id.to_owned());
                }
            }
        }
        RoomCreators { version, user_ids }
    }

    pub fn version(&self) -> RoomVersion {
        self.version
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.user_ids.iter().any(|u| u == user_id)
    }

    /// The creators in order: the create event's creator first.
    pub fn user_ids(&self) -> &[String] {
        &self.user_ids
    }

    /// True if `user_id` has infinite power in this room (v12 creators only).
    pub fn is_privileged(&self, user_id: &str) -> bool {
        self.version.privileged_creators() && self.contains(user_id)
    }
}

/// The effective power levels of a room: the current `m.room.power_levels`
/// content with spec defaults filled in, plus the creators (whose level
/// depends on the room version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerLevels {
    creators: RoomCreators,
    /// False when the room has no power levels event; changes the creator's
    /// level in v10/v11.
    has_event: bool,
    ban: i64,
    invite: i64,
    kick: i64,
    redact: i64,
    events_default: i64,
    state_default: i64,
    users_default: i64,
    events: BTreeMap<String, i64>,
    notifications: BTreeMap<String, i64>,
    users: BTreeMap<String, i64>,
}

impl PowerLevels {
    /// The levels of a room with no `m.room.power_levels` event: every key at
    /// its spec default; creators at 100 (v10/v11) or infinite (v12), everyone
    /// else at 0.
    pub fn without_event(creators: RoomCreators) -> PowerLevels {
        PowerLevels {
            creators,
            has_event: false,
            ban: DEFAULT_MODERATOR_LEVEL,
            invite: 0,
            kick: DEFAULT_MODERATOR_LEVEL,
            redact: DEFAULT_MODERATOR_LEVEL,
            events_default: 0,
            state_default: DEFAULT_MODERATOR_LEVEL,
            users_default: 0,
            events: BTreeMap::new(),
            notifications: BTreeMap::new(),
            users: BTreeMap::new(),
        }
    }

    /// Reads a power levels content, validating it as the auth rules do
    /// (see [`validate_content`]). Absent keys take their spec defaults.
    pub fn from_content(
        creators: RoomCreators,
        content: &Value,
    ) -> Result<PowerLevels, PowerLevelsError> {
        validate_content(&creators, content)?;
        let mut levels = PowerLevels::without_event(creators);
        levels.has_event = true;
        let int =
            |key: &str, default: i64| content.get(key).and_then(Value::as_i64).unwrap_or(default);
        levels.ban = int("ban", levels.ban);
        levels.invite = int("invite", levels.invite);
        levels.kick = int("kick", levels.kick);
        levels.redact = int("redact", levels.redact);
        levels.events_default = int("events_default", levels.events_default);
        levels.state_default = int("state_default", levels.state_default);
        levels.users_default = int("users_default", levels.users_default);
        levels.events = integer_map(content, "events");
        levels.notifications = integer_map(content, "notifications");
        levels.users = integer_map(content, "users");
        Ok(levels)
    }

    /// [`PowerLevels::from_content`] for the current power levels content,
    /// or [`PowerLevels::without_event`] when the room has none.
    pub fn from_state(
        creators: RoomCreators,
        content: Option<&Value>,
    ) -> Result<PowerLevels, PowerLevelsError> {
        match content {
            Some(content) => PowerLevels::from_content(creators, content),
            None => Ok(PowerLevels::without_event(creators)),
        }
    }

    pub fn creators(&self) -> &RoomCreators {
        &self.creators
    }

    /// The level of `user_id`.
    ///
    /// Order of precedence: v12 creators are infinite; then the `users` entry;
    /// then `users_default`. Without a power levels event, v10/v11 creators
    /// have 100 and everyone else 0 (spec: m.room.power_levels `users_default`).
    pub fn user_level(&self, user_id: &str) -> PowerLevel {
        if self.creators.is_privileged(user_id) {
            return PowerLevel::Infinite;
        }
        if !self.has_event && self.creators.contains(user_id) {
            return PowerLevel::Int(DEFAULT_CREATOR_LEVEL);
        }
        PowerLevel::Int(self.users.get(user_id).copied().unwrap_or(self.users_default))
    }

    /// The level required to send an event of `event_type`: the `events`
    /// entry, else `state_default` for state events or `events_default` for
    /// message events. The auth rules never ask this for `m.room.member`
    /// (membership changes use `invite`/`kick`/`ban`), nor for
    /// `m.room.third_party_invite` (the invite level).
    pub fn event_level(&self, event_type: &str, is_state: bool) -> i64 {
        match self.events.get(event_type) {
            Some(level) => *level,
            None if is_state => self.state_default,
            None => self.events_default,
        }
    }

    /// The explicit level for a `notifications` key. Only `room` has a spec
    /// default, so other keys answer `None` when absent.
    pub fn notification_level(&self, key: &str) -> Option<i64> {
        self.notifications.get(key).copied()
    }

    /// The level required to trigger an `@room` notification (default 50).
    pub fn room_notification_level(&self) -> i64 {
        self.notification_level("room").unwrap_or(DEFAULT_MODERATOR_LEVEL)
    }

    pub fn ban(&self) -> i64 {
        self.ban
    }

    pub fn invite(&self) -> i64 {
        self.invite
    }

    pub fn kick(&self) -> i64 {
        self.kick
    }

    pub fn redact(&self) -> i64 {
        self.redact
    }

    pub fn events_default(&self) -> i64 {
        self.events_default
    }

    pub fn state_default(&self) -> i64 {
        self.state_default
    }

    pub fn users_default(&self) -> i64 {
        self.users_default
    }

    /// The explicit `users` entries (never contains v12 creators).
    pub fn users(&self) -> &BTreeMap<String, i64> {
        &self.users
    }

    fn at_least(&self, user_id: &str, required: i64) -> bool {
        self.user_level(user_id) >= PowerLevel::Int(required)
    }

    /// `user_id` may send a message event of `event_type`.
    pub fn can_send_message(&self, user_id: &str, event_type: &str) -> bool {
        self.at_least(user_id, self.event_level(event_type, false))
    }

    /// `user_id` may send a state event of `event_type` (the power-level part
    /// only; the auth rules also require membership and state key ownership).
    pub fn can_send_state(&self, user_id: &str, event_type: &str) -> bool {
        self.at_least(user_id, self.event_level(event_type, true))
    }

    /// `user_id` reaches the *invite level*.
    pub fn can_invite(&self, user_id: &str) -> bool {
        self.at_least(user_id, self.invite)
    }

    /// `user_id` reaches the *kick level* and outranks `target`.
    pub fn can_kick(&self, user_id: &str, target: &str) -> bool {
        self.at_least(user_id, self.kick) && self.user_level(target) < self.user_level(user_id)
    }

    /// `user_id` reaches the *ban level* and outranks `target`.
    pub fn can_ban(&self, user_id: &str, target: &str) -> bool {
        self.at_least(user_id, self.ban) && self.user_level(target) < self.user_level(user_id)
    }

    /// Unbanning is a `leave` over a `ban`: the auth rules (rooms/v10 4.5.3 and
    /// 4.5.4) require both the ban and the kick level and outranking the target.
    pub fn can_unban(&self, user_id: &str, target: &str) -> bool {
        self.at_least(user_id, self.ban) && self.can_kick(user_id, target)
    }

    /// `user_id` may trigger an `@room` notification.
    pub fn can_notify_room(&self, user_id: &str) -> bool {
        self.at_least(user_id, self.room_notification_level())
    }

    /// Whether a client-requested redaction by `user_id` of an event sent by
    /// `event_sender` should be allowed: sending `m.room.redaction` needs its
    /// event level, and redacting someone else's event additionally needs the
    /// *redact level* (spec: m.room.power_levels description). The auth rules
    /// never check `redact`, so the client API must check this before creating
    /// the redaction event.
    pub fn can_redact(&self, user_id: &str, event_sender: &str) -> bool {
        self.can_send_message(user_id, "m.room.redaction")
            && (user_id == event_sender || self.at_least(user_id, self.redact))
    }
}

/// Checks a power levels content the way the auth rules do before comparing
/// it with the current one (rooms/v10 rules 9.1–9.3, rooms/v12 10.1–10.4).
///
/// An absent `users` key is accepted: rule 9.3 reads "if the `users` property
/// is not an object", but the neighbouring rules say "present and not", the
/// event schema does not require `users`, and `users` defaults to empty.
pub fn validate_content(creators: &RoomCreators, content: &Value) -> Result<(), PowerLevelsError> {
    for key in INTEGER_KEYS {
        if let Some(value) = content.get(key)
            && !is_level(value)
        {
            return Err(PowerLevelsError::NotInteger { key });
        }
    }
    for key in INTEGER_MAP_KEYS {
        if let Some(value) = content.get(key) {
            let valid = value.as_object().is_some_and(|map| map.values().all(is_level));
            if !valid {
                return Err(PowerLevelsError::NotIntegerMap { key });
            }
        }
    }
    if let Some(users) = content.get("users") {
        let Some(users) = users.as_object() else {
            return Err(PowerLevelsError::InvalidUsers { reason: "not an object".to_owned() });
        };
        for (user_id, level) in users {
            if !is_user_id(user_id) {
                return Err(PowerLevelsError::InvalidUsers {
                    reason: format!("{user_id:?} is not a valid user ID"),
                });
            }
            if !is_level(level) {
                return Err(PowerLevelsError::InvalidUsers {
                    reason: format!("the level of {user_id} is not an integer"),
                });
            }
        }
        // v12 rule 10.4: creators' infinite level cannot be written down, so
        // listing them would only invite confusion about demoting them.
        if creators.version().privileged_creators()
            && let Some(user_id) = users.keys().find(|u| creators.contains(u))
        {
            return Err(PowerLevelsError::CreatorInUsers { user_id: user_id.clone() });
        }
    }
    Ok(())
}

/// The explicit value of an integer key, `None` when absent. Only meaningful
/// for validated content.
pub fn explicit_level(content: &Value, key: &str) -> Option<i64> {
    content.get(key).and_then(Value::as_i64)
}

/// The entries of an integer map key (`events`, `notifications`, `users`),
/// empty when absent. Only meaningful for validated content.
pub fn integer_map(content: &Value, key: &str) -> BTreeMap<String, i64> {
    content
        .get(key)
        .and_then(Value::as_object)
        .map(|map| map.iter().filter_map(|(k, v)| v.as_i64().map(|v| (k.clone(), v))).collect())
        .unwrap_or_default()
}

/// v10+: a level is a JSON integer (never a string or float) within the
/// canonical JSON range.
fn is_level(value: &Value) -> bool {
    value.as_i64().is_some_and(|level| (-MAX_LEVEL..=MAX_LEVEL).contains(&level))
}

/// Minimal user ID check: `@localpart:server_name`, both parts non-empty, at
/// most 255 bytes. Deliberately lenient about characters so historical user
/// IDs (spec: appendices/#historical-user-ids) pass, as they do for `sender`.
/// A stand-in until the crate's identifier module is wired in here.
pub(crate) fn is_user_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('@') else {
        return false;
    };
    let Some((localpart, server_name)) = rest.split_once(':') else {
        return false;
    };
    !localpart.is_empty() && !server_name.is_empty() && s.len() <= 255
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ALICE: &str = "@alice:hearth.test";
    const BOB: &str = "@bob:hearth.test";
    const CAROL: &str = "@carol:hearth.test";

    fn creators(version: RoomVersion) -> RoomCreators {
        let content = match version {
            RoomVersion::V10 => json!({ "creator": ALICE, "room_version": "10" }),
            _ => json!({ "room_version": version.as_str() }),
        };
        RoomCreators::from_create_event(version, ALICE, &content)
    }

    fn levels(version: RoomVersion, content: Value) -> PowerLevels {
        PowerLevels::from_content(creators(version), &content).expect("valid content")
    }

    #[test]
    fn without_event_creator_has_100_in_v10_and_v11() {
        for version in [RoomVersion::V10, RoomVersion::V11] {
            let pl = PowerLevels::without_event(creators(version));
            assert_eq!(pl.user_level(ALICE), PowerLevel::Int(100), "{version}");
            assert_eq!(pl.user_level(BOB), PowerLevel::Int(0), "{version}");
        }
    }

    #[test]
    fn without_event_creator_is_infinite_in_v12() {
        let pl = PowerLevels::without_event(creators(RoomVersion::V12));
        assert_eq!(pl.user_level(ALICE), PowerLevel::Infinite);
        assert_eq!(pl.user_level(BOB), PowerLevel::Int(0));
    }

    #[test]
    fn without_event_defaults_match_spec() {
        let pl = PowerLevels::without_event(creators(RoomVersion::V11));
        assert_eq!((pl.ban(), pl.kick(), pl.redact(), pl.invite()), (50, 50, 50, 0));
        assert_eq!((pl.events_default(), pl.state_default()), (0, 50));
        assert_eq!(pl.users_default(), 0);
        assert_eq!(pl.room_notification_level(), 50);
    }

    #[test]
    fn v10_creator_comes_from_content_creator() {
        let content = json!({ "creator": BOB });
        let creators = RoomCreators::from_create_event(RoomVersion::V10, ALICE, &content);
        assert_eq!(creators.user_ids(), [BOB.to_owned()]);
    }

    #[test]
    fn additional_creators_count_only_in_v12() {
        let content = json!({ "additional_creators": [BOB] });
        let v11 = RoomCreators::from_create_event(RoomVersion::V11, ALICE, &content);
        let v12 = RoomCreators::from_create_event(RoomVersion::V12, ALICE, &content);
        assert!(!v11.contains(BOB));
        assert!(v12.is_privileged(BOB));
        assert_eq!(PowerLevels::without_event(v12).user_level(BOB), PowerLevel::Infinite);
    }

    #[test]
    fn with_event_v11_creator_level_comes_from_users() {
        let pl = levels(RoomVersion::V11, json!({ "users": { BOB: 75 }, "users_default": 10 }));
        assert_eq!(pl.user_level(ALICE), PowerLevel::Int(10));
        assert_eq!(pl.user_level(BOB), PowerLevel::Int(75));
    }

    #[test]
    fn with_event_v12_creator_stays_infinite() {
        let pl = levels(RoomVersion::V12, json!({ "users_default": 10 }));
        assert_eq!(pl.user_level(ALICE), PowerLevel::Infinite);
        assert_eq!(pl.user_level(CAROL), PowerLevel::Int(10));
    }

    #[test]
    fn infinite_outranks_every_integer_and_equals_itself() {
        assert!(PowerLevel::Infinite > PowerLevel::Int(MAX_LEVEL));
        assert!(PowerLevel::Int(-5) < PowerLevel::Int(3));
        assert!(PowerLevel::Infinite >= PowerLevel::Infinite);
        assert!(PowerLevel::Infinite <= PowerLevel::Infinite);
    }

    #[test]
    fn event_level_uses_events_then_defaults() {
        let pl = levels(
            RoomVersion::V11,
            json!({ "events": { "m.room.name": 20, "m.reaction": 5 }, "events_default": 1, "state_default": 40 }),
        );
        assert_eq!(pl.event_level("m.room.name", true), 20);
        assert_eq!(pl.event_level("m.reaction", false), 5);
        assert_eq!(pl.event_level("m.room.topic", true), 40);
        assert_eq!(pl.event_level("m.room.message", false), 1);
    }

    #[test]
    fn absent_keys_in_event_take_defaults() {
        let pl = levels(RoomVersion::V10, json!({}));
        assert_eq!((pl.ban(), pl.kick(), pl.redact(), pl.invite()), (50, 50, 50, 0));
        assert_eq!(pl.state_default(), 50);
        assert_eq!(pl.user_level(ALICE), PowerLevel::Int(0));
    }

    #[test]
    fn room_notification_level_reads_notifications_room() {
        let pl = levels(
            RoomVersion::V11,
            json!({ "notifications": { "room": 20 }, "users": { BOB: 20 } }),
        );
        assert_eq!(pl.room_notification_level(), 20);
        assert!(pl.can_notify_room(BOB));
        assert!(!pl.can_notify_room(CAROL));
    }

    #[test]
    fn string_level_is_rejected() {
        let err = PowerLevels::from_content(creators(RoomVersion::V10), &json!({ "ban": "50" }));
        assert_eq!(err, Err(PowerLevelsError::NotInteger { key: "ban" }));
    }

    #[test]
    fn float_level_is_rejected() {
        let err = validate_content(&creators(RoomVersion::V11), &json!({ "kick": 50.0 }));
        assert_eq!(err, Err(PowerLevelsError::NotInteger { key: "kick" }));
    }

    #[test]
    fn level_outside_canonical_json_range_is_rejected() {
        let err =
            validate_content(&creators(RoomVersion::V11), &json!({ "invite": MAX_LEVEL + 1 }));
        assert_eq!(err, Err(PowerLevelsError::NotInteger { key: "invite" }));
        assert_eq!(
            validate_content(&creators(RoomVersion::V11), &json!({ "invite": -MAX_LEVEL })),
            Ok(())
        );
    }

    #[test]
    fn events_map_with_non_integer_value_is_rejected() {
        let err = validate_content(
            &creators(RoomVersion::V11),
            &json!({ "events": { "m.room.name": "50" } }),
        );
        assert_eq!(err, Err(PowerLevelsError::NotIntegerMap { key: "events" }));
        let err = validate_content(&creators(RoomVersion::V11), &json!({ "notifications": 5 }));
        assert_eq!(err, Err(PowerLevelsError::NotIntegerMap { key: "notifications" }));
    }

    #[test]
    fn users_with_invalid_user_id_is_rejected() {
        let err = validate_content(&creators(RoomVersion::V11), &json!({ "users": { "bob": 50 } }));
        assert!(matches!(err, Err(PowerLevelsError::InvalidUsers { .. })), "{err:?}");
        let err = validate_content(&creators(RoomVersion::V11), &json!({ "users": [] }));
        assert!(matches!(err, Err(PowerLevelsError::InvalidUsers { .. })), "{err:?}");
    }

    #[test]
    fn creator_in_users_is_rejected_only_in_v12() {
        let content = json!({ "users": { ALICE: 100 } });
        assert_eq!(validate_content(&creators(RoomVersion::V11), &content), Ok(()));
        assert_eq!(
            validate_content(&creators(RoomVersion::V12), &content),
            Err(PowerLevelsError::CreatorInUsers { user_id: ALICE.to_owned() })
        );
    }

    #[test]
    fn kick_and_ban_need_level_and_outranking_target() {
        let pl = levels(RoomVersion::V11, json!({ "users": { ALICE: 100, BOB: 50, CAROL: 50 } }));
        assert!(pl.can_kick(ALICE, BOB));
        assert!(pl.can_ban(ALICE, BOB));
        assert!(!pl.can_kick(BOB, CAROL), "equal levels may not kick each other");
        assert!(!pl.can_ban(BOB, ALICE));
    }

    #[test]
    fn v12_creators_cannot_kick_each_other() {
        let content = json!({ "additional_creators": [BOB] });
        let creators = RoomCreators::from_create_event(RoomVersion::V12, ALICE, &content);
        let pl = PowerLevels::without_event(creators);
        assert!(!pl.can_kick(ALICE, BOB));
        assert!(pl.can_kick(ALICE, CAROL));
    }

    #[test]
    fn unban_needs_both_ban_and_kick_levels() {
        let pl = levels(RoomVersion::V11, json!({ "ban": 50, "kick": 80, "users": { ALICE: 60 } }));
        assert!(pl.can_ban(ALICE, BOB));
        assert!(!pl.can_unban(ALICE, BOB));
    }

    #[test]
    fn invite_uses_invite_level() {
        let pl = levels(RoomVersion::V11, json!({ "invite": 10, "users": { BOB: 10 } }));
        assert!(pl.can_invite(BOB));
        assert!(!pl.can_invite(CAROL));
    }

    #[test]
    fn can_send_state_uses_state_level() {
        let pl = levels(
            RoomVersion::V11,
            json!({ "events": { "m.room.topic": 0 }, "users": { BOB: 10 } }),
        );
        assert!(pl.can_send_state(BOB, "m.room.topic"));
        assert!(!pl.can_send_state(BOB, "m.room.name"));
        assert!(pl.can_send_message(BOB, "m.room.message"));
    }

    #[test]
    fn redacting_own_event_needs_only_redaction_event_level() {
        let pl = levels(RoomVersion::V11, json!({ "redact": 50 }));
        assert!(pl.can_redact(BOB, BOB));
        assert!(!pl.can_redact(BOB, CAROL));
    }

    #[test]
    fn redacting_needs_redaction_event_level_even_for_own_events() {
        let pl =
            levels(RoomVersion::V11, json!({ "events": { "m.room.redaction": 10 }, "redact": 0 }));
        assert!(!pl.can_redact(BOB, BOB));
        assert!(!pl.can_redact(BOB, CAROL));
    }

    #[test]
    fn user_id_check_requires_sigil_and_both_parts() {
        assert!(is_user_id("@a:b"));
        assert!(is_user_id("@a:b.example:8448"));
        for bad in ["a:b", "@:b", "@a:", "@a", "", "!a:b"] {
            assert!(!is_user_id(bad), "{bad}");
        }
        assert!(!is_user_id(&format!("@{}:b", "a".repeat(260))));
    }
}
