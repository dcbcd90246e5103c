//! The redaction algorithm: which parts of an event survive a redaction.
//!
//! spec: rooms/v10/#redactions (the v9 rules), rooms/v11/#redactions and
//! rooms/v12/#redactions (the v11 rules, unchanged in v12). The same stripped
//! form is what gets signed and what the reference hash (and so the event ID)
//! covers, so this must match other servers byte for byte.
//!
//! This module only computes the redacted JSON. It does not decide whether a
//! redaction is allowed, store anything, or add the client-facing
//! `unsigned.redacted_because`.

use serde_json::{Map, Value};

use crate::room::version::RoomVersion;

/// Top-level keys every supported version keeps.
const KEPT_TOP_LEVEL_KEYS: &[&str] = &[
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
];

/// Top-level keys v10 keeps on top of [`KEPT_TOP_LEVEL_KEYS`]; v11 stopped
/// protecting them.
const V10_ONLY_TOP_LEVEL_KEYS: &[&str] = &["prev_state", "origin", "membership"];

/// Returns the redacted copy of `event`.
///
/// Works on full PDUs and on client-format events alike: any key not in the
/// version's list is dropped. In particular `unsigned` is removed, because
/// the redacted form is what PDU signatures and reference hashes cover; a
/// caller serving the event to clients re-adds `unsigned.redacted_because`
/// (and, for v11+ `m.room.redaction` events, the compatibility top-level
/// `redacts`) itself.
///
/// The result always has a `content` object, as Synapse and the spec's
/// reference code produce. A non-object `event` has no keys to keep and
/// redacts to `{}`.
pub fn redact(event: &Value, version: RoomVersion) -> Value {
    let Some(event) = event.as_object() else {
        return Value::Object(Map::new());
    };

    let mut redacted = Map::new();
    for (key, value) in event {
        if key == "content" {
            continue;
        }
        if keeps_top_level_key(key, version) {
            redacted.insert(key.clone(), value.clone());
        }
    }

    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let content = match event.get("content") {
        Some(Value::Object(content)) => redact_content(event_type, content, version),
        _ => Map::new(),
    };
    redacted.insert("content".to_owned(), Value::Object(content));
    Value::Object(redacted)
}

/// Whether `version` redacts by the v11 rules (rooms/v11/#redactions).
///
/// An exhaustive match rather than a comparison, so adding a room version
/// forces a decision here.
fn uses_v11_rules(version: RoomVersion) -> bool {
    match version {
        RoomVersion::V10 => false,
        RoomVersion::V11 | RoomVersion::V12 => true,
    }
}

fn keeps_top_level_key(key: &str, version: RoomVersion) -> bool {
    KEPT_TOP_LEVEL_KEYS.contains(&key)
        || (!uses_v11_rules(version) && V10_ONLY_TOP_LEVEL_KEYS.contains(&key))
}

