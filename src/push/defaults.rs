//! The spec's server-default push rules, in the spec's order.
//!
//! spec: client-server-api/#predefined-rules (v1.17: the legacy body-based
//! mention rules `.m.rule.contains_display_name`, `.m.rule.roomnotif` and
//! `.m.rule.contains_user_name` were removed, so there are no default content
//! rules; mentions come from `m.mentions`).
//!
//! Only the definitions live here; where `.m.rule.master` ranks relative to
//! user rules, and the [`Ruleset`](super::Ruleset) built from these rules, are
//! the ruleset's business (`ruleset`, which imports this file, not the other
//! way round).

use serde_json::Value;

use super::rule::{Action, Condition, PushRule, RuleKind};

/// The rule that, once enabled, silences everything; it outranks user rules.
pub const MASTER_RULE_ID: &str = ".m.rule.master";

/// Every server-default rule with its kind, in priority order within a kind.
/// `user_id` appears only in conditions, never in `enabled` or `actions`.
/// A plain string, not a `UserId`: `Ruleset::to_json` builds the
/// user-independent baseline with no user at all (`""`).
pub(super) fn server_default_rules(user_id: &str) -> Vec<(RuleKind, PushRule)> {
    use RuleKind::{Override, Underride};

    let notify_with_sound = || vec![Action::Notify, Action::sound("default")];
    vec![
        (Override, rule(MASTER_RULE_ID, false, vec![], vec![])),
        (
            Override,
            rule(
                ".m.rule.suppress_notices",
                true,
                vec![event_match("content.msgtype", "m.notice")],
                vec![],
            ),
        ),
        (
            Override,
            rule(
                ".m.rule.invite_for_me",
                true,
                vec![
                    event_match("type", "m.room.member"),
                    event_match("content.membership", "invite"),
                    event_match("state_key", user_id),
                ],
                notify_with_sound(),
            ),
        ),
        (
            Override,
            rule(".m.rule.member_event", true, vec![event_match("type", "m.room.member")], vec![]),
        ),
        (
            Override,
            rule(
                ".m.rule.is_user_mention",
                true,
                vec![Condition::EventPropertyContains {
                    key: r"content.m\.mentions.user_ids".to_owned(),
                    value: Value::from(user_id),
                }],
                vec![Action::Notify, Action::sound("default"), Action::highlight()],
            ),
        ),
        (
            Override,
            rule(
                ".m.rule.is_room_mention",
                true,
                vec![
                    Condition::EventPropertyIs {
                        key: r"content.m\.mentions.room".to_owned(),
                        value: Value::Bool(true),
                    },
                    Condition::SenderNotificationPermission { key: "room".to_owned() },
                ],
                vec![Action::Notify, Action::highlight()],
            ),
        ),
        (
            Override,
            rule(
                ".m.rule.tombstone",
                true,
                // The state_key condition keeps a non-state event of this type
                // from matching; push rules have no implicit state check.
                vec![event_match("type", "m.room.tombstone"), event_match("state_key", "")],
                vec![Action::Notify, Action::highlight()],
            ),
        ),
        (Override, rule(".m.rule.reaction", true, vec![event_match("type", "m.reaction")], vec![])),
        (
            Override,
            rule(
                ".m.rule.room.server_acl",
                true,
                vec![event_match("type", "m.room.server_acl"), event_match("state_key", "")],
                vec![],
            ),
        ),
        (
            Override,
            rule(
                ".m.rule.suppress_edits",
                true,
                vec![Condition::EventPropertyIs {
                    key: r"content.m\.relates_to.rel_type".to_owned(),
                    value: Value::from("m.replace"),
                }],
                vec![],
            ),
        ),
        (
            Underride,
            rule(
                ".m.rule.call",
                true,
                vec![event_match("type", "m.call.invite")],
                vec![Action::Notify, Action::sound("ring")],
            ),
        ),
        (
            Underride,
            rule(
                ".m.rule.encrypted_room_one_to_one",
                true,
                vec![member_count("2"), event_match("type", "m.room.encrypted")],
                notify_with_sound(),
            ),
        ),
        (
            Underride,
            rule(
                ".m.rule.room_one_to_one",
                true,
                vec![member_count("2"), event_match("type", "m.room.message")],
                notify_with_sound(),
            ),
        ),
        (
            Underride,
            rule(
                ".m.rule.message",
                true,
                vec![event_match("type", "m.room.message")],
                vec![Action::Notify],
            ),
        ),
        (
            Underride,
            rule(
                ".m.rule.encrypted",
                true,
                vec![event_match("type", "m.room.encrypted")],
                vec![Action::Notify],
            ),
        ),
    ]
}

