//! One push rule and its parts: the five rule kinds, actions, conditions, and
//! the checked body of a `PUT` — with the JSON each has on the wire.
//!
//! spec: client-server-api/#push-rules, client-server-api/#actions,
//! client-server-api/#conditions-1, data/api/client-server/pushrules.yaml.
//!
//! Input is validated here (unknown actions, malformed known conditions, a
//! content rule without a pattern); how rules are ordered and which may be
//! changed is `ruleset`'s business.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::PushRuleError;

/// The kinds of push rule, in the order they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Override,
    Content,
    Room,
    Sender,
    Underride,
}

impl RuleKind {
    /// Every kind, highest priority first.
    pub const ALL: [RuleKind; 5] = [
        RuleKind::Override,
        RuleKind::Content,
        RuleKind::Room,
        RuleKind::Sender,
        RuleKind::Underride,
    ];

    /// The name used in paths and in the ruleset JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Override => "override",
            RuleKind::Content => "content",
            RuleKind::Room => "room",
            RuleKind::Sender => "sender",
            RuleKind::Underride => "underride",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            RuleKind::Override => 0,
            RuleKind::Content => 1,
            RuleKind::Room => 2,
            RuleKind::Sender => 3,
            RuleKind::Underride => 4,
        }
    }

    /// Only override and underride rules carry `conditions`; the others have
    /// predefined ones (spec: client-server-api/#conditions-1).
    pub(super) fn has_conditions(self) -> bool {
        matches!(self, RuleKind::Override | RuleKind::Underride)
    }
}

impl FromStr for RuleKind {
    type Err = PushRuleError;

    fn from_str(s: &str) -> Result<RuleKind, PushRuleError> {
        RuleKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| PushRuleError::UnknownKind(s.to_owned()))
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action of a rule. `dont_notify` and `coalesce` are historical and are
/// stripped when actions are read (spec: client-server-api/#historical-actions),
/// so they have no variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `"notify"`.
    Notify,
    /// `{"set_tweak": tweak, "value": value}`; tweaks pass through to the push
    /// gateway, so any name and any value are kept.
    SetTweak { tweak: String, value: Option<Value> },
}

impl Action {
    /// `{"set_tweak": "sound", "value": sound}`.
    pub fn sound(sound: &str) -> Action {
        Action::SetTweak { tweak: "sound".to_owned(), value: Some(Value::from(sound)) }
    }

    /// `{"set_tweak": "highlight"}`, which means `true`.
    pub fn highlight() -> Action {
        Action::SetTweak { tweak: "highlight".to_owned(), value: None }
    }

