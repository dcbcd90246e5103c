//! `/_matrix/client/v3/rooms/{roomId}/…`: membership, events, state,
//! receipts and the rest of what acts on one room.

use super::{Endpoint, Required, Route, not_found, only, to, wrong_method};
use crate::error::MatrixError;

pub(super) fn route_room(
    room_id: &str,
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
) -> Result<Route, MatrixError> {
    use Endpoint::*;
    let room_id = room_id.to_owned();
    match rest {
        ["join"] => only(post, Required, JoinRoom { room_id }),
        ["leave"] => only(post, Required, LeaveRoom { room_id }),
        [action @ ("invite" | "kick" | "ban" | "unban")] => {
            only(post, Required, ChangeMembership { room_id, action: (*action).to_owned() })
        }
        ["send", event_type, txn_id] => only(
            put,
            Required,
            SendMessageEvent {
                room_id,
                event_type: (*event_type).to_owned(),
                txn_id: (*txn_id).to_owned(),
            },
        ),
        ["state"] => only(get, Required, GetRoomState { room_id }),
        ["state", event_type] | ["state", event_type, ""] => {
            state_endpoint(room_id, event_type, "", get, put)
        }
        ["state", event_type, state_key] => {
            state_endpoint(room_id, event_type, state_key, get, put)
        }
        ["event", event_id] => {
            only(get, Required, GetEvent { room_id, event_id: (*event_id).to_owned() })
        }
        ["joined_members"] => only(get, Required, GetJoinedMembers { room_id }),
        ["members"] => only(get, Required, GetMembers { room_id }),
        ["messages"] => only(get, Required, GetMessages { room_id }),
        ["redact", event_id, txn_id] => only(
            put,
            Required,
            RedactEvent { room_id, event_id: (*event_id).to_owned(), txn_id: (*txn_id).to_owned() },
        ),
        ["forget"] => only(post, Required, ForgetRoom { room_id }),
        ["upgrade"] => only(post, Required, UpgradeRoom { room_id }),
        ["context", event_id] => {
            only(get, Required, GetEventContext { room_id, event_id: (*event_id).to_owned() })
        }
        ["typing", user_id] => {
            only(put, Required, SetTyping { room_id, user_id: (*user_id).to_owned() })
        }
        ["receipt", receipt_type, event_id] => only(
            post,
            Required,
            PostReceipt {
                room_id,
                receipt_type: (*receipt_type).to_owned(),
                event_id: (*event_id).to_owned(),
            },
        ),
        ["read_markers"] => only(post, Required, SetReadMarkers { room_id }),
        ["report"] => only(post, Required, ReportRoom { room_id }),
        ["report", event_id] => {
            only(post, Required, ReportEvent { room_id, event_id: (*event_id).to_owned() })
        }
        ["aliases"] => only(get, Required, GetLocalAliases { room_id }),
        _ => Err(not_found()),
    }
}

fn state_endpoint(
    room_id: String,
    event_type: &str,
    state_key: &str,
    get: bool,
    put: bool,
) -> Result<Route, MatrixError> {
    let (event_type, state_key) = (event_type.to_owned(), state_key.to_owned());
    if get {
        to(Required, Endpoint::GetRoomStateEvent { room_id, event_type, state_key })
    } else if put {
        to(Required, Endpoint::SetRoomState { room_id, event_type, state_key })
    } else {
        Err(wrong_method())
    }
}
