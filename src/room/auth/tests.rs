//! One test per authorization rule (room versions 10, 11, 12).
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
            RoomVersion::V11 => {
                ("!room:hearth.test", Some("!room:hearth.test"), json!({ "room_version": "11" }))
            }
            RoomVersion::V12 => ("!create", None, json!({ "room_version": "12" })),
        };
        let mut room =
            TestRoom { version, room_id: room_id.to_owned(), state: HashMap::new(), counter: 0 };
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
        let users = if version.privileged_creators() { json!({}) } else { json!({ ALICE: 100 }) };
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
    assert_allowed(check(RoomVersion::V11, &create_event(RoomVersion::V11, content), &no_state));
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
        assert_rule(check_auth_events(version, &event, &[&join_rules]), Rule::AuthEventsUnexpected);
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
    assert_rule(check_auth_events(RoomVersion::V12, &event, &[&member]), Rule::AuthEventsWrongRoom);
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
        let mut join = room.event("m.room.member", Some(BOB), BOB, json!({ "membership": "join" }));
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
        let via_carol = json!({ "membership": "join", "join_authorised_via_users_server": CAROL });
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
    let content = json!({ "membership": "invite", "third_party_invite": { "display_name": "b" } });
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
        assert_rule(room.check_membership(ALICE, BOB, "invite"), Rule::InviteTargetJoinedOrBanned);
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

const MAX: i64 = crate::room::power_levels::MAX_LEVEL;

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
    let redaction = room.event("m.room.redaction", None, BOB, json!({ "redacts": "$alice_msg" }));
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
    assert_rule(room.check_power_levels(BOB, content.clone()), Rule::PowerLevelsCurrentAboveSender);
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
        assert_rule(room.check_power_levels(BOB, content), Rule::PowerLevelsMapCurrentAboveSender);
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