    /// Parses an `actions` array, dropping the historical actions.
    pub fn parse_list(value: &Value) -> Result<Vec<Action>, PushRuleError> {
        let Value::Array(items) = value else {
            return Err(PushRuleError::BadRule("actions must be an array".to_owned()));
        };
        let mut actions = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) if s == "notify" => actions.push(Action::Notify),
                Value::String(s) if s == "dont_notify" || s == "coalesce" => {}
                Value::Object(map) => match map.get("set_tweak") {
                    Some(Value::String(tweak)) => actions.push(Action::SetTweak {
                        tweak: tweak.clone(),
                        value: map.get("value").cloned(),
                    }),
                    _ => return Err(PushRuleError::BadRule(format!("unknown action {item}"))),
                },
                _ => return Err(PushRuleError::BadRule(format!("unknown action {item}"))),
            }
        }
        Ok(actions)
    }

    pub fn to_value(&self) -> Value {
        match self {
            Action::Notify => Value::from("notify"),
            Action::SetTweak { tweak, value } => {
                let mut map = Map::new();
                map.insert("set_tweak".to_owned(), Value::from(tweak.as_str()));
                if let Some(value) = value {
                    map.insert("value".to_owned(), value.clone());
                }
                Value::Object(map)
            }
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

pub(super) fn deserialize_actions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Action>, D::Error> {
    Action::parse_list(&Value::deserialize(d)?).map_err(D::Error::custom)
}

pub(super) fn deserialize_optional_actions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Action>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        Some(value) => Action::parse_list(&value).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

/// A condition of an override or underride rule.
///
/// A condition of a kind this server does not know is kept as it was sent
/// and never matches, which disables its rule (spec: "Unrecognised conditions
/// MUST NOT match any events").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Condition {
    /// Glob match of the string at a dot-separated path.
    EventMatch { key: String, pattern: String },
    /// Exact match of the scalar at a path.
    EventPropertyIs { key: String, value: Value },
    /// The array at a path has an element exactly equal to `value`.
    EventPropertyContains { key: String, value: Value },
    /// `content.body` contains the user's display name; deprecated in v1.17
    /// but still defined.
    ContainsDisplayName,
    /// `is`: a decimal count, optionally after `==`, `<`, `>`, `<=` or `>=`.
    RoomMemberCount { is: String },
    /// The sender's power level reaches `notifications.<key>`.
    SenderNotificationPermission { key: String },
    /// Any other `kind`, kept verbatim.
    Unknown(Map<String, Value>),
}

/// The comparison of a `room_member_count` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Comparison {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

/// Parses a `room_member_count` `is` value; no prefix means `==`.
pub(super) fn parse_member_count(is: &str) -> Option<(Comparison, u64)> {
    // Two-character prefixes first, so that "<=" is not read as "<" "=".
    let (comparison, number) = if let Some(n) = is.strip_prefix("==") {
        (Comparison::Eq, n)
    } else if let Some(n) = is.strip_prefix("<=") {
        (Comparison::Le, n)
    } else if let Some(n) = is.strip_prefix(">=") {
        (Comparison::Ge, n)
    } else if let Some(n) = is.strip_prefix('<') {
        (Comparison::Lt, n)
    } else if let Some(n) = is.strip_prefix('>') {
        (Comparison::Gt, n)
    } else {
        (Comparison::Eq, is)
    };
    // `u64::from_str` accepts a leading '+', which is not a decimal integer
    // in the spec's sense.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((comparison, number.parse().ok()?))
}

/// The values `event_property_is`/`_contains` may compare: canonical JSON
/// scalars (spec: appendices/#canonical-json).
pub(super) fn is_canonical_scalar(value: &Value) -> bool {
    const MAX_SAFE: i64 = (1 << 53) - 1;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => n.as_i64().is_some_and(|i| (-MAX_SAFE..=MAX_SAFE).contains(&i)),
        Value::Array(_) | Value::Object(_) => false,
    }
}

impl TryFrom<Value> for Condition {
    type Error = String;

    fn try_from(value: Value) -> Result<Condition, String> {
        let Value::Object(map) = value else {
            return Err("a condition must be an object".to_owned());
        };
        let Some(Value::String(kind)) = map.get("kind") else {
            return Err("a condition needs a string kind".to_owned());
        };
        let string = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("{kind} condition needs a string {name}")),
        };
        let scalar = |name: &str| match map.get(name) {
            Some(v) if is_canonical_scalar(v) => Ok(v.clone()),
            _ => Err(format!("{kind} condition needs a string, integer, boolean or null {name}")),
        };
        Ok(match kind.as_str() {
            "event_match" => {
                Condition::EventMatch { key: string("key")?, pattern: string("pattern")? }
            }
            "event_property_is" => {
                Condition::EventPropertyIs { key: string("key")?, value: scalar("value")? }
            }
            "event_property_contains" => {
                Condition::EventPropertyContains { key: string("key")?, value: scalar("value")? }
            }
            "contains_display_name" => Condition::ContainsDisplayName,
            "room_member_count" => {
                let is = string("is")?;
                if parse_member_count(&is).is_none() {
                    return Err(format!("room_member_count cannot compare with {is:?}"));
                }
                Condition::RoomMemberCount { is }
            }
            "sender_notification_permission" => {
                Condition::SenderNotificationPermission { key: string("key")? }
            }
            _ => Condition::Unknown(map),
        })
    }
}

