//! Calls: TURN credentials for 1:1 calls (spec: client-server-api/#voice-over-ip)
//! and the MatrixRTC transports group calls use (MSC4143, unstable).

use std::time::Instant;

use serde_json::{Value, json};

use crate::account::now_ms;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::config::RtcFocus;
use crate::error::MatrixError;

/// `GET /_matrix/client/v3/voip/turnServer`
///
/// With nothing configured the answer is an empty object, as other servers
/// answer: clients then gather only host and STUN candidates.
pub fn get_turn_server(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let Some(turn) = &app.config.turn else {
        return Ok(json(&json!({})));
    };
    app.turn_limiter
        .borrow_mut()
        .take(caller.user_id.as_str(), Instant::now())
        .map_err(MatrixError::limit_exceeded)?;
    let c = crate::voip::credential(turn, caller.user_id.as_str(), now_ms() / 1000);
    Ok(json(&json!({
        "username": c.username,
        "password": c.password,
        "uris": turn.uris,
        "ttl": c.ttl_secs,
    })))
}

/// `GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports`: the
/// configured foci; unknown (`404 M_UNRECOGNIZED`) when none are, like the
/// `org.matrix.msc4143` flag missing from `/versions`.
pub fn get_rtc_transports(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    if app.config.rtc_foci.is_empty() {
        return Err(MatrixError::new(
            crate::error::ErrorKind::Unrecognized,
            "No MatrixRTC transports are configured",
        ));
    }
    Ok(json(&json!({ "rtc_transports": rtc_foci(&app.config.rtc_foci) })))
}

/// The foci as MSC4143 writes them, for `rtc/transports` and as
/// `org.matrix.msc4143.rtc_foci` in `/.well-known/matrix/client`.
pub fn rtc_foci(foci: &[RtcFocus]) -> Vec<Value> {
    foci.iter()
        .map(|f| match f {
            RtcFocus::LiveKit { service_url } => {
                json!({ "type": "livekit", "livekit_service_url": service_url })
            }
        })
        .collect()
}
