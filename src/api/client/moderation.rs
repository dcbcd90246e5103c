//! Account moderation (spec: client-server-api/#account-moderation and the
//! server administration endpoints): a server admin locks an account (every
//! request but logout refused, sessions kept) or suspends it (reading
//! allowed, acting in rooms refused).

use serde_json::{Value, json};

use crate::account::{self, Caller, Restriction};
use crate::api::client::router::Endpoint;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;

/// Refuses what a locked or suspended caller may not do.
pub fn enforce(app: &App, endpoint: &Endpoint, caller: &Caller) -> Result<(), MatrixError> {
    let rule = rule(endpoint);
    if caller.locked && rule != Rule::EvenLocked {
        return Err(MatrixError::new(ErrorKind::UserLocked, "This account has been locked")
            .with_extra("soft_logout", Value::Bool(true)));
    }
    if !caller.suspended {
        return Ok(());
    }
    let refused = match rule {
        Rule::EvenLocked | Rule::EvenSuspended => false,
        Rule::Unmoderated => true,
        Rule::OwnEventWhileSuspended(event_id) => {
            let read = app.store.read()?;
            match read.event_position(event_id)? {
                Some((room, pos)) => read.event_at(room, pos)?.is_some_and(|e| {
                    serde_json::from_slice::<Value>(&e.json)
                        .ok()
                        .is_none_or(|v| v["sender"] != caller.user_id.as_str())
                }),
                None => false,
            }
        }
    };
    if refused {
        return Err(MatrixError::new(
            ErrorKind::UserSuspended,
            "You cannot perform this action while suspended.",
        ));
    }
    Ok(())
}

/// Who of the moderated accounts may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule<'a> {
    /// Locked accounts too (they may only log out).
    EvenLocked,
    /// Suspended accounts too: reading, and what concerns only the account.
    EvenSuspended,
    /// Neither locked nor suspended accounts: acting in rooms, on the
    /// profile and the directory.
    Unmoderated,
    /// Suspended accounts only when the event is their own (redacting it).
    OwnEventWhileSuspended(&'a str),
}

/// The decision for each endpoint; no wildcard, so a new endpoint must
/// make its own.
fn rule(endpoint: &Endpoint) -> Rule<'_> {
    use Endpoint::*;
    match endpoint {
        Logout | LogoutAll => Rule::EvenLocked,
        CreateRoom
        | JoinRoom { .. }
        | JoinRoomIdOrAlias { .. }
        | KnockRoom { .. }
        | ChangeMembership { .. }
        | SetRoomState { .. }
        | SetProfileField { .. }
        | UpgradeRoom { .. }
        | SetRoomAlias { .. }
        | SetRoomVisibility { .. } => Rule::Unmoderated,
        // Redactions stay possible: of their own events only.
        SendMessageEvent { event_type, .. } if event_type == "m.room.redaction" => {
            Rule::EvenSuspended
        }
        SendMessageEvent { .. } => Rule::Unmoderated,
        RedactEvent { event_id, .. } => Rule::OwnEventWhileSuspended(event_id),
        GetVersions
        | GetWellKnownClient
        | GetWellKnownSupport
        | GetCapabilities
        | Register
        | GetRegisterAvailable
        | GetRegistrationTokenValidity
        | GetLoginFlows
        | Login
        | Refresh
        | AuthFallback { .. }
        | GetWhoami
        | ChangePassword
        | Deactivate
        | GetThreepids
        | ThreepidUnsupported
        | ThreepidDelete
        | GetDevices
        | GetDevice { .. }
        | UpdateDevice { .. }
        | DeleteDevice { .. }
        | DeleteDevices
        | LeaveRoom { .. }
        | GetJoinedRooms
        | GetRoomStateEvent { .. }
        | GetRoomState { .. }
        | GetEvent { .. }
        | GetJoinedMembers { .. }
        | GetMembers { .. }
        | GetMessages { .. }
        | CreateFilter { .. }
        | RequestOpenIdToken { .. }
        | GetOpenIdUserInfo
        | GetFilter { .. }
        | Sync
        | SlidingSync
        | GetDehydratedDevice
        | PutDehydratedDevice
        | DeleteDehydratedDevice
        | GetDehydratedEvents { .. }
        | GetRoomSummary { .. }
        | ForgetRoom { .. }
        | GetEventContext { .. }
        | GetAccountData { .. }
        | SetAccountData { .. }
        | GetTags { .. }
        | ChangeTag { .. }
        | SetTyping { .. }
        | PostReceipt { .. }
        | SetReadMarkers { .. }
        | GetProfile { .. }
        | GetProfileField { .. }
        | GetPresence { .. }
        | SetPresence { .. }
        | GetRoomAlias { .. }
        | DeleteRoomAlias { .. }
        | GetLocalAliases { .. }
        | GetRoomVisibility { .. }
        | PublicRooms { .. }
        | GetRelations { .. }
        | GetThreads { .. }
        | GetHierarchy { .. }
        | UploadMedia
        | CreateMedia
        | UploadMediaTo { .. }
        | DownloadMedia { .. }
        | ThumbnailMedia { .. }
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
        | BackupKeys { .. } => Rule::EvenSuspended,
    }
}

/// `GET|PUT /_matrix/client/v1/admin/{lock,suspend}/{userId}`
pub async fn admin_endpoint(
    app: &App,
    req: &Request,
    user_id: &str,
    kind: Restriction,
    set: bool,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    // Authorisation before any lookup (no user enumeration).
    if !caller.admin {
        return Err(MatrixError::forbidden("Only server admins can moderate accounts"));
    }
    let field = match kind {
        Restriction::Lock => "locked",
        Restriction::Suspend => "suspended",
    };
    let value = if set {
        match req.json_object()?.get(field) {
            Some(Value::Bool(v)) => Some(*v),
            _ => return Err(MatrixError::bad_json(format!("{field} must be true or false"))),
        }
    } else {
        None
    };
    let uid = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    if uid.server_name() != app.config.server_name {
        return Err(MatrixError::invalid_param("The user does not belong to this server"));
    }
    if value.is_some() && uid == caller.user_id {
        return Err(MatrixError::forbidden("Admins cannot moderate their own account"));
    }
    let Some(value) = value else {
        let user = app.store.read()?.user(uid.localpart())?.filter(|u| !u.deactivated);
        let user = user.ok_or_else(|| MatrixError::not_found("No such user"))?;
        let state = match kind {
            Restriction::Lock => user.locked,
            Restriction::Suspend => user.suspended,
        };
        return Ok(json(&json!({ field: state })));
    };
    let state =
        app.store.write(move |ctx| account::set_restriction(ctx, &uid, kind, value)).await?;
    Ok(json(&json!({ field: state })))
}
