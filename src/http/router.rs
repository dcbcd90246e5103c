//! Routing: method + decoded path → a typed [`Endpoint`], one variant per
//! spec operation, named as in the spec. Each endpoint declares the
//! authentication it needs before dispatch (see [`Endpoint::auth`]).
//!
//! Unknown paths are `404 M_UNRECOGNIZED`; a known path with a method it
//! does not take is `405 M_UNRECOGNIZED`.

use hyper::Method;

pub use crate::api::client::push::RulePart;
use crate::error::{ErrorKind, MatrixError};

/// What an endpoint needs from `Authorization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthNeed {
    None,
    /// Used when present (UIA endpoints such as `/account/password`).
    Optional,
    Required,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    // Server discovery and versions
    GetVersions,
    GetWellKnownClient,
    GetWellKnownSupport,
    GetCapabilities,
    // Registration and login
    Register,
    GetRegisterAvailable,
    GetRegistrationTokenValidity,
    GetLoginFlows,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    /// `GET` (page) and `POST` (form) of the UIA fallback for `auth_type`.
    AuthFallback {
        auth_type: String,
        submit: bool,
    },
    // Account management
    GetWhoami,
    ChangePassword,
    Deactivate,
    /// `GET /account/3pid`.
    GetThreepids,
    /// Every 3PID write and requestToken: answered that 3PIDs are unsupported.
    ThreepidUnsupported,
    /// `POST /account/3pid/delete|unbind`: nothing is bound, so nothing to do.
    ThreepidDelete,
    // Devices
    GetDevices,
    GetDevice {
        device_id: String,
    },
    UpdateDevice {
        device_id: String,
    },
    DeleteDevice {
        device_id: String,
    },
    DeleteDevices,
    // Rooms, membership, events, sync
    CreateRoom,
    JoinRoomIdOrAlias {
        room: String,
    },
    JoinRoom {
        room_id: String,
    },
    LeaveRoom {
        room_id: String,
    },
    /// invite, kick, ban, unban
    ChangeMembership {
        room_id: String,
        action: String,
    },
    GetJoinedRooms,
    SendMessageEvent {
        room_id: String,
        event_type: String,
        txn_id: String,
    },
    SetRoomState {
        room_id: String,
        event_type: String,
        state_key: String,
    },
    GetRoomStateEvent {
        room_id: String,
        event_type: String,
        state_key: String,
    },
    GetRoomState {
        room_id: String,
    },
    GetEvent {
        room_id: String,
        event_id: String,
    },
    GetJoinedMembers {
        room_id: String,
    },
    GetMembers {
        room_id: String,
    },
    GetMessages {
        room_id: String,
    },
    CreateFilter {
        user_id: String,
    },
    RequestOpenIdToken {
        user_id: String,
    },
    GetOpenIdUserInfo,
    GetFilter {
        user_id: String,
        filter_id: String,
    },
    Sync,
    /// MSC4186 simplified sliding sync.
    SlidingSync,
    /// MSC3814 dehydrated devices (unstable prefix).
    GetDehydratedDevice,
    PutDehydratedDevice,
    DeleteDehydratedDevice,
    GetDehydratedEvents {
        device_id: String,
    },
    /// MSC3266 room summary (stable and unstable paths).
    GetRoomSummary {
        room: String,
    },
    RedactEvent {
        room_id: String,
        event_id: String,
        txn_id: String,
    },
    ForgetRoom {
        room_id: String,
    },
    GetEventContext {
        room_id: String,
        event_id: String,
    },
    GetAccountData {
        user_id: String,
        room_id: String,
        data_type: String,
    },
    SetAccountData {
        user_id: String,
        room_id: String,
        data_type: String,
    },
    GetTags {
        user_id: String,
        room_id: String,
    },
    ChangeTag {
        user_id: String,
        room_id: String,
        tag: String,
        add: bool,
    },
    SetTyping {
        room_id: String,
        user_id: String,
    },
    PostReceipt {
        room_id: String,
        receipt_type: String,
        event_id: String,
    },
    SetReadMarkers {
        room_id: String,
    },
    GetProfile {
        user_id: String,
    },
    GetProfileField {
        user_id: String,
        key: String,
    },
    SetProfileField {
        user_id: String,
        key: String,
        delete: bool,
    },
    GetPresence {
        user_id: String,
    },
    SetPresence {
        user_id: String,
    },
    GetRoomAlias {
        alias: String,
    },
    SetRoomAlias {
        alias: String,
    },
    DeleteRoomAlias {
        alias: String,
    },
    GetLocalAliases {
        room_id: String,
    },
    GetRoomVisibility {
        room_id: String,
    },
    SetRoomVisibility {
        room_id: String,
    },
    PublicRooms {
        post: bool,
    },
    GetRelations {
        room_id: String,
        event_id: String,
        rel_type: Option<String>,
        event_type: Option<String>,
    },
    GetThreads {
        room_id: String,
    },
    GetHierarchy {
        room_id: String,
    },
    UpgradeRoom {
        room_id: String,
    },
    // Content repository
    UploadMedia,
    CreateMedia,
    UploadMediaTo {
        server: String,
        media_id: String,
    },
    DownloadMedia {
        server: String,
        media_id: String,
        file_name: Option<String>,
        legacy: bool,
    },
    ThumbnailMedia {
        server: String,
        media_id: String,
        legacy: bool,
    },
    MediaConfig,
    PreviewUrl,
    KnockRoom {
        room: String,
    },
    GetMutualRooms,
    // Push
    GetPushRules {
        global_only: bool,
    },
    GetPushRule {
        kind: String,
        rule_id: String,
        part: RulePart,
    },
    SetPushRule {
        kind: String,
        rule_id: String,
        part: RulePart,
    },
    DeletePushRule {
        kind: String,
        rule_id: String,
    },
    GetPushers,
    SetPusher,
    GetNotifications,
    SearchUserDirectory,
    /// `POST /search` (server-side search).
    Search,
    ReportEvent {
        room_id: String,
        event_id: String,
    },
    ReportRoom {
        room_id: String,
    },
    ReportUser {
        user_id: String,
    },
    GetTurnServer,
    /// MSC4143 MatrixRTC transports (unstable prefix).
    GetRtcTransports,
    GetThirdpartyProtocols,
    /// Lookups for a third-party protocol (none exist).
    ThirdpartyUnknown,
    Whois {
        user_id: String,
    },
    /// `GET|PUT /_matrix/client/v1/admin/{lock,suspend}/{userId}`.
    AdminModeration {
        user_id: String,
        kind: Moderation,
        set: bool,
    },
    TimestampToEvent {
        room_id: String,
    },
    // End-to-end encryption
    UploadKeys,
    QueryKeys,
    ClaimKeys,
    GetKeyChanges,
    UploadCrossSigningKeys,
    UploadSignatures,
    SendToDevice {
        event_type: String,
        txn_id: String,
    },
    CreateBackupVersion,
    GetBackupVersion {
        version: Option<String>,
    },
    UpdateBackupVersion {
        version: String,
    },
    DeleteBackupVersion {
        version: String,
    },
    /// `GET|PUT|DELETE /room_keys/keys[/{roomId}[/{sessionId}]]`
    BackupKeys {
        room: Option<String>,
        session: Option<String>,
        method: KeysMethod,
    },
}