fn rule(
    rule_id: &str,
    enabled: bool,
    conditions: Vec<Condition>,
    actions: Vec<Action>,
) -> PushRule {
    PushRule {
        rule_id: rule_id.to_owned(),
        default: true,
        enabled,
        actions,
        conditions: Some(conditions),
        pattern: None,
    }
}

fn event_match(key: &str, pattern: &str) -> Condition {
    Condition::EventMatch { key: key.to_owned(), pattern: pattern.to_owned() }
}

fn member_count(is: &str) -> Condition {
    Condition::RoomMemberCount { is: is.to_owned() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::push::{Ruleset, default_ruleset};
    use crate::room::testing::ALICE_ID;

    fn ids(ruleset: &Ruleset, kind: RuleKind) -> Vec<String> {
        ruleset.rules(kind).map(|r| r.rule_id.clone()).collect()
    }

    #[test]
    fn default_rules_are_the_spec_list_in_the_spec_order() {
        let ruleset = default_ruleset(&ALICE_ID);
        assert_eq!(
            ids(&ruleset, RuleKind::Override),
            [
                ".m.rule.master",
                ".m.rule.suppress_notices",
                ".m.rule.invite_for_me",
                ".m.rule.member_event",
                ".m.rule.is_user_mention",
                ".m.rule.is_room_mention",
                ".m.rule.tombstone",
                ".m.rule.reaction",
                ".m.rule.room.server_acl",
                ".m.rule.suppress_edits",
            ]
        );
        assert!(ids(&ruleset, RuleKind::Content).is_empty());
        assert!(ids(&ruleset, RuleKind::Room).is_empty());
        assert!(ids(&ruleset, RuleKind::Sender).is_empty());
        assert_eq!(
            ids(&ruleset, RuleKind::Underride),
            [
                ".m.rule.call",
                ".m.rule.encrypted_room_one_to_one",
                ".m.rule.room_one_to_one",
                ".m.rule.message",
                ".m.rule.encrypted",
            ]
        );
    }

    #[test]
    fn only_master_is_disabled_by_default_and_all_are_marked_default() {
        let ruleset = default_ruleset(&ALICE_ID);
        for (_, rule) in ruleset.iter() {
            assert!(rule.default, "{}", rule.rule_id);
            assert_eq!(rule.enabled, rule.rule_id != MASTER_RULE_ID, "{}", rule.rule_id);
        }
    }

    #[test]
    fn user_specific_rules_name_the_user() {
        let ruleset = default_ruleset(&ALICE_ID);
        let invite = ruleset.get_push_rule(RuleKind::Override, ".m.rule.invite_for_me");
        let invite = serde_json::to_value(invite.expect("exists")).expect("serialises");
        assert_eq!(
            invite["conditions"][2],
            json!({"kind": "event_match", "key": "state_key", "pattern": "@alice:example.org"})
        );
        let mention = ruleset.get_push_rule(RuleKind::Override, ".m.rule.is_user_mention");
        let mention = serde_json::to_value(mention.expect("exists")).expect("serialises");
        assert_eq!(
            mention,
            json!({
                "rule_id": ".m.rule.is_user_mention",
                "default": true,
                "enabled": true,
                "conditions": [{
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": "@alice:example.org"
                }],
                "actions": ["notify", {"set_tweak": "sound", "value": "default"},
                    {"set_tweak": "highlight"}]
            })
        );
    }

    #[test]
    fn room_mention_and_one_to_one_rules_match_the_spec_definitions() {
        let ruleset = default_ruleset(&ALICE_ID);
        let room = ruleset.get_push_rule(RuleKind::Override, ".m.rule.is_room_mention");
        assert_eq!(
            serde_json::to_value(room.expect("exists")).expect("serialises")["conditions"],
            json!([
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true},
                {"kind": "sender_notification_permission", "key": "room"}
            ])
        );
        let dm = ruleset.get_push_rule(RuleKind::Underride, ".m.rule.room_one_to_one");
        assert_eq!(
            serde_json::to_value(dm.expect("exists")).expect("serialises"),
            json!({
                "rule_id": ".m.rule.room_one_to_one",
                "default": true,
                "enabled": true,
                "conditions": [
                    {"kind": "room_member_count", "is": "2"},
                    {"kind": "event_match", "key": "type", "pattern": "m.room.message"}
                ],
                "actions": ["notify", {"set_tweak": "sound", "value": "default"}]
            })
        );
    }
}
