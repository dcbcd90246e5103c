//! Push rule evaluation: which rule, if any, an event matches for one user,
//! and what its actions mean.
//!
//! spec: client-server-api/#conditions-1, client-server-api/#actions,
//! appendices/#glob-style-matching, appendices/#dot-separated-property-paths.
//!
//! Evaluation reads only the event and the [`EvalContext`] the caller fills
//! from room state; it does not count notifications or contact pushers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::glob::{Span, find, glob_matches, literal_tokens, lowercase};
use super::rule::{
    Action, Comparison, Condition, PushRule, RuleKind, is_canonical_scalar, parse_member_count,
};
use super::ruleset::Ruleset;
use crate::ids::UserId;

/// The level a `notifications` key needs when the power levels do not name
/// it: the spec's default for `room`, used for every key.
pub const DEFAULT_NOTIFICATION_LEVEL: i64 = 50;

/// What evaluation needs to know about the user and the room.
#[derive(Clone, Copy, Debug)]
pub struct EvalContext<'a> {
    /// The user whose rules are evaluated.
    pub user_id: &'a UserId,
    /// The user's display name in the room, for `contains_display_name`.
    pub display_name: Option<&'a str>,
    /// Joined members of the room, for `room_member_count`.
    pub member_count: u64,
    /// The sender's power level; room creators in v12 rooms pass `i64::MAX`.
    pub sender_power_level: i64,
    /// The `notifications` object of the room's power levels content; keys
    /// missing here need [`DEFAULT_NOTIFICATION_LEVEL`].
    pub notification_power_levels: &'a BTreeMap<String, i64>,
}

/// The outcome of the first matching rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Actions {
    pub kind: RuleKind,
    pub rule_id: String,
    /// The rule has a `notify` action; `false` for rules that match in order
    /// to silence (`.m.rule.suppress_notices` and friends).
    pub notify: bool,
    /// The `highlight` tweak: `true` when given without a value, `false` when
    /// absent.
    pub highlight: bool,
    /// The `sound` tweak's value, if a string.
    pub sound: Option<String>,
    /// The rule's actions as stored.
    pub actions: Vec<Action>,
}

impl Actions {
    fn from_rule(kind: RuleKind, rule: &PushRule) -> Actions {
        let mut actions = Actions {
            kind,
            rule_id: rule.rule_id.clone(),
            notify: false,
            highlight: false,
            sound: None,
            actions: rule.actions.clone(),
        };
        for action in &rule.actions {
            match action {
                Action::Notify => actions.notify = true,
                Action::SetTweak { tweak, value } if tweak == "highlight" => {
                    actions.highlight = match value {
                        None => true,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => false,
                    };
                }
                Action::SetTweak { tweak, value } if tweak == "sound" => {
                    actions.sound = value.as_ref().and_then(Value::as_str).map(str::to_owned);
                }
                Action::SetTweak { .. } => {}
            }
        }
        actions
    }

    /// The `tweaks` object for a push gateway notification; a later tweak of
    /// the same name wins.
    pub fn tweaks(&self) -> Map<String, Value> {
        let mut tweaks = Map::new();
        for action in &self.actions {
            if let Action::SetTweak { tweak, value } = action {
                tweaks.insert(tweak.clone(), value.clone().unwrap_or(Value::Bool(true)));
            }
        }
        tweaks
    }
}

/// The actions of the first enabled rule that matches `event`, in the order
/// override, content, room, sender, underride; `None` when no rule matches or
/// the user sent the event (spec: servers MUST NOT notify users of their own
/// events).
pub fn evaluate(ruleset: &Ruleset, event: &Value, ctx: &EvalContext<'_>) -> Option<Actions> {
    if event.get("sender").and_then(Value::as_str) == Some(ctx.user_id.as_str()) {
        return None;
    }
    ruleset
        .iter()
        .find(|(kind, rule)| rule.enabled && rule_matches(*kind, rule, event, ctx))
        .map(|(kind, rule)| Actions::from_rule(kind, rule))
}

