//! The user directory (spec: client-server-api/#user-directory).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::mutual_rooms::joined_rooms;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;

/// `POST /user_directory/search`: users who share a room with the searcher
/// or are in a public room, matched on user ID and display name.
pub fn search_user_directory(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let term = body
        .get("search_term")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("search_term is required"))?
        .to_lowercase();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10).clamp(1, 100) as usize;
    let read = app.store.read()?;
    let mut candidates: HashSet<String> = HashSet::new();
    for room in joined_rooms(&read, &caller.user_id)? {
        candidates.extend(read.members_with(room, Membership::Join)?);
    }
    for (_, room) in read.public_rooms()? {
        candidates.extend(read.members_with(room, Membership::Join)?);
    }
    if app.config.user_directory_search_all {
        let server = &app.config.server_name;
        candidates.extend(read.users()?.into_iter().map(|(lp, _)| format!("@{lp}:{server}")));
    }
    let mut results = Vec::new();
    let mut sorted: Vec<String> = candidates.into_iter().collect();
    sorted.sort();
    for user in sorted {
        let Ok(uid) = UserId::parse(&user) else { continue };
        let record = if uid.server_name() == app.config.server_name {
            read.user(uid.localpart())?
        } else {
            None
        };
        if record.as_ref().is_some_and(|r| r.deactivated) {
            continue;
        }
        let name = record.as_ref().and_then(|r| r.displayname.clone());
        let hit = user.to_lowercase().contains(&term)
            || name.as_ref().is_some_and(|n| n.to_lowercase().contains(&term));
        if hit {
            let mut r = json!({ "user_id": user });
            if let Some(n) = name {
                r["display_name"] = json!(n);
            }
            if let Some(a) = record.and_then(|r| r.avatar_url) {
                r["avatar_url"] = json!(a);
            }
            results.push(r);
        }
    }
    let limited = results.len() > limit;
    results.truncate(limit);
    Ok(json(&json!({ "results": results, "limited": limited })))
}
