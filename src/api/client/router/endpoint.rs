//! [`Endpoint`]: one variant per spec operation, named as in the spec,
//! with what its path holds; and what each needs of the request body.

use hyper::Method;

use crate::account::Restriction;

pub use crate::api::client::push::RulePart;

/// Declares [`Endpoint`] and [`Endpoint::name`] from one list, so a new
/// variant has its metrics label without a second list to keep.
macro_rules! endpoints {
    (
        $(#[$meta:meta])*
        pub enum Endpoint {
            $($(#[$vmeta:meta])* $variant:ident $({ $($field:ident: $ty:ty),* $(,)? })?),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum Endpoint {
            $($(#[$vmeta])* $variant $({ $($field: $ty),* })?),*
        }

        impl Endpoint {
            /// The variant's name: its metrics label (a fixed set, never a
            /// path, and no allocation per request).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Endpoint::$variant { .. } => stringify!($variant)),*
                }
            }
        }
    };
}

endpoints! {
/// A client-server API operation: one variant per spec operation, named as
/// in the spec, holding what its path says (the body is read by its handler).
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
        kind: Restriction,
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
}

/// The method of a `/room_keys/keys` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysMethod {
    Get,
    Put,
    Delete,
}

impl Endpoint {
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
