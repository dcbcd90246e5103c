//! The authorisation rules of room versions 10, 11 and 12: may this event be
//! accepted given a room state?
//!
//! spec: rooms/v10/#authorisation-rules, rooms/v11/#authorisation-rules,
//! rooms/v12/#authorisation-rules, server-server-api/#auth-events-selection.
//!
//! This module owns the rules themselves and nothing else. It never touches
//! storage: the caller hands in a lookup of the state to check against (the
//! room's current state for a locally created event; for federation later,
//! the state built from the event's `auth_events`, or the state before the
//! event). It also does not:
//!
//! - verify signatures. "Events must be signed by the server denoted by the
//!   `sender`" and rule 4.2 (`join_authorised_via_users_server` must have
//!   signed) belong with the other signature checks on receipt of a PDU;
//!   [`servers_that_must_sign`] says which servers those are.
//! - check whether `auth_events` were themselves rejected (rule 2.3 / v12
//!   3.3): that needs the store. [`check_auth_events`] covers the rest of
//!   that rule.
//! - apply redactions. `m.room.redaction` events pass the auth rules like any
//!   other event (only `events`/`events_default` gate them); the *redact
//!   level* is checked by the client API before sending
//!   ([`PowerLevels::can_redact`]) and when deciding whether a received
//!   redaction takes effect ([`redaction_takes_effect`]).
//!
//! Rule numbers in comments and errors are the v10/v11 ones unless stated;
//! v12 inserted rule 2 (room ID is the create event's ID), so its later rules
//! are one higher, and it inserted 10.4 into the power levels rule.

use std::fmt;

use serde_json::Value;

use crate::room::power_levels::{
    self, INTEGER_KEYS, INTEGER_MAP_KEYS, PowerLevel, PowerLevels, PowerLevelsError, RoomCreators,
};
use crate::room::version::RoomVersion;

/// What the auth rules need to know about an event, whether it is the event
/// being checked or one from the room state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthEvent {
    pub event_id: String,
    /// `None` only for v12 `m.room.create` events, whose ID is the room's ID.
    pub room_id: Option<String>,
    pub event_type: String,
    /// `Some` for state events.
    pub state_key: Option<String>,
    pub sender: String,
    pub content: Value,
    /// Needed for rule 1.1 (create has no `prev_events`) and rule 4.3.1 (the
    /// creator's first join directly follows the create event).
    pub prev_events: Vec<String>,
}

impl AuthEvent {
    fn content_str(&self, key: &str) -> Option<&str> {
        self.content.get(key).and_then(Value::as_str)
    }
}

/// A lookup of room state by `(event_type, state_key)`.
///
/// Unlike `auth_events` in v12, it must return the `m.room.create` event in
/// every room version: the rules read it (creators, `m.federate`).
pub type StateLookup<'s, 'a> = &'s dyn Fn(&str, &str) -> Option<&'a AuthEvent>;

/// The auth rule an event failed, named after what it forbids. [`Rule::number`]
/// gives the spec's numbering, which shifts in v12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// 1.1: a create event must not have `prev_events`.
    CreateHasPrevEvents,
    /// v10/v11 1.2: the room ID's domain must be the sender's domain.
    CreateRoomIdDomainMismatch,
    /// v12 1.2: a create event must not have a `room_id`.
    CreateHasRoomId,
    /// 1.3: `content.room_version`, if present, must be a recognised version.
    CreateUnknownRoomVersion,
    /// v10 1.4: `content.creator` is required.
    CreateMissingCreator,
    /// v12 1.4: `additional_creators` must be an array of valid user IDs.
    CreateInvalidAdditionalCreators,
    /// v12 2: the `room_id` must be the create event's ID with `!` for `$`.
    RoomIdNotCreateEvent,
    /// 2.1: two `auth_events` with the same `(type, state_key)`.
    AuthEventsDuplicate,
    /// 2.2: an `auth_events` entry the selection algorithm would not pick.
    AuthEventsUnexpected,
    /// v10/v11 2.4: no `m.room.create` among the auth events.
    AuthEventsMissingCreate,
    /// 2.5: an auth event belongs to another room.
    AuthEventsWrongRoom,
    /// 3: `m.federate: false` and the sender is on another server.
    FederationDisabled,
    /// 4.1: a member event needs a `state_key` and `content.membership`.
    MemberMissingFields,
    /// 4.3.2: only the user themself may join.
    JoinSenderNotTarget,
    /// 4.3.3: a banned user may not join.
    JoinSenderBanned,
    /// 4.3.5.2: a restricted join needs an authorising joined member who may invite.
    JoinRestrictedUnauthorised,
    /// 4.3.7: the join rule does not let this user join.
    JoinRuleForbids,
    /// 4.4.1.1: a third-party invite to a banned user.
    ThirdPartyInviteTargetBanned,
    /// 4.4.1.2: `third_party_invite` has no `signed`.
    ThirdPartyInviteMissingSigned,
    /// 4.4.1.3: `signed` lacks `mxid` or `token`.
    ThirdPartyInviteSignedIncomplete,
    /// 4.4.1.4: `signed.mxid` is not the invited user.
    ThirdPartyInviteMxidMismatch,
    /// 4.4.1.5: no `m.room.third_party_invite` with the token as state key.
    ThirdPartyInviteNoMatchingEvent,
    /// 4.4.1.6: the sender did not send the `m.room.third_party_invite`.
    ThirdPartyInviteSenderMismatch,
    /// 4.4.1.8: no signature in `signed` verified (Hearth does not verify them yet).
    ThirdPartyInviteUnverified,
    /// 4.4.2: only joined members may invite.
    InviteSenderNotJoined,
    /// 4.4.3: the target is already joined or is banned.
    InviteTargetJoinedOrBanned,
    /// 4.4.5: the sender is below the invite level.
    InviteInsufficientPower,
    /// 4.5.1: leaving (or rejecting) needs an invite, join or knock.
    LeaveSelfNotMember,
    /// 4.5.2: only joined members may kick or unban.
    LeaveSenderNotJoined,
    /// 4.5.3: unbanning needs the ban level.
    UnbanInsufficientPower,
    /// 4.5.5: kicking needs the kick level and outranking the target.
    KickInsufficientPower,
    /// 4.6.1: only joined members may ban.
    BanSenderNotJoined,
    /// 4.6.3: banning needs the ban level and outranking the target.
    BanInsufficientPower,
    /// 4.7.1: knocking needs join rule `knock` or `knock_restricted`.
    KnockJoinRule,
    /// 4.7.2: only the user themself may knock.
    KnockSenderNotTarget,
    /// 4.7.4: banned, invited or joined users may not knock.
    KnockAlreadyMember,
    /// 4.8: an unknown `membership` value.
    MembershipUnknown,
    /// 5: every other event needs the sender to be joined.
    SenderNotJoined,
    /// 6.1: `m.room.third_party_invite` needs the invite level.
    ThirdPartyInviteEventInsufficientPower,
    /// 7: the sender is below the event type's required level.
    EventInsufficientPower,
    /// 8: a state key that is a user ID must be the sender's.
    StateKeyImpersonation,
    /// 9.1: a top-level level is not an integer.
    PowerLevelsNotInteger,
    /// 9.2: `events`/`notifications` is not a map of integers.
    PowerLevelsNotIntegerMap,
    /// 9.3: `users` is not a map of user IDs to integers.
    PowerLevelsInvalidUsers,
    /// v12 10.4: a creator is listed in `users`.
    PowerLevelsCreatorInUsers,
    /// 9.5.1: changing a top-level level that is above the sender.
    PowerLevelsCurrentAboveSender,
    /// 9.5.2: setting a top-level level above the sender.
    PowerLevelsNewAboveSender,
    /// 9.6.1: changing an `events`/`notifications` entry that is above the sender.
    PowerLevelsMapCurrentAboveSender,
    /// 9.7.1: setting an `events`/`notifications` entry above the sender.
    PowerLevelsMapNewAboveSender,
    /// 9.8.1: changing another user whose level is not below the sender's.
    PowerLevelsUserNotBelowSender,
    /// 9.9.1: giving a user a level above the sender's.
    PowerLevelsUserNewAboveSender,
    /// Not a spec rule: the current power levels event in the state is
    /// malformed, which accepted state cannot be; the room state is corrupt.
    CurrentStateInvalid,
}