fn rule_matches(kind: RuleKind, rule: &PushRule, event: &Value, ctx: &EvalContext<'_>) -> bool {
    match kind {
        RuleKind::Override | RuleKind::Underride => rule
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|c| condition_matches(c, event, ctx)),
        RuleKind::Content => match (&rule.pattern, body(event)) {
            (Some(pattern), Some(body)) => glob_matches(pattern, body, Span::Words),
            _ => false,
        },
        RuleKind::Room => event.get("room_id").and_then(Value::as_str) == Some(&rule.rule_id),
        RuleKind::Sender => event.get("sender").and_then(Value::as_str) == Some(&rule.rule_id),
    }
}

fn body(event: &Value) -> Option<&str> {
    event.get("content")?.get("body")?.as_str()
}

fn condition_matches(condition: &Condition, event: &Value, ctx: &EvalContext<'_>) -> bool {
    match condition {
        Condition::EventMatch { key, pattern } => {
            let Some(value) = property(event, key).and_then(Value::as_str) else {
                return false;
            };
            // spec: `content.body` alone is matched by words, not as a whole.
            let span = if key == "content.body" { Span::Words } else { Span::Whole };
            glob_matches(pattern, value, span)
        }
        Condition::EventPropertyIs { key, value } => {
            property(event, key).is_some_and(|found| scalar_eq(found, value))
        }
        Condition::EventPropertyContains { key, value } => match property(event, key) {
            Some(Value::Array(items)) => items.iter().any(|item| scalar_eq(item, value)),
            _ => false,
        },
        Condition::ContainsDisplayName => match (ctx.display_name, body(event)) {
            // An empty name would match every body.
            (Some(name), Some(body)) if !name.is_empty() => {
                find(&literal_tokens(name), &lowercase(body), Span::Words)
            }
            _ => false,
        },
        Condition::RoomMemberCount { is } => match parse_member_count(is) {
            Some((Comparison::Eq, n)) => ctx.member_count == n,
            Some((Comparison::Lt, n)) => ctx.member_count < n,
            Some((Comparison::Gt, n)) => ctx.member_count > n,
            Some((Comparison::Le, n)) => ctx.member_count <= n,
            Some((Comparison::Ge, n)) => ctx.member_count >= n,
            None => false,
        },
        Condition::SenderNotificationPermission { key } => {
            let needed = ctx
                .notification_power_levels
                .get(key)
                .copied()
                .unwrap_or(DEFAULT_NOTIFICATION_LEVEL);
            ctx.sender_power_level >= needed
        }
        Condition::Unknown(_) => false,
    }
}

/// Exact equality of canonical JSON scalars; anything else (floats, arrays,
/// objects) never matches, and types are not converted (`1` is not `true`).
fn scalar_eq(found: &Value, wanted: &Value) -> bool {
    match (found, wanted) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            is_canonical_scalar(found) && a.as_i64().is_some_and(|a| b.as_i64() == Some(a))
        }
        _ => false,
    }
}

/// Splits a dot-separated property path: `\.` is a literal dot, `\\` a
/// literal backslash, and any other backslash stays as it is
/// (spec: appendices/#dot-separated-property-paths).
fn path_segments(key: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => segments.push(std::mem::take(&mut current)),
            '\\' => match chars.clone().next() {
                Some(next @ ('.' | '\\')) => {
                    chars.next();
                    current.push(next);
                }
                _ => current.push('\\'),
            },
            c => current.push(c),
        }
    }
    segments.push(current);
    segments
}

