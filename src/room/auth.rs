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
//! User IDs here (and in `power_levels`) stay `&str`, not `UserId`: the rules
//! read them out of event JSON (`sender`, `state_key`, content keys) and
//! checking that they are well formed is part of the rules themselves.
//!
//! Rule numbers in comments and errors are the v10/v11 ones unless stated;
//! v12 inserted rule 2 (room ID is the create event's ID), so its later rules
//! are one higher, and it inserted 10.4 into the power levels rule.

use std::fmt;

use serde_json::Value;

use crate::membership::Membership;
use crate::room::power_levels::{PowerLevel, PowerLevels, RoomCreators};
use crate::room::version::RoomVersion;

mod create;
mod member;
mod power_levels;
use create::check_create;
use member::check_member;
use power_levels::check_power_levels;

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
        let membership = event.content_str("membership").and_then(Membership::parse);
        if matches!(membership, Some(Membership::Join | Membership::Invite | Membership::Knock)) {
            push("m.room.join_rules", "");
        }
        if membership == Some(Membership::Invite)
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
        if membership == Some(Membership::Join)
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
    if room.membership(&event.sender)? != Membership::Join {
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

    /// The user's current membership; `leave` when they have no member
    /// event, which the rules treat the same as having left. Current state
    /// holds only authorised member events, whose membership rule 4.8 limits
    /// to the spec's values; any other would also count as `leave`, as every
    /// rule treats a value it does not name.
    fn membership(&self, user_id: &str) -> Result<Membership, AuthError> {
        Ok(self
            .lookup("m.room.member", user_id)?
            .and_then(|event| event.content_str("membership"))
            .and_then(Membership::parse)
            .unwrap_or(Membership::Leave))
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

/// The server name of a user or (v10/v11) room ID: everything after the first
/// `:`, since neither localparts nor opaque IDs may contain one.
fn server_name(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, server)| server)
}

#[cfg(test)]
mod tests;