impl Rule {
    /// The rule's number in the spec page of `version`, e.g. `"4.3.3"`.
    pub fn number(self, version: RoomVersion) -> &'static str {
        let (v10_v11, v12) = match self {
            Rule::CreateHasPrevEvents => ("1.1", "1.1"),
            Rule::CreateRoomIdDomainMismatch => ("1.2", "1.2"),
            Rule::CreateHasRoomId => ("1.2", "1.2"),
            Rule::CreateUnknownRoomVersion => ("1.3", "1.3"),
            Rule::CreateMissingCreator => ("1.4", "1.4"),
            Rule::CreateInvalidAdditionalCreators => ("1.4", "1.4"),
            Rule::RoomIdNotCreateEvent => ("2", "2"),
            Rule::AuthEventsDuplicate => ("2.1", "3.1"),
            Rule::AuthEventsUnexpected => ("2.2", "3.2"),
            Rule::AuthEventsMissingCreate => ("2.4", "2"),
            Rule::AuthEventsWrongRoom => ("2.5", "3.5"),
            Rule::FederationDisabled => ("3", "4"),
            Rule::MemberMissingFields => ("4.1", "5.1"),
            Rule::JoinSenderNotTarget => ("4.3.2", "5.3.2"),
            Rule::JoinSenderBanned => ("4.3.3", "5.3.3"),
            Rule::JoinRestrictedUnauthorised => ("4.3.5.2", "5.3.5.2"),
            Rule::JoinRuleForbids => ("4.3.7", "5.3.7"),
            Rule::ThirdPartyInviteTargetBanned => ("4.4.1.1", "5.4.1.1"),
            Rule::ThirdPartyInviteMissingSigned => ("4.4.1.2", "5.4.1.2"),
            Rule::ThirdPartyInviteSignedIncomplete => ("4.4.1.3", "5.4.1.3"),
            Rule::ThirdPartyInviteMxidMismatch => ("4.4.1.4", "5.4.1.4"),
            Rule::ThirdPartyInviteNoMatchingEvent => ("4.4.1.5", "5.4.1.5"),
            Rule::ThirdPartyInviteSenderMismatch => ("4.4.1.6", "5.4.1.6"),
            Rule::ThirdPartyInviteUnverified => ("4.4.1.8", "5.4.1.8"),
            Rule::InviteSenderNotJoined => ("4.4.2", "5.4.2"),
            Rule::InviteTargetJoinedOrBanned => ("4.4.3", "5.4.3"),
            Rule::InviteInsufficientPower => ("4.4.5", "5.4.5"),
            Rule::LeaveSelfNotMember => ("4.5.1", "5.5.1"),
            Rule::LeaveSenderNotJoined => ("4.5.2", "5.5.2"),
            Rule::UnbanInsufficientPower => ("4.5.3", "5.5.3"),
            Rule::KickInsufficientPower => ("4.5.5", "5.5.5"),
            Rule::BanSenderNotJoined => ("4.6.1", "5.6.1"),
            Rule::BanInsufficientPower => ("4.6.3", "5.6.3"),
            Rule::KnockJoinRule => ("4.7.1", "5.7.1"),
            Rule::KnockSenderNotTarget => ("4.7.2", "5.7.2"),
            Rule::KnockAlreadyMember => ("4.7.4", "5.7.4"),
            Rule::MembershipUnknown => ("4.8", "5.8"),
            Rule::SenderNotJoined => ("5", "6"),
            Rule::ThirdPartyInviteEventInsufficientPower => ("6.1", "7.1"),
            Rule::EventInsufficientPower => ("7", "8"),
            Rule::StateKeyImpersonation => ("8", "9"),
            Rule::PowerLevelsNotInteger => ("9.1", "10.1"),
            Rule::PowerLevelsNotIntegerMap => ("9.2", "10.2"),
            Rule::PowerLevelsInvalidUsers => ("9.3", "10.3"),
            Rule::PowerLevelsCreatorInUsers => ("10.4", "10.4"),
            Rule::PowerLevelsCurrentAboveSender => ("9.5.1", "10.6.1"),
            Rule::PowerLevelsNewAboveSender => ("9.5.2", "10.6.2"),
            Rule::PowerLevelsMapCurrentAboveSender => ("9.6.1", "10.7.1"),
            Rule::PowerLevelsMapNewAboveSender => ("9.7.1", "10.8.1"),
            Rule::PowerLevelsUserNotBelowSender => ("9.8.1", "10.9.1"),
            Rule::PowerLevelsUserNewAboveSender => ("9.9.1", "10.10.1"),
            Rule::CurrentStateInvalid => ("-", "-"),
        };
        match version {
            RoomVersion::V10 | RoomVersion::V11 => v10_v11,
            RoomVersion::V12 => v12,
        }
    }
}

/// An event failed the auth rules. Its `Display` names the reason, room
/// version and rule, and is meant as the `error` text of an `M_FORBIDDEN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    version: RoomVersion,
    rule: Rule,
    reason: String,
}

impl AuthError {
    fn new(version: RoomVersion, rule: Rule, reason: impl Into<String>) -> AuthError {
        AuthError { version, rule, reason: reason.into() }
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    pub fn version(&self) -> RoomVersion {
        self.version
    }

    /// The reason without the rule reference.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (room version {} auth rule {})",
            self.reason,
            self.version,
            self.rule.number(self.version)
        )
    }
}

impl std::error::Error for AuthError {}

type AuthResult = Result<(), AuthError>;

/// The `(event_type, state_key)` pairs whose current state events are the
/// auth events of `event` (spec: server-server-api/#auth-events-selection).
///
/// Depends only on the event, so the same list serves picking `auth_events`
/// for a new event and checking a received event's `auth_events`. In v12 the
/// create event is not selected: the `room_id` names it.
pub fn auth_types_for_event(version: RoomVersion, event: &AuthEvent) -> Vec<(String, String)> {
    let mut types: Vec<(String, String)> = Vec::new();
    let mut push = |event_type: &str, state_key: &str| {
        let pair = (event_type.to_owned(), state_key.to_owned());
        if !types.contains(&pair) {
            types.push(pair);
        }
    };
    if event.event_type == "m.room.create" {
        return Vec::new();
    }
    if !version.room_id_from_create_event() {
        push("m.room.create", "");
    }
    push("m.room.power_levels", "");
    push("m.room.member", &event.sender);
    if event.event_type == "m.room.member" {
        if let Some(target) = &event.state_key {
            push("m.room.member", target);
        }
        let membership = event.content_str("membership");
        if matches!(membership, Some("join" | "invite" | "knock")) {
            push("m.room.join_rules", "");
        }
        if membership == Some("invite")
            && let Some(token) = event
                .content
                .get("third_party_invite")
                .and_then(|invite| invite.get("signed"))
                .and_then(|signed| signed.get("token"))
                .and_then(Value::as_str)
        {
            push("m.room.third_party_invite", token);
        }
        // Every supported version (v8+) has restricted rooms.
        if membership == Some("join")
            && let Some(authoriser) = event.content_str("join_authorised_via_users_server")
        {
            push("m.room.member", authoriser);
        }
    }
    types
}

/// Rules 2.1, 2.2, 2.4 and 2.5 (v12: 3.1, 3.2, 3.5) on a received event's
/// `auth_events`. Rule 2.3 (an auth event was itself rejected) is left to the
/// caller, which knows which events it rejected. Locally created events pick
/// their auth events with [`auth_types_for_event`] and need not call this.
pub fn check_auth_events(
    version: RoomVersion,
    event: &AuthEvent,
    auth_events: &[&AuthEvent],
) -> AuthResult {
    // Rule 1 allows or rejects create events before rule 2 is reached.
    if event.event_type == "m.room.create" {
        return Ok(());
    }
    let fail = |rule, reason: String| Err(AuthError::new(version, rule, reason));
    let expected = auth_types_for_event(version, event);
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for auth_event in auth_events {
        let Some(state_key) = auth_event.state_key.as_deref() else {
            return fail(
                Rule::AuthEventsUnexpected,
                format!("auth event {} is not a state event", auth_event.event_id),
            );
        };
        let pair = (auth_event.event_type.as_str(), state_key);
        if seen.contains(&pair) {
            return fail(
                Rule::AuthEventsDuplicate,
                format!("more than one auth event for ({}, {state_key:?})", pair.0),
            );
        }
        seen.push(pair);
        if !expected.iter().any(|(t, k)| t == pair.0 && k == pair.1) {
            return fail(
                Rule::AuthEventsUnexpected,
                format!("auth event ({}, {state_key:?}) is not selected for this event", pair.0),
            );
        }
        if auth_event.room_id != event.room_id {
            return fail(
                Rule::AuthEventsWrongRoom,
                format!("auth event {} is from another room", auth_event.event_id),
            );
        }
    }
    if !version.room_id_from_create_event() && !seen.contains(&("m.room.create", "")) {
        return fail(
            Rule::AuthEventsMissingCreate,
            "no m.room.create among the auth events".to_owned(),
        );
    }
    Ok(())
}

/// Checks `event` against the room state given by `state` (which must return
/// the `m.room.create` event in every version).
///
/// For a locally created event `state` is the room's current state and the
/// event's `prev_events` are the room's forward extremities.
pub fn check<'a>(
    version: RoomVersion,
    event: &AuthEvent,
    state: StateLookup<'_, 'a>,
) -> AuthResult {
    // Rule 1: the create event is judged on its own.
    if event.event_type == "m.room.create" {
        return check_create(version, event);
    }
    let room = Room::load(version, event, state)?;

    // Rule 3: `m.federate: false` keeps other servers out entirely.
    if room.create.content.get("m.federate") == Some(&Value::Bool(false))
        && server_name(&event.sender) != server_name(&room.create.sender)
    {
        return room.fail(
            Rule::FederationDisabled,
            "the room does not federate and the sender is on another server",
        );
    }

    // Rule 4: membership changes have rules of their own and end here.
    if event.event_type == "m.room.member" {
        return check_member(&room, event);
    }

    // Rule 5.
    if room.membership(&event.sender)? != "join" {
        return room.fail(Rule::SenderNotJoined, "the sender is not joined to the room");
    }

    let sender_level = room.power_levels.user_level(&event.sender);

    // Rule 6: a third-party invite placeholder is an invitation, so the
    // invite level governs it rather than its event level.
    if event.event_type == "m.room.third_party_invite" {
        if room.power_levels.can_invite(&event.sender) {
            return Ok(());
        }
        return room.fail(
            Rule::ThirdPartyInviteEventInsufficientPower,
            format!(
                "sending m.room.third_party_invite needs the invite level {}, the sender has {sender_level}",
                room.power_levels.invite()
            ),
        );
    }

    // Rule 7. This is also the only check on `m.room.redaction`: the redact
    // level is not part of the auth rules (see the module docs).
    let required = room.power_levels.event_level(&event.event_type, event.state_key.is_some());
    if PowerLevel::Int(required) > sender_level {
        return room.fail(
            Rule::EventInsufficientPower,
            format!(
                "sending {} needs power level {required}, the sender has {sender_level}",
                event.event_type
            ),
        );
    }

    // Rule 8: state keyed by a user ID belongs to that user.
    if let Some(state_key) = &event.state_key
        && state_key.starts_with('@')
        && *state_key != event.sender
    {
        return room.fail(
            Rule::StateKeyImpersonation,
            "a state key that is a user ID must be the sender's own",
        );
    }

    // Rule 9.
    if event.event_type == "m.room.power_levels" {
        return check_power_levels(&room, event, sender_level);
    }

    // Rule 10.
    Ok(())
}

