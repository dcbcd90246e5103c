//! Filters (spec: client-server-api/#filtering): what `/sync`, `/messages`,
//! `/context` and `/search` return. A filter is validated once, when it is
//! uploaded or given inline, into typed structs; matching an event then
//! costs a few string comparisons. Uploaded filters are stored per user
//! ([`store_filter`]).

use serde_json::{Map, Value};

use crate::error::MatrixError;
use crate::ids::{IdError, RoomId, UserId};
use crate::quota;
use crate::store::{StoreError, WriteCtx};

/// An `EventFilter`: who sent it and what type it is.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub limit: Option<usize>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<UserId>>,
    pub not_senders: Vec<UserId>,
}

/// A `RoomEventFilter`: an [`EventFilter`] plus rooms, `contains_url` and
/// the lazy-loading switches.
#[derive(Clone, Debug, Default)]
pub struct RoomEventFilter {
    pub events: EventFilter,
    pub rooms: Option<Vec<RoomId>>,
    pub not_rooms: Vec<RoomId>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
    pub unread_thread_notifications: bool,
}

/// The `room` part of a filter.
#[derive(Clone, Debug, Default)]
pub struct RoomFilter {
    pub rooms: Option<Vec<RoomId>>,
    pub not_rooms: Vec<RoomId>,
    pub include_leave: bool,
    pub timeline: RoomEventFilter,
    pub state: RoomEventFilter,
    pub ephemeral: RoomEventFilter,
    pub account_data: RoomEventFilter,
}

/// A whole filter, as `POST /user/{userId}/filter` stores it.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Dot-separated paths of the event fields to keep (all when `None`).
    pub event_fields: Option<Vec<Vec<String>>>,
    pub room: RoomFilter,
    pub presence: EventFilter,
    pub account_data: EventFilter,
}

/// Whether `event_type` matches `pattern`, where `*` matches any run of
/// characters.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == event_type,
        Some((head, rest)) => {
            let Some(tail) = event_type.strip_prefix(head) else { return false };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| type_matches(rest, &tail[i..]))
        }
    }
}

impl EventFilter {
    /// Whether an event of `event_type` from `sender` passes. `sender`
    /// stays a string: it is read from each event's JSON on the hot path of
    /// filtering, where a typed ID would cost an allocation per event.
    pub fn allows(&self, event_type: &str, sender: &str) -> bool {
        self.allows_type(event_type)
            && self.senders.as_ref().is_none_or(|s| s.iter().any(|x| x.as_str() == sender))
            && !self.not_senders.iter().any(|x| x.as_str() == sender)
    }

    pub fn allows_type(&self, event_type: &str) -> bool {
        self.types.as_ref().is_none_or(|ts| ts.iter().any(|p| type_matches(p, event_type)))
            && !self.not_types.iter().any(|p| type_matches(p, event_type))
    }

    /// Whether the filter can drop events at all (an empty filter lets
    /// the fast paths skip parsing).
    pub fn is_open(&self) -> bool {
        self.types.is_none()
            && self.not_types.is_empty()
            && self.senders.is_none()
            && self.not_senders.is_empty()
    }

    fn parse(o: &Map<String, Value>, path: &str) -> Result<Self, MatrixError> {
        let limit = match o.get("limit") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(l) => Some(usize::try_from(l).unwrap_or(usize::MAX)),
                None => return Err(invalid(path, "limit", "must be a non-negative integer")),
            },
            Some(_) => return Err(bad(path, "limit", "must be an integer")),
        };
        Ok(EventFilter {
            limit,
            types: strings(o, path, "types")?,
            not_types: strings(o, path, "not_types")?.unwrap_or_default(),
            senders: users(o, path, "senders")?,
            not_senders: users(o, path, "not_senders")?.unwrap_or_default(),
        })
    }
}

impl RoomEventFilter {
    /// Whether the room passes the `rooms`/`not_rooms` lists.
    pub fn allows_room(&self, room_id: &RoomId) -> bool {
        room_allowed(&self.rooms, &self.not_rooms, room_id)
    }

    /// Whether an event (client format, any room) passes the type, sender
    /// and `contains_url` conditions. The room is checked separately.
    pub fn allows_event(&self, event: &Value) -> bool {
        let ty = event.get("type").and_then(Value::as_str).unwrap_or_default();
        let sender = event.get("sender").and_then(Value::as_str).unwrap_or_default();
        if !self.events.allows(ty, sender) {
            return false;
        }
        match self.contains_url {
            None => true,
            Some(want) => {
                let has = event.get("content").and_then(|c| c.get("url")).is_some();
                has == want
            }
        }
    }

    /// Whether no event condition is set (rooms aside).
    pub fn is_open(&self) -> bool {
        self.events.is_open() && self.contains_url.is_none()
    }

