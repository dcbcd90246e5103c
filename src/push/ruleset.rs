//! A user's ruleset: the operations of the push rules API with the spec's
//! ordering and validation, its `GET /pushrules/` JSON and its stored form.
//!
//! spec: client-server-api/#push-rules, client-server-api/#push-rules-api.
//!
//! A [`Ruleset`] keeps, per kind, the user-defined rules apart from the
//! server-default ones. That split carries two invariants of the spec: user
//! rules outrank the defaults of their kind (except `.m.rule.master`, which
//! outranks everything), and `before`/`after` can only name user rules. It also
//! makes the stored form small: the user's rules plus the defaults' changed
//! `enabled`/`actions`, so that a newer server's defaults apply to old users.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PushRuleError;
use super::defaults::{MASTER_RULE_ID, server_default_rules};
use super::rule::{
    Action, Condition, NewPushRule, PushRule, RuleKind, deserialize_actions,
    deserialize_optional_actions,
};
use crate::ids::UserId;

/// The rules of one kind.
#[derive(Clone, Debug, Default, PartialEq)]
struct KindRules {
    /// User-defined rules, most important first.
    user: Vec<PushRule>,
    /// Server-default rules in the spec's order.
    server_default: Vec<PushRule>,
}

impl KindRules {
    /// Priority order: `.m.rule.master` first (it outranks even user rules),
    /// then the user's rules, then the other server-default rules.
    fn in_priority_order(&self) -> impl Iterator<Item = &PushRule> {
        let leading = self.server_default.iter().filter(|r| r.rule_id == MASTER_RULE_ID);
        let trailing = self.server_default.iter().filter(|r| r.rule_id != MASTER_RULE_ID);
        leading.chain(&self.user).chain(trailing)
    }

    fn find(&self, rule_id: &str) -> Option<&PushRule> {
        self.user.iter().chain(&self.server_default).find(|r| r.rule_id == rule_id)
    }

    fn find_mut(&mut self, rule_id: &str) -> Option<&mut PushRule> {
        self.user.iter_mut().chain(&mut self.server_default).find(|r| r.rule_id == rule_id)
    }
}

/// A user's push rules: the server defaults with the user's changes and the
/// user's own rules.
///
/// Serialises as the body of `GET /pushrules/` (and the content of the
/// `m.push_rules` account data event): `{"global": {"override": [...], ...}}`.
/// For storage use [`Ruleset::to_json`], which keeps only what the user changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Ruleset {
    kinds: [KindRules; 5],
}

/// The server-default rules for `user_id`, with no user customisation.
pub fn default_ruleset(user_id: &UserId) -> Ruleset {
    Ruleset::from_server_defaults(server_default_rules(user_id.as_str()))
}

/// Where a `before`/`after` puts a rule relative to its anchor.
#[derive(Clone, Copy)]
enum Placement {
    Before,
    After,
}

impl Ruleset {
    /// A ruleset of exactly these server-default rules and no user rules.
    pub(super) fn from_server_defaults(rules: Vec<(RuleKind, PushRule)>) -> Ruleset {
        let mut ruleset = Ruleset { kinds: Default::default() };
        for (kind, rule) in rules {
            ruleset.kinds[kind.index()].server_default.push(rule);
        }
        ruleset
    }

    /// The rules of `kind`, most important first.
    pub fn rules(&self, kind: RuleKind) -> impl Iterator<Item = &PushRule> {
        self.kinds[kind.index()].in_priority_order()
    }

    /// Every rule in the order evaluation checks them.
    pub fn iter(&self) -> impl Iterator<Item = (RuleKind, &PushRule)> {
        RuleKind::ALL.into_iter().flat_map(move |kind| self.rules(kind).map(move |r| (kind, r)))
    }