/// The room's effective power levels in `state` (creators from the create
/// event, spec defaults when there is no power levels event). For callers that
/// need [`PowerLevels::can_redact`] or [`redaction_takes_effect`].
pub fn current_power_levels<'a>(
    version: RoomVersion,
    state: StateLookup<'_, 'a>,
) -> Result<PowerLevels, AuthError> {
    let Some(create) = state("m.room.create", "") else {
        return Err(AuthError::new(
            version,
            Rule::AuthEventsMissingCreate,
            "the room has no m.room.create event",
        ));
    };
    let creators = RoomCreators::from_create_event(version, &create.sender, &create.content);
    let content = state("m.room.power_levels", "").map(|event| &event.content);
    PowerLevels::from_state(creators, content).map_err(|err| {
        AuthError::new(
            version,
            Rule::CurrentStateInvalid,
            format!("the current m.room.power_levels is invalid: {err}"),
        )
    })
}

/// Whether a received redaction should be applied to the event it redacts
/// (spec: rooms/v3 "Handling redactions", unchanged through v12): the
/// redacting user reaches the *redact level*, or is on the same server as
/// the original sender. Passing the auth rules alone is not enough.
pub fn redaction_takes_effect(
    power_levels: &PowerLevels,
    redaction_sender: &str,
    original_sender: &str,
) -> bool {
    power_levels.user_level(redaction_sender) >= PowerLevel::Int(power_levels.redact())
        || server_name(redaction_sender) == server_name(original_sender)
}

/// The servers whose signatures `event` must carry for the auth rules to
/// hold: the `sender`'s server (preamble of every version's rules) and, for a
/// restricted join, the server of `join_authorised_via_users_server` (rule
/// 4.2). Verifying them is the caller's job.
pub fn servers_that_must_sign(event: &AuthEvent) -> Vec<String> {
    let mut servers = Vec::new();
    if let Some(server) = server_name(&event.sender) {
        servers.push(server.to_owned());
    }
    if event.event_type == "m.room.member"
        && let Some(server) =
            event.content_str("join_authorised_via_users_server").and_then(server_name)
        && !servers.iter().any(|s| s == server)
    {
        servers.push(server.to_owned());
    }
    servers
}

/// Rule 1: `m.room.create`.
fn check_create(version: RoomVersion, event: &AuthEvent) -> AuthResult {
    let fail = |rule, reason: &str| Err(AuthError::new(version, rule, reason));
    // 1.1
    if !event.prev_events.is_empty() {
        return fail(Rule::CreateHasPrevEvents, "m.room.create must not have prev_events");
    }
    // 1.2
    if version.room_id_from_create_event() {
        // v12: the room ID is derived from this event's ID, so it cannot be
        // part of the event.
        if event.room_id.is_some() {
            return fail(Rule::CreateHasRoomId, "m.room.create must not have a room_id");
        }
    } else {
        let room_server = event.room_id.as_deref().and_then(server_name);
        if room_server.is_none() || room_server != server_name(&event.sender) {
            return fail(
                Rule::CreateRoomIdDomainMismatch,
                "the room ID's domain must be the sender's server",
            );
        }
    }
    // 1.3: "recognised" is read as "a version Hearth implements"; a room of
    // any other version could not be served anyway.
    if let Some(room_version) = event.content.get("room_version")
        && room_version.as_str().and_then(RoomVersion::parse).is_none()
    {
        return fail(Rule::CreateUnknownRoomVersion, "unknown room_version");
    }
    // v10 1.4.
    if version.create_has_creator() && event.content.get("creator").is_none() {
        return fail(Rule::CreateMissingCreator, "m.room.create must have content.creator");
    }
    // v12 1.4.
    if version.privileged_creators()
        && let Some(additional) = event.content.get("additional_creators")
    {
        let valid = additional.as_array().is_some_and(|users| {
            users.iter().all(|u| u.as_str().is_some_and(power_levels::is_user_id))
        });
        if !valid {
            return fail(
                Rule::CreateInvalidAdditionalCreators,
                "additional_creators must be an array of user IDs",
            );
        }
    }
    Ok(())
}

/// The state the rules read, resolved once per check.
struct Room<'s, 'a> {
    version: RoomVersion,
    room_id: &'s str,
    state: StateLookup<'s, 'a>,
    create: &'a AuthEvent,
    power_levels: PowerLevels,
}

impl<'s, 'a> Room<'s, 'a> {
    /// Finds the create event and checks the event belongs to its room
    /// (v12 rule 2; v10/v11 rules 2.4 and 2.5 applied to the state).
    fn load(
        version: RoomVersion,
        event: &'s AuthEvent,
        state: StateLookup<'s, 'a>,
    ) -> Result<Room<'s, 'a>, AuthError> {
        let v12 = version.room_id_from_create_event();
        let wrong_room = if v12 { Rule::RoomIdNotCreateEvent } else { Rule::AuthEventsWrongRoom };
        let Some(room_id) = event.room_id.as_deref() else {
            return Err(AuthError::new(version, wrong_room, "the event has no room_id"));
        };
        let Some(create) = state("m.room.create", "") else {
            let rule = if v12 { Rule::RoomIdNotCreateEvent } else { Rule::AuthEventsMissingCreate };
            return Err(AuthError::new(version, rule, "the room has no m.room.create event"));
        };
        let belongs = if v12 {
            create
                .event_id
                .strip_prefix('$')
                .is_some_and(|hash| room_id.strip_prefix('!') == Some(hash))
        } else {
            create.room_id.as_deref() == Some(room_id)
        };
        if !belongs {
            return Err(AuthError::new(
                version,
                wrong_room,
                "the room ID does not match the room's m.room.create event",
            ));
        }
        let mut room = Room {
            version,
            room_id,
            state,
            create,
            power_levels: PowerLevels::without_event(RoomCreators::from_create_event(
                version,
                &create.sender,
                &create.content,
            )),
        };
        if let Some(current) = room.lookup("m.room.power_levels", "")? {
            room.power_levels =
                PowerLevels::from_content(room.power_levels.creators().clone(), &current.content)
                    .map_err(|err| {
                    AuthError::new(
                        version,
                        Rule::CurrentStateInvalid,
                        format!("the current m.room.power_levels is invalid: {err}"),
                    )
                })?;
        }
        Ok(room)
    }

    fn fail(&self, rule: Rule, reason: impl Into<String>) -> AuthResult {
        Err(AuthError::new(self.version, rule, reason))
    }

    /// A state event, checked to belong to this room (rule 2.5).
    fn lookup(
        &self,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<&'a AuthEvent>, AuthError> {
        let found = (self.state)(event_type, state_key);
        if let Some(event) = found
            && event.room_id.as_deref() != Some(self.room_id)
        {
            return Err(AuthError::new(
                self.version,
                Rule::AuthEventsWrongRoom,
                format!("state event {} is from another room", event.event_id),
            ));
        }
        Ok(found)
    }

    /// The user's current membership; `"leave"` when they have no member
    /// event, which the rules treat the same as having left.
    fn membership(&self, user_id: &str) -> Result<&'a str, AuthError> {
        Ok(self
            .lookup("m.room.member", user_id)?
            .and_then(|event| event.content_str("membership"))
            .unwrap_or("leave"))
    }

    /// The current `join_rule`, `None` without a join rules event. No rule
    /// has a default: a room without one admits only the creator's first join.
    fn join_rule(&self) -> Result<Option<&'a str>, AuthError> {
        Ok(self.lookup("m.room.join_rules", "")?.and_then(|event| event.content_str("join_rule")))
    }

    /// The creator named by rule 4.3.1: `content.creator` in v10, the create
    /// event's sender from v11 (not `additional_creators` in v12).
    fn first_creator(&self) -> Option<&'a str> {
        if self.version.create_has_creator() {
            self.create.content_str("creator")
        } else {
            Some(&self.create.sender)
        }
    }
}