    /// Parses and validates a RoomEventFilter object found at `path`.
    pub fn parse(o: &Map<String, Value>, path: &str) -> Result<Self, MatrixError> {
        Ok(RoomEventFilter {
            events: EventFilter::parse(o, path)?,
            rooms: rooms(o, path, "rooms")?,
            not_rooms: rooms(o, path, "not_rooms")?.unwrap_or_default(),
            contains_url: boolean(o, path, "contains_url")?,
            lazy_load_members: boolean(o, path, "lazy_load_members")?.unwrap_or(false),
            include_redundant_members: boolean(o, path, "include_redundant_members")?
                .unwrap_or(false),
            unread_thread_notifications: boolean(o, path, "unread_thread_notifications")?
                .unwrap_or(false),
        })
    }

    /// Parses the JSON text of a `filter` query parameter (`/messages`,
    /// `/context`).
    pub fn parse_query(text: &str) -> Result<Self, MatrixError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| MatrixError::bad_json(format!("filter is not valid JSON: {e}")))?;
        match v {
            Value::Object(o) => Self::parse(&o, "filter"),
            _ => Err(MatrixError::bad_json("filter must be a JSON object")),
        }
    }
}

impl RoomFilter {
    pub fn allows_room(&self, room_id: &RoomId) -> bool {
        room_allowed(&self.rooms, &self.not_rooms, room_id)
    }
}

impl Filter {
    /// Validates a filter definition (the body of `POST .../filter`, or an
    /// inline `filter` parameter of `/sync`).
    pub fn parse(v: &Value) -> Result<Self, MatrixError> {
        let o = v.as_object().ok_or_else(|| MatrixError::bad_json("filter must be an object"))?;
        let object = |o: &Map<String, Value>, field: &str, path: &str| match o.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(bad(path, field, "must be an object")),
        };
        match o.get("event_format") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if f == "client" || f == "federation" => {}
            Some(_) => {
                return Err(invalid("filter", "event_format", "must be client or federation"));
            }
        }
        let event_fields = strings(o, "filter", "event_fields")?
            .map(|fields| fields.iter().map(|f| split_path(f)).collect());
        let room = object(o, "room", "filter")?;
        let rp = "filter.room";
        let part = |name: &str| -> Result<RoomEventFilter, MatrixError> {
            RoomEventFilter::parse(&object(&room, name, rp)?, &format!("{rp}.{name}"))
        };
        Ok(Filter {
            event_fields,
            room: RoomFilter {
                rooms: rooms(&room, rp, "rooms")?,
                not_rooms: rooms(&room, rp, "not_rooms")?.unwrap_or_default(),
                include_leave: boolean(&room, rp, "include_leave")?.unwrap_or(false),
                timeline: part("timeline")?,
                state: part("state")?,
                ephemeral: part("ephemeral")?,
                account_data: part("account_data")?,
            },
            presence: EventFilter::parse(&object(o, "presence", "filter")?, "filter.presence")?,
            account_data: EventFilter::parse(
                &object(o, "account_data", "filter")?,
                "filter.account_data",
            )?,
        })
    }

    /// Keeps only the requested fields of an event (spec: `event_fields`).
    pub fn project(&self, event: Value) -> Value {
        match &self.event_fields {
            None => event,
            Some(paths) => project(&event, paths),
        }
    }
}

fn room_allowed(rooms: &Option<Vec<RoomId>>, not_rooms: &[RoomId], room_id: &RoomId) -> bool {
    rooms.as_ref().is_none_or(|r| r.iter().any(|x| x == room_id))
        && !not_rooms.iter().any(|x| x == room_id)
}

/// Splits a dot-separated property path; `\.` is a literal dot and `\\` a
/// backslash (spec: appendices/#dot-separated-property-paths).
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => parts.last_mut().map(|p| p.push(n)).unwrap_or_default(),
                None => parts.last_mut().map(|p| p.push('\\')).unwrap_or_default(),
            },
            '.' => parts.push(String::new()),
            c => parts.last_mut().map(|p| p.push(c)).unwrap_or_default(),
        }
    }
    parts
}

/// A copy of `event` holding only the fields named by `paths`.
fn project(event: &Value, paths: &[Vec<String>]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        let mut src = event;
        let mut found = true;
        for key in path {
            match src.get(key) {
                Some(v) => src = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for (i, key) in path.iter().enumerate() {
            let Some(obj) = dst.as_object_mut() else { break };
            if i + 1 == path.len() {
                obj.insert(key.clone(), src.clone());
                break;
            }
            dst = obj.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

fn bad(path: &str, field: &str, what: &str) -> MatrixError {
    MatrixError::bad_json(format!("{path}.{field} {what}"))
}

fn invalid(path: &str, field: &str, what: &str) -> MatrixError {
    MatrixError::invalid_param(format!("{path}.{field} {what}"))
}

/// An optional list of strings.
pub fn strings(
    o: &Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<Option<Vec<String>>, MatrixError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad(path, field, "must be a list of strings")),
        Some(_) => Err(bad(path, field, "must be a list of strings")),
    }
}

/// An optional boolean.
pub fn boolean(
    o: &Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<Option<bool>, MatrixError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(path, field, "must be true or false")),
    }
}

