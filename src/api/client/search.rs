//! Server-side search (spec: client-server-api/#server-side-search).
//!
//! The body is read by hand rather than through serde so that every
//! rejection names its field (`search_categories.room_events.filter.limit
//! must be …`); the search itself is [`crate::search::run`].

use serde_json::{Map, Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::search::run::{self, ContextSpec, Criteria, EventFilter};
use crate::search::{Batch, Order, Query, SearchKey};
use crate::sync::filter::{boolean, strings};

/// Results per page without a `filter.limit`, and the most one page holds.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// `event_context` limits: the spec's default, and our cap per side.
const DEFAULT_CONTEXT: usize = 5;
const MAX_CONTEXT: usize = 50;
/// The longest `search_term` accepted, in bytes.
const MAX_SEARCH_TERM_BYTES: usize = 1024;

const ROOM_EVENTS: &str = "search_categories.room_events";

/// `POST /_matrix/client/v3/search`
pub fn search(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let categories = match body.get("search_categories") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(MatrixError::bad_json("search_categories must be an object")),
        None => return Err(MatrixError::bad_json("search_categories is required")),
    };
    let Some(room_events) = categories.get("room_events") else {
        return Ok(json(&json!({ "search_categories": {} })));
    };
    let room_events = room_events
        .as_object()
        .ok_or_else(|| MatrixError::bad_json(format!("{ROOM_EVENTS} must be an object")))?;
    let criteria = criteria(room_events)?;
    let batch = match req.query("next_batch") {
        Some(token) => {
            let b = Batch::decode(token)
                .ok_or_else(|| MatrixError::invalid_param("next_batch is not a valid token"))?;
            if b.order != criteria.order {
                return Err(MatrixError::invalid_param(
                    "next_batch belongs to a search with another order_by",
                ));
            }
            Some(b)
        }
        None => None,
    };
    let read = app.store.read()?;
    let found = run::search(&read, &caller.user_id, &criteria, batch.as_ref())?;
    Ok(json(&json!({ "search_categories": { "room_events": found } })))
}

/// Validates `room_events` into search criteria.
fn criteria(o: &Map<String, Value>) -> Result<Criteria, MatrixError> {
    let search_term = match o.get("search_term") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad(ROOM_EVENTS, "search_term", "must be a string")),
        None => {
            return Err(MatrixError::bad_json(format!("{ROOM_EVENTS}.search_term is required")));
        }
    };
    if search_term.len() > MAX_SEARCH_TERM_BYTES {
        return Err(invalid(
            ROOM_EVENTS,
            "search_term",
            &format!("is longer than {MAX_SEARCH_TERM_BYTES} bytes"),
        ));
    }
    let query = Query::parse(search_term).ok_or_else(|| {
        invalid(
            ROOM_EVENTS,
            "search_term",
            &format!("has more than {} words", crate::search::MAX_QUERY_TERMS),
        )
    })?;
    let keys = match strings(o, ROOM_EVENTS, "keys")? {
        None => SearchKey::ALL.to_vec(),
        Some(list) => {
            let mut keys = Vec::new();
            for k in &list {
                let key = SearchKey::parse(k).ok_or_else(|| {
                    invalid(
                        ROOM_EVENTS,
                        "keys",
                        &format!(
                            "contains {k:?}; the keys are content.body, content.name and content.topic"
                        ),
                    )
                })?;
                keys.push(key);
            }
            keys
        }
    };
    let order = match o.get("order_by") {
        None | Some(Value::Null) => Order::Rank,
        Some(Value::String(s)) if s == "rank" => Order::Rank,
        Some(Value::String(s)) if s == "recent" => Order::Recent,
        Some(_) => return Err(invalid(ROOM_EVENTS, "order_by", "must be \"rank\" or \"recent\"")),
    };
    let (filter, limit) = match o.get("filter") {
        None | Some(Value::Null) => (EventFilter::default(), DEFAULT_LIMIT),
        Some(Value::Object(f)) => filter(f)?,
        Some(_) => return Err(bad(ROOM_EVENTS, "filter", "must be an object")),
    };
    let context = match o.get("event_context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => {
            let path = format!("{ROOM_EVENTS}.event_context");
            Some(ContextSpec {
                before: count(e, &path, "before_limit")?
                    .unwrap_or(DEFAULT_CONTEXT)
                    .min(MAX_CONTEXT),
                after: count(e, &path, "after_limit")?.unwrap_or(DEFAULT_CONTEXT).min(MAX_CONTEXT),
                include_profile: boolean(e, &path, "include_profile")?.unwrap_or(false),
            })
        }
        Some(_) => return Err(bad(ROOM_EVENTS, "event_context", "must be an object")),
    };
    let include_state = boolean(o, ROOM_EVENTS, "include_state")?.unwrap_or(false);
    let (mut group_by_room, mut group_by_sender) = (false, false);
    match o.get("groupings") {
        None | Some(Value::Null) => {}
        Some(Value::Object(g)) => {
            let path = format!("{ROOM_EVENTS}.groupings");
            let list = match g.get("group_by") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(l)) => l.clone(),
                Some(_) => return Err(bad(&path, "group_by", "must be a list")),
            };
            for group in list {
                match group.get("key").and_then(Value::as_str) {
                    Some("room_id") => group_by_room = true,
                    Some("sender") => group_by_sender = true,
                    _ => {
                        return Err(invalid(
                            &path,
                            "group_by",
                            "entries must be {\"key\": \"room_id\"} or {\"key\": \"sender\"}",
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(bad(ROOM_EVENTS, "groupings", "must be an object")),
    }
    Ok(Criteria {
        query,
        keys,
        filter,
        order,
        limit,
        context,
        include_state,
        group_by_room,
        group_by_sender,
    })
}

/// Validates a RoomEventFilter; returns it and the page size.
fn filter(f: &Map<String, Value>) -> Result<(EventFilter, usize), MatrixError> {
    let path = format!("{ROOM_EVENTS}.filter");
    let filter = EventFilter::parse(f, &path)?;
    let limit = match filter.events.limit {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(invalid(&path, "limit", "must be a positive integer")),
        Some(l) => l.min(MAX_LIMIT),
    };
    Ok((filter, limit))
}

fn bad(path: &str, field: &str, what: &str) -> MatrixError {
    MatrixError::bad_json(format!("{path}.{field} {what}"))
}

fn invalid(path: &str, field: &str, what: &str) -> MatrixError {
    MatrixError::invalid_param(format!("{path}.{field} {what}"))
}

/// An optional non-negative integer.
fn count(o: &Map<String, Value>, path: &str, field: &str) -> Result<Option<usize>, MatrixError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Ok(Some(usize::try_from(v).unwrap_or(usize::MAX))),
            None => Err(invalid(path, field, "must be a non-negative integer")),
        },
        Some(_) => Err(bad(path, field, "must be an integer")),
    }
}