/// Rule 4: `m.room.member`.
fn check_member(room: &Room<'_, '_>, event: &AuthEvent) -> AuthResult {
    // 4.1
    let (Some(target), Some(membership)) = (&event.state_key, event.content.get("membership"))
    else {
        return room.fail(
            Rule::MemberMissingFields,
            "a member event needs a state_key and content.membership",
        );
    };
    let sender = event.sender.as_str();
    let target = target.as_str();
    let pl = &room.power_levels;
    // 4.2 (signature of the authorising server) is checked with signatures;
    // see `servers_that_must_sign`.
    match membership.as_str() {
        Some("join") => {
            // 4.3.1: the creator's own first join, straight after the create
            // event, comes before any power levels or join rules exist.
            if event.prev_events.len() == 1
                && event.prev_events[0] == room.create.event_id
                && room.first_creator() == Some(target)
            {
                return Ok(());
            }
            // 4.3.2
            if sender != target {
                return room.fail(Rule::JoinSenderNotTarget, "users may only join themselves");
            }
            let current = room.membership(sender)?;
            // 4.3.3
            if current == "ban" {
                return room.fail(Rule::JoinSenderBanned, "the sender is banned from the room");
            }
            let join_rule = room.join_rule()?;
            match join_rule {
                // 4.3.4: falls through to 4.3.7 when not invited.
                Some("invite" | "knock") if matches!(current, "invite" | "join") => Ok(()),
                // 4.3.5 (v10 added knock_restricted)
                Some("restricted" | "knock_restricted") => {
                    if matches!(current, "invite" | "join") {
                        return Ok(());
                    }
                    let Some(authoriser) = event.content_str("join_authorised_via_users_server")
                    else {
                        return room.fail(
                            Rule::JoinRestrictedUnauthorised,
                            "joining a restricted room needs an invite or join_authorised_via_users_server",
                        );
                    };
                    if room.membership(authoriser)? != "join" || !pl.can_invite(authoriser) {
                        return room.fail(
                            Rule::JoinRestrictedUnauthorised,
                            format!("{authoriser} is not a joined member who may invite"),
                        );
                    }
                    Ok(())
                }
                // 4.3.6
                Some("public") => Ok(()),
                // 4.3.7
                _ => room.fail(
                    Rule::JoinRuleForbids,
                    format!(
                        "join rule {} does not let the sender join",
                        join_rule.unwrap_or("(none)")
                    ),
                ),
            }
        }
        Some("invite") => {
            let target_membership = room.membership(target)?;
            // 4.4.1
            if let Some(invite) = event.content.get("third_party_invite") {
                return check_third_party_invite(room, event, target, target_membership, invite);
            }
            // 4.4.2
            if room.membership(sender)? != "join" {
                return room.fail(Rule::InviteSenderNotJoined, "only joined members may invite");
            }
            // 4.4.3
            if matches!(target_membership, "join" | "ban") {
                return room.fail(
                    Rule::InviteTargetJoinedOrBanned,
                    format!("the invited user's membership is {target_membership}"),
                );
            }
            // 4.4.4, 4.4.5
            if pl.can_invite(sender) {
                return Ok(());
            }
            room.fail(
                Rule::InviteInsufficientPower,
                format!(
                    "inviting needs power level {}, the sender has {}",
                    pl.invite(),
                    pl.user_level(sender)
                ),
            )
        }
        Some("leave") => {
            let target_membership = room.membership(target)?;
            // 4.5.1: leaving, rejecting an invite or withdrawing a knock.
            if sender == target {
                if matches!(target_membership, "invite" | "join" | "knock") {
                    return Ok(());
                }
                return room.fail(
                    Rule::LeaveSelfNotMember,
                    format!("cannot leave with membership {target_membership}"),
                );
            }
            // 4.5.2
            if room.membership(sender)? != "join" {
                return room
                    .fail(Rule::LeaveSenderNotJoined, "only joined members may kick or unban");
            }
            let sender_level = pl.user_level(sender);
            // 4.5.3
            if target_membership == "ban" && sender_level < PowerLevel::Int(pl.ban()) {
                return room.fail(
                    Rule::UnbanInsufficientPower,
                    format!(
                        "unbanning needs power level {}, the sender has {sender_level}",
                        pl.ban()
                    ),
                );
            }
            // 4.5.4, 4.5.5
            if pl.can_kick(sender, target) {
                return Ok(());
            }
            room.fail(
                Rule::KickInsufficientPower,
                format!(
                    "kicking needs power level {} and a level above the target's {}, the sender has {sender_level}",
                    pl.kick(),
                    pl.user_level(target)
                ),
            )
        }
        Some("ban") => {
            // 4.6.1
            if room.membership(sender)? != "join" {
                return room.fail(Rule::BanSenderNotJoined, "only joined members may ban");
            }
            // 4.6.2, 4.6.3
            if pl.can_ban(sender, target) {
                return Ok(());
            }
            room.fail(
                Rule::BanInsufficientPower,
                format!(
                    "banning needs power level {} and a level above the target's {}, the sender has {}",
                    pl.ban(),
                    pl.user_level(target),
                    pl.user_level(sender)
                ),
            )
        }
        Some("knock") => {
            // 4.7.1 (v10 added knock_restricted)
            let join_rule = room.join_rule()?;
            if !matches!(join_rule, Some("knock" | "knock_restricted")) {
                return room.fail(
                    Rule::KnockJoinRule,
                    format!("join rule {} does not allow knocking", join_rule.unwrap_or("(none)")),
                );
            }
            // 4.7.2
            if sender != target {
                return room
                    .fail(Rule::KnockSenderNotTarget, "users may only knock for themselves");
            }
            // 4.7.3, 4.7.4
            let current = room.membership(sender)?;
            if matches!(current, "ban" | "invite" | "join") {
                return room.fail(
                    Rule::KnockAlreadyMember,
                    format!("cannot knock with membership {current}"),
                );
            }
            Ok(())
        }
        // 4.8
        _ => room.fail(Rule::MembershipUnknown, format!("unknown membership {membership}")),
    }
}

/// Rule 4.4.1: an invite that completes a third-party (e.g. email) invite.
///
/// Hearth checks the structure (4.4.1.1–4.4.1.6) but does not yet verify the
/// identity server's signatures in `signed` against the public keys of the
/// `m.room.third_party_invite` event (4.4.1.7), so every such invite ends in
/// 4.4.1.8 with a "not supported" reason. Rejecting is the safe side: an
/// unverified `signed` block would let anyone claim any invite.
fn check_third_party_invite(
    room: &Room<'_, '_>,
    event: &AuthEvent,
    target: &str,
    target_membership: &str,
    invite: &Value,
) -> AuthResult {
    // 4.4.1.1
    if target_membership == "ban" {
        return room.fail(Rule::ThirdPartyInviteTargetBanned, "the invited user is banned");
    }
    // 4.4.1.2
    let Some(signed) = invite.get("signed") else {
        return room
            .fail(Rule::ThirdPartyInviteMissingSigned, "third_party_invite has no signed block");
    };
    // 4.4.1.3
    let (Some(mxid), Some(token)) =
        (signed.get("mxid").and_then(Value::as_str), signed.get("token").and_then(Value::as_str))
    else {
        return room.fail(
            Rule::ThirdPartyInviteSignedIncomplete,
            "third_party_invite.signed needs mxid and token",
        );
    };
    // 4.4.1.4
    if mxid != target {
        return room.fail(
            Rule::ThirdPartyInviteMxidMismatch,
            "third_party_invite.signed.mxid is not the invited user",
        );
    }
    // 4.4.1.5
    let Some(placeholder) = room.lookup("m.room.third_party_invite", token)? else {
        return room.fail(
            Rule::ThirdPartyInviteNoMatchingEvent,
            "no m.room.third_party_invite matches the token",
        );
    };
    // 4.4.1.6
    if placeholder.sender != event.sender {
        return room.fail(
            Rule::ThirdPartyInviteSenderMismatch,
            "the sender did not send the m.room.third_party_invite",
        );
    }
    // 4.4.1.7, 4.4.1.8
    room.fail(
        Rule::ThirdPartyInviteUnverified,
        "verifying third-party invite signatures is not supported",
    )
}

/// Rule 9: `m.room.power_levels`. `sender_level` is the sender's level in the
/// current state, as every comparison in this rule uses.
fn check_power_levels(
    room: &Room<'_, '_>,
    event: &AuthEvent,
    sender_level: PowerLevel,
) -> AuthResult {
    let new = &event.content;
    // 9.1–9.3, v12 10.4.
    if let Err(err) = power_levels::validate_content(room.power_levels.creators(), new) {
        let rule = match err {
            PowerLevelsError::NotInteger { .. } => Rule::PowerLevelsNotInteger,
            PowerLevelsError::NotIntegerMap { .. } => Rule::PowerLevelsNotIntegerMap,
            PowerLevelsError::InvalidUsers { .. } => Rule::PowerLevelsInvalidUsers,
            PowerLevelsError::CreatorInUsers { .. } => Rule::PowerLevelsCreatorInUsers,
        };
        return room.fail(rule, err.to_string());
    }
    // 9.4
    let Some(current) = room.lookup("m.room.power_levels", "")? else {
        return Ok(());
    };
    let current = &current.content;
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;

    // 9.5: an added, changed or removed key compares the raw values, not the
    // defaults: removing `ban: 50` is a change even though the default is 50.
    for key in INTEGER_KEYS {
        let old = power_levels::explicit_level(current, key);
        let new = power_levels::explicit_level(new, key);
        if old == new {
            continue;
        }
        if let Some(old) = old
            && above_sender(old)
        {
            return room.fail(
                Rule::PowerLevelsCurrentAboveSender,
                format!("cannot change `{key}` from {old}, above the sender's {sender_level}"),
            );
        }
        if let Some(new) = new
            && above_sender(new)
        {
            return room.fail(
                Rule::PowerLevelsNewAboveSender,
                format!("cannot set `{key}` to {new}, above the sender's {sender_level}"),
            );
        }
    }

    let maps: Vec<_> = INTEGER_MAP_KEYS
        .iter()
        .map(|key| {
            (*key, power_levels::integer_map(current, key), power_levels::integer_map(new, key))
        })
        .collect();
    // 9.6
    for (key, old_map, new_map) in &maps {
        for (name, old) in old_map {
            if new_map.get(name) != Some(old) && above_sender(*old) {
                return room.fail(
                    Rule::PowerLevelsMapCurrentAboveSender,
                    format!(
                        "cannot change `{key}.{name}` from {old}, above the sender's {sender_level}"
                    ),
                );
            }
        }
    }
    // 9.7
    for (key, old_map, new_map) in &maps {
        for (name, new) in new_map {
            if old_map.get(name) != Some(new) && above_sender(*new) {
                return room.fail(
                    Rule::PowerLevelsMapNewAboveSender,
                    format!(
                        "cannot set `{key}.{name}` to {new}, above the sender's {sender_level}"
                    ),
                );
            }
        }
    }

    let old_users = power_levels::integer_map(current, "users");
    let new_users = power_levels::integer_map(new, "users");
    // 9.8: users may lower themselves, but not peers or superiors.
    for (user_id, old) in &old_users {
        if *user_id != event.sender
            && new_users.get(user_id) != Some(old)
            && PowerLevel::Int(*old) >= sender_level
        {
            return room.fail(
                Rule::PowerLevelsUserNotBelowSender,
                format!("cannot change the level of {user_id} ({old}), not below the sender's {sender_level}"),
            );
        }
    }
    // 9.9
    for (user_id, new) in &new_users {
        if old_users.get(user_id) != Some(new) && above_sender(*new) {
            return room.fail(
                Rule::PowerLevelsUserNewAboveSender,
                format!("cannot give {user_id} level {new}, above the sender's {sender_level}"),
            );
        }
    }
    // 9.10
    Ok(())
}

