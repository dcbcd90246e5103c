//! Third-party networks (spec: modules/third_party_networks): Hearth
//! bridges to none, and says so.

use serde_json::json;

use crate::api::{Reply, Request, json};
use crate::error::MatrixError;

/// `GET /thirdparty/protocols`: Hearth bridges to no third-party networks.
pub fn thirdparty_protocols(req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    Ok(json(&json!({})))
}

/// `GET /thirdparty/{location|user}[/{protocol}]` and
/// `GET /thirdparty/protocol/{protocol}`: no protocol exists.
pub fn thirdparty_unknown(req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    Err(MatrixError::not_found("No such third-party protocol"))
}