impl From<Condition> for Value {
    fn from(condition: Condition) -> Value {
        let mut map = Map::new();
        let mut put = |name: &str, value: Value| {
            map.insert(name.to_owned(), value);
        };
        match condition {
            Condition::EventMatch { key, pattern } => {
                put("kind", "event_match".into());
                put("key", key.into());
                put("pattern", pattern.into());
            }
            Condition::EventPropertyIs { key, value } => {
                put("kind", "event_property_is".into());
                put("key", key.into());
                put("value", value);
            }
            Condition::EventPropertyContains { key, value } => {
                put("kind", "event_property_contains".into());
                put("key", key.into());
                put("value", value);
            }
            Condition::ContainsDisplayName => put("kind", "contains_display_name".into()),
            Condition::RoomMemberCount { is } => {
                put("kind", "room_member_count".into());
                put("is", is.into());
            }
            Condition::SenderNotificationPermission { key } => {
                put("kind", "sender_notification_permission".into());
                put("key", key.into());
            }
            Condition::Unknown(raw) => return Value::Object(raw),
        }
        Value::Object(map)
    }
}

/// One push rule, in the shape `GET /pushrules/global/{kind}/{ruleId}` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushRule {
    pub rule_id: String,
    /// Whether this is a server-default rule.
    pub default: bool,
    pub enabled: bool,
    #[serde(deserialize_with = "deserialize_actions")]
    pub actions: Vec<Action>,
    /// Override and underride rules only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Content rules only: the glob matched against `content.body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The body of `PUT /pushrules/global/{kind}/{ruleId}`, checked for its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPushRule {
    pub actions: Vec<Action>,
    /// `Some` (possibly empty) for override and underride rules, else `None`.
    pub conditions: Option<Vec<Condition>>,
    /// `Some` for content rules, else `None`.
    pub pattern: Option<String>,
}