/// The server name of a user or (v10/v11) room ID: everything after the first
/// `:`, since neither localparts nor opaque IDs may contain one.
fn server_name(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, server)| server)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    /// The creator of every test room.
    const ALICE: &str = "@alice:hearth.test";
    const BOB: &str = "@bob:hearth.test";
    const CAROL: &str = "@carol:hearth.test";
    const REMOTE: &str = "@eve:elsewhere.test";

    /// A room's state in a map, and the events to check against it.
    struct TestRoom {
        version: RoomVersion,
        room_id: String,
        state: HashMap<(String, String), AuthEvent>,
        counter: usize,
    }

    impl TestRoom {
        /// Only the create event, sent by Alice.
        fn bare(version: RoomVersion) -> TestRoom {
            let (room_id, create_room_id, content) = match version {
                RoomVersion::V10 => (
                    "!room:hearth.test",
                    Some("!room:hearth.test"),
                    json!({ "creator": ALICE, "room_version": "10" }),
                ),
                RoomVersion::V11 => (
                    "!room:hearth.test",
                    Some("!room:hearth.test"),
                    json!({ "room_version": "11" }),
                ),
                RoomVersion::V12 => ("!create", None, json!({ "room_version": "12" })),
            };
            let mut room = TestRoom {
                version,
                room_id: room_id.to_owned(),
                state: HashMap::new(),
                counter: 0,
            };
            let create = AuthEvent {
                event_id: "$create".to_owned(),
                room_id: create_room_id.map(str::to_owned),
                event_type: "m.room.create".to_owned(),
                state_key: Some(String::new()),
                sender: ALICE.to_owned(),
                content,
                prev_events: Vec::new(),
            };
            room.insert(create);
            room
        }

        /// Alice joined, power levels (Alice 100 before v12, where she is
        /// infinite as the creator) and join rule `invite`.
        fn new(version: RoomVersion) -> TestRoom {
            let mut room = TestRoom::bare(version);
            room.member(ALICE, "join");
            let users =
                if version.privileged_creators() { json!({}) } else { json!({ ALICE: 100 }) };
            room.set_power_levels(json!({ "users": users }));
            room.set_join_rule("invite");
            room
        }

        fn insert(&mut self, event: AuthEvent) {
            let key = (event.event_type.clone(), event.state_key.clone().unwrap_or_default());
            self.state.insert(key, event);
        }

        fn event(
            &mut self,
            event_type: &str,
            state_key: Option<&str>,
            sender: &str,
            content: Value,
        ) -> AuthEvent {
            self.counter += 1;
            AuthEvent {
                event_id: format!("$event{}", self.counter),
                room_id: Some(self.room_id.clone()),
                event_type: event_type.to_owned(),
                state_key: state_key.map(str::to_owned),
                sender: sender.to_owned(),
                content,
                prev_events: vec!["$previous".to_owned()],
            }
        }

        fn set(&mut self, event_type: &str, state_key: &str, sender: &str, content: Value) {
            let event = self.event(event_type, Some(state_key), sender, content);
            self.insert(event);
        }

        fn member(&mut self, user_id: &str, membership: &str) {
            self.set("m.room.member", user_id, user_id, json!({ "membership": membership }));
        }

        fn set_join_rule(&mut self, join_rule: &str) {
            self.set("m.room.join_rules", "", ALICE, json!({ "join_rule": join_rule }));
        }

        fn set_power_levels(&mut self, content: Value) {
            self.set("m.room.power_levels", "", ALICE, content);
        }

        fn power_levels_content(&self) -> Value {
            self.state
                .get(&("m.room.power_levels".to_owned(), String::new()))
                .map(|event| event.content.clone())
                .unwrap_or_else(|| json!({}))
        }

        /// Sets one key of the current power levels content.
        fn set_level(&mut self, key: &str, level: i64) {
            let mut content = self.power_levels_content();
            content[key] = json!(level);
            self.set_power_levels(content);
        }

        /// Gives `user_id` an entry in `users`.
        fn grant(&mut self, user_id: &str, level: i64) {
            let mut content = self.power_levels_content();
            content["users"][user_id] = json!(level);
            self.set_power_levels(content);
        }

        fn check(&self, event: &AuthEvent) -> AuthResult {
            let lookup = |event_type: &str, state_key: &str| {
                self.state.get(&(event_type.to_owned(), state_key.to_owned()))
            };
            check(self.version, event, &lookup)
        }

        /// Checks a member event from `sender` about `target`.
        fn check_member(&mut self, sender: &str, target: &str, content: Value) -> AuthResult {
            let event = self.event("m.room.member", Some(target), sender, content);
            self.check(&event)
        }

        fn check_membership(&mut self, sender: &str, target: &str, membership: &str) -> AuthResult {
            self.check_member(sender, target, json!({ "membership": membership }))
        }

        fn check_power_levels(&mut self, sender: &str, content: Value) -> AuthResult {
            let event = self.event("m.room.power_levels", Some(""), sender, content);
            self.check(&event)
        }
    }

    #[track_caller]
    fn assert_rule(result: AuthResult, rule: Rule) {
        match result {
            Ok(()) => panic!("expected a rejection by {rule:?}, the event was allowed"),
            Err(err) => assert_eq!(err.rule(), rule, "{err}"),
        }
    }

    #[track_caller]
    fn assert_allowed(result: AuthResult) {
        if let Err(err) = result {
            panic!("expected the event to be allowed: {err}");
        }
    }

    fn create_event(version: RoomVersion, content: Value) -> AuthEvent {
        AuthEvent {
            event_id: "$create".to_owned(),
            room_id: (!version.room_id_from_create_event()).then(|| "!room:hearth.test".to_owned()),
            event_type: "m.room.create".to_owned(),
            state_key: Some(String::new()),
            sender: ALICE.to_owned(),
            content,
            prev_events: Vec::new(),
        }
    }

    fn valid_create_content(version: RoomVersion) -> Value {
        match version {
            RoomVersion::V10 => json!({ "creator": ALICE, "room_version": "10" }),
            _ => json!({ "room_version": version.as_str() }),
        }
    }

    fn no_state(_: &str, _: &str) -> Option<&'static AuthEvent> {
        None
    }

    // Rule 1: m.room.create.

    #[test]
    fn valid_create_is_allowed() {
        for version in RoomVersion::ALL {
            let create = create_event(version, valid_create_content(version));
            assert_allowed(check(version, &create, &no_state));
        }
    }

    #[test]
    fn create_with_prev_events_is_rejected() {
        for version in RoomVersion::ALL {
            let mut create = create_event(version, valid_create_content(version));
            create.prev_events.push("$earlier".to_owned());
            assert_rule(check(version, &create, &no_state), Rule::CreateHasPrevEvents);
        }
    }

    #[test]
    fn create_with_room_id_of_another_server_is_rejected_before_v12() {
        for version in [RoomVersion::V10, RoomVersion::V11] {
            let mut create = create_event(version, valid_create_content(version));
            create.room_id = Some("!room:elsewhere.test".to_owned());
            assert_rule(check(version, &create, &no_state), Rule::CreateRoomIdDomainMismatch);
            create.room_id = None;
            assert_rule(check(version, &create, &no_state), Rule::CreateRoomIdDomainMismatch);
        }
    }

    #[test]
    fn create_with_room_id_is_rejected_in_v12() {
        let version = RoomVersion::V12;
        let mut create = create_event(version, valid_create_content(version));
        create.room_id = Some("!room:hearth.test".to_owned());
        assert_rule(check(version, &create, &no_state), Rule::CreateHasRoomId);
    }

    #[test]
    fn create_with_unknown_room_version_is_rejected() {
        for version in RoomVersion::ALL {
            for room_version in [json!("9000"), json!(12)] {
                let mut content = valid_create_content(version);
                content["room_version"] = room_version;
                let create = create_event(version, content);
                assert_rule(check(version, &create, &no_state), Rule::CreateUnknownRoomVersion);
            }
        }
    }

    #[test]
    fn create_without_creator_is_rejected_only_in_v10() {
        let content = json!({ "room_version": "10" });
        assert_rule(
            check(RoomVersion::V10, &create_event(RoomVersion::V10, content), &no_state),
            Rule::CreateMissingCreator,
        );
        let content = json!({ "room_version": "11" });
        assert_allowed(check(
            RoomVersion::V11,
            &create_event(RoomVersion::V11, content),
            &no_state,
        ));
    }

    #[test]
    fn create_with_invalid_additional_creators_is_rejected_in_v12() {
        for bad in [json!(["bob"]), json!(BOB), json!([5]), json!(["@:hearth.test"])] {
            let content = json!({ "room_version": "12", "additional_creators": bad });
            let create = create_event(RoomVersion::V12, content.clone());
            assert_rule(
                check(RoomVersion::V12, &create, &no_state),
                Rule::CreateInvalidAdditionalCreators,
            );
            // v11 gives the field no meaning, so it is not validated.
            let create = create_event(RoomVersion::V11, content);
            assert_allowed(check(RoomVersion::V11, &create, &no_state));
        }
        let content = json!({ "room_version": "12", "additional_creators": [BOB, REMOTE] });
        let create = create_event(RoomVersion::V12, content);
        assert_allowed(check(RoomVersion::V12, &create, &no_state));
    }

    // v12 rule 2, and rules 2.x applied to the state.

    #[test]
    fn event_whose_room_id_is_not_the_create_event_is_rejected_in_v12() {
        let mut room = TestRoom::new(RoomVersion::V12);
        let mut event = room.event("m.room.message", None, ALICE, json!({}));
        assert_allowed(room.check(&event));
        event.room_id = Some("!other".to_owned());
        assert_rule(room.check(&event), Rule::RoomIdNotCreateEvent);
        event.room_id = None;
        assert_rule(room.check(&event), Rule::RoomIdNotCreateEvent);
    }

    #[test]
    fn event_in_a_room_without_create_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.state.remove(&("m.room.create".to_owned(), String::new()));
        let event = room.event("m.room.message", None, ALICE, json!({}));
        assert_rule(room.check(&event), Rule::AuthEventsMissingCreate);
    }

    #[test]
    fn state_from_another_room_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            let mut event = room.event("m.room.message", None, ALICE, json!({}));
            if version.room_id_from_create_event() {
                // The create event has no room_id in v12; corrupt a member.
                let key = ("m.room.member".to_owned(), ALICE.to_owned());
                if let Some(member) = room.state.get_mut(&key) {
                    member.room_id = Some("!elsewhere".to_owned());
                }
            } else {
                event.room_id = Some("!other:hearth.test".to_owned());
            }
            assert_rule(room.check(&event), Rule::AuthEventsWrongRoom);
        }
    }

    // Rules 2.1–2.5 on received auth_events (v12: 3.x).

    #[test]
    fn duplicate_auth_events_are_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        let event = room.event("m.room.message", None, ALICE, json!({}));
        let create = room.state[&("m.room.create".to_owned(), String::new())].clone();
        let mut second_create = create.clone();
        second_create.event_id = "$create2".to_owned();
        assert_rule(
            check_auth_events(RoomVersion::V11, &event, &[&create, &second_create]),
            Rule::AuthEventsDuplicate,
        );
    }

    #[test]
    fn unselected_auth_event_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            let event = room.event("m.room.message", None, BOB, json!({}));
            let join_rules = room.state[&("m.room.join_rules".to_owned(), String::new())].clone();
            assert_rule(
                check_auth_events(version, &event, &[&join_rules]),
                Rule::AuthEventsUnexpected,
            );
        }
        // v12: the create event must not be selected.
        let mut room = TestRoom::new(RoomVersion::V12);
        let event = room.event("m.room.message", None, ALICE, json!({}));
        let create = room.state[&("m.room.create".to_owned(), String::new())].clone();
        assert_rule(
            check_auth_events(RoomVersion::V12, &event, &[&create]),
            Rule::AuthEventsUnexpected,
        );
    }

    #[test]
    fn auth_events_without_create_are_rejected_before_v12() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            let event = room.event("m.room.message", None, ALICE, json!({}));
            let member = room.state[&("m.room.member".to_owned(), ALICE.to_owned())].clone();
            let result = check_auth_events(version, &event, &[&member]);
            if version.room_id_from_create_event() {
                assert_allowed(result);
            } else {
                assert_rule(result, Rule::AuthEventsMissingCreate);
            }
        }
    }

    #[test]
    fn auth_event_from_another_room_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V12);
        let event = room.event("m.room.message", None, ALICE, json!({}));
        let mut member = room.state[&("m.room.member".to_owned(), ALICE.to_owned())].clone();
        member.room_id = Some("!elsewhere".to_owned());
        assert_rule(
            check_auth_events(RoomVersion::V12, &event, &[&member]),
            Rule::AuthEventsWrongRoom,
        );
    }

    #[test]
    fn auth_types_follow_the_selection_algorithm() {
        let mut room = TestRoom::new(RoomVersion::V11);
        let join = room.event(
            "m.room.member",
            Some(BOB),
            BOB,
            json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
        );
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(t, k)| ((*t).to_owned(), (*k).to_owned())).collect()
        };
        assert_eq!(
            auth_types_for_event(RoomVersion::V11, &join),
            pairs(&[
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.member", BOB),
                ("m.room.join_rules", ""),
                ("m.room.member", ALICE),
            ])
        );
        let invite = room.event(
            "m.room.member",
            Some(BOB),
            ALICE,
            json!({ "membership": "invite", "third_party_invite": { "signed": { "token": "abc" } } }),
        );
        assert_eq!(
            auth_types_for_event(RoomVersion::V12, &invite),
            pairs(&[
                ("m.room.power_levels", ""),
                ("m.room.member", ALICE),
                ("m.room.member", BOB),
                ("m.room.join_rules", ""),
                ("m.room.third_party_invite", "abc"),
            ])
        );
        let leave = room.event("m.room.member", Some(BOB), BOB, json!({ "membership": "leave" }));
        assert_eq!(
            auth_types_for_event(RoomVersion::V12, &leave),
            pairs(&[("m.room.power_levels", ""), ("m.room.member", BOB)])
        );
        let create = create_event(RoomVersion::V11, valid_create_content(RoomVersion::V11));
        assert!(auth_types_for_event(RoomVersion::V11, &create).is_empty());
    }

    // Rule 3.

    #[test]
    fn remote_sender_is_rejected_when_room_does_not_federate() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.set_join_rule("public");
            assert_allowed(room.check_membership(REMOTE, REMOTE, "join"));
            let key = ("m.room.create".to_owned(), String::new());
            if let Some(create) = room.state.get_mut(&key) {
                create.content["m.federate"] = json!(false);
            }
            assert_rule(room.check_membership(REMOTE, REMOTE, "join"), Rule::FederationDisabled);
            assert_allowed(room.check_membership(BOB, BOB, "join"));
        }
    }

    // Rule 4: m.room.member.

    #[test]
    fn member_event_without_state_key_or_membership_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        assert_rule(room.check_member(ALICE, ALICE, json!({})), Rule::MemberMissingFields);
        let event = room.event("m.room.member", None, ALICE, json!({ "membership": "join" }));
        assert_rule(room.check(&event), Rule::MemberMissingFields);
    }

    #[test]
    fn creator_first_join_directly_after_create_is_allowed() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::bare(version);
            let mut join =
                room.event("m.room.member", Some(ALICE), ALICE, json!({ "membership": "join" }));
            join.prev_events = vec!["$create".to_owned()];
            assert_allowed(room.check(&join));
            // Anyone else's join at that point meets no join rule.
            let mut join =
                room.event("m.room.member", Some(BOB), BOB, json!({ "membership": "join" }));
            join.prev_events = vec!["$create".to_owned()];
            assert_rule(room.check(&join), Rule::JoinRuleForbids);
            // Later, the creator rejoins like anyone else.
            let mut room = TestRoom::new(version);
            room.member(ALICE, "leave");
            assert_rule(room.check_membership(ALICE, ALICE, "join"), Rule::JoinRuleForbids);
        }
    }

    #[test]
    fn v10_first_join_uses_content_creator() {
        let mut room = TestRoom::bare(RoomVersion::V10);
        let key = ("m.room.create".to_owned(), String::new());
        if let Some(create) = room.state.get_mut(&key) {
            create.content["creator"] = json!(BOB);
        }
        let mut join = room.event("m.room.member", Some(BOB), BOB, json!({ "membership": "join" }));
        join.prev_events = vec!["$create".to_owned()];
        assert_allowed(room.check(&join));
    }

    #[test]
    fn joining_on_behalf_of_someone_else_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.set_join_rule("public");
            assert_rule(room.check_membership(ALICE, BOB, "join"), Rule::JoinSenderNotTarget);
        }
    }

    #[test]
    fn banned_user_cannot_join() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.set_join_rule("public");
            room.member(BOB, "ban");
            assert_rule(room.check_membership(BOB, BOB, "join"), Rule::JoinSenderBanned);
        }
    }

    #[test]
    fn invited_user_can_join_invite_and_knock_rooms() {
        for join_rule in ["invite", "knock"] {
            let mut room = TestRoom::new(RoomVersion::V11);
            room.set_join_rule(join_rule);
            room.member(BOB, "invite");
            assert_allowed(room.check_membership(BOB, BOB, "join"));
        }
    }

    #[test]
    fn uninvited_user_cannot_join_invite_and_knock_rooms() {
        for join_rule in ["invite", "knock", "private"] {
            let mut room = TestRoom::new(RoomVersion::V12);
            room.set_join_rule(join_rule);
            assert_rule(room.check_membership(BOB, BOB, "join"), Rule::JoinRuleForbids);
            room.member(BOB, "knock");
            assert_rule(room.check_membership(BOB, BOB, "join"), Rule::JoinRuleForbids);
        }
    }

    #[test]
    fn restricted_join_is_allowed_when_invited_or_authorised_by_a_member_who_can_invite() {
        for join_rule in ["restricted", "knock_restricted"] {
            for version in RoomVersion::ALL {
                let mut room = TestRoom::new(version);
                room.set_join_rule(join_rule);
                room.member(CAROL, "invite");
                assert_allowed(room.check_membership(CAROL, CAROL, "join"));
                assert_allowed(room.check_member(
                    BOB,
                    BOB,
                    json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
                ));
            }
        }
    }

    #[test]
    fn restricted_join_without_a_qualified_authoriser_is_rejected() {
        for join_rule in ["restricted", "knock_restricted"] {
            let mut room = TestRoom::new(RoomVersion::V10);
            room.set_join_rule(join_rule);
            room.set_level("invite", 50);
            room.member(CAROL, "join");
            // No authoriser at all.
            assert_rule(room.check_membership(BOB, BOB, "join"), Rule::JoinRestrictedUnauthorised);
            // Carol is joined but below the invite level.
            let via_carol =
                json!({ "membership": "join", "join_authorised_via_users_server": CAROL });
            assert_rule(
                room.check_member(BOB, BOB, via_carol.clone()),
                Rule::JoinRestrictedUnauthorised,
            );
            // Carol may invite but has left.
            room.grant(CAROL, 50);
            assert_allowed(room.check_member(BOB, BOB, via_carol.clone()));
            room.member(CAROL, "leave");
            assert_rule(room.check_member(BOB, BOB, via_carol), Rule::JoinRestrictedUnauthorised);
        }
    }

    #[test]
    fn anyone_can_join_a_public_room() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.set_join_rule("public");
            assert_allowed(room.check_membership(BOB, BOB, "join"));
        }
    }

    #[test]
    fn join_without_join_rules_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.state.remove(&("m.room.join_rules".to_owned(), String::new()));
        room.member(BOB, "invite");
        assert_rule(room.check_membership(BOB, BOB, "join"), Rule::JoinRuleForbids);
    }

    fn third_party_invite(token: &str, mxid: &str) -> Value {
        json!({
            "membership": "invite",
            "third_party_invite": {
                "display_name": "bob@example.org",
                "signed": { "mxid": mxid, "token": token, "signatures": {} },
            },
        })
    }

    /// A room where Alice has sent the placeholder for token `abc`.
    fn room_with_third_party_invite() -> TestRoom {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.set(
            "m.room.third_party_invite",
            "abc",
            ALICE,
            json!({ "display_name": "b...@e...", "key_validity_url": "https://id.test", "public_key": "AAAA" }),
        );
        room
    }

    #[test]
    fn third_party_invite_to_a_banned_user_is_rejected() {
        let mut room = room_with_third_party_invite();
        room.member(BOB, "ban");
        assert_rule(
            room.check_member(ALICE, BOB, third_party_invite("abc", BOB)),
            Rule::ThirdPartyInviteTargetBanned,
        );
    }

    #[test]
    fn third_party_invite_without_signed_is_rejected() {
        let mut room = room_with_third_party_invite();
        let content =
            json!({ "membership": "invite", "third_party_invite": { "display_name": "b" } });
        assert_rule(room.check_member(ALICE, BOB, content), Rule::ThirdPartyInviteMissingSigned);
    }

    #[test]
    fn third_party_invite_without_mxid_or_token_is_rejected() {
        let mut room = room_with_third_party_invite();
        let content =
            json!({ "membership": "invite", "third_party_invite": { "signed": { "mxid": BOB } } });
        assert_rule(room.check_member(ALICE, BOB, content), Rule::ThirdPartyInviteSignedIncomplete);
    }

    #[test]
    fn third_party_invite_for_another_mxid_is_rejected() {
        let mut room = room_with_third_party_invite();
        assert_rule(
            room.check_member(ALICE, BOB, third_party_invite("abc", CAROL)),
            Rule::ThirdPartyInviteMxidMismatch,
        );
    }

    #[test]
    fn third_party_invite_without_matching_placeholder_is_rejected() {
        let mut room = room_with_third_party_invite();
        assert_rule(
            room.check_member(ALICE, BOB, third_party_invite("xyz", BOB)),
            Rule::ThirdPartyInviteNoMatchingEvent,
        );
    }

    #[test]
    fn third_party_invite_completed_by_another_sender_is_rejected() {
        let mut room = room_with_third_party_invite();
        room.member(CAROL, "join");
        assert_rule(
            room.check_member(CAROL, BOB, third_party_invite("abc", BOB)),
            Rule::ThirdPartyInviteSenderMismatch,
        );
    }

    #[test]
    fn third_party_invite_signatures_are_not_verified_so_it_is_rejected() {
        let mut room = room_with_third_party_invite();
        let err = room
            .check_member(ALICE, BOB, third_party_invite("abc", BOB))
            .expect_err("unverifiable third-party invite");
        assert_eq!(err.rule(), Rule::ThirdPartyInviteUnverified);
        assert!(err.reason().contains("not supported"), "{err}");
    }

    #[test]
    fn non_member_cannot_invite() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(CAROL, "invite");
            assert_rule(room.check_membership(CAROL, BOB, "invite"), Rule::InviteSenderNotJoined);
        }
    }

    #[test]
    fn joined_or_banned_user_cannot_be_invited() {
        for membership in ["join", "ban"] {
            let mut room = TestRoom::new(RoomVersion::V12);
            room.member(BOB, membership);
            assert_rule(
                room.check_membership(ALICE, BOB, "invite"),
                Rule::InviteTargetJoinedOrBanned,
            );
        }
    }

    #[test]
    fn inviting_needs_the_invite_level() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(CAROL, "join");
            assert_allowed(room.check_membership(CAROL, BOB, "invite"));
            room.set_level("invite", 10);
            assert_rule(room.check_membership(CAROL, BOB, "invite"), Rule::InviteInsufficientPower);
            room.grant(CAROL, 10);
            assert_allowed(room.check_membership(CAROL, BOB, "invite"));
        }
    }

    #[test]
    fn user_can_leave_reject_invite_or_withdraw_knock() {
        for membership in ["join", "invite", "knock"] {
            let mut room = TestRoom::new(RoomVersion::V11);
            room.member(BOB, membership);
            assert_allowed(room.check_membership(BOB, BOB, "leave"));
        }
    }

    #[test]
    fn user_who_is_not_in_the_room_cannot_leave() {
        for membership in [None, Some("leave"), Some("ban")] {
            let mut room = TestRoom::new(RoomVersion::V11);
            if let Some(membership) = membership {
                room.member(BOB, membership);
            }
            assert_rule(room.check_membership(BOB, BOB, "leave"), Rule::LeaveSelfNotMember);
        }
    }

    #[test]
    fn non_member_cannot_kick() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.member(BOB, "join");
        room.grant(CAROL, 100);
        assert_rule(room.check_membership(CAROL, BOB, "leave"), Rule::LeaveSenderNotJoined);
    }

    #[test]
    fn unbanning_needs_the_ban_level() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "ban");
            room.member(CAROL, "join");
            room.set_level("kick", 20);
            room.set_level("ban", 60);
            room.grant(CAROL, 50);
            assert_rule(room.check_membership(CAROL, BOB, "leave"), Rule::UnbanInsufficientPower);
            room.grant(CAROL, 60);
            assert_allowed(room.check_membership(CAROL, BOB, "leave"));
        }
    }

    #[test]
    fn kicking_needs_the_kick_level_and_outranking_the_target() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "join");
            room.member(CAROL, "join");
            room.grant(CAROL, 40);
            assert_rule(room.check_membership(CAROL, BOB, "leave"), Rule::KickInsufficientPower);
            room.grant(CAROL, 50);
            assert_allowed(room.check_membership(CAROL, BOB, "leave"));
            room.grant(BOB, 50);
            assert_rule(room.check_membership(CAROL, BOB, "leave"), Rule::KickInsufficientPower);
        }
    }

    #[test]
    fn non_member_cannot_ban() {
        let mut room = TestRoom::new(RoomVersion::V10);
        room.grant(CAROL, 100);
        assert_rule(room.check_membership(CAROL, BOB, "ban"), Rule::BanSenderNotJoined);
    }

    #[test]
    fn banning_needs_the_ban_level_and_outranking_the_target() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(CAROL, "join");
            room.grant(CAROL, 49);
            assert_rule(room.check_membership(CAROL, BOB, "ban"), Rule::BanInsufficientPower);
            room.grant(CAROL, 50);
            // Bob need not be in the room to be banned.
            assert_allowed(room.check_membership(CAROL, BOB, "ban"));
            room.grant(BOB, 50);
            assert_rule(room.check_membership(CAROL, BOB, "ban"), Rule::BanInsufficientPower);
        }
    }

    #[test]
    fn v12_creators_outrank_everyone_but_each_other() {
        let mut room = TestRoom::bare(RoomVersion::V12);
        let key = ("m.room.create".to_owned(), String::new());
        if let Some(create) = room.state.get_mut(&key) {
            create.content["additional_creators"] = json!([BOB]);
        }
        room.member(ALICE, "join");
        room.member(BOB, "join");
        room.member(CAROL, "join");
        room.set_power_levels(json!({ "users": { CAROL: MAX }, "ban": MAX }));
        assert_allowed(room.check_membership(ALICE, CAROL, "ban"));
        assert_rule(room.check_membership(ALICE, BOB, "ban"), Rule::BanInsufficientPower);
        assert_rule(room.check_membership(CAROL, BOB, "leave"), Rule::KickInsufficientPower);
    }

    const MAX: i64 = power_levels::MAX_LEVEL;

    #[test]
    fn knocking_needs_a_knock_join_rule() {
        for version in RoomVersion::ALL {
            for (join_rule, allowed) in [
                ("knock", true),
                ("knock_restricted", true),
                ("invite", false),
                ("restricted", false),
                ("public", false),
            ] {
                let mut room = TestRoom::new(version);
                room.set_join_rule(join_rule);
                let result = room.check_membership(BOB, BOB, "knock");
                if allowed {
                    assert_allowed(result);
                } else {
                    assert_rule(result, Rule::KnockJoinRule);
                }
            }
        }
    }

    #[test]
    fn knocking_for_someone_else_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.set_join_rule("knock");
        assert_rule(room.check_membership(ALICE, BOB, "knock"), Rule::KnockSenderNotTarget);
    }

    #[test]
    fn banned_invited_or_joined_user_cannot_knock() {
        for membership in ["ban", "invite", "join"] {
            let mut room = TestRoom::new(RoomVersion::V11);
            room.set_join_rule("knock");
            room.member(BOB, membership);
            assert_rule(room.check_membership(BOB, BOB, "knock"), Rule::KnockAlreadyMember);
        }
    }

    #[test]
    fn unknown_membership_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        assert_rule(room.check_membership(ALICE, ALICE, "lurk"), Rule::MembershipUnknown);
        assert_rule(
            room.check_member(ALICE, ALICE, json!({ "membership": 1 })),
            Rule::MembershipUnknown,
        );
    }

    // Rules 5–8.

    #[test]
    fn non_member_cannot_send_events() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "invite");
            let event = room.event("m.room.message", None, BOB, json!({ "body": "hi" }));
            assert_rule(room.check(&event), Rule::SenderNotJoined);
        }
    }

    #[test]
    fn third_party_invite_event_needs_the_invite_level() {
        let mut room = TestRoom::new(RoomVersion::V12);
        room.member(BOB, "join");
        room.set_level("invite", 20);
        // The state default (50) does not apply, the invite level does.
        room.grant(BOB, 20);
        let event = room.event("m.room.third_party_invite", Some("tok"), BOB, json!({}));
        assert_allowed(room.check(&event));
        room.grant(BOB, 19);
        assert_rule(room.check(&event), Rule::ThirdPartyInviteEventInsufficientPower);
    }

    #[test]
    fn events_need_their_required_power_level() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "join");
            let message = room.event("m.room.message", None, BOB, json!({}));
            assert_allowed(room.check(&message));
            // state_default is 50 when unset.
            let topic = room.event("m.room.topic", Some(""), BOB, json!({ "topic": "t" }));
            assert_rule(room.check(&topic), Rule::EventInsufficientPower);
            room.set_level("events_default", 1);
            assert_rule(room.check(&message), Rule::EventInsufficientPower);
            let mut content = room.power_levels_content();
            content["events"] = json!({ "m.room.topic": 0 });
            room.set_power_levels(content);
            assert_allowed(room.check(&topic));
        }
    }

    #[test]
    fn redaction_is_authorised_by_its_event_level_not_the_redact_level() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.member(BOB, "join");
        room.set_level("redact", 100);
        let redaction =
            room.event("m.room.redaction", None, BOB, json!({ "redacts": "$alice_msg" }));
        assert_allowed(room.check(&redaction));
        let mut content = room.power_levels_content();
        content["events"] = json!({ "m.room.redaction": 10 });
        room.set_power_levels(content);
        assert_rule(room.check(&redaction), Rule::EventInsufficientPower);
    }

    #[test]
    fn state_key_naming_another_user_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "join");
            let mut content = room.power_levels_content();
            content["events"] = json!({ "org.example.status": 0 });
            room.set_power_levels(content);
            let own = room.event("org.example.status", Some(BOB), BOB, json!({}));
            assert_allowed(room.check(&own));
            let other = room.event("org.example.status", Some(ALICE), BOB, json!({}));
            assert_rule(room.check(&other), Rule::StateKeyImpersonation);
        }
    }

    // Rule 9: m.room.power_levels.

    #[test]
    fn power_levels_with_non_integer_level_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            assert_rule(
                room.check_power_levels(ALICE, json!({ "kick": "50" })),
                Rule::PowerLevelsNotInteger,
            );
        }
    }

    #[test]
    fn power_levels_with_non_integer_events_or_notifications_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V10);
        assert_rule(
            room.check_power_levels(ALICE, json!({ "events": { "m.room.name": 1.5 } })),
            Rule::PowerLevelsNotIntegerMap,
        );
        assert_rule(
            room.check_power_levels(ALICE, json!({ "notifications": { "room": "20" } })),
            Rule::PowerLevelsNotIntegerMap,
        );
    }

    #[test]
    fn power_levels_with_invalid_users_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        assert_rule(
            room.check_power_levels(ALICE, json!({ "users": { "not-a-user": 10 } })),
            Rule::PowerLevelsInvalidUsers,
        );
        assert_rule(
            room.check_power_levels(ALICE, json!({ "users": { BOB: "10" } })),
            Rule::PowerLevelsInvalidUsers,
        );
    }

    #[test]
    fn power_levels_listing_a_creator_is_rejected_in_v12() {
        let mut room = TestRoom::new(RoomVersion::V12);
        assert_rule(
            room.check_power_levels(ALICE, json!({ "users": { ALICE: 100 } })),
            Rule::PowerLevelsCreatorInUsers,
        );
        let mut room = TestRoom::new(RoomVersion::V11);
        assert_allowed(room.check_power_levels(ALICE, json!({ "users": { ALICE: 100 } })));
    }

    #[test]
    fn first_power_levels_event_is_allowed_without_comparison() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::bare(version);
            room.member(ALICE, "join");
            // Values above Alice's default 100 are fine when nothing is replaced.
            let content = json!({ "ban": 500, "users": { BOB: 900 } });
            assert_allowed(room.check_power_levels(ALICE, content));
        }
    }

    #[test]
    fn changing_a_level_set_above_the_sender_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.member(BOB, "join");
        room.set_level("ban", 80);
        room.grant(BOB, 60);
        let mut content = room.power_levels_content();
        content["ban"] = json!(60);
        assert_rule(
            room.check_power_levels(BOB, content.clone()),
            Rule::PowerLevelsCurrentAboveSender,
        );
        // Removing it is a change too.
        if let Some(map) = content.as_object_mut() {
            map.remove("ban");
        }
        assert_rule(room.check_power_levels(BOB, content), Rule::PowerLevelsCurrentAboveSender);
    }

    #[test]
    fn setting_a_level_above_the_sender_is_rejected() {
        let mut room = TestRoom::new(RoomVersion::V12);
        room.member(BOB, "join");
        room.grant(BOB, 60);
        let mut content = room.power_levels_content();
        content["state_default"] = json!(61);
        assert_rule(room.check_power_levels(BOB, content), Rule::PowerLevelsNewAboveSender);
    }

    #[test]
    fn changing_an_events_or_notifications_entry_set_above_the_sender_is_rejected() {
        for key in ["events", "notifications"] {
            let mut room = TestRoom::new(RoomVersion::V11);
            room.member(BOB, "join");
            let mut content = room.power_levels_content();
            content[key] = json!({ "x": 70 });
            room.set_power_levels(content);
            room.grant(BOB, 60);
            let mut content = room.power_levels_content();
            content[key] = json!({});
            assert_rule(
                room.check_power_levels(BOB, content),
                Rule::PowerLevelsMapCurrentAboveSender,
            );
        }
    }

    #[test]
    fn setting_an_events_or_notifications_entry_above_the_sender_is_rejected() {
        for key in ["events", "notifications"] {
            let mut room = TestRoom::new(RoomVersion::V10);
            room.member(BOB, "join");
            room.grant(BOB, 60);
            let mut content = room.power_levels_content();
            content[key] = json!({ "x": 61 });
            assert_rule(
                room.check_power_levels(BOB, content.clone()),
                Rule::PowerLevelsMapNewAboveSender,
            );
            content[key] = json!({ "x": 60 });
            assert_allowed(room.check_power_levels(BOB, content));
        }
    }

    #[test]
    fn changing_a_peer_is_rejected_but_lowering_oneself_is_allowed() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "join");
            room.grant(BOB, 60);
            room.grant(CAROL, 60);
            let mut content = room.power_levels_content();
            content["users"][CAROL] = json!(0);
            assert_rule(room.check_power_levels(BOB, content), Rule::PowerLevelsUserNotBelowSender);
            let mut content = room.power_levels_content();
            content["users"][BOB] = json!(10);
            assert_allowed(room.check_power_levels(BOB, content));
        }
    }

    #[test]
    fn granting_a_level_above_the_sender_is_rejected() {
        for version in RoomVersion::ALL {
            let mut room = TestRoom::new(version);
            room.member(BOB, "join");
            room.grant(BOB, 60);
            let mut content = room.power_levels_content();
            content["users"][CAROL] = json!(61);
            assert_rule(
                room.check_power_levels(BOB, content.clone()),
                Rule::PowerLevelsUserNewAboveSender,
            );
            // Nor may one raise oneself.
            content["users"][CAROL] = json!(60);
            content["users"][BOB] = json!(61);
            assert_rule(room.check_power_levels(BOB, content), Rule::PowerLevelsUserNewAboveSender);
        }
    }

    #[test]
    fn changes_within_the_sender_level_are_allowed() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.member(BOB, "join");
        room.grant(BOB, 60);
        room.grant(CAROL, 20);
        let mut content = room.power_levels_content();
        content["users"][CAROL] = json!(60);
        content["kick"] = json!(60);
        content["events"] = json!({ "m.room.name": 60 });
        content["notifications"] = json!({ "room": 0 });
        assert_allowed(room.check_power_levels(BOB, content));
    }

    #[test]
    fn v12_creator_may_set_any_level() {
        let mut room = TestRoom::new(RoomVersion::V12);
        room.grant(BOB, MAX);
        let content = json!({ "users": { BOB: 0, CAROL: MAX }, "ban": MAX, "events": { "m.room.tombstone": MAX } });
        assert_allowed(room.check_power_levels(ALICE, content));
    }

    // Helpers for the caller.

    #[test]
    fn redaction_takes_effect_with_redact_level_or_same_server() {
        let mut room = TestRoom::new(RoomVersion::V11);
        room.grant(BOB, 50);
        let lookup = |event_type: &str, state_key: &str| {
            room.state.get(&(event_type.to_owned(), state_key.to_owned()))
        };
        let levels = current_power_levels(RoomVersion::V11, &lookup).expect("valid state");
        assert!(redaction_takes_effect(&levels, BOB, REMOTE));
        assert!(redaction_takes_effect(&levels, CAROL, BOB), "same server");
        assert!(!redaction_takes_effect(&levels, CAROL, REMOTE));
    }

    #[test]
    fn restricted_join_must_be_signed_by_the_authorising_server() {
        let mut room = TestRoom::new(RoomVersion::V11);
        let join = room.event(
            "m.room.member",
            Some(REMOTE),
            REMOTE,
            json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
        );
        assert_eq!(
            servers_that_must_sign(&join),
            ["elsewhere.test".to_owned(), "hearth.test".to_owned()]
        );
        let message = room.event("m.room.message", None, ALICE, json!({}));
        assert_eq!(servers_that_must_sign(&message), ["hearth.test".to_owned()]);
    }

    #[test]
    fn error_text_names_the_rule_as_numbered_in_the_room_version() {
        for (version, number) in [(RoomVersion::V11, "4.3.3"), (RoomVersion::V12, "5.3.3")] {
            let mut room = TestRoom::new(version);
            room.set_join_rule("public");
            room.member(BOB, "ban");
            let err = room.check_membership(BOB, BOB, "join").expect_err("banned");
            let text = err.to_string();
            assert!(text.contains(&format!("auth rule {number}")), "{text}");
            assert!(text.contains(&format!("room version {version}")), "{text}");
        }
    }
}