/// What an account moderation endpoint acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moderation {
    Lock,
    Suspend,
}

/// The method of a `/room_keys/keys` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysMethod {
    Get,
    Put,
    Delete,
}

impl Endpoint {
    pub fn auth(&self) -> AuthNeed {
        use Endpoint::*;
        match self {
            GetVersions | ChangePassword | Deactivate => AuthNeed::Optional,
            // Public and world-readable rooms are previewable without a token.
            GetRoomSummary { .. } => AuthNeed::Optional,
            GetWellKnownClient
            | GetWellKnownSupport
            | GetOpenIdUserInfo
            | Register
            | GetRegisterAvailable
            | GetRegistrationTokenValidity
            | GetLoginFlows
            | Login
            | Refresh
            | AuthFallback { .. } => AuthNeed::None,
            ThreepidUnsupported => AuthNeed::Optional,
            GetCapabilities
            | Logout
            | LogoutAll
            | GetWhoami
            | GetThreepids
            | ThreepidDelete
            | GetDevices
            | GetDevice { .. }
            | UpdateDevice { .. }
            | DeleteDevice { .. }
            | DeleteDevices
            | CreateRoom
            | JoinRoomIdOrAlias { .. }
            | JoinRoom { .. }
            | LeaveRoom { .. }
            | ChangeMembership { .. }
            | GetJoinedRooms
            | SendMessageEvent { .. }
            | SetRoomState { .. }
            | GetRoomStateEvent { .. }
            | GetRoomState { .. }
            | GetEvent { .. }
            | GetJoinedMembers { .. }
            | GetMembers { .. }
            | GetMessages { .. }
            | CreateFilter { .. }
            | RequestOpenIdToken { .. }
            | GetFilter { .. }
            | Sync
            | SlidingSync
            | GetDehydratedDevice
            | PutDehydratedDevice
            | DeleteDehydratedDevice
            | GetDehydratedEvents { .. }
            | RedactEvent { .. }
            | ForgetRoom { .. }
            | GetEventContext { .. }
            | GetAccountData { .. }
            | SetAccountData { .. }
            | GetTags { .. }
            | ChangeTag { .. }
            | SetTyping { .. }
            | PostReceipt { .. }
            | SetReadMarkers { .. }
            | SetProfileField { .. }
            | GetPresence { .. }
            | SetPresence { .. }
            | SetRoomAlias { .. }
            | DeleteRoomAlias { .. }
            | GetLocalAliases { .. }
            | SetRoomVisibility { .. }
            | KnockRoom { .. }
            | GetRelations { .. }
            | GetThreads { .. }
            | GetHierarchy { .. }
            | UpgradeRoom { .. }
            | UploadMedia
            | CreateMedia
            | UploadMediaTo { .. }
            | MediaConfig
            | PreviewUrl
            | GetMutualRooms
            | GetPushRules { .. }
            | GetPushRule { .. }
            | SetPushRule { .. }
            | DeletePushRule { .. }
            | GetPushers
            | SetPusher
            | GetNotifications
            | SearchUserDirectory
            | Search
            | ReportEvent { .. }
            | ReportRoom { .. }
            | ReportUser { .. }
            | GetTurnServer
            | GetRtcTransports
            | GetThirdpartyProtocols
            | ThirdpartyUnknown
            | Whois { .. }
            | AdminModeration { .. }
            | TimestampToEvent { .. }
            | UploadKeys
            | QueryKeys
            | ClaimKeys
            | GetKeyChanges
            | UploadCrossSigningKeys
            | UploadSignatures
            | SendToDevice { .. }
            | CreateBackupVersion
            | GetBackupVersion { .. }
            | UpdateBackupVersion { .. }
            | DeleteBackupVersion { .. }
            | BackupKeys { .. } => AuthNeed::Required,
            // Readable without a token (spec: auth "no"); the public room
            // list is POST-able only with one.
            GetProfile { .. }
            | GetProfileField { .. }
            | GetRoomAlias { .. }
            | GetRoomVisibility { .. } => AuthNeed::None,
            DownloadMedia { legacy, .. } | ThumbnailMedia { legacy, .. } => {
                if *legacy {
                    AuthNeed::Optional
                } else {
                    AuthNeed::Required
                }
            }
            PublicRooms { post } => {
                if *post {
                    AuthNeed::Required
                } else {
                    AuthNeed::Optional
                }
            }
        }
    }

