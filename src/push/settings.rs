//! The writes of a user's push settings: a change to their push rules
//! (stored compact, with the full ruleset as `m.push_rules` account data,
//! which is how clients learn it through `/sync`) and their pushers
//! (spec: client-server-api/#push-rules-api, #post_matrixclientv3pushersset).

use serde_json::{Value, json};

use super::apply::load_ruleset;
use super::{PushRuleError, Ruleset};
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::quota;
use crate::store::{StoreError, WriteCtx};

/// Applies `change` to the user's rules, then stores the compact form and
/// the `m.push_rules` account data. A ruleset over its size cap may only
/// shrink.
pub fn change_rules<F>(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    change: F,
) -> Result<Result<(), MatrixError>, StoreError>
where
    F: FnOnce(&mut Ruleset) -> Result<(), PushRuleError>,
{
    let mut rules = load_ruleset(ctx, user)?;
    if let Err(e) = change(&mut rules) {
        return Ok(Err(MatrixError::from(e)));
    }
    let compact = rules.to_json();
    if compact.len() > quota::PUSH_RULES_BYTES
        && ctx.push_rules(user)?.is_none_or(|old| compact.len() > old.len())
    {
        return Ok(Err(quota::too_large("The push rules", quota::PUSH_RULES_BYTES)));
    }
    ctx.put_push_rules(user, &compact)?;
    let full = serde_json::to_vec(&rules).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    ctx.put_account_data(user, "", "m.push_rules", &full)?;
    Ok(Ok(()))
}

/// A pusher as `/pushers/set` creates it, checked by the caller.
pub struct NewPusher {
    pub app_id: String,
    pub pushkey: String,
    pub kind: String,
    pub app_display_name: Option<String>,
    pub device_display_name: Option<String>,
    pub lang: Option<String>,
    pub data: Value,
    pub profile_tag: Option<String>,
}

impl NewPusher {
    /// The stored record, which `GET /pushers` returns as it is.
    pub fn record(&self) -> Value {
        json!({
            "app_id": self.app_id, "pushkey": self.pushkey, "kind": self.kind,
            "app_display_name": self.app_display_name,
            "device_display_name": self.device_display_name,
            "lang": self.lang, "data": self.data, "profile_tag": self.profile_tag,
        })
    }
}

/// Creates or replaces the user's pusher `(app_id, pushkey)` with `record`
/// (the bytes of [`NewPusher::record`]); without `append`, the pushkey is
/// taken from every other user (spec: a pushkey belongs to one user unless
/// appended).
pub fn set_pusher(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    app_id: &str,
    pushkey: &str,
    append: bool,
    record: &[u8],
) -> Result<Result<(), MatrixError>, StoreError> {
    let pushers = ctx.pushers(user)?;
    let replaces = pushers.iter().any(|(a, p, _)| *a == app_id && *p == pushkey);
    if !replaces && pushers.len() >= quota::MAX_PUSHERS {
        return Ok(Err(quota::store_full("pushers", quota::MAX_PUSHERS, " per user")));
    }
    if !append {
        for other in ctx.pushers_with_key(app_id, pushkey)? {
            if other != user.as_str() {
                ctx.delete_pusher(&UserId::from_trusted(other), app_id, pushkey)?;
            }
        }
    }
    ctx.put_pusher(user, app_id, pushkey, record)?;
    Ok(Ok(()))
}
