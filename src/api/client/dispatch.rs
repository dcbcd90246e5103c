//! Dispatch: a routed [`Endpoint`] to its handler, one arm per operation.

use std::rc::Rc;

use super::router::{Endpoint, KeysMethod};
use crate::api::{Outcome, Request};
use crate::app::App;
use crate::error::MatrixError;

/// Runs the handler of a routed endpoint, whose caller is already
/// authenticated and allowed to call it (`moderation::enforce`).
pub(super) async fn dispatch<'a>(
    app: &'a Rc<App>,
    endpoint: Endpoint,
    req: &Request,
) -> Result<Outcome<'a>, MatrixError> {
    use super::*;
    use Endpoint::*;
    let reply = match endpoint {
        GetVersions => discovery::get_versions(app, req),
        GetWellKnownClient => discovery::get_well_known_client(app),
        GetWellKnownSupport => discovery::get_well_known_support(app),
        GetCapabilities => discovery::get_capabilities(app, req),
        Register => register::register(app, req).await,
        GetRegisterAvailable => register::get_register_available(app, req),
        GetRegistrationTokenValidity => register::get_registration_token_validity(app, req),
        GetLoginFlows => login::get_login_flows(),
        Login => login::login(app, req).await,
        Refresh => login::refresh(app, req).await,
        Logout => login::logout(app, req).await,
        LogoutAll => login::logout_all(app, req).await,
        AuthFallback { auth_type, submit } => {
            fallback::auth_fallback(app, req, &auth_type, submit).await
        }
        GetWhoami => account::get_whoami(req),
        ChangePassword => account::change_password(app, req).await,
        Deactivate => account::deactivate(app, req).await,
        GetThreepids => account::get_threepids(),
        ThreepidUnsupported => account::threepid_unsupported(),
        ThreepidDelete => account::threepid_delete(),
        GetDevices => devices::get_devices(app, req),
        GetDevice { device_id } => devices::get_device(app, req, &device_id),
        UpdateDevice { device_id } => devices::update_device(app, req, &device_id).await,
        DeleteDevice { device_id } => devices::delete_device(app, req, &device_id).await,
        DeleteDevices => devices::delete_devices(app, req).await,
        CreateRoom => create_room::create_room(app, req).await,
        JoinRoomIdOrAlias { room } => membership::join(app, req, &room).await,
        JoinRoom { room_id } => membership::join(app, req, &room_id).await,
        LeaveRoom { room_id } => membership::leave(app, req, &room_id).await,
        ChangeMembership { room_id, action } => {
            membership::change_membership(app, req, &room_id, &action).await
        }
        GetJoinedRooms => membership::joined_rooms(app, req),
        SendMessageEvent { room_id, event_type, txn_id } => {
            events::send_message_event(app, req, &room_id, &event_type, &txn_id).await
        }
        SetRoomState { room_id, event_type, state_key } => {
            events::set_room_state(app, req, &room_id, &event_type, &state_key).await
        }
        GetRoomStateEvent { room_id, event_type, state_key } => {
            events::get_room_state_event(app, req, &room_id, &event_type, &state_key)
        }
        GetRoomState { room_id } => events::get_room_state(app, req, &room_id),
        GetEvent { room_id, event_id } => events::get_event(app, req, &room_id, &event_id),
        GetJoinedMembers { room_id } => events::joined_members(app, req, &room_id),
        GetMembers { room_id } => events::members(app, req, &room_id),
        GetMessages { room_id } => history::messages(app, req, &room_id),
        CreateFilter { user_id } => sync::create_filter(app, req, &user_id).await,
        RequestOpenIdToken { user_id } => openid::request_token(app, req, &user_id),
        AdminModeration { user_id, kind, set } => {
            moderation::admin_endpoint(app, req, &user_id, kind, set).await
        }
        GetOpenIdUserInfo => openid::user_info(app, req),
        GetFilter { user_id, filter_id } => sync::get_filter(app, req, &user_id, &filter_id),
        // The one long-poll that lets go of the request while it waits.
        Sync => return sync::sync_events(app, req).await,
        SlidingSync => sliding::sliding_sync(app, req).await,
        GetDehydratedDevice => dehydrated::get_dehydrated_device(app, req),
        PutDehydratedDevice => dehydrated::put_dehydrated_device(app, req).await,
        DeleteDehydratedDevice => dehydrated::delete_dehydrated_device(app, req).await,
        GetDehydratedEvents { device_id } => {
            dehydrated::get_dehydrated_events(app, req, &device_id).await
        }
        GetRoomSummary { room } => summary::get_room_summary(app, req, &room),
        RedactEvent { room_id, event_id, txn_id } => {
            redaction::redact_event(app, req, &room_id, &event_id, &txn_id).await
        }
        ForgetRoom { room_id } => membership::forget_room(app, req, &room_id).await,
        GetEventContext { room_id, event_id } => {
            history::get_event_context(app, req, &room_id, &event_id)
        }
        GetAccountData { user_id, room_id, data_type } => {
            account_data::get_account_data(app, req, &user_id, &room_id, &data_type)
        }
        SetAccountData { user_id, room_id, data_type } => {
            account_data::set_account_data(app, req, &user_id, &room_id, &data_type).await
        }
        GetTags { user_id, room_id } => tags::get_tags(app, req, &user_id, &room_id),
        ChangeTag { user_id, room_id, tag, add } => {
            tags::change_tag(app, req, &user_id, &room_id, &tag, add).await
        }
        SetTyping { room_id, user_id } => typing::set_typing(app, req, &room_id, &user_id).await,
        PostReceipt { room_id, receipt_type, event_id } => {
            receipts::post_receipt(app, req, &room_id, &receipt_type, &event_id).await
        }
        SetReadMarkers { room_id } => receipts::set_read_markers(app, req, &room_id).await,
        GetProfile { user_id } => profile::get_profile(app, &user_id),
        GetProfileField { user_id, key } => profile::get_profile_field(app, &user_id, &key),
        SetProfileField { user_id, key, delete } => {
            profile::set_profile_field(app, req, &user_id, &key, delete).await
        }
        GetPresence { user_id } => presence::get_presence(app, req, &user_id),
        SetPresence { user_id } => presence::set_presence(app, req, &user_id),
        GetRoomAlias { alias } => directory::get_room_alias(app, &alias),
        SetRoomAlias { alias } => directory::set_room_alias(app, req, &alias).await,
        DeleteRoomAlias { alias } => directory::delete_room_alias(app, req, &alias).await,
        GetLocalAliases { room_id } => directory::get_local_aliases(app, req, &room_id),
        GetRoomVisibility { room_id } => directory::get_room_visibility(app, &room_id),
        SetRoomVisibility { room_id } => directory::set_room_visibility(app, req, &room_id).await,
        PublicRooms { post } => directory::public_rooms(app, req, post),
        KnockRoom { room } => membership::knock(app, req, &room).await,
        GetMutualRooms => mutual_rooms::mutual_rooms(app, req),
        GetRelations { room_id, event_id, rel_type, event_type } => relations::get_relations(
            app,
            req,
            &room_id,
            &event_id,
            rel_type.as_deref(),
            event_type.as_deref(),
        ),
        GetThreads { room_id } => relations::get_threads(app, req, &room_id),
        GetHierarchy { room_id } => spaces::get_hierarchy(app, req, &room_id),
        UpgradeRoom { room_id } => upgrade::upgrade_room(app, req, &room_id).await,
        UploadMedia => media::upload(app, req).await,
        CreateMedia => media::create(app, req).await,
        UploadMediaTo { server, media_id } => media::upload_to(app, req, &server, &media_id).await,
        DownloadMedia { server, media_id, file_name, legacy } => {
            media::download(app, req, &server, &media_id, file_name.as_deref(), legacy).await
        }
        ThumbnailMedia { server, media_id, legacy } => {
            media::thumbnail(app, req, &server, &media_id, legacy).await
        }
        MediaConfig => media::config(app, req),
        PreviewUrl => preview::preview_url(app, req).await,
        GetPushRules { global_only } => push::get_push_rules(app, req, global_only),
        GetPushRule { kind, rule_id, part } => push::get_push_rule(app, req, &kind, &rule_id, part),
        SetPushRule { kind, rule_id, part } => {
            push::set_push_rule(app, req, &kind, &rule_id, part).await
        }
        DeletePushRule { kind, rule_id } => push::delete_push_rule(app, req, &kind, &rule_id).await,
        GetPushers => push::get_pushers(app, req),
        SetPusher => push::set_pusher(app, req).await,
        GetNotifications => push::get_notifications(app, req),
        SearchUserDirectory => user_directory::search_user_directory(app, req),
        Search => search::search(app, req),
        ReportEvent { room_id, event_id } => {
            reporting::report_event(app, req, &room_id, &event_id).await
        }
        ReportRoom { room_id } => reporting::report_room(app, req, &room_id).await,
        ReportUser { user_id } => reporting::report_user(app, req, &user_id).await,
        GetTurnServer => voip::get_turn_server(app, req),
        GetRtcTransports => voip::get_rtc_transports(app, req),
        GetThirdpartyProtocols => third_party::thirdparty_protocols(req),
        ThirdpartyUnknown => third_party::thirdparty_unknown(req),
        Whois { user_id } => admin::whois(app, req, &user_id),
        TimestampToEvent { room_id } => history::timestamp_to_event(app, req, &room_id),
        UploadKeys => keys::upload_keys(app, req).await,
        QueryKeys => keys::query_keys(app, req),
        ClaimKeys => keys::claim_keys(app, req).await,
        GetKeyChanges => keys::key_changes(app, req),
        UploadCrossSigningKeys => keys::upload_cross_signing_keys(app, req).await,
        UploadSignatures => keys::upload_signatures(app, req).await,
        SendToDevice { event_type, txn_id } => {
            to_device::send_to_device(app, req, &event_type, &txn_id).await
        }
        CreateBackupVersion => backup::create_version(app, req).await,
        GetBackupVersion { version } => backup::get_version(app, req, version.as_deref()),
        UpdateBackupVersion { version } => backup::update_version(app, req, &version).await,
        DeleteBackupVersion { version } => backup::delete_version(app, req, &version).await,
        BackupKeys { room, session, method } => {
            let scope = backup::Scope { room, session };
            match method {
                KeysMethod::Get => backup::get_keys(app, req, scope),
                KeysMethod::Put => backup::put_keys(app, req, scope).await,
                KeysMethod::Delete => backup::delete_keys(app, req, scope).await,
            }
        }
    };
    reply.map(Outcome::Reply)
}
