//! `/_matrix/client/v3/…` (and `r0`): accounts, devices, push, profile,
//! directory, keys and backup; rooms in [`super::rooms`].

use hyper::Method;

use super::rooms::route_room;
use super::{
    Endpoint, KeysMethod, Optional, Public, Required, Route, RulePart, not_found, only, to,
    wrong_method,
};
use crate::error::MatrixError;

pub(super) fn route_v3(
    _m: &Method,
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
    delete: bool,
) -> Result<Route, MatrixError> {
    use Endpoint::*;
    match rest {
        ["capabilities"] => only(get, Required, GetCapabilities),
        ["register"] => only(post, Public, Register),
        ["register", "available"] => only(get, Public, GetRegisterAvailable),
        ["register", "email" | "msisdn", "requestToken"] => {
            only(post, Optional, ThreepidUnsupported)
        }
        ["login"] => {
            if get {
                to(Public, GetLoginFlows)
            } else if post {
                to(Public, Login)
            } else {
                Err(wrong_method())
            }
        }
        ["refresh"] => only(post, Public, Refresh),
        ["logout"] => only(post, Required, Logout),
        ["logout", "all"] => only(post, Required, LogoutAll),
        ["auth", auth_type, "fallback", "web"] => {
            if get || post {
                to(Public, AuthFallback { auth_type: (*auth_type).to_owned(), submit: post })
            } else {
                Err(wrong_method())
            }
        }
        ["account", "whoami"] => only(get, Required, GetWhoami),
        ["account", "password"] => only(post, Optional, ChangePassword),
        ["account", "password", "email" | "msisdn", "requestToken"] => {
            only(post, Optional, ThreepidUnsupported)
        }
        ["account", "deactivate"] => only(post, Optional, Deactivate),
        ["account", "3pid"] => {
            if get {
                to(Required, GetThreepids)
            } else if post {
                to(Optional, ThreepidUnsupported)
            } else {
                Err(wrong_method())
            }
        }
        ["account", "3pid", "add" | "bind"] => only(post, Optional, ThreepidUnsupported),
        ["account", "3pid", "delete" | "unbind"] => only(post, Required, ThreepidDelete),
        ["account", "3pid", "email" | "msisdn", "requestToken"] => {
            only(post, Optional, ThreepidUnsupported)
        }
        ["devices"] => only(get, Required, GetDevices),
        ["devices", device_id] => {
            let device_id = (*device_id).to_owned();
            if get {
                to(Required, GetDevice { device_id })
            } else if put {
                to(Required, UpdateDevice { device_id })
            } else if delete {
                to(Required, DeleteDevice { device_id })
            } else {
                Err(wrong_method())
            }
        }
        ["delete_devices"] => only(post, Required, DeleteDevices),
        ["createRoom"] => only(post, Required, CreateRoom),
        ["join", room] => only(post, Required, JoinRoomIdOrAlias { room: (*room).to_owned() }),
        ["knock", room] => only(post, Required, KnockRoom { room: (*room).to_owned() }),
        ["user_directory", "search"] => only(post, Required, SearchUserDirectory),
        ["search"] => only(post, Required, Search),
        ["pushrules"] | ["pushrules", ""] => {
            only(get, Required, GetPushRules { global_only: false })
        }
        ["pushrules", "global"] | ["pushrules", "global", ""] => {
            only(get, Required, GetPushRules { global_only: true })
        }
        ["pushrules", "global", kind, rule_id, rest @ ..] if rest.len() <= 1 => {
            let part = match rest {
                [] => RulePart::Rule,
                ["enabled"] => RulePart::Enabled,
                ["actions"] => RulePart::Actions,
                _ => return Err(not_found()),
            };
            let (kind, rule_id) = ((*kind).to_owned(), (*rule_id).to_owned());
            if get {
                to(Required, GetPushRule { kind, rule_id, part })
            } else if put {
                to(Required, SetPushRule { kind, rule_id, part })
            } else if delete && part == RulePart::Rule {
                to(Required, DeletePushRule { kind, rule_id })
            } else {
                Err(wrong_method())
            }
        }
        ["pushers"] => only(get, Required, GetPushers),
        ["pushers", "set"] => only(post, Required, SetPusher),
        ["notifications"] => only(get, Required, GetNotifications),
        ["users", user_id, "report"] => {
            only(post, Required, ReportUser { user_id: (*user_id).to_owned() })
        }
        ["voip", "turnServer"] => only(get, Required, GetTurnServer),
        ["thirdparty", "protocols"] => only(get, Required, GetThirdpartyProtocols),
        ["thirdparty", "protocol" | "location" | "user", ..] => {
            only(get, Required, ThirdpartyUnknown)
        }
        ["admin", "whois", user_id] => {
            only(get, Required, Whois { user_id: (*user_id).to_owned() })
        }
        ["joined_rooms"] => only(get, Required, GetJoinedRooms),
        ["sync"] => only(get, Required, Sync),
        ["user", user_id, "filter"] => {
            only(post, Required, CreateFilter { user_id: (*user_id).to_owned() })
        }
        ["user", user_id, "openid", "request_token"] => {
            only(post, Required, RequestOpenIdToken { user_id: (*user_id).to_owned() })
        }
        ["user", user_id, "filter", filter_id] => only(
            get,
            Required,
            GetFilter { user_id: (*user_id).to_owned(), filter_id: (*filter_id).to_owned() },
        ),
        ["rooms", room_id, rest @ ..] => route_room(room_id, rest, get, post, put),
        ["user", user_id, "account_data", data_type] => {
            let (user_id, room_id, data_type) =
                ((*user_id).to_owned(), String::new(), (*data_type).to_owned());
            if get {
                to(Required, GetAccountData { user_id, room_id, data_type })
            } else if put {
                to(Required, SetAccountData { user_id, room_id, data_type })
            } else {
                Err(wrong_method())
            }
        }
        ["user", user_id, "rooms", room_id, "account_data", data_type] => {
            let (user_id, room_id, data_type) =
                ((*user_id).to_owned(), (*room_id).to_owned(), (*data_type).to_owned());
            if get {
                to(Required, GetAccountData { user_id, room_id, data_type })
            } else if put {
                to(Required, SetAccountData { user_id, room_id, data_type })
            } else {
                Err(wrong_method())
            }
        }
        ["user", user_id, "rooms", room_id, "tags"] => only(
            get,
            Required,
            GetTags { user_id: (*user_id).to_owned(), room_id: (*room_id).to_owned() },
        ),
        ["user", user_id, "rooms", room_id, "tags", tag] => {
            if put || delete {
                to(
                    Required,
                    ChangeTag {
                        user_id: (*user_id).to_owned(),
                        room_id: (*room_id).to_owned(),
                        tag: (*tag).to_owned(),
                        add: put,
                    },
                )
            } else {
                Err(wrong_method())
            }
        }
        ["profile", user_id] => only(get, Public, GetProfile { user_id: (*user_id).to_owned() }),
        ["profile", user_id, key] => {
            let (user_id, key) = ((*user_id).to_owned(), (*key).to_owned());
            if get {
                to(Public, GetProfileField { user_id, key })
            } else if put || delete {
                to(Required, SetProfileField { user_id, key, delete })
            } else {
                Err(wrong_method())
            }
        }
        ["presence", user_id, "status"] => {
            let user_id = (*user_id).to_owned();
            if get {
                to(Required, GetPresence { user_id })
            } else if put {
                to(Required, SetPresence { user_id })
            } else {
                Err(wrong_method())
            }
        }
        ["directory", "room", alias] => {
            let alias = (*alias).to_owned();
            if get {
                to(Public, GetRoomAlias { alias })
            } else if put {
                to(Required, SetRoomAlias { alias })
            } else if delete {
                to(Required, DeleteRoomAlias { alias })
            } else {
                Err(wrong_method())
            }
        }
        ["directory", "list", "room", room_id] => {
            let room_id = (*room_id).to_owned();
            if get {
                to(Public, GetRoomVisibility { room_id })
            } else if put {
                to(Required, SetRoomVisibility { room_id })
            } else {
                Err(wrong_method())
            }
        }
        ["keys", "upload"] => only(post, Required, UploadKeys),
        ["keys", "query"] => only(post, Required, QueryKeys),
        ["keys", "claim"] => only(post, Required, ClaimKeys),
        ["keys", "changes"] => only(get, Required, GetKeyChanges),
        ["keys", "device_signing", "upload"] => only(post, Required, UploadCrossSigningKeys),
        ["keys", "signatures", "upload"] => only(post, Required, UploadSignatures),
        ["sendToDevice", event_type, txn_id] => only(
            put,
            Required,
            SendToDevice { event_type: (*event_type).to_owned(), txn_id: (*txn_id).to_owned() },
        ),
        ["room_keys", "version"] => {
            if get {
                to(Required, GetBackupVersion { version: None })
            } else if post {
                to(Required, CreateBackupVersion)
            } else {
                Err(wrong_method())
            }
        }
        ["room_keys", "version", version] => {
            let version = (*version).to_owned();
            if get {
                to(Required, GetBackupVersion { version: Some(version) })
            } else if put {
                to(Required, UpdateBackupVersion { version })
            } else if delete {
                to(Required, DeleteBackupVersion { version })
            } else {
                Err(wrong_method())
            }
        }
        ["room_keys", "keys", rest @ ..] if rest.len() <= 2 => {
            let method = if get {
                KeysMethod::Get
            } else if put {
                KeysMethod::Put
            } else if delete {
                KeysMethod::Delete
            } else {
                return Err(wrong_method());
            };
            to(
                Required,
                BackupKeys {
                    room: rest.first().map(|r| (*r).to_owned()),
                    session: rest.get(1).map(|s| (*s).to_owned()),
                    method,
                },
            )
        }
        ["publicRooms"] => {
            if get || post {
                to(if post { Required } else { Optional }, PublicRooms { post })
            } else {
                Err(wrong_method())
            }
        }
        _ => Err(not_found()),
    }
}