/// The value at `key`, walking objects only: a path cannot index arrays.
fn property<'e>(event: &'e Value, key: &str) -> Option<&'e Value> {
    // Without escapes the segments are plain substrings: no allocation.
    if !key.contains('\\') {
        return key.split('.').try_fold(event, |value, segment| value.as_object()?.get(segment));
    }
    path_segments(key).iter().try_fold(event, |value, segment| value.as_object()?.get(segment))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::push::{MASTER_RULE_ID, NewPushRule, default_ruleset};
    use crate::room::testing::ALICE_ID;

    const ALICE: &str = "@alice:example.org";
    const BOB: &str = "@bob:example.org";
    const ROOM: &str = "!room:example.org";

    fn levels(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn context(levels: &BTreeMap<String, i64>) -> EvalContext<'_> {
        EvalContext {
            user_id: &ALICE_ID,
            display_name: Some("Alice Liddell"),
            member_count: 5,
            sender_power_level: 0,
            notification_power_levels: levels,
        }
    }

    fn message(body: &str) -> Value {
        json!({
            "type": "m.room.message",
            "sender": BOB,
            "room_id": ROOM,
            "event_id": "$e",
            "content": {"msgtype": "m.text", "body": body},
        })
    }

    fn condition(raw: Value) -> Condition {
        Condition::try_from(raw).expect("valid condition")
    }

    fn holds(raw: Value, event: &Value) -> bool {
        let levels = levels(&[]);
        condition_matches(&condition(raw), event, &context(&levels))
    }

    fn eval(event: &Value, ctx: &EvalContext<'_>) -> Option<Actions> {
        evaluate(&default_ruleset(&ALICE_ID), event, ctx)
    }

    fn rule_id(event: &Value, ctx: &EvalContext<'_>) -> Option<String> {
        eval(event, ctx).map(|a| a.rule_id)
    }

    // --- property paths --------------------------------------------------

    #[test]
    fn path_segments_unescape_dots_and_backslashes_only() {
        assert_eq!(path_segments("content.body"), ["content", "body"]);
        assert_eq!(path_segments(r"content.m\.relates_to"), ["content", "m.relates_to"]);
        assert_eq!(path_segments(r"content.m\\foo"), ["content", r"m\foo"]);
        assert_eq!(path_segments(r"content.a\x"), ["content", r"a\x"]);
        assert_eq!(path_segments(r"a\"), [r"a\"]);
    }

    #[test]
    fn property_paths_walk_objects_but_not_arrays() {
        let event = json!({"content": {"m.relates_to": {"rel_type": "m.replace"}, "list": ["x"]}});
        assert_eq!(property(&event, r"content.m\.relates_to.rel_type"), Some(&json!("m.replace")));
        assert_eq!(property(&event, "content.m.relates_to.rel_type"), None);
        assert_eq!(property(&event, "content.list.0"), None);
    }

    // --- one test per condition kind ------------------------------------

    #[test]
    fn event_match_condition_needs_a_string_and_the_whole_value() {
        let topic = json!({"type": "m.room.topic", "content": {"topic": "Lunch plans"}});
        let lunch = json!({"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"});
        assert!(holds(lunch, &topic));
        let plans = json!({"kind": "event_match", "key": "content.topic", "pattern": "plans"});
        assert!(!holds(plans, &topic), "only content.body is matched by words");
        let any = json!({"kind": "event_match", "key": "content.topic", "pattern": "*"});
        assert!(!holds(any.clone(), &json!({"content": {"topic": null}})));
        assert!(!holds(any.clone(), &json!({"content": {"topic": 3}})));
        assert!(!holds(any, &json!({"content": {}})));
        let body = json!({"kind": "event_match", "key": "content.body", "pattern": "ex*ple"});
        assert!(holds(body, &message("An example event.")));
    }

    #[test]
    fn event_property_is_condition_compares_exactly_without_casting() {
        let create = |federate: Value| json!({"content": {"m.federate": federate}});
        let is_true =
            json!({"kind": "event_property_is", "key": r"content.m\.federate", "value": true});
        assert!(holds(is_true.clone(), &create(json!(true))));
        assert!(!holds(is_true.clone(), &create(json!("true"))));
        assert!(!holds(is_true.clone(), &create(json!(1))));
        assert!(!holds(is_true, &json!({"content": {}})));
        let is_null = json!({"kind": "event_property_is", "key": "content.x", "value": null});
        assert!(holds(is_null.clone(), &json!({"content": {"x": null}})));
        assert!(!holds(is_null, &json!({"content": {}})), "absent is not null");
        let is_two = json!({"kind": "event_property_is", "key": "content.n", "value": 2});
        assert!(holds(is_two.clone(), &json!({"content": {"n": 2}})));
        assert!(!holds(is_two, &json!({"content": {"n": 2.0}})));
    }

    #[test]
    fn event_property_contains_condition_needs_an_exact_element() {
        let event = json!({"content": {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com", [1]]}});
        let contains = |value: Value| json!({"kind": "event_property_contains", "key": "content.alt_aliases", "value": value});
        assert!(holds(contains(json!("#myroom:example.com")), &event));
        assert!(!holds(contains(json!(":example.com")), &event));
        assert!(!holds(
            contains(json!("#myroom:example.com")),
            &json!({"content": {"alt_aliases": "#myroom:example.com"}})
        ));
    }

    #[test]
    fn contains_display_name_condition_matches_whole_words_literally() {
        let raw = json!({"kind": "contains_display_name"});
        assert!(holds(raw.clone(), &message("hey alice liddell, lunch?")));
        assert!(!holds(raw.clone(), &message("hey alice")));
        assert!(!holds(raw.clone(), &message("xalice liddellx")));
        let levels = levels(&[]);
        let starry = EvalContext { display_name: Some("a*"), ..context(&levels) };
        assert!(
            !condition_matches(&condition(raw.clone()), &message("abc"), &starry),
            "not a glob"
        );
        assert!(condition_matches(&condition(raw.clone()), &message("hi a*"), &starry));
        let nameless = EvalContext { display_name: None, ..context(&levels) };
        assert!(!condition_matches(&condition(raw.clone()), &message("anything"), &nameless));
        let empty = EvalContext { display_name: Some(""), ..context(&levels) };
        assert!(!condition_matches(&condition(raw), &message("anything"), &empty));
    }

    #[test]
    fn room_member_count_condition_compares_with_each_operator() {
        let levels = levels(&[]);
        let event = message("hi");
        let check = |is: &str, members: u64| {
            let ctx = EvalContext { member_count: members, ..context(&levels) };
            condition_matches(
                &condition(json!({"kind": "room_member_count", "is": is})),
                &event,
                &ctx,
            )
        };
        assert!(check("2", 2) && !check("2", 3));
        assert!(check("==2", 2) && !check("==2", 1));
        assert!(check("<10", 9) && !check("<10", 10));
        assert!(check(">10", 11) && !check(">10", 10));
        assert!(check("<=10", 10) && !check("<=10", 11));
        assert!(check(">=10", 10) && !check(">=10", 9));
    }

    #[test]
    fn sender_notification_permission_condition_uses_levels_with_default_50() {
        let raw = json!({"kind": "sender_notification_permission", "key": "room"});
        let event = message("@room");
        let check = |levels: &BTreeMap<String, i64>, power: i64| {
            let ctx = EvalContext { sender_power_level: power, ..context(levels) };
            condition_matches(&condition(raw.clone()), &event, &ctx)
        };
        let unset = levels(&[]);
        assert!(check(&unset, 50) && !check(&unset, 49));
        let lowered = levels(&[("room", 0)]);
        assert!(check(&lowered, 0));
        let raised = levels(&[("room", 100)]);
        assert!(!check(&raised, 99) && check(&raised, 100));
    }

    #[test]
    fn unknown_condition_never_matches_and_disables_its_rule() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        let body = json!({"actions": ["notify", {"set_tweak": "highlight"}],
            "conditions": [{"kind": "org.example.always"}]});
        let rule = NewPushRule::from_body(RuleKind::Override, &body).expect("valid");
        ruleset.set_push_rule(RuleKind::Override, "future", rule, None, None).expect("adds");
        let levels = levels(&[]);
        let actions = evaluate(&ruleset, &message("hi"), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.message");
    }

    // --- the default rules ----------------------------------------------

    #[test]
    fn plain_message_in_a_group_notifies_without_sound() {
        let levels = levels(&[]);
        let actions = eval(&message("hello"), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.message");
        assert!(actions.notify && !actions.highlight);
        assert_eq!(actions.sound, None);
    }

    #[test]
    fn user_mention_highlights_with_sound() {
        let levels = levels(&[]);
        let mut event = message("hi");
        event["content"]["m.mentions"] = json!({"user_ids": [ALICE]});
        let actions = eval(&event, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.is_user_mention");
        assert!(actions.notify && actions.highlight);
        assert_eq!(actions.sound.as_deref(), Some("default"));
        assert_eq!(
            actions.tweaks(),
            json!({"sound": "default", "highlight": true}).as_object().cloned().expect("object")
        );

        event["content"]["m.mentions"] = json!({"user_ids": [BOB]});
        assert_eq!(rule_id(&event, &context(&levels)).as_deref(), Some(".m.rule.message"));
    }

    #[test]
    fn body_mentions_of_the_user_no_longer_highlight() {
        let levels = levels(&[]);
        let actions = eval(&message("alice: @alice:example.org Alice Liddell"), &context(&levels));
        let actions = actions.expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.message");
        assert!(!actions.highlight);
    }

    #[test]
    fn room_mention_highlights_only_with_permission() {
        let levels = levels(&[("room", 50)]);
        let mut event = message("@room hello");
        event["content"]["m.mentions"] = json!({"room": true});
        let moderator = EvalContext { sender_power_level: 50, ..context(&levels) };
        let actions = eval(&event, &moderator).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.is_room_mention");
        assert!(actions.notify && actions.highlight);
        assert_eq!(actions.sound, None);

        let member = EvalContext { sender_power_level: 0, ..context(&levels) };
        assert_eq!(rule_id(&event, &member).as_deref(), Some(".m.rule.message"));
    }

    #[test]
    fn one_to_one_message_notifies_with_sound() {
        let levels = levels(&[]);
        let dm = EvalContext { member_count: 2, ..context(&levels) };
        let actions = eval(&message("hi"), &dm).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.room_one_to_one");
        assert!(actions.notify);
        assert_eq!(actions.sound.as_deref(), Some("default"));
    }

    #[test]
    fn encrypted_events_notify_with_sound_only_in_one_to_one_rooms() {
        let levels = levels(&[]);
        let event = json!({"type": "m.room.encrypted", "sender": BOB, "room_id": ROOM,
            "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "..."}});
        let dm = EvalContext { member_count: 2, ..context(&levels) };
        let actions = eval(&event, &dm).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.encrypted_room_one_to_one");
        assert_eq!(actions.sound.as_deref(), Some("default"));

        let actions = eval(&event, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.encrypted");
        assert!(actions.notify);
        assert_eq!(actions.sound, None);
    }

    #[test]
    fn notices_are_suppressed() {
        let levels = levels(&[]);
        let mut event = message("build passed");
        event["content"]["msgtype"] = json!("m.notice");
        let actions = eval(&event, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.suppress_notices");
        assert!(!actions.notify);
    }

    #[test]
    fn edits_are_suppressed() {
        let levels = levels(&[]);
        let mut event = message("* fixed");
        event["content"]["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": "$orig"});
        let actions = eval(&event, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.suppress_edits");
        assert!(!actions.notify);

        // The spec lists `.m.rule.is_user_mention` first, so an edit that
        // mentions the user still highlights.
        event["content"]["m.mentions"] = json!({"user_ids": [ALICE]});
        assert_eq!(rule_id(&event, &context(&levels)).as_deref(), Some(".m.rule.is_user_mention"));
        event["content"].as_object_mut().expect("object").remove("m.mentions");

        // A reply is a relation too, but not a replacement.
        event["content"]["m.relates_to"] = json!({"m.in_reply_to": {"event_id": "$orig"}});
        assert_eq!(rule_id(&event, &context(&levels)).as_deref(), Some(".m.rule.message"));
    }

    #[test]
    fn invite_for_me_notifies_with_sound_and_others_invites_do_not() {
        let levels = levels(&[]);
        let invite = |target: &str| {
            json!({"type": "m.room.member", "sender": BOB, "room_id": ROOM, "state_key": target,
                "content": {"membership": "invite"}})
        };
        let actions = eval(&invite(ALICE), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.invite_for_me");
        assert!(actions.notify);
        assert_eq!(actions.sound.as_deref(), Some("default"));

        let actions = eval(&invite("@carol:example.org"), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.member_event");
        assert!(!actions.notify);
    }

    #[test]
    fn tombstone_highlights_only_as_a_state_event() {
        let levels = levels(&[]);
        let mut event = json!({"type": "m.room.tombstone", "sender": BOB, "room_id": ROOM,
            "state_key": "", "content": {"body": "moved", "replacement_room": "!new:x"}});
        let actions = eval(&event, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.tombstone");
        assert!(actions.notify && actions.highlight);

        event.as_object_mut().expect("object").remove("state_key");
        assert_eq!(eval(&event, &context(&levels)), None);
    }

    #[test]
    fn reactions_and_server_acls_are_suppressed() {
        let levels = levels(&[]);
        let reaction = json!({"type": "m.reaction", "sender": BOB, "room_id": ROOM,
            "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e", "key": "👍"}}});
        assert_eq!(rule_id(&reaction, &context(&levels)).as_deref(), Some(".m.rule.reaction"));
        let acl = json!({"type": "m.room.server_acl", "sender": BOB, "room_id": ROOM,
            "state_key": "", "content": {"allow": ["*"]}});
        let actions = eval(&acl, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.room.server_acl");
        assert!(!actions.notify);
    }

    #[test]
    fn calls_ring() {
        let levels = levels(&[]);
        let call = json!({"type": "m.call.invite", "sender": BOB, "room_id": ROOM,
            "content": {"call_id": "c", "lifetime": 60000, "version": "1"}});
        let actions = eval(&call, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.call");
        assert_eq!(actions.sound.as_deref(), Some("ring"));
    }

    #[test]
    fn master_rule_when_enabled_silences_everything_even_user_rules() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        let loud =
            NewPushRule { actions: vec![Action::Notify], conditions: Some(vec![]), pattern: None };
        ruleset.set_push_rule(RuleKind::Override, "loud", loud, None, None).expect("adds");
        assert_eq!(
            evaluate(&ruleset, &message("hi"), &context(&levels)).map(|a| a.rule_id).as_deref(),
            Some("loud")
        );

        ruleset.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("exists");
        let actions = evaluate(&ruleset, &message("hi"), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, MASTER_RULE_ID);
        assert!(!actions.notify);
    }

    #[test]
    fn disabled_rules_are_skipped() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset
            .set_push_rule_enabled(RuleKind::Underride, ".m.rule.message", false)
            .expect("exists");
        assert_eq!(evaluate(&ruleset, &message("hi"), &context(&levels)), None);
    }

    #[test]
    fn unmatched_events_and_own_events_give_no_actions() {
        let levels = levels(&[]);
        let custom =
            json!({"type": "org.example.thing", "sender": BOB, "room_id": ROOM, "content": {}});
        assert_eq!(eval(&custom, &context(&levels)), None);
        let mut own = message("hi");
        own["sender"] = json!(ALICE);
        own["content"]["m.mentions"] = json!({"user_ids": [ALICE]});
        assert_eq!(eval(&own, &context(&levels)), None);
    }

    // --- content, room and sender rules and kind precedence --------------

    #[test]
    fn content_rule_matches_body_words_case_insensitively() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        let cake = NewPushRule::from_body(
            RuleKind::Content,
            &json!({"pattern": "cake", "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}]}),
        )
        .expect("valid");
        ruleset.set_push_rule(RuleKind::Content, "cake", cake, None, None).expect("adds");
        let actions =
            evaluate(&ruleset, &message("Who wants CAKE?"), &context(&levels)).expect("matches");
        assert_eq!((actions.kind, actions.rule_id.as_str()), (RuleKind::Content, "cake"));
        assert_eq!(actions.sound.as_deref(), Some("cakealarm.wav"));
        let actions = evaluate(&ruleset, &message("pancakes"), &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, ".m.rule.message");
    }

    #[test]
    fn earlier_content_rule_wins_a_tie() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        let rule = |pattern: &str, sound: &str| {
            NewPushRule::from_body(
                RuleKind::Content,
                &json!({"pattern": pattern, "actions": ["notify", {"set_tweak": "sound", "value": sound}]}),
            )
            .expect("valid")
        };
        ruleset
            .set_push_rule(RuleKind::Content, "time", rule("time", "clock"), None, None)
            .expect("adds");
        ruleset
            .set_push_rule(RuleKind::Content, "tea", rule("tea", "kettle"), None, Some("time"))
            .expect("adds");
        let event = message("It's time for tea");
        let sound = |r: &Ruleset| evaluate(r, &event, &context(&levels)).and_then(|a| a.sound);
        assert_eq!(sound(&ruleset).as_deref(), Some("clock"));
        ruleset
            .set_push_rule(RuleKind::Content, "tea", rule("tea", "kettle"), Some("time"), None)
            .expect("moves");
        assert_eq!(sound(&ruleset).as_deref(), Some("kettle"));
    }

    #[test]
    fn room_and_sender_rules_match_by_rule_id_and_room_outranks_sender() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        let quiet = NewPushRule { actions: vec![], conditions: None, pattern: None };
        let loud = NewPushRule {
            actions: vec![Action::Notify, Action::highlight()],
            conditions: None,
            pattern: None,
        };
        ruleset.set_push_rule(RuleKind::Sender, BOB, loud, None, None).expect("adds");
        let actions = evaluate(&ruleset, &message("hi"), &context(&levels)).expect("matches");
        assert_eq!((actions.kind, actions.highlight), (RuleKind::Sender, true));

        ruleset.set_push_rule(RuleKind::Room, ROOM, quiet, None, None).expect("adds");
        let actions = evaluate(&ruleset, &message("hi"), &context(&levels)).expect("matches");
        assert_eq!((actions.kind, actions.notify), (RuleKind::Room, false));

        let mut elsewhere = message("hi");
        elsewhere["room_id"] = json!("!other:example.org");
        elsewhere["sender"] = json!("@carol:example.org");
        assert_eq!(
            evaluate(&ruleset, &elsewhere, &context(&levels)).map(|a| a.kind),
            Some(RuleKind::Underride)
        );
    }

    #[test]
    fn user_override_outranks_default_overrides_but_not_master() {
        let levels = levels(&[]);
        let mut ruleset = default_ruleset(&ALICE_ID);
        let body = json!({"actions": ["notify"], "conditions": [
            {"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}]});
        let rule = NewPushRule::from_body(RuleKind::Override, &body).expect("valid");
        ruleset.set_push_rule(RuleKind::Override, "notices", rule, None, None).expect("adds");
        let mut notice = message("build passed");
        notice["content"]["msgtype"] = json!("m.notice");
        let actions = evaluate(&ruleset, &notice, &context(&levels)).expect("matches");
        assert_eq!(actions.rule_id, "notices");
        assert!(actions.notify);
    }

    #[test]
    fn highlight_tweak_values_are_read() {
        let rule = |actions: Value| PushRule {
            rule_id: "r".to_owned(),
            default: false,
            enabled: true,
            actions: Action::parse_list(&actions).expect("valid"),
            conditions: None,
            pattern: None,
        };
        let read =
            |actions: Value| Actions::from_rule(RuleKind::Override, &rule(actions)).highlight;
        assert!(read(json!([{"set_tweak": "highlight"}])));
        assert!(read(json!([{"set_tweak": "highlight", "value": true}])));
        assert!(!read(json!([{"set_tweak": "highlight", "value": false}])));
        assert!(!read(json!(["notify"])));
    }
}
