//! The request body of simplified sliding sync and its normalised parts:
//! lists, room subscriptions, `required_state` (with `$ME`, `$LAZY`, `*`)
//! and the extension toggles. Both the matrix-rust-sdk spellings and the
//! newer MSC ones are accepted.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use serde::Deserialize;

use crate::ids::UserId;
use crate::store::StreamPos;

/// The largest `timeline_limit` honoured.
const MAX_TIMELINE_LIMIT: u64 = 100;

/// The request body (query parameters `pos` and `timeout` are merged in by
/// the handler).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlidingRequest {
    pub conn_id: Option<String>,
    pub txn_id: Option<String>,
    pub pos: Option<String>,
    pub timeout: Option<u64>,
    pub lists: BTreeMap<String, ListRequest>,
    pub room_subscriptions: BTreeMap<String, RoomConfigRequest>,
    pub extensions: ExtensionsRequest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListRequest {
    pub ranges: Vec<(u64, u64)>,
    /// The newer MSC spelling: one range.
    pub range: Option<(u64, u64)>,
    pub timeline_limit: Option<u64>,
    pub required_state: RequiredStateRequest,
    pub filters: Filters,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomConfigRequest {
    pub timeline_limit: Option<u64>,
    pub required_state: RequiredStateRequest,
}

/// `[[type, state_key], …]`, or the newer `{include, exclude, lazy_members}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RequiredStateRequest {
    Pairs(Vec<(String, String)>),
    Object {
        #[serde(default)]
        include: Vec<StateElement>,
        #[serde(default)]
        exclude: Vec<StateElement>,
        #[serde(default)]
        lazy_members: bool,
    },
}

impl Default for RequiredStateRequest {
    fn default() -> Self {
        RequiredStateRequest::Pairs(Vec::new())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StateElement {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub state_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    #[serde(alias = "is_invited")]
    pub is_invite: Option<bool>,
    pub spaces: Option<Vec<String>>,
    pub room_types: Option<Vec<Option<String>>>,
    pub not_room_types: Vec<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub not_tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExtensionsRequest {
    pub to_device: ToDeviceRequest,
    pub e2ee: Toggle,
    pub account_data: RoomExtension,
    pub receipts: RoomExtension,
    pub typing: RoomExtension,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToDeviceRequest {
    pub enabled: Option<bool>,
    pub since: Option<String>,
    pub limit: Option<u64>,
}

impl ToDeviceRequest {
    /// The acknowledged position: messages up to it may be deleted.
    pub fn since_pos(&self) -> Option<StreamPos> {
        if self.enabled != Some(true) {
            return None;
        }
        self.since.as_deref().and_then(|s| s.parse().ok()).map(StreamPos)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Toggle {
    pub enabled: Option<bool>,
}

/// An extension scoped to rooms: `lists` (`*` = all) and `rooms` (`*` = all
/// subscriptions); absent means all of them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomExtension {
    pub enabled: Option<bool>,
    pub lists: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
}

/// One `required_state` config, normalised: `$ME` replaced by the user,
/// `$LAZY` turned into `lazy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct RequiredState {
    pub(super) include: BTreeSet<(String, String)>,
    pub(super) exclude: BTreeSet<(String, String)>,
    pub(super) lazy: bool,
}

impl RequiredState {
    pub(super) fn from_request(r: &RequiredStateRequest, user_id: &UserId) -> RequiredState {
        let me = |k: String| if k == "$ME" { user_id.as_str().to_owned() } else { k };
        let mut out = RequiredState::default();
        let add = |set: &mut BTreeSet<(String, String)>, lazy: &mut bool, t: String, k: String| {
            if t == "m.room.member" && k == "$LAZY" {
                *lazy = true;
            } else {
                set.insert((t, me(k)));
            }
        };
        match r {
            RequiredStateRequest::Pairs(pairs) => {
                for (t, k) in pairs {
                    add(&mut out.include, &mut out.lazy, t.clone(), k.clone());
                }
            }
            RequiredStateRequest::Object { include, exclude, lazy_members } => {
                out.lazy = *lazy_members;
                let pair = |e: &StateElement| {
                    (
                        e.event_type.clone().unwrap_or_else(|| "*".into()),
                        e.state_key.clone().unwrap_or_else(|| "*".into()),
                    )
                };
                for e in include {
                    let (t, k) = pair(e);
                    add(&mut out.include, &mut out.lazy, t, k);
                }
                for e in exclude {
                    let (t, k) = pair(e);
                    out.exclude.insert((t, me(k)));
                }
            }
        }
        out
    }

    pub(super) fn set_matches(set: &BTreeSet<(String, String)>, t: &str, k: &str) -> bool {
        set.iter().any(|(st, sk)| (st == "*" || st == t) && (sk == "*" || sk == k))
    }

    pub(super) fn matches(&self, t: &str, k: &str) -> bool {
        Self::set_matches(&self.include, t, k) && !Self::set_matches(&self.exclude, t, k)
    }

    pub(super) fn has_wildcard(&self) -> bool {
        self.include.iter().any(|(t, k)| t == "*" || k == "*")
    }
}

/// The combined config of a room matched by several lists/subscriptions:
/// the largest timeline and the union of the required state.
#[derive(Clone, Debug, Default)]
pub(super) struct RoomConfig {
    pub(super) timeline_limit: usize,
    pub(super) required: BTreeSet<RequiredState>,
    pub(super) lists: BTreeSet<String>,
    pub(super) subscribed: bool,
}

impl RoomConfig {
    pub(super) fn merge(&mut self, limit: Option<u64>, required: RequiredState) {
        let limit = limit.unwrap_or(1).min(MAX_TIMELINE_LIMIT) as usize;
        self.timeline_limit = self.timeline_limit.max(limit);
        self.required.insert(required);
    }

    pub(super) fn matches(&self, t: &str, k: &str) -> bool {
        self.required.iter().any(|r| r.matches(t, k))
    }

    pub(super) fn lazy(&self) -> bool {
        self.required.iter().any(|r| r.lazy)
    }

    pub(super) fn has_wildcard(&self) -> bool {
        self.required.iter().any(RequiredState::has_wildcard)
    }

    /// Fingerprint of the state config, to notice a change between requests.
    pub(super) fn state_hash(&self) -> u64 {
        fingerprint(&self.required)
    }
}

pub(super) fn fingerprint<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn required_state_pairs_normalise_me_and_lazy() {
        let r = RequiredStateRequest::Pairs(vec![
            ("m.room.member".into(), "$LAZY".into()),
            ("m.room.member".into(), "$ME".into()),
            ("m.room.name".into(), "".into()),
        ]);
        let rs = RequiredState::from_request(&r, &UserId::parse("@a:x").expect("user ID"));
        assert!(rs.lazy);
        assert!(rs.matches("m.room.member", "@a:x"));
        assert!(!rs.matches("m.room.member", "@b:x"));
        assert!(rs.matches("m.room.name", ""));
        assert!(!rs.has_wildcard());
    }

    #[test]
    fn wildcards_and_excludes_match() {
        let r: RequiredStateRequest = serde_json::from_value(json!({
            "include": [{}], "exclude": [{ "type": "m.room.create" }]
        }))
        .unwrap();
        let rs = RequiredState::from_request(&r, &UserId::parse("@a:x").expect("user ID"));
        assert!(rs.matches("m.room.topic", ""));
        assert!(!rs.matches("m.room.create", ""));
        assert!(rs.has_wildcard());
    }
}
