//! Push rules, pushers and the notification list (spec: modules/push).
//!
//! A change to a user's rules stores their compact customisation and
//! refreshes their `m.push_rules` account data, which is how clients learn
//! the full ruleset through `/sync`.

use serde_json::{Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::push::settings::{self, NewPusher};
use crate::push::{Action, NewPushRule, PushRuleError, RuleKind, Ruleset, default_ruleset};
use crate::quota;
use crate::store::StreamPos;
use crate::sync;

/// What part of a rule a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulePart {
    Rule,
    Enabled,
    Actions,
}

fn ruleset(app: &App, user: &UserId) -> Result<Ruleset, MatrixError> {
    Ok(match app.store.read()?.push_rules(user)? {
        Some(b) => {
            Ruleset::from_json(user, &b).map_err(|e| MatrixError::internal("push rules", e))?
        }
        None => default_ruleset(user),
    })
}

/// `GET /pushrules/` and `GET /pushrules/global/`
pub fn get_push_rules(app: &App, req: &Request, global_only: bool) -> Result<Reply, MatrixError> {
    let rules = ruleset(app, &req.caller()?.user_id)?;
    if global_only { Ok(json(&rules.global())) } else { Ok(json(&rules)) }
}

fn kind(s: &str) -> Result<RuleKind, MatrixError> {
    s.parse::<RuleKind>().map_err(MatrixError::from)
}

/// `GET /pushrules/global/{kind}/{ruleId}[/enabled|/actions]`
pub fn get_push_rule(
    app: &App,
    req: &Request,
    kind_s: &str,
    rule_id: &str,
    part: RulePart,
) -> Result<Reply, MatrixError> {
    let rules = ruleset(app, &req.caller()?.user_id)?;
    let rule = rules.get_push_rule(kind(kind_s)?, rule_id)?;
    Ok(match part {
        RulePart::Rule => json(rule),
        RulePart::Enabled => json(&json!({ "enabled": rule.enabled })),
        RulePart::Actions => {
            let actions: Vec<Value> = rule.actions.iter().map(Action::to_value).collect();
            json(&json!({ "actions": actions }))
        }
    })
}

/// Applies `change` to the user's rules inside the writer.
async fn change_rules<F>(app: &App, user: UserId, change: F) -> Result<(), MatrixError>
where
    F: FnOnce(&mut Ruleset) -> Result<(), PushRuleError> + Send + 'static,
{
    app.store.write(move |ctx| settings::change_rules(ctx, &user, change)).await
}

/// `PUT /pushrules/global/{kind}/{ruleId}[/enabled|/actions]`
pub async fn set_push_rule(
    app: &App,
    req: &Request,
    kind_s: &str,
    rule_id: &str,
    part: RulePart,
) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let k = kind(kind_s)?;
    let body = Value::Object(req.json_object()?);
    let rule_id = rule_id.to_owned();
    match part {
        RulePart::Rule => {
            let new = NewPushRule::from_body(k, &body)?;
            let before = req.query("before").map(str::to_owned);
            let after = req.query("after").map(str::to_owned);
            change_rules(app, user, move |r| {
                r.set_push_rule(k, &rule_id, new, before.as_deref(), after.as_deref())
            })
            .await?;
        }
        RulePart::Enabled => {
            let enabled = body["enabled"]
                .as_bool()
                .ok_or_else(|| MatrixError::bad_json("enabled (boolean) is required"))?;
            change_rules(app, user, move |r| r.set_push_rule_enabled(k, &rule_id, enabled)).await?;
        }
        RulePart::Actions => {
            let actions = Action::parse_list(&body["actions"])?;
            change_rules(app, user, move |r| r.set_push_rule_actions(k, &rule_id, actions)).await?;
        }
    }
    Ok(json(&json!({})))
}

/// `DELETE /pushrules/global/{kind}/{ruleId}`
pub async fn delete_push_rule(
    app: &App,
    req: &Request,
    kind_s: &str,
    rule_id: &str,
) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let k = kind(kind_s)?;
    let rule_id = rule_id.to_owned();
    change_rules(app, user, move |r| r.delete_push_rule(k, &rule_id)).await?;
    Ok(json(&json!({})))
}

/// `GET /pushers`
pub fn get_pushers(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let mut list = Vec::new();
    for (_, _, b) in app.store.read()?.pushers(&user)? {
        list.push(
            serde_json::from_slice::<Value>(&b).map_err(|e| MatrixError::internal("pusher", e))?,
        );
    }
    Ok(json(&json!({ "pushers": list })))
}