impl NewPushRule {
    /// Reads the request body. Keys that do not apply to `kind` (a `pattern`
    /// on an override rule, `conditions` on a content rule) are ignored.
    pub fn from_body(kind: RuleKind, body: &Value) -> Result<NewPushRule, PushRuleError> {
        let Value::Object(body) = body else {
            return Err(PushRuleError::BadRule("the body must be an object".to_owned()));
        };
        let actions = body
            .get("actions")
            .ok_or_else(|| PushRuleError::BadRule("missing actions".to_owned()))?;
        let actions = Action::parse_list(actions)?;
        let conditions = if kind.has_conditions() {
            let conditions = match body.get("conditions") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|c| Condition::try_from(c.clone()).map_err(PushRuleError::BadRule))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => {
                    return Err(PushRuleError::BadRule("conditions must be an array".to_owned()));
                }
            };
            Some(conditions)
        } else {
            None
        };
        let pattern = if kind == RuleKind::Content {
            match body.get("pattern") {
                Some(Value::String(pattern)) => Some(pattern.clone()),
                _ => {
                    return Err(PushRuleError::BadRule(
                        "content rules need a string pattern".to_owned(),
                    ));
                }
            }
        } else {
            None
        };
        Ok(NewPushRule { actions, conditions, pattern })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body_rule(kind: RuleKind, body: Value) -> NewPushRule {
        NewPushRule::from_body(kind, &body).expect("valid rule body")
    }

    #[test]
    fn rule_kind_parses_path_segments_and_rejects_others() {
        for kind in RuleKind::ALL {
            assert_eq!(kind.as_str().parse::<RuleKind>(), Ok(kind));
        }
        assert_eq!(
            "global".parse::<RuleKind>(),
            Err(PushRuleError::UnknownKind("global".to_owned()))
        );
    }

    #[test]
    fn historical_actions_are_stripped() {
        let actions = Action::parse_list(&json!(["dont_notify", "coalesce"])).expect("valid");
        assert!(actions.is_empty());
        let actions = Action::parse_list(&json!(["notify", "coalesce"])).expect("valid");
        assert_eq!(actions, vec![Action::Notify]);
    }

    #[test]
    fn unknown_actions_are_rejected() {
        for bad in [json!(["explode"]), json!([{"tweak": "sound"}]), json!([1]), json!("notify")] {
            assert!(
                matches!(Action::parse_list(&bad), Err(PushRuleError::BadRule(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn tweaks_round_trip_with_any_value() {
        let raw = json!(["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "highlight"},
            {"set_tweak": "x-led", "value": {"colour": "red"}}]);
        let actions = Action::parse_list(&raw).expect("valid");
        assert_eq!(serde_json::to_value(&actions).expect("serialises"), raw);
    }

    #[test]
    fn unknown_condition_kinds_are_kept_verbatim() {
        let raw = json!({"kind": "org.example.future", "wibble": [1, 2]});
        let condition = Condition::try_from(raw.clone()).expect("unknown kinds are accepted");
        assert!(matches!(condition, Condition::Unknown(_)));
        assert_eq!(Value::from(condition), raw);
    }

    #[test]
    fn malformed_known_conditions_are_rejected() {
        for bad in [
            json!({"kind": "event_match", "key": "type"}),
            json!({"kind": "event_property_is", "key": "content.x", "value": [1]}),
            json!({"kind": "event_property_is", "key": "content.x", "value": 1.5}),
            json!({"kind": "event_property_contains", "key": "content.x", "value": {"a": 1}}),
            json!({"kind": "room_member_count", "is": "about 2"}),
            json!({"kind": "room_member_count", "is": "=<2"}),
            json!({"kind": "sender_notification_permission"}),
            json!({"key": "type", "pattern": "m.room.message"}),
            json!("event_match"),
        ] {
            assert!(Condition::try_from(bad.clone()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn member_count_prefixes_parse() {
        assert_eq!(parse_member_count("2"), Some((Comparison::Eq, 2)));
        assert_eq!(parse_member_count("==2"), Some((Comparison::Eq, 2)));
        assert_eq!(parse_member_count("<10"), Some((Comparison::Lt, 10)));
        assert_eq!(parse_member_count(">10"), Some((Comparison::Gt, 10)));
        assert_eq!(parse_member_count("<=10"), Some((Comparison::Le, 10)));
        assert_eq!(parse_member_count(">=10"), Some((Comparison::Ge, 10)));
        assert_eq!(parse_member_count("+2"), None);
        assert_eq!(parse_member_count(""), None);
        assert_eq!(parse_member_count("<"), None);
    }

    #[test]
    fn put_body_requires_actions() {
        let e = NewPushRule::from_body(RuleKind::Override, &json!({"conditions": []}));
        assert!(matches!(e, Err(PushRuleError::BadRule(_))));
    }

    #[test]
    fn put_body_of_a_content_rule_requires_a_pattern() {
        let e = NewPushRule::from_body(RuleKind::Content, &json!({"actions": ["notify"]}));
        assert!(matches!(e, Err(PushRuleError::BadRule(_))));
    }

    #[test]
    fn put_body_keeps_only_the_fields_of_its_kind() {
        let body = json!({"actions": [], "pattern": "cake", "conditions": []});
        let content = body_rule(RuleKind::Content, body.clone());
        assert_eq!((content.pattern.as_deref(), content.conditions), (Some("cake"), None));
        let room = body_rule(RuleKind::Room, body.clone());
        assert_eq!((room.pattern, room.conditions), (None, None));
        let over = body_rule(RuleKind::Override, json!({"actions": []}));
        assert_eq!((over.pattern, over.conditions), (None, Some(Vec::new())));
    }
}