/// Strips `content` down to what the event type keeps in `version`.
fn redact_content(
    event_type: &str,
    content: &Map<String, Value>,
    version: RoomVersion,
) -> Map<String, Value> {
    let v11_rules = uses_v11_rules(version);
    let kept: &[&str] = match event_type {
        "m.room.member" => &["membership", "join_authorised_via_users_server"],
        // v11: the whole create content survives (room_version, m.federate,
        // and in v12 additional_creators all matter to auth).
        "m.room.create" if v11_rules => return content.clone(),
        "m.room.create" => &["creator"],
        "m.room.join_rules" => &["join_rule", "allow"],
        "m.room.power_levels" if v11_rules => &[
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.power_levels" => &[
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.history_visibility" => &["history_visibility"],
        "m.room.redaction" if v11_rules => &["redacts"],
        _ => &[],
    };

    let mut redacted: Map<String, Value> = content
        .iter()
        .filter(|(key, _)| kept.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();

    // v11: `third_party_invite` survives with only its `signed` key, so a
    // redacted third-party invite join can still be authorised. An object
    // without `signed` is kept as `{}`; a non-object has nothing to keep.
    if event_type == "m.room.member"
        && v11_rules
        && let Some(Value::Object(invite)) = content.get("third_party_invite")
    {
        let mut kept_invite = Map::new();
        if let Some(signed) = invite.get("signed") {
            kept_invite.insert("signed".to_owned(), signed.clone());
        }
        redacted.insert("third_party_invite".to_owned(), Value::Object(kept_invite));
    }

    redacted
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A PDU carrying every top-level key any version keeps, plus a few that
    /// no version keeps.
    fn pdu(event_type: &str, content: Value) -> Value {
        json!({
            "auth_events": ["$auth"],
            "content": content,
            "depth": 12,
            "event_id": "$event",
            "hashes": {"sha256": "abc"},
            "membership": "join",
            "origin": "example.org",
            "origin_server_ts": 1_700_000_000_000_u64,
            "prev_events": ["$prev"],
            "prev_state": [],
            "room_id": "!room:example.org",
            "sender": "@alice:example.org",
            "signatures": {"example.org": {"ed25519:1": "sig"}},
            "state_key": "",
            "type": event_type,
            "unsigned": {"age": 5},
            "redacts": "$other",
            "age_ts": 1,
            "custom": "dropped",
        })
    }

    fn redacted_content(event_type: &str, content: Value, version: RoomVersion) -> Value {
        redact(&pdu(event_type, content), version)["content"].clone()
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> =
            value.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn v10_keeps_origin_membership_and_prev_state() {
        let redacted = redact(&pdu("m.room.message", json!({})), RoomVersion::V10);
        assert_eq!(
            keys(&redacted),
            [
                "auth_events",
                "content",
                "depth",
                "event_id",
                "hashes",
                "membership",
                "origin",
                "origin_server_ts",
                "prev_events",
                "prev_state",
                "room_id",
                "sender",
                "signatures",
                "state_key",
                "type",
            ]
        );
    }

    #[test]
    fn v11_and_v12_drop_origin_membership_and_prev_state() {
        for version in [RoomVersion::V11, RoomVersion::V12] {
            let redacted = redact(&pdu("m.room.message", json!({})), version);
            assert_eq!(
                keys(&redacted),
                [
                    "auth_events",
                    "content",
                    "depth",
                    "event_id",
                    "hashes",
                    "origin_server_ts",
                    "prev_events",
                    "room_id",
                    "sender",
                    "signatures",
                    "state_key",
                    "type",
                ],
                "{version}"
            );
        }
    }

    #[test]
    fn kept_top_level_values_are_unchanged() {
        let original = pdu("m.room.message", json!({}));
        for version in RoomVersion::ALL {
            let redacted = redact(&original, version);
            for key in ["auth_events", "depth", "hashes", "signatures", "sender", "room_id"] {
                assert_eq!(redacted[key], original[key], "{version} {key}");
            }
        }
    }

    #[test]
    fn unsigned_and_unknown_top_level_keys_are_removed() {
        for version in RoomVersion::ALL {
            let redacted = redact(&pdu("m.room.message", json!({})), version);
            for key in ["unsigned", "redacts", "age_ts", "custom"] {
                assert!(redacted.get(key).is_none(), "{version} kept {key}");
            }
        }
    }

    #[test]
    fn message_content_is_emptied() {
        for version in RoomVersion::ALL {
            let content = json!({"body": "secret", "msgtype": "m.text"});
            assert_eq!(
                redacted_content("m.room.message", content, version),
                json!({}),
                "{version}"
            );
        }
    }

    #[test]
    fn member_keeps_membership_and_join_authorisation() {
        let content = json!({
            "membership": "join",
            "join_authorised_via_users_server": "@bob:example.org",
            "displayname": "Alice",
            "avatar_url": "mxc://example.org/a",
        });
        for version in RoomVersion::ALL {
            assert_eq!(
                redacted_content("m.room.member", content.clone(), version),
                json!({
                    "membership": "join",
                    "join_authorised_via_users_server": "@bob:example.org",
                }),
                "{version}"
            );
        }
    }

    #[test]
    fn member_third_party_invite_is_dropped_in_v10() {
        let content = json!({
            "membership": "invite",
            "third_party_invite": {"display_name": "a", "signed": {"mxid": "@a:b", "token": "t"}},
        });
        assert_eq!(
            redacted_content("m.room.member", content, RoomVersion::V10),
            json!({"membership": "invite"})
        );
    }

    #[test]
    fn member_third_party_invite_keeps_only_signed_from_v11() {
        let content = json!({
            "membership": "invite",
            "third_party_invite": {
                "display_name": "a",
                "signed": {"mxid": "@a:b", "token": "t", "signatures": {}},
            },
        });
        for version in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redacted_content("m.room.member", content.clone(), version),
                json!({
                    "membership": "invite",
                    "third_party_invite": {"signed": {"mxid": "@a:b", "token": "t", "signatures": {}}},
                }),
                "{version}"
            );
        }
    }

    #[test]
    fn member_third_party_invite_without_signed_becomes_empty_from_v11() {
        let content = json!({"membership": "invite", "third_party_invite": {"display_name": "a"}});
        assert_eq!(
            redacted_content("m.room.member", content, RoomVersion::V11),
            json!({"membership": "invite", "third_party_invite": {}})
        );
    }

    #[test]
    fn create_keeps_only_creator_in_v10() {
        let content =
            json!({"creator": "@alice:example.org", "room_version": "10", "m.federate": false});
        assert_eq!(
            redacted_content("m.room.create", content, RoomVersion::V10),
            json!({"creator": "@alice:example.org"})
        );
    }

    #[test]
    fn create_keeps_all_content_from_v11() {
        let content = json!({
            "room_version": "12",
            "m.federate": false,
            "additional_creators": ["@bob:example.org"],
            "type": "m.space",
            "predecessor": {"room_id": "!old:example.org"},
        });
        for version in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redacted_content("m.room.create", content.clone(), version),
                content,
                "{version}"
            );
        }
    }

    #[test]
    fn join_rules_keep_join_rule_and_allow() {
        let content = json!({
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": "!space:example.org"}],
            "other": 1,
        });
        for version in RoomVersion::ALL {
            assert_eq!(
                redacted_content("m.room.join_rules", content.clone(), version),
                json!({
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": "!space:example.org"}],
                }),
                "{version}"
            );
        }
    }

    fn full_power_levels() -> Value {
        json!({
            "ban": 50,
            "events": {"m.room.name": 50},
            "events_default": 0,
            "invite": 0,
            "kick": 50,
            "redact": 50,
            "state_default": 50,
            "users": {"@alice:example.org": 100},
            "users_default": 0,
            "notifications": {"room": 50},
        })
    }

    #[test]
    fn power_levels_drop_invite_and_notifications_in_v10() {
        assert_eq!(
            redacted_content("m.room.power_levels", full_power_levels(), RoomVersion::V10),
            json!({
                "ban": 50,
                "events": {"m.room.name": 50},
                "events_default": 0,
                "kick": 50,
                "redact": 50,
                "state_default": 50,
                "users": {"@alice:example.org": 100},
                "users_default": 0,
            })
        );
    }

    #[test]
    fn power_levels_keep_invite_from_v11() {
        for version in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redacted_content("m.room.power_levels", full_power_levels(), version),
                json!({
                    "ban": 50,
                    "events": {"m.room.name": 50},
                    "events_default": 0,
                    "invite": 0,
                    "kick": 50,
                    "redact": 50,
                    "state_default": 50,
                    "users": {"@alice:example.org": 100},
                    "users_default": 0,
                }),
                "{version}"
            );
        }
    }

    #[test]
    fn history_visibility_keeps_history_visibility() {
        let content = json!({"history_visibility": "shared", "x": 1});
        for version in RoomVersion::ALL {
            assert_eq!(
                redacted_content("m.room.history_visibility", content.clone(), version),
                json!({"history_visibility": "shared"}),
                "{version}"
            );
        }
    }

    #[test]
    fn redaction_content_redacts_is_dropped_in_v10() {
        let content = json!({"redacts": "$target", "reason": "spam"});
        assert_eq!(redacted_content("m.room.redaction", content, RoomVersion::V10), json!({}));
    }

    #[test]
    fn redaction_content_keeps_redacts_from_v11() {
        let content = json!({"redacts": "$target", "reason": "spam"});
        for version in [RoomVersion::V11, RoomVersion::V12] {
            assert_eq!(
                redacted_content("m.room.redaction", content.clone(), version),
                json!({"redacts": "$target"}),
                "{version}"
            );
        }
    }

    #[test]
    fn top_level_redacts_is_removed_in_every_version() {
        // v10 keeps `redacts` neither at the top level nor in content; a
        // known quirk of the pre-v11 algorithm.
        for version in RoomVersion::ALL {
            let redacted = redact(&pdu("m.room.redaction", json!({})), version);
            assert!(redacted.get("redacts").is_none(), "{version}");
        }
    }

    #[test]
    fn other_state_events_lose_all_content() {
        for event_type in
            ["m.room.name", "m.room.topic", "m.room.third_party_invite", "m.room.guest_access"]
        {
            for version in RoomVersion::ALL {
                assert_eq!(
                    redacted_content(event_type, json!({"name": "n", "topic": "t"}), version),
                    json!({}),
                    "{event_type} {version}"
                );
            }
        }
    }

    #[test]
    fn client_format_event_is_redacted_the_same_way() {
        let client_event = json!({
            "content": {"membership": "join", "displayname": "Alice"},
            "event_id": "$event",
            "origin_server_ts": 1,
            "room_id": "!room:example.org",
            "sender": "@alice:example.org",
            "state_key": "@alice:example.org",
            "type": "m.room.member",
            "unsigned": {"age": 10, "prev_content": {"membership": "invite"}},
        });
        assert_eq!(
            redact(&client_event, RoomVersion::V11),
            json!({
                "content": {"membership": "join"},
                "event_id": "$event",
                "origin_server_ts": 1,
                "room_id": "!room:example.org",
                "sender": "@alice:example.org",
                "state_key": "@alice:example.org",
                "type": "m.room.member",
            })
        );
    }

    #[test]
    fn missing_or_malformed_content_becomes_an_empty_object() {
        for content in [Value::Null, json!("text"), json!([1])] {
            let event = json!({"type": "m.room.member", "content": content});
            assert_eq!(redact(&event, RoomVersion::V12)["content"], json!({}));
        }
        let event = json!({"type": "m.room.message"});
        assert_eq!(
            redact(&event, RoomVersion::V12),
            json!({"type": "m.room.message", "content": {}})
        );
    }

    #[test]
    fn non_object_event_redacts_to_empty_object() {
        assert_eq!(redact(&json!([1, 2]), RoomVersion::V10), json!({}));
    }

    #[test]
    fn redaction_is_idempotent() {
        for version in RoomVersion::ALL {
            for event_type in
                ["m.room.member", "m.room.power_levels", "m.room.create", "m.room.message"]
            {
                let once = redact(&pdu(event_type, full_power_levels()), version);
                assert_eq!(redact(&once, version), once, "{event_type} {version}");
            }
        }
    }
}