/// `POST /pushers/set`: `kind: null` deletes; otherwise creates or
/// replaces, and without `append` takes the pushkey from other users.
pub async fn set_pusher(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let body = req.json_object()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let app_id = s("app_id").ok_or_else(|| MatrixError::missing_param("app_id is required"))?;
    let pushkey = s("pushkey").ok_or_else(|| MatrixError::missing_param("pushkey is required"))?;
    if app_id.len() > 64 {
        return Err(MatrixError::invalid_param("app_id is longer than 64 characters"));
    }
    if pushkey.len() > 512 {
        return Err(MatrixError::invalid_param("pushkey is longer than 512 bytes"));
    }
    let kind = body.get("kind").cloned().unwrap_or(Value::Null);
    if kind.is_null() {
        app.store
            .write(move |ctx| {
                ctx.delete_pusher(&user, &app_id, &pushkey)?;
                Ok(Ok::<_, MatrixError>(()))
            })
            .await?;
        return Ok(json(&json!({})));
    }
    let kind_s = kind
        .as_str()
        .ok_or_else(|| MatrixError::bad_json("kind must be a string or null"))?
        .to_owned();
    if kind_s != "http" && kind_s != "email" {
        return Err(MatrixError::invalid_param(format!("Unknown pusher kind {kind_s}")));
    }
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .cloned()
        .ok_or_else(|| MatrixError::missing_param("data is required"))?;
    if kind_s == "http" {
        let url = data["url"]
            .as_str()
            .ok_or_else(|| MatrixError::invalid_param("data.url is required for http pushers"))?;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || !url.ends_with("/_matrix/push/v1/notify")
        {
            return Err(MatrixError::invalid_param(
                "data.url must be an http(s) URL ending in /_matrix/push/v1/notify",
            ));
        }
    }
    for field in ["app_display_name", "device_display_name", "lang"] {
        if s(field).is_none() {
            return Err(MatrixError::missing_param(format!("{field} is required")));
        }
    }
    let append = body.get("append").and_then(Value::as_bool).unwrap_or(false);
    let pusher = NewPusher {
        app_id,
        pushkey,
        kind: kind_s,
        app_display_name: s("app_display_name"),
        device_display_name: s("device_display_name"),
        lang: s("lang"),
        data,
        profile_tag: s("profile_tag"),
    };
    let bytes =
        serde_json::to_vec(&pusher.record()).map_err(|e| MatrixError::internal("pusher", e))?;
    quota::check_size("Pusher data", quota::json_len(&pusher.data), quota::PUSHER_DATA_BYTES)?;
    app.store
        .write(move |ctx| {
            let (app_id, pushkey) = (&pusher.app_id, &pusher.pushkey);
            settings::set_pusher(ctx, &user, app_id, pushkey, append, &bytes)
        })
        .await?;
    Ok(json(&json!({})))
}

/// `GET /notifications?from=&limit=&only=highlight`
pub fn get_notifications(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
        None => 20,
    };
    let limit = limit.clamp(1, 100);
    let before = match req.query("from") {
        Some(f) => sync::parse_pagination(f)
            .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))?,
        None => StreamPos(u64::MAX),
    };
    let only_highlight = req.query("only") == Some("highlight");
    let read = app.store.read()?;
    let mut out = Vec::new();
    let mut next = None;
    let mut cursor = before;
    'pages: loop {
        let page = read.notification_rows(&user, cursor, limit)?;
        let Some((last, _)) = page.last() else { break };
        cursor = *last;
        for (pos, row) in &page {
            let actions: Value = serde_json::from_slice(&row.actions)
                .map_err(|e| MatrixError::internal("notification", e))?;
            let highlight = actions.as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["set_tweak"] == "highlight" && x.get("value").is_none_or(|v| v == true)
                })
            });
            if only_highlight && !highlight {
                continue;
            }
            let short = row.room;
            let Some(room_id) = read.room_id(short)? else { continue };
            let Some(ev) = read.event_at(short, *pos)? else { continue };
            let event = crate::room::served::parse(&ev.json, None)?;
            let read_upto = sync::read_position(&read, &user, short)?;
            let ts = row.ts.or_else(|| event["origin_server_ts"].as_u64()).unwrap_or(0);
            out.push(json!({
                "actions": actions, "event": event, "read": *pos <= read_upto,
                "room_id": room_id, "ts": ts,
            }));
            if out.len() == limit {
                next = Some(*pos);
                break 'pages;
            }
        }
        if page.len() < limit {
            break;
        }
    }
    let mut body = json!({ "notifications": out });
    if let Some(n) = next {
        body["next_token"] = json!(sync::pagination_token(n));
    }
    Ok(json(&body))
}
