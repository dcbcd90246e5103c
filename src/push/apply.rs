//! Running push rules over a new event for every local member of its room,
//! inside the writer transaction that stores the event: a message is
//! counted as unread (and listed in `/notifications`) in the same commit
//! that makes it visible.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{EvalContext, Ruleset, RulesetCache, evaluate, parse_ruleset};
use crate::ids::UserId;
use crate::room::build::Appended;
use crate::room::cache::StateCache;
use crate::room::power_levels::{PowerLevel, integer_map};
use crate::room::target::RoomTarget;
use crate::store::{StoreError, WriteCtx};

/// The ruleset of `user`: stored customisation on top of the defaults.
pub fn load_ruleset(ctx: &WriteCtx<'_>, user: &UserId) -> Result<Ruleset, StoreError> {
    Ok(parse_ruleset(user, ctx.push_rules(user)?.as_deref()))
}

fn content_of(
    ctx: &WriteCtx<'_>,
    room: &RoomTarget,
    ty: &str,
    key: &str,
) -> Result<Value, StoreError> {
    Ok(ctx
        .state_event(room.short, ty, key)?
        .and_then(|e| serde_json::from_slice::<Value>(&e.json).ok())
        .map(|v| v["content"].clone())
        .unwrap_or(Value::Null))
}

/// Evaluates `stored` (an event just stored) for every joined member but the
/// sender, and for the invitee of an invite.
/// `joined` is the room's joined members including the event's effect.
/// Room state comes parsed from `state`, rulesets from `rulesets`.
pub fn notify_members(
    ctx: &mut WriteCtx<'_>,
    state: &mut StateCache,
    rulesets: &mut RulesetCache,
    server_name: &str,
    room: &RoomTarget,
    stored: &Appended,
    joined: &[UserId],
) -> Result<(), StoreError> {
    let (event, stream) = (&stored.event, stored.stream);
    let sender = event["sender"].as_str().unwrap_or_default();
    let member_count = joined.len() as u64;
    // The invitee comes from the stored event's `state_key`, validated
    // before it was stored.
    let invitee = if event["type"] == "m.room.member" && event["content"]["membership"] == "invite"
    {
        event["state_key"].as_str().map(|u| UserId::from_trusted(u.to_owned()))
    } else {
        None
    };
    let local =
        |u: &UserId| u.as_str().strip_suffix(server_name).is_some_and(|rest| rest.ends_with(':'));
    let targets: Vec<&UserId> = joined
        .iter()
        .chain(invitee.as_ref())
        .filter(|u| u.as_str() != sender && local(u))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let notification_levels: BTreeMap<String, i64> = state
        .state_event(ctx, room, "m.room.power_levels", "")?
        .map(|pl| integer_map(&pl.content, "notifications"))
        .unwrap_or_default();
    let sender_level = match state.power_levels(ctx, room)?.map(|pl| pl.user_level(sender)) {
        Some(PowerLevel::Int(n)) => n,
        Some(PowerLevel::Infinite) => i64::MAX,
        None => 0,
    };
    let ts = event["origin_server_ts"].as_u64().unwrap_or(0);
    for user_id in targets {
        let user = user_id.as_str();
        let ruleset = rulesets.ruleset(ctx, user_id)?;
        let member = state.state_event(ctx, room, "m.room.member", user)?;
        let display_name = member.as_ref().and_then(|m| m.content["displayname"].as_str());
        let eval_ctx = EvalContext {
            user_id,
            display_name,
            member_count,
            sender_power_level: sender_level,
            notification_power_levels: &notification_levels,
        };
        let Some(actions) = evaluate(&ruleset, event, &eval_ctx) else { continue };
        if !actions.notify {
            continue;
        }
        let list: Vec<Value> = actions.actions.iter().map(|a| a.to_value()).collect();
        let bytes = serde_json::to_vec(&list).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        ctx.put_notification(user_id, room.short, stream, actions.highlight, &bytes, ts)?;
        ctx.wake_user(user);
        queue_pushes(ctx, room, event, user_id, &actions)?;
    }
    Ok(())
}

/// Queues a Push Gateway API notification for each of `user`'s HTTP
/// pushers (spec: push-gateway-api, `POST /_matrix/push/v1/notify`).
fn queue_pushes(
    ctx: &mut WriteCtx<'_>,
    room: &RoomTarget,
    event: &Value,
    user: &UserId,
    actions: &super::Actions,
) -> Result<(), StoreError> {
    let pushers = ctx.pushers(user)?;
    if pushers.is_empty() {
        return Ok(());
    }
    let unread = ctx.unread_in_room(user, room.short)?;
    let sender = event["sender"].as_str().unwrap_or_default();
    let sender_name = content_of(ctx, room, "m.room.member", sender)?["displayname"].clone();
    let room_name = content_of(ctx, room, "m.room.name", "")?["name"].clone();
    for (_, _, bytes) in pushers {
        let pusher: Value =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if pusher["kind"] != "http" {
            continue;
        }
        let Some(url) = pusher["data"]["url"].as_str() else { continue };
        let mut data = pusher["data"].clone();
        if let Some(d) = data.as_object_mut() {
            d.remove("url");
        }
        let device = json!({
            "app_id": pusher["app_id"], "pushkey": pusher["pushkey"], "pushkey_ts": ctx_now(),
            "data": data, "tweaks": actions.tweaks(),
        });
        let prio = if event["type"] == "m.room.message"
            || event["type"] == "m.room.encrypted"
            || actions.highlight
        {
            "high"
        } else {
            "low"
        };
        let mut notification = json!({
            "event_id": event["event_id"], "room_id": room.room_id, "prio": prio,
            "counts": { "unread": unread }, "devices": [device],
        });
        if pusher["data"]["format"] != "event_id_only" {
            notification["type"] = event["type"].clone();
            notification["sender"] = json!(sender);
            notification["content"] = event["content"].clone();
            if !sender_name.is_null() {
                notification["sender_display_name"] = sender_name.clone();
            }
            if !room_name.is_null() {
                notification["room_name"] = room_name.clone();
            }
            if event["type"] == "m.room.member" {
                notification["user_is_target"] = json!(event["state_key"] == user.as_str());
            }
        }
        let item = json!({
            "user": user.as_str(), "app_id": pusher["app_id"], "pushkey": pusher["pushkey"], "url": url,
            "body": { "notification": notification }, "attempts": 0, "next_try_ms": 0,
        });
        let bytes = serde_json::to_vec(&item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        ctx.queue_push(&bytes)?;
    }
    Ok(())
}

fn ctx_now() -> u64 {
    crate::account::now_ms()
}