fn rooms(
    o: &Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<Option<Vec<RoomId>>, MatrixError> {
    ids(o, path, field, RoomId::parse)
}

fn users(
    o: &Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<Option<Vec<UserId>>, MatrixError> {
    ids(o, path, field, UserId::parse)
}

/// An optional list of identifiers, each parsed by `parse`.
fn ids<T>(
    o: &Map<String, Value>,
    path: &str,
    field: &str,
    parse: impl Fn(&str) -> Result<T, IdError>,
) -> Result<Option<Vec<T>>, MatrixError> {
    let Some(list) = strings(o, path, field)? else { return Ok(None) };
    list.iter()
        .map(|s| parse(s).map_err(|e| invalid(path, field, &format!("contains {s:?}: {}", e.0))))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Stores an uploaded filter (its JSON bytes) and returns its ID; the same
/// filter uploaded again gets the ID it already has, and a user holds at
/// most [`quota::MAX_FILTERS`].
pub fn store_filter(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    filter: &[u8],
) -> Result<Result<u64, MatrixError>, StoreError> {
    Ok(ctx
        .put_filter(user, filter, quota::MAX_FILTERS)?
        .ok_or_else(|| quota::store_full("filters", quota::MAX_FILTERS, " per user")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wildcards_match_any_run_of_characters() {
        assert!(type_matches("m.*", "m.room.message"));
        assert!(type_matches("*.message", "m.room.message"));
        assert!(type_matches("m.room.message", "m.room.message"));
        assert!(!type_matches("m.room", "m.room.message"));
        assert!(!type_matches("m.*.topic", "m.room.message"));
        assert!(type_matches("*", "m.room.name"));
        assert!(!type_matches("m.call.*", "m.room.message"));
    }

    #[test]
    fn a_timeline_filter_checks_types_senders_and_urls() {
        let f = Filter::parse(&json!({ "room": { "timeline": {
            "types": ["m.room.*"], "not_types": ["m.room.member"],
            "not_senders": ["@spam:hs"], "contains_url": true,
        }}}))
        .unwrap();
        let t = &f.room.timeline;
        let img = json!({ "type": "m.room.message", "sender": "@a:hs", "content": { "url": "mxc://x/y" } });
        let text =
            json!({ "type": "m.room.message", "sender": "@a:hs", "content": { "body": "hi" } });
        let member =
            json!({ "type": "m.room.member", "sender": "@a:hs", "content": { "url": "x" } });
        let spam =
            json!({ "type": "m.room.message", "sender": "@spam:hs", "content": { "url": "x" } });
        assert!(t.allows_event(&img));
        assert!(!t.allows_event(&text));
        assert!(!t.allows_event(&member));
        assert!(!t.allows_event(&spam));
        assert!(!t.is_open());
        assert!(f.room.state.is_open());
    }

    #[test]
    fn room_lists_apply_not_rooms_over_rooms() {
        let f = Filter::parse(
            &json!({ "room": { "rooms": ["!a:hs", "!b:hs"], "not_rooms": ["!b:hs"] } }),
        )
        .unwrap();
        let room = |s| RoomId::parse(s).expect("room ID");
        assert!(f.room.allows_room(&room("!a:hs")));
        assert!(!f.room.allows_room(&room("!b:hs")));
        assert!(!f.room.allows_room(&room("!c:hs")));
    }

    #[test]
    fn bad_filters_name_the_field() {
        let e = Filter::parse(&json!({ "room": { "timeline": { "limit": "ten" } } })).unwrap_err();
        assert_eq!(e.kind.errcode(), "M_BAD_JSON");
        assert!(e.message.contains("filter.room.timeline.limit"), "{}", e.message);
        let e = Filter::parse(&json!({ "room": { "rooms": ["not-a-room"] } })).unwrap_err();
        assert_eq!(e.kind.errcode(), "M_INVALID_PARAM");
        let e = Filter::parse(&json!({ "event_format": "xml" })).unwrap_err();
        assert_eq!(e.kind.errcode(), "M_INVALID_PARAM");
        assert!(Filter::parse(&json!([1])).is_err());
        assert!(Filter::parse(&json!({ "presence": { "senders": [1] } })).is_err());
    }

    #[test]
    fn event_fields_keep_only_the_named_paths() {
        let f =
            Filter::parse(&json!({ "event_fields": ["type", "content.body", "content.m\\.x"] }))
                .unwrap();
        let ev = json!({ "type": "m.room.message", "sender": "@a:hs",
            "content": { "body": "hi", "msgtype": "m.text", "m.x": 1 } });
        assert_eq!(
            f.project(ev),
            json!({ "type": "m.room.message", "content": { "body": "hi", "m.x": 1 } })
        );
        assert_eq!(split_path("a\\\\.b"), vec!["a\\".to_owned(), "b".to_owned()]);
    }
}
