//! Relations and threads (spec: client-server-api/#relationships-api,
//! modules/threading): children of an event, and a room's threads.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{event_id_in_path, room_short};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::room::relations::bundle;
use crate::room::served::parse_stored;
use crate::room::served::set_membership;
use crate::room::visibility::{SeenEvent, Visibility, visible_event, visible_upto};
use crate::store::StreamPos;
use crate::sync;

fn limit(req: &Request, default: usize) -> Result<usize, MatrixError> {
    match req.query("limit") {
        Some(l) => Ok(l
            .parse::<usize>()
            .map_err(|_| MatrixError::invalid_param("limit must be an integer"))?
            .clamp(1, 100)),
        None => Ok(default),
    }
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`
pub fn get_relations(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
    rel_type: Option<&str>,
    event_type: Option<&str>,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let SeenEvent { upto, vis, .. } =
        visible_event(&read, &caller.user_id, short, &event_id_in_path(event_id)?)?;
    let forward = match req.query("dir") {
        None | Some("b") => false,
        Some("f") => true,
        Some(_) => return Err(MatrixError::invalid_param("dir must be b or f")),
    };
    let recurse = req.query_bool("recurse", false)?;
    let limit = limit(req, 50)?;
    let from = req
        .query("from")
        .map(|f| {
            sync::parse_pagination(f)
                .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))
        })
        .transpose()?;
    let to = req
        .query("to")
        .map(|f| {
            sync::parse_pagination(f)
                .ok_or_else(|| MatrixError::invalid_param("to is not a valid token"))
        })
        .transpose()?;
    // Children (and, with recurse, their children up to depth 3).
    let mut children = Vec::new();
    let mut frontier = vec![event_id.to_owned()];
    let mut seen = HashSet::new();
    let depth = if recurse { 3 } else { 1 };
    for _ in 0..depth {
        let mut next = Vec::new();
        for parent in &frontier {
            // rel_type filters only the direct children (spec: recurse).
            let rt = if parent == event_id { rel_type } else { None };
            for c in read.relations(short, parent, rt)? {
                if !seen.insert(c.stream) {
                    continue;
                }
                if let Some(ev) = read.event_at(short, c.stream)? {
                    let mut v = parse_stored(&ev)?;
                    if let Some(id) = v["event_id"].as_str() {
                        next.push(id.to_owned());
                    }
                    if event_type.is_none_or(|t| t == c.event_type)
                        && ev.stream <= upto
                        && vis.can_see(&ev)
                    {
                        set_membership(&mut v, vis.memberships().at(ev.stream));
                        children.push((c.stream, v));
                    }
                }
            }
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    children.sort_by_key(|(s, _)| *s);
    if !forward {
        children.reverse();
    }
    let in_window = |s: StreamPos| {
        let after_from = from.is_none_or(|f| if forward { s >= f } else { s < f });
        let before_to = to.is_none_or(|t| if forward { s < t } else { s >= t });
        after_from && before_to
    };
    let window: Vec<(StreamPos, Value)> =
        children.into_iter().filter(|(s, _)| in_window(*s)).collect();
    let more = window.len() > limit;
    let mut chunk = Vec::new();
    let mut last = None;
    for (s, mut v) in window.into_iter().take(limit) {
        bundle(&read, short, &mut v, &caller.user_id)?;
        chunk.push(v);
        last = Some(s);
    }
    let mut out = json!({ "chunk": chunk });
    if let (true, Some(l)) = (more, last) {
        let token = if forward { StreamPos(l.0 + 1) } else { l };
        out["next_batch"] = json!(sync::pagination_token(token));
    }
    if let Some(f) = from {
        out["prev_batch"] = json!(sync::pagination_token(f));
    }
    if recurse {
        out["recursion_depth"] = json!(depth);
    }
    Ok(json(&out))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
pub fn get_threads(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user = caller.user_id.as_str();
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, &caller.user_id, short)?;
    let vis = Visibility::load(&read, &caller.user_id, short)?;
    let participated_only = match req.query("include") {
        None | Some("all") => false,
        Some("participated") => true,
        Some(_) => return Err(MatrixError::invalid_param("include must be all or participated")),
    };
    let limit = limit(req, 30)?;
    let before = match req.query("from") {
        Some(f) => sync::parse_pagination(f)
            .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))?,
        None => StreamPos(u64::MAX),
    };
    // Newest activity first.
    let mut roots = read.thread_roots(short)?;
    roots.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut chunk = Vec::new();
    let mut next = None;
    for (root, latest) in roots {
        if latest >= before {
            continue;
        }
        let Some((r, pos)) = read.event_position(&root)? else { continue };
        let Some(ev) = read.event_at(r, pos)? else { continue };
        if r != short || ev.stream > upto || !vis.can_see(&ev) {
            continue;
        }
        let mut v = parse_stored(&ev)?;
        if participated_only {
            let mine = v["sender"] == user
                || read.relations(short, &root, Some("m.thread"))?.iter().any(|c| c.sender == user);
            if !mine {
                continue;
            }
        }
        if chunk.len() == limit {
            next = Some(StreamPos(latest.0 + 1));
            break;
        }
        bundle(&read, short, &mut v, &caller.user_id)?;
        set_membership(&mut v, vis.memberships().at(ev.stream));
        chunk.push(v);
    }
    let mut out = json!({ "chunk": chunk });
    if let Some(n) = next {
        out["next_batch"] = json!(sync::pagination_token(n));
    }
    Ok(json(&out))
}