    /// The body of `GET /pushrules/global/`.
    pub fn global(&self) -> GlobalRules<'_> {
        GlobalRules(self)
    }

    /// `GET /pushrules/global/{kind}/{ruleId}` (and its `/enabled` and
    /// `/actions` variants).
    pub fn get_push_rule(&self, kind: RuleKind, rule_id: &str) -> Result<&PushRule, PushRuleError> {
        self.kinds[kind.index()].find(rule_id).ok_or(PushRuleError::NotFound)
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}`: creates or replaces a
    /// user-defined rule.
    ///
    /// A new rule is enabled and, without `before`/`after`, becomes the most
    /// important user rule of its kind; a replaced rule keeps its place and
    /// its `enabled`. `before` wins when both are given. Anchors must be user
    /// rules of the same kind.
    pub fn set_push_rule(
        &mut self,
        kind: RuleKind,
        rule_id: &str,
        new: NewPushRule,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), PushRuleError> {
        check_user_rule_id(rule_id)?;
        let rules = &mut self.kinds[kind.index()];
        let anchor = match (before, after) {
            (Some(id), _) => Some((id, Placement::Before)),
            (None, Some(id)) => Some((id, Placement::After)),
            (None, None) => None,
        };
        if let Some((anchor_id, _)) = anchor
            && !rules.user.iter().any(|r| r.rule_id == anchor_id)
        {
            return Err(if rules.server_default.iter().any(|r| r.rule_id == anchor_id) {
                PushRuleError::RelativeToServerDefault(anchor_id.to_owned())
            } else {
                PushRuleError::BeforeAfterNotFound(anchor_id.to_owned())
            });
        }

        let existing = rules.user.iter().position(|r| r.rule_id == rule_id);
        let rule = PushRule {
            rule_id: rule_id.to_owned(),
            default: false,
            enabled: existing.is_none_or(|i| rules.user[i].enabled),
            actions: new.actions,
            conditions: new.conditions,
            pattern: new.pattern,
        };
        match (anchor, existing) {
            // Placed relative to itself: nothing moves.
            (Some((anchor_id, _)), Some(i)) if anchor_id == rule_id => rules.user[i] = rule,
            (Some((anchor_id, placement)), existing) => {
                if let Some(i) = existing {
                    rules.user.remove(i);
                }
                let at = rules
                    .user
                    .iter()
                    .position(|r| r.rule_id == anchor_id)
                    .expect("the anchor is a user rule other than the one removed");
                let at = match placement {
                    Placement::Before => at,
                    Placement::After => at + 1,
                };
                rules.user.insert(at, rule);
            }
            (None, Some(i)) => rules.user[i] = rule,
            (None, None) => rules.user.insert(0, rule),
        }
        Ok(())
    }

    /// `DELETE /pushrules/global/{kind}/{ruleId}`: only user rules can go.
    pub fn delete_push_rule(&mut self, kind: RuleKind, rule_id: &str) -> Result<(), PushRuleError> {
        let rules = &mut self.kinds[kind.index()];
        if let Some(i) = rules.user.iter().position(|r| r.rule_id == rule_id) {
            rules.user.remove(i);
            Ok(())
        } else if rules.server_default.iter().any(|r| r.rule_id == rule_id) {
            Err(PushRuleError::ServerDefaultRule(rule_id.to_owned()))
        } else {
            Err(PushRuleError::NotFound)
        }
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/enabled`; works on
    /// server-default rules too (that is how `.m.rule.master` is switched on).
    pub fn set_push_rule_enabled(
        &mut self,
        kind: RuleKind,
        rule_id: &str,
        enabled: bool,
    ) -> Result<(), PushRuleError> {
        let rule = self.kinds[kind.index()].find_mut(rule_id).ok_or(PushRuleError::NotFound)?;
        rule.enabled = enabled;
        Ok(())
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/actions`; works on
    /// server-default rules too.
    pub fn set_push_rule_actions(
        &mut self,
        kind: RuleKind,
        rule_id: &str,
        actions: Vec<Action>,
    ) -> Result<(), PushRuleError> {
        let rule = self.kinds[kind.index()].find_mut(rule_id).ok_or(PushRuleError::NotFound)?;
        rule.actions = actions;
        Ok(())
    }

    /// The user's customisation, for storage: their own rules and, for
    /// server-default rules, only an `enabled` or `actions` that differs
    /// from the default. Read back with [`Ruleset::from_json`].
    pub fn to_json(&self) -> Vec<u8> {
        // The defaults' `enabled` and `actions` do not depend on the user (only
        // some conditions name them), so any user ID gives the baseline.
        let pristine = Ruleset::from_server_defaults(server_default_rules(""));
        let mut stored = StoredRuleset::default();
        for kind in RuleKind::ALL {
            let rules = &self.kinds[kind.index()];
            if !rules.user.is_empty() {
                stored.user.insert(kind, rules.user.iter().map(StoredRule::from).collect());
            }
            let mut changed = BTreeMap::new();
            for rule in &rules.server_default {
                let base = pristine.kinds[kind.index()].find(&rule.rule_id);
                let change = StoredDefaultChange {
                    enabled: (base.map(|b| b.enabled) != Some(rule.enabled))
                        .then_some(rule.enabled),
                    actions: (base.map(|b| &b.actions) != Some(&rule.actions))
                        .then(|| rule.actions.clone()),
                };
                if change.enabled.is_some() || change.actions.is_some() {
                    changed.insert(rule.rule_id.clone(), change);
                }
            }
            if !changed.is_empty() {
                stored.server_default.insert(kind, changed);
            }
        }
        serde_json::to_vec(&stored).expect("push rules serialise: string keys, JSON values")
    }

    /// Rebuilds a ruleset from [`Ruleset::to_json`] output on top of the
    /// current server defaults for `user_id`. Changes to default rules this
    /// server no longer has are dropped.
    pub fn from_json(user_id: &UserId, json: &[u8]) -> Result<Ruleset, serde_json::Error> {
        let stored: StoredRuleset = serde_json::from_slice(json)?;
        let mut ruleset = Ruleset::from_server_defaults(server_default_rules(user_id.as_str()));
        for (kind, rules) in stored.user {
            ruleset.kinds[kind.index()].user = rules.into_iter().map(PushRule::from).collect();
        }
        for (kind, changes) in stored.server_default {
            for (rule_id, change) in changes {
                let rules = &mut ruleset.kinds[kind.index()].server_default;
                if let Some(rule) = rules.iter_mut().find(|r| r.rule_id == rule_id) {
                    if let Some(enabled) = change.enabled {
                        rule.enabled = enabled;
                    }
                    if let Some(actions) = change.actions {
                        rule.actions = actions;
                    }
                }
            }
        }
        Ok(ruleset)
    }
}

/// Server-default rule IDs start with a dot; `/` and `\` would be ambiguous in
/// the path (spec: the `ruleId` parameter of `setPushRule`).
fn check_user_rule_id(rule_id: &str) -> Result<(), PushRuleError> {
    let why = if rule_id.is_empty() {
        "it is empty"
    } else if rule_id.starts_with('.') {
        "IDs starting with '.' are reserved for server-default rules"
    } else if rule_id.contains(['/', '\\']) {
        "it contains '/' or '\\'"
    } else {
        return Ok(());
    };
    Err(PushRuleError::InvalidRuleId(format!("{rule_id:?}: {why}")))
}

/// The `global` object: one array per kind, in priority order.
pub struct GlobalRules<'a>(&'a Ruleset);

impl Serialize for GlobalRules<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(RuleKind::ALL.len()))?;
        for kind in RuleKind::ALL {
            let rules: Vec<&PushRule> = self.0.rules(kind).collect();
            map.serialize_entry(kind.as_str(), &rules)?;
        }
        map.end()
    }
}

impl Serialize for Ruleset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("global", &self.global())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Ruleset {
    /// Reads the `GET /pushrules/` shape as given: `"default": true` rules are
    /// the server defaults, the others the user's, each in listed order.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ruleset, D::Error> {
        #[derive(Deserialize)]
        struct Outer {
            global: BTreeMap<RuleKind, Vec<PushRule>>,
        }
        let outer = Outer::deserialize(d)?;
        let mut ruleset = Ruleset { kinds: Default::default() };
        for (kind, rules) in outer.global {
            let (server_default, user) = rules.into_iter().partition(|r| r.default);
            ruleset.kinds[kind.index()] = KindRules { user, server_default };
        }
        Ok(ruleset)
    }
}

/// The stored form: `{"user": {kind: [rule…]}, "server_default": {kind:
/// {rule_id: {"enabled"?, "actions"?}}}}`, empty parts left out.
#[derive(Default, Serialize, Deserialize)]
struct StoredRuleset {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    user: BTreeMap<RuleKind, Vec<StoredRule>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    server_default: BTreeMap<RuleKind, BTreeMap<String, StoredDefaultChange>>,
}

/// A user rule without the `default` flag, which is always false.
#[derive(Serialize, Deserialize)]
struct StoredRule {
    rule_id: String,
    enabled: bool,
    #[serde(deserialize_with = "deserialize_actions")]
    actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
}

impl From<&PushRule> for StoredRule {
    fn from(rule: &PushRule) -> StoredRule {
        StoredRule {
            rule_id: rule.rule_id.clone(),
            enabled: rule.enabled,
            actions: rule.actions.clone(),
            conditions: rule.conditions.clone(),
            pattern: rule.pattern.clone(),
        }
    }
}

impl From<StoredRule> for PushRule {
    fn from(rule: StoredRule) -> PushRule {
        PushRule {
            rule_id: rule.rule_id,
            default: false,
            enabled: rule.enabled,
            actions: rule.actions,
            conditions: rule.conditions,
            pattern: rule.pattern,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredDefaultChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_optional_actions"
    )]
    actions: Option<Vec<Action>>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::room::testing::ALICE_ID;

    fn body_rule(kind: RuleKind, body: Value) -> NewPushRule {
        NewPushRule::from_body(kind, &body).expect("valid rule body")
    }

    fn notify_rule() -> NewPushRule {
        NewPushRule { actions: vec![Action::Notify], conditions: Some(Vec::new()), pattern: None }
    }

    fn user_ids(ruleset: &Ruleset, kind: RuleKind) -> Vec<String> {
        ruleset.rules(kind).filter(|r| !r.default).map(|r| r.rule_id.clone()).collect()
    }

    #[test]
    fn new_rule_is_enabled_and_not_default() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset.set_push_rule(RuleKind::Room, "!a:x", notify_rule(), None, None).expect("adds");
        let rule = ruleset.get_push_rule(RuleKind::Room, "!a:x").expect("exists");
        assert!(rule.enabled);
        assert!(!rule.default);
    }

    #[test]
    fn new_rule_without_position_becomes_most_important_user_rule() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        for id in ["first", "second"] {
            ruleset.set_push_rule(RuleKind::Override, id, notify_rule(), None, None).expect("adds");
        }
        let ids: Vec<&str> =
            ruleset.rules(RuleKind::Override).map(|r| r.rule_id.as_str()).collect();
        // Master still outranks user rules; the other defaults come after them.
        assert_eq!(&ids[..4], [MASTER_RULE_ID, "second", "first", ".m.rule.suppress_notices"]);
    }

    #[test]
    fn before_and_after_place_rules_relative_to_user_rules() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        let add = |r: &mut Ruleset, id: &str, before: Option<&str>, after: Option<&str>| {
            r.set_push_rule(RuleKind::Underride, id, notify_rule(), before, after)
        };
        add(&mut ruleset, "a", None, None).expect("adds");
        add(&mut ruleset, "c", None, Some("a")).expect("adds");
        add(&mut ruleset, "b", Some("c"), None).expect("adds");
        add(&mut ruleset, "z", None, Some("c")).expect("adds");
        assert_eq!(user_ids(&ruleset, RuleKind::Underride), ["a", "b", "c", "z"]);
        // When both are given, `before` decides.
        add(&mut ruleset, "y", Some("a"), Some("z")).expect("adds");
        assert_eq!(user_ids(&ruleset, RuleKind::Underride), ["y", "a", "b", "c", "z"]);
    }

    #[test]
    fn replacing_a_rule_keeps_its_place_and_enabled_unless_moved() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        for id in ["c", "b", "a"] {
            ruleset.set_push_rule(RuleKind::Override, id, notify_rule(), None, None).expect("adds");
        }
        ruleset.set_push_rule_enabled(RuleKind::Override, "b", false).expect("exists");
        let quiet = NewPushRule { actions: vec![], conditions: Some(vec![]), pattern: None };
        ruleset
            .set_push_rule(RuleKind::Override, "b", quiet.clone(), None, None)
            .expect("replaces");
        assert_eq!(user_ids(&ruleset, RuleKind::Override), ["a", "b", "c"]);
        let b = ruleset.get_push_rule(RuleKind::Override, "b").expect("exists");
        assert!(!b.enabled);
        assert!(b.actions.is_empty());

        ruleset
            .set_push_rule(RuleKind::Override, "b", quiet.clone(), None, Some("c"))
            .expect("moves");
        assert_eq!(user_ids(&ruleset, RuleKind::Override), ["a", "c", "b"]);
        ruleset.set_push_rule(RuleKind::Override, "b", quiet, Some("b"), None).expect("stays");
        assert_eq!(user_ids(&ruleset, RuleKind::Override), ["a", "c", "b"]);
    }

    #[test]
    fn ordering_is_per_kind() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset.set_push_rule(RuleKind::Override, "a", notify_rule(), None, None).expect("adds");
        let e = ruleset.set_push_rule(RuleKind::Underride, "b", notify_rule(), Some("a"), None);
        assert_eq!(e, Err(PushRuleError::BeforeAfterNotFound("a".to_owned())));
    }

    #[test]
    fn rules_cannot_be_placed_relative_to_server_defaults() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        let e = ruleset.set_push_rule(
            RuleKind::Underride,
            "a",
            notify_rule(),
            Some(".m.rule.call"),
            None,
        );
        assert_eq!(e, Err(PushRuleError::RelativeToServerDefault(".m.rule.call".to_owned())));
        assert!(ruleset.get_push_rule(RuleKind::Underride, "a").is_err(), "nothing was added");
    }

    #[test]
    fn reserved_rule_ids_are_rejected() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        for id in [".m.rule.master", ".mine", "", "a/b", "a\\b"] {
            let e = ruleset.set_push_rule(RuleKind::Override, id, notify_rule(), None, None);
            assert!(matches!(e, Err(PushRuleError::InvalidRuleId(_))), "{id:?} was accepted");
        }
        let master = ruleset.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("exists");
        assert!(master.actions.is_empty(), "the default was not replaced");
    }

    #[test]
    fn missing_rules_are_not_found() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        assert_eq!(ruleset.get_push_rule(RuleKind::Room, "!nope:x"), Err(PushRuleError::NotFound));
        assert_eq!(
            ruleset.delete_push_rule(RuleKind::Room, "!nope:x"),
            Err(PushRuleError::NotFound)
        );
        assert_eq!(
            ruleset.set_push_rule_enabled(RuleKind::Room, "!nope:x", true),
            Err(PushRuleError::NotFound)
        );
        assert_eq!(
            ruleset.set_push_rule_actions(RuleKind::Room, "!nope:x", vec![]),
            Err(PushRuleError::NotFound)
        );
        // A default rule looked up under the wrong kind does not exist.
        assert_eq!(
            ruleset.get_push_rule(RuleKind::Underride, MASTER_RULE_ID),
            Err(PushRuleError::NotFound)
        );
    }

    #[test]
    fn user_rules_can_be_deleted() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset
            .set_push_rule(RuleKind::Sender, "@spam:x", notify_rule(), None, None)
            .expect("adds");
        ruleset.delete_push_rule(RuleKind::Sender, "@spam:x").expect("deletes");
        assert_eq!(
            ruleset.get_push_rule(RuleKind::Sender, "@spam:x"),
            Err(PushRuleError::NotFound)
        );
    }

    #[test]
    fn server_default_rules_cannot_be_deleted() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        assert_eq!(
            ruleset.delete_push_rule(RuleKind::Underride, ".m.rule.message"),
            Err(PushRuleError::ServerDefaultRule(".m.rule.message".to_owned()))
        );
        assert!(ruleset.get_push_rule(RuleKind::Underride, ".m.rule.message").is_ok());
    }

    #[test]
    fn server_default_rules_can_be_disabled_and_given_actions() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("exists");
        ruleset
            .set_push_rule_actions(RuleKind::Underride, ".m.rule.message", vec![])
            .expect("exists");
        let master = ruleset.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("exists");
        assert!(master.enabled && master.default);
        let message =
            ruleset.get_push_rule(RuleKind::Underride, ".m.rule.message").expect("exists");
        assert!(message.actions.is_empty());
    }

    #[test]
    fn get_pushrules_shape_lists_every_kind_with_default_and_enabled() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        let cake = body_rule(RuleKind::Content, json!({"pattern": "cake*lie", "actions": []}));
        ruleset.set_push_rule(RuleKind::Content, "nocake", cake, None, None).expect("adds");
        let value = serde_json::to_value(&ruleset).expect("serialises");
        let global = value["global"].as_object().expect("global object");
        let mut kinds: Vec<&str> = global.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["content", "override", "room", "sender", "underride"]);
        assert_eq!(
            global["content"],
            json!([{"rule_id": "nocake", "default": false, "enabled": true, "actions": [],
                "pattern": "cake*lie"}])
        );
        assert_eq!(
            global["override"][0],
            json!({"rule_id": ".m.rule.master", "default": true, "enabled": false,
                "actions": [], "conditions": []})
        );
        assert_eq!(global["room"], json!([]));
        assert_eq!(value["global"], serde_json::to_value(ruleset.global()).expect("serialises"));
    }

    #[test]
    fn get_pushrules_shape_round_trips() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset.set_push_rule(RuleKind::Override, "mine", notify_rule(), None, None).expect("adds");
        ruleset.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("exists");
        let json = serde_json::to_string(&ruleset).expect("serialises");
        let back: Ruleset = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, ruleset);
    }

    #[test]
    fn stored_form_of_untouched_defaults_is_empty() {
        assert_eq!(default_ruleset(&ALICE_ID).to_json(), b"{}");
    }

    #[test]
    fn stored_form_round_trips_user_rules_and_default_changes() {
        let mut ruleset = default_ruleset(&ALICE_ID);
        ruleset.set_push_rule(RuleKind::Override, "b", notify_rule(), None, None).expect("adds");
        ruleset.set_push_rule(RuleKind::Override, "a", notify_rule(), None, None).expect("adds");
        let cake = body_rule(RuleKind::Content, json!({"pattern": "cake", "actions": ["notify"]}));
        ruleset.set_push_rule(RuleKind::Content, "cake", cake, None, None).expect("adds");
        ruleset.set_push_rule_enabled(RuleKind::Override, "b", false).expect("exists");
        ruleset.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("exists");
        ruleset
            .set_push_rule_actions(
                RuleKind::Underride,
                ".m.rule.message",
                vec![Action::highlight()],
            )
            .expect("exists");

        let stored = ruleset.to_json();
        let back = Ruleset::from_json(&ALICE_ID, &stored).expect("parses");
        assert_eq!(back, ruleset);

        let stored: Value = serde_json::from_slice(&stored).expect("JSON");
        // Only the changes to defaults are stored, not the whole default set.
        assert_eq!(
            stored["server_default"],
            json!({"override": {".m.rule.master": {"enabled": true}},
                "underride": {".m.rule.message": {"actions": [{"set_tweak": "highlight"}]}}})
        );
    }

    #[test]
    fn stored_changes_to_unknown_defaults_are_dropped() {
        let stored = br#"{"server_default": {"override": {".m.rule.gone": {"enabled": true}}}}"#;
        let ruleset = Ruleset::from_json(&ALICE_ID, stored).expect("parses");
        assert_eq!(ruleset, default_ruleset(&ALICE_ID));
    }

    #[test]
    fn stored_form_that_is_not_ours_is_an_error() {
        assert!(Ruleset::from_json(&ALICE_ID, b"not json").is_err());
        assert!(
            Ruleset::from_json(&ALICE_ID, br#"{"user": {"override": [{"rule_id": "x"}]}}"#)
                .is_err()
        );
        assert!(Ruleset::from_json(&ALICE_ID, br#"{"user": {"sideways": []}}"#).is_err());
    }
}
