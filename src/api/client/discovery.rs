//! Server discovery, versions and capabilities
//! (spec: client-server-api/#server-discovery, #api-versions, #capabilities-negotiation).

use serde_json::json;

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::room::version::RoomVersion;

/// The spec versions whose client-server API Hearth implements.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
    "v1.9", "v1.10", "v1.11", "v1.12",
];

/// `GET /_matrix/client/versions`
pub fn get_versions(app: &App, _req: &Request) -> Result<Reply, MatrixError> {
    let mut out = json!({
        "versions": SUPPORTED_VERSIONS,
        "unstable_features": {
            // MSC4186 simplified sliding sync (what Element X needs).
            "org.matrix.simplified_msc3575": true,
            // MSC4222 `use_state_after` on `/sync`.
            "org.matrix.msc4222": true,
            // MSC3814 dehydrated devices.
            "org.matrix.msc3814": true,
            // MSC3266 room summaries.
            "im.nheko.summary": true,
        },
    });
    // MSC4143 MatrixRTC: only with a focus to offer, so clients do not look
    // for one (and fail the call) when none is configured.
    if !app.config.rtc_foci.is_empty() {
        out["unstable_features"]["org.matrix.msc4143"] = json!(true);
    }
    Ok(json(&out))
}

/// `GET /.well-known/matrix/client`: only what is configured. Guessing
/// `https://<server_name>` breaks LAN and test installs (DESIGN.md).
///
/// The MatrixRTC foci ride along as `org.matrix.msc4143.rtc_foci` (where
/// Element X looked before `rtc/transports`), but only in a document that
/// is served: `m.homeserver` is required there, so `rtc_foci` alone does not
/// make one. Clients asking `rtc/transports` get them either way.
pub fn get_well_known_client(app: &App) -> Result<Reply, MatrixError> {
    let Some(url) = &app.config.public_base_url else {
        return Err(MatrixError::not_found("No well-known client configuration"));
    };
    let mut out = json!({ "m.homeserver": { "base_url": url } });
    if !app.config.rtc_foci.is_empty() {
        out["org.matrix.msc4143.rtc_foci"] = json!(super::voip::rtc_foci(&app.config.rtc_foci));
    }
    Ok(json(&out))
}

/// `GET /.well-known/matrix/support`: the configured `admin_contact` (a
/// `mailto:` address, a Matrix user ID or a web page); 404 without one.
pub fn get_well_known_support(app: &App) -> Result<Reply, MatrixError> {
    let Some(contact) = app.config.admin_contact.as_deref().map(str::trim) else {
        return Err(MatrixError::not_found("No support contact is configured"));
    };
    let body = if let Some(mail) = contact.strip_prefix("mailto:") {
        json!({ "contacts": [{ "role": "m.role.admin", "email_address": mail }] })
    } else if contact.starts_with('@') {
        json!({ "contacts": [{ "role": "m.role.admin", "matrix_id": contact }] })
    } else if contact.contains('@') && !contact.contains("://") {
        json!({ "contacts": [{ "role": "m.role.admin", "email_address": contact }] })
    } else {
        json!({ "support_page": contact })
    };
    Ok(json(&body))
}

/// `GET /_matrix/client/v3/capabilities`
pub fn get_capabilities(_app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let available: serde_json::Map<String, serde_json::Value> =
        RoomVersion::ALL.iter().map(|v| (v.as_str().to_owned(), json!("stable"))).collect();
    let mut out = json!({
        "capabilities": {
            "m.change_password": { "enabled": true },
            "m.room_versions": { "default": RoomVersion::DEFAULT.as_str(), "available": available },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": false },
        }
    });
    // Omitted for everyone who may not use the moderation endpoints.
    if req.caller().is_ok_and(|c| c.admin) {
        out["capabilities"]["m.account_moderation"] = json!({ "suspend": true, "lock": true });
    }
    Ok(json(&out))
}