    /// Whether the body is streamed to the handler instead of read first
    /// (media uploads: large, and not JSON).
    pub fn streams_body(&self) -> bool {
        matches!(self, Endpoint::UploadMedia | Endpoint::UploadMediaTo { .. })
    }

    /// Whether the request body must be a JSON object (spec: "API Standards":
    /// every POST/PUT except media upload and logout).
    pub fn wants_json_body(&self, method: &Method) -> bool {
        let write = method == Method::POST || method == Method::PUT;
        write
            && !matches!(
                self,
                Endpoint::Logout
                    | Endpoint::LogoutAll
                    | Endpoint::AuthFallback { .. }
                    | Endpoint::UploadMedia
                    | Endpoint::UploadMediaTo { .. }
            )
    }
}

/// Which version segments a client path may use for an endpoint family.
fn is_v3(v: &str) -> bool {
    v == "v3" || v == "r0"
}

/// Resolves a request. `segs` are the percent-decoded path segments.
pub fn route(method: &Method, segs: &[&str]) -> Result<Endpoint, MatrixError> {
    use Endpoint::*;
    let m = method;
    let get = *m == Method::GET;
    let post = *m == Method::POST;
    let put = *m == Method::PUT;
    let delete = *m == Method::DELETE;
    // `only(cond, endpoint)`: the path is known; the method must match.
    let only = |ok: bool, e: Endpoint| if ok { Ok(e) } else { Err(wrong_method()) };
    match segs {
        [".well-known", "matrix", "client"] => only(get, GetWellKnownClient),
        [".well-known", "matrix", "support"] => only(get, GetWellKnownSupport),
        ["_matrix", "federation", "v1", "openid", "userinfo"] => only(get, GetOpenIdUserInfo),
        ["_matrix", "client", "versions"] => only(get, GetVersions),
        ["_matrix", "client", "v1", "register", "m.login.registration_token", "validity"] => {
            only(get, GetRegistrationTokenValidity)
        }
        ["_matrix", "client", "v1", "mutual_rooms"] => only(get, GetMutualRooms),
        ["_matrix", "client", "v1", "admin", kind @ ("lock" | "suspend"), user_id] => {
            let kind = if *kind == "lock" { Moderation::Lock } else { Moderation::Suspend };
            only(get || put, AdminModeration { user_id: (*user_id).to_owned(), kind, set: put })
        }
        ["_matrix", "client", "unstable", "org.matrix.simplified_msc3575", "sync"] => {
            only(post, SlidingSync)
        }
        ["_matrix", "client", "unstable", "org.matrix.msc3814.v1", rest @ ..] => msc3814(m, rest),
        ["_matrix", "client", "unstable", "org.matrix.msc4143", "rtc", "transports"] => {
            only(get, GetRtcTransports)
        }
        ["_matrix", "client", "v1", "room_summary", room]
        | ["_matrix", "client", "unstable", "im.nheko.summary", "summary", room]
        | ["_matrix", "client", "unstable", "im.nheko.summary", "rooms", room, "summary"] => {
            only(get, GetRoomSummary { room: (*room).to_owned() })
        }
        ["_matrix", "client", "v1", "rooms", room_id, "relations", event_id, rest @ ..]
            if rest.len() <= 2 =>
        {
            only(
                get,
                GetRelations {
                    room_id: (*room_id).to_owned(),
                    event_id: (*event_id).to_owned(),
                    rel_type: rest.first().map(|r| (*r).to_owned()),
                    event_type: rest.get(1).map(|t| (*t).to_owned()),
                },
            )
        }
        ["_matrix", "client", "v1", "rooms", room_id, "hierarchy"] => {
            only(get, GetHierarchy { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", "v1", "rooms", room_id, "threads"] => {
            only(get, GetThreads { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", "v1", "media", rest @ ..] => route_media(rest, get, post, put, false),
        ["_matrix", "media", "v3" | "r0", rest @ ..] => route_media(rest, get, post, put, true),
        ["_matrix", "media", "v1", "create"] => only(post, CreateMedia),
        ["_matrix", "client", "v1", "rooms", room_id, "timestamp_to_event"] => {
            only(get, TimestampToEvent { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", v, rest @ ..] if is_v3(v) => {
            route_v3(m, rest, get, post, put, delete)
        }
        _ => Err(not_found()),
    }
}

fn route_v3(
    _m: &Method,
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
    delete: bool,
) -> Result<Endpoint, MatrixError> {
    use Endpoint::*;
    let only = |ok: bool, e: Endpoint| if ok { Ok(e) } else { Err(wrong_method()) };
    match rest {
        ["capabilities"] => only(get, GetCapabilities),
        ["register"] => only(post, Register),
        ["register", "available"] => only(get, GetRegisterAvailable),
        ["register", "email" | "msisdn", "requestToken"] => only(post, ThreepidUnsupported),
        ["login"] => {
            if get {
                Ok(GetLoginFlows)
            } else if post {
                Ok(Login)
            } else {
                Err(wrong_method())
            }
        }
        ["refresh"] => only(post, Refresh),
        ["logout"] => only(post, Logout),
        ["logout", "all"] => only(post, LogoutAll),
        ["auth", auth_type, "fallback", "web"] => {
            if get || post {
                Ok(AuthFallback { auth_type: (*auth_type).to_owned(), submit: post })
            } else {
                Err(wrong_method())
            }
        }
        ["account", "whoami"] => only(get, GetWhoami),
        ["account", "password"] => only(post, ChangePassword),
        ["account", "password", "email" | "msisdn", "requestToken"] => {
            only(post, ThreepidUnsupported)
        }
        ["account", "deactivate"] => only(post, Deactivate),
        ["account", "3pid"] => {
            if get {
                Ok(GetThreepids)
            } else if post {
                Ok(ThreepidUnsupported)
            } else {
                Err(wrong_method())
            }
        }
        ["account", "3pid", "add" | "bind"] => only(post, ThreepidUnsupported),
        ["account", "3pid", "delete" | "unbind"] => only(post, ThreepidDelete),
        ["account", "3pid", "email" | "msisdn", "requestToken"] => only(post, ThreepidUnsupported),
        ["devices"] => only(get, GetDevices),
        ["devices", device_id] => {
            let device_id = (*device_id).to_owned();
            if get {
                Ok(GetDevice { device_id })
            } else if put {
                Ok(UpdateDevice { device_id })
            } else if delete {
                Ok(DeleteDevice { device_id })
            } else {
                Err(wrong_method())
            }
        }
        ["delete_devices"] => only(post, DeleteDevices),
        ["createRoom"] => only(post, CreateRoom),
        ["join", room] => only(post, JoinRoomIdOrAlias { room: (*room).to_owned() }),
        ["knock", room] => only(post, KnockRoom { room: (*room).to_owned() }),
        ["user_directory", "search"] => only(post, SearchUserDirectory),
        ["search"] => only(post, Search),
        ["pushrules"] | ["pushrules", ""] => only(get, GetPushRules { global_only: false }),
        ["pushrules", "global"] | ["pushrules", "global", ""] => {
            only(get, GetPushRules { global_only: true })
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
                Ok(GetPushRule { kind, rule_id, part })
            } else if put {
                Ok(SetPushRule { kind, rule_id, part })
            } else if delete && part == RulePart::Rule {
                Ok(DeletePushRule { kind, rule_id })
            } else {
                Err(wrong_method())
            }
        }
        ["pushers"] => only(get, GetPushers),
        ["pushers", "set"] => only(post, SetPusher),
        ["notifications"] => only(get, GetNotifications),
        ["users", user_id, "report"] => only(post, ReportUser { user_id: (*user_id).to_owned() }),
        ["voip", "turnServer"] => only(get, GetTurnServer),
        ["thirdparty", "protocols"] => only(get, GetThirdpartyProtocols),
        ["thirdparty", "protocol" | "location" | "user", ..] => only(get, ThirdpartyUnknown),
        ["admin", "whois", user_id] => only(get, Whois { user_id: (*user_id).to_owned() }),
        ["joined_rooms"] => only(get, GetJoinedRooms),
        ["sync"] => only(get, Sync),
        ["user", user_id, "filter"] => only(post, CreateFilter { user_id: (*user_id).to_owned() }),
        ["user", user_id, "openid", "request_token"] => {
            only(post, RequestOpenIdToken { user_id: (*user_id).to_owned() })
        }
        ["user", user_id, "filter", filter_id] => only(
            get,
            GetFilter { user_id: (*user_id).to_owned(), filter_id: (*filter_id).to_owned() },
        ),
        ["rooms", room_id, rest @ ..] => route_room(room_id, rest, get, post, put),
        ["user", user_id, "account_data", data_type] => {
            let (user_id, room_id, data_type) =
                ((*user_id).to_owned(), String::new(), (*data_type).to_owned());
            if get {
                Ok(GetAccountData { user_id, room_id, data_type })
            } else if put {
                Ok(SetAccountData { user_id, room_id, data_type })
            } else {
                Err(wrong_method())
            }
        }
        ["user", user_id, "rooms", room_id, "account_data", data_type] => {
            let (user_id, room_id, data_type) =
                ((*user_id).to_owned(), (*room_id).to_owned(), (*data_type).to_owned());
            if get {
                Ok(GetAccountData { user_id, room_id, data_type })
            } else if put {
                Ok(SetAccountData { user_id, room_id, data_type })
            } else {
                Err(wrong_method())
            }
        }
        ["user", user_id, "rooms", room_id, "tags"] => {
            only(get, GetTags { user_id: (*user_id).to_owned(), room_id: (*room_id).to_owned() })
        }
        ["user", user_id, "rooms", room_id, "tags", tag] => {
            if put || delete {
                Ok(ChangeTag {
                    user_id: (*user_id).to_owned(),
                    room_id: (*room_id).to_owned(),
                    tag: (*tag).to_owned(),
                    add: put,
                })
            } else {
                Err(wrong_method())
            }
        }
        ["profile", user_id] => only(get, GetProfile { user_id: (*user_id).to_owned() }),
        ["profile", user_id, key] => {
            let (user_id, key) = ((*user_id).to_owned(), (*key).to_owned());
            if get {
                Ok(GetProfileField { user_id, key })
            } else if put || delete {
                Ok(SetProfileField { user_id, key, delete })
            } else {
                Err(wrong_method())
            }
        }
        ["presence", user_id, "status"] => {
            let user_id = (*user_id).to_owned();
            if get {
                Ok(GetPresence { user_id })
            } else if put {
                Ok(SetPresence { user_id })
            } else {
                Err(wrong_method())
            }
        }
        ["directory", "room", alias] => {
            let alias = (*alias).to_owned();
            if get {
                Ok(GetRoomAlias { alias })
            } else if put {
                Ok(SetRoomAlias { alias })
            } else if delete {
                Ok(DeleteRoomAlias { alias })
            } else {
                Err(wrong_method())
            }
        }
        ["directory", "list", "room", room_id] => {
            let room_id = (*room_id).to_owned();
            if get {
                Ok(GetRoomVisibility { room_id })
            } else if put {
                Ok(SetRoomVisibility { room_id })
            } else {
                Err(wrong_method())
            }
        }
        ["keys", "upload"] => only(post, UploadKeys),
        ["keys", "query"] => only(post, QueryKeys),
        ["keys", "claim"] => only(post, ClaimKeys),
        ["keys", "changes"] => only(get, GetKeyChanges),
        ["keys", "device_signing", "upload"] => only(post, UploadCrossSigningKeys),
        ["keys", "signatures", "upload"] => only(post, UploadSignatures),
        ["sendToDevice", event_type, txn_id] => only(
            put,
            SendToDevice { event_type: (*event_type).to_owned(), txn_id: (*txn_id).to_owned() },
        ),
        ["room_keys", "version"] => {
            if get {
                Ok(GetBackupVersion { version: None })
            } else if post {
                Ok(CreateBackupVersion)
            } else {
                Err(wrong_method())
            }
        }
        ["room_keys", "version", version] => {
            let version = (*version).to_owned();
            if get {
                Ok(GetBackupVersion { version: Some(version) })
            } else if put {
                Ok(UpdateBackupVersion { version })
            } else if delete {
                Ok(DeleteBackupVersion { version })
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
            Ok(BackupKeys {
                room: rest.first().map(|r| (*r).to_owned()),
                session: rest.get(1).map(|s| (*s).to_owned()),
                method,
            })
        }
        ["publicRooms"] => {
            if get || post {
                Ok(PublicRooms { post })
            } else {
                Err(wrong_method())
            }
        }
        _ => Err(not_found()),
    }
}

fn route_room(
    room_id: &str,
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
) -> Result<Endpoint, MatrixError> {
    use Endpoint::*;
    let only = |ok: bool, e: Endpoint| if ok { Ok(e) } else { Err(wrong_method()) };
    let room_id = room_id.to_owned();
    match rest {
        ["join"] => only(post, JoinRoom { room_id }),
        ["leave"] => only(post, LeaveRoom { room_id }),
        [action @ ("invite" | "kick" | "ban" | "unban")] => {
            only(post, ChangeMembership { room_id, action: (*action).to_owned() })
        }
        ["send", event_type, txn_id] => only(
            put,
            SendMessageEvent {
                room_id,
                event_type: (*event_type).to_owned(),
                txn_id: (*txn_id).to_owned(),
            },
        ),
        ["state"] => only(get, GetRoomState { room_id }),
        ["state", event_type] | ["state", event_type, ""] => {
            state_endpoint(room_id, event_type, "", get, put)
        }
        ["state", event_type, state_key] => {
            state_endpoint(room_id, event_type, state_key, get, put)
        }
        ["event", event_id] => only(get, GetEvent { room_id, event_id: (*event_id).to_owned() }),
        ["joined_members"] => only(get, GetJoinedMembers { room_id }),
        ["members"] => only(get, GetMembers { room_id }),
        ["messages"] => only(get, GetMessages { room_id }),
        ["redact", event_id, txn_id] => only(
            put,
            RedactEvent { room_id, event_id: (*event_id).to_owned(), txn_id: (*txn_id).to_owned() },
        ),
        ["forget"] => only(post, ForgetRoom { room_id }),
        ["upgrade"] => only(post, UpgradeRoom { room_id }),
        ["context", event_id] => {
            only(get, GetEventContext { room_id, event_id: (*event_id).to_owned() })
        }
        ["typing", user_id] => only(put, SetTyping { room_id, user_id: (*user_id).to_owned() }),
        ["receipt", receipt_type, event_id] => only(
            post,
            PostReceipt {
                room_id,
                receipt_type: (*receipt_type).to_owned(),
                event_id: (*event_id).to_owned(),
            },
        ),
        ["read_markers"] => only(post, SetReadMarkers { room_id }),
        ["report"] => only(post, ReportRoom { room_id }),
        ["report", event_id] => {
            only(post, ReportEvent { room_id, event_id: (*event_id).to_owned() })
        }
        ["aliases"] => only(get, GetLocalAliases { room_id }),
        _ => Err(not_found()),
    }
}

/// `/_matrix/client/v1/media/…` (authenticated) and `/_matrix/media/v3/…`
/// (uploads, and the deprecated unauthenticated downloads).
fn route_media(
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
    legacy: bool,
) -> Result<Endpoint, MatrixError> {
    use Endpoint::*;
    let only = |ok: bool, e: Endpoint| if ok { Ok(e) } else { Err(wrong_method()) };
    match rest {
        ["config"] => only(get, MediaConfig),
        ["preview_url"] => only(get, PreviewUrl),
        ["upload"] if legacy => only(post, UploadMedia),
        ["upload", server, media_id] if legacy => only(
            put,
            UploadMediaTo { server: (*server).to_owned(), media_id: (*media_id).to_owned() },
        ),
        ["download", server, media_id, name @ ..] if name.len() <= 1 => only(
            get,
            DownloadMedia {
                server: (*server).to_owned(),
                media_id: (*media_id).to_owned(),
                file_name: name.first().map(|n| (*n).to_owned()),
                legacy,
            },
        ),
        ["thumbnail", server, media_id] => only(
            get,
            ThumbnailMedia {
                server: (*server).to_owned(),
                media_id: (*media_id).to_owned(),
                legacy,
            },
        ),
        _ => Err(not_found()),
    }
}

fn state_endpoint(
    room_id: String,
    event_type: &str,
    state_key: &str,
    get: bool,
    put: bool,
) -> Result<Endpoint, MatrixError> {
    let (event_type, state_key) = (event_type.to_owned(), state_key.to_owned());
    if get {
        Ok(Endpoint::GetRoomStateEvent { room_id, event_type, state_key })
    } else if put {
        Ok(Endpoint::SetRoomState { room_id, event_type, state_key })
    } else {
        Err(wrong_method())
    }
}

fn not_found() -> MatrixError {
    MatrixError::new(ErrorKind::Unrecognized, "Unrecognized request")
}

/// MSC3814 dehydrated devices, under `/_matrix/client/unstable/org.matrix.msc3814.v1`.
fn msc3814(m: &Method, rest: &[&str]) -> Result<Endpoint, MatrixError> {
    use Endpoint::*;
    match rest {
        ["dehydrated_device"] => match *m {
            Method::GET => Ok(GetDehydratedDevice),
            Method::PUT => Ok(PutDehydratedDevice),
            Method::DELETE => Ok(DeleteDehydratedDevice),
            _ => Err(wrong_method()),
        },
        ["dehydrated_device", device_id, "events"] if *m == Method::POST => {
            Ok(GetDehydratedEvents { device_id: (*device_id).to_owned() })
        }
        ["dehydrated_device", _, "events"] => Err(wrong_method()),
        _ => Err(not_found()),
    }
}

fn wrong_method() -> MatrixError {
    MatrixError::new(ErrorKind::UnrecognizedMethod, "Method not allowed for this endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str) -> Result<Endpoint, MatrixError> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        route(&method, &segs)
    }

    #[test]
    fn known_paths_route_to_their_endpoint() {
        assert_eq!(r(Method::GET, "/_matrix/client/versions").ok(), Some(Endpoint::GetVersions));
        assert_eq!(r(Method::POST, "/_matrix/client/v3/login").ok(), Some(Endpoint::Login));
        assert_eq!(r(Method::GET, "/_matrix/client/r0/login").ok(), Some(Endpoint::GetLoginFlows));
        assert_eq!(
            r(Method::DELETE, "/_matrix/client/v3/devices/ABC").ok(),
            Some(Endpoint::DeleteDevice { device_id: "ABC".into() })
        );
    }

    #[test]
    fn dehydrated_device_paths_route_by_method() {
        const DD: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
        assert!(matches!(r(Method::GET, DD), Ok(Endpoint::GetDehydratedDevice)));
        assert!(matches!(r(Method::PUT, DD), Ok(Endpoint::PutDehydratedDevice)));
        assert!(matches!(r(Method::DELETE, DD), Ok(Endpoint::DeleteDehydratedDevice)));
        let events = format!("{DD}/ABC/events");
        match r(Method::POST, &events) {
            Ok(Endpoint::GetDehydratedEvents { device_id }) => assert_eq!(device_id, "ABC"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r(Method::GET, &events).expect_err("GET").status(), 405);
        assert_eq!(r(Method::POST, DD).expect_err("POST").status(), 405);
        assert_eq!(r(Method::GET, &format!("{DD}/ABC")).expect_err("unknown").status(), 404);
    }

    #[test]
    fn unknown_path_is_404_and_wrong_method_is_405() {
        let e = r(Method::GET, "/_matrix/client/v3/nope").expect_err("unknown");
        assert_eq!(e.status(), 404);
        let e = r(Method::DELETE, "/_matrix/client/v3/login").expect_err("wrong method");
        assert_eq!(e.status(), 405);
        assert_eq!(e.kind.errcode(), "M_UNRECOGNIZED");
    }
}
