//! Rule 4 of the authorisation rules: `m.room.member` events (joins,
//! invites incl. third-party invites, leaves, bans, knocks).

use serde_json::Value;

use super::{AuthEvent, AuthResult, Room, Rule};
use crate::membership::Membership;
use crate::room::power_levels::PowerLevel;

/// Rule 4: `m.room.member`.
pub(super) fn check_member(room: &Room<'_, '_>, event: &AuthEvent) -> AuthResult {
    // 4.1
    let (Some(target), Some(membership)) = (&event.state_key, event.content.get("membership"))
    else {
        return room.fail(
            Rule::MemberMissingFields,
            "a member event needs a state_key and content.membership",
        );
    };
    let sender = event.sender.as_str();
    let target = target.as_str();
    let pl = &room.power_levels;
    // 4.2 (signature of the authorising server) is checked with signatures;
    // see `servers_that_must_sign`.
    match membership.as_str().and_then(Membership::parse) {
        Some(Membership::Join) => {
            // 4.3.1: the creator's own first join, straight after the create
            // event, comes before any power levels or join rules exist.
            if event.prev_events.len() == 1
                && event.prev_events[0] == room.create.event_id
                && room.first_creator() == Some(target)
            {
                return Ok(());
            }
            // 4.3.2
            if sender != target {
                return room.fail(Rule::JoinSenderNotTarget, "users may only join themselves");
            }
            let current = room.membership(sender)?;
            // 4.3.3
            if current == Membership::Ban {
                return room.fail(Rule::JoinSenderBanned, "the sender is banned from the room");
            }
            let join_rule = room.join_rule()?;
            match join_rule {
                // 4.3.4: falls through to 4.3.7 when not invited.
                Some("invite" | "knock")
                    if matches!(current, Membership::Invite | Membership::Join) =>
                {
                    Ok(())
                }
                // 4.3.5 (v10 added knock_restricted)
                Some("restricted" | "knock_restricted") => {
                    if matches!(current, Membership::Invite | Membership::Join) {
                        return Ok(());
                    }
                    let Some(authoriser) = event.content_str("join_authorised_via_users_server")
                    else {
                        return room.fail(
                            Rule::JoinRestrictedUnauthorised,
                            "joining a restricted room needs an invite or join_authorised_via_users_server",
                        );
                    };
                    if room.membership(authoriser)? != Membership::Join
                        || !pl.can_invite(authoriser)
                    {
                        return room.fail(
                            Rule::JoinRestrictedUnauthorised,
                            format!("{authoriser} is not a joined member who may invite"),
                        );
                    }
                    Ok(())
                }
                // 4.3.6
                Some("public") => Ok(()),
                // 4.3.7
                _ => room.fail(
                    Rule::JoinRuleForbids,
                    format!(
                        "join rule {} does not let the sender join",
                        join_rule.unwrap_or("(none)")
                    ),
                ),
            }
        }
        Some(Membership::Invite) => {
            let target_membership = room.membership(target)?;
            // 4.4.1
            if let Some(invite) = event.content.get("third_party_invite") {
                return check_third_party_invite(room, event, target, target_membership, invite);
            }
            // 4.4.2
            if room.membership(sender)? != Membership::Join {
                return room.fail(Rule::InviteSenderNotJoined, "only joined members may invite");
            }
            // 4.4.3
            if matches!(target_membership, Membership::Join | Membership::Ban) {
                return room.fail(
                    Rule::InviteTargetJoinedOrBanned,
                    format!("the invited user's membership is {target_membership}"),
                );
            }
            // 4.4.4, 4.4.5
            if pl.can_invite(sender) {
                return Ok(());
            }
            room.fail(
                Rule::InviteInsufficientPower,
                format!(
                    "inviting needs power level {}, the sender has {}",
                    pl.invite(),
                    pl.user_level(sender)
                ),
            )
        }
        Some(Membership::Leave) => {
            let target_membership = room.membership(target)?;
            // 4.5.1: leaving, rejecting an invite or withdrawing a knock.
            if sender == target {
                if matches!(
                    target_membership,
                    Membership::Invite | Membership::Join | Membership::Knock
                ) {
                    return Ok(());
                }
                return room.fail(
                    Rule::LeaveSelfNotMember,
                    format!("cannot leave with membership {target_membership}"),
                );
            }
            // 4.5.2
            if room.membership(sender)? != Membership::Join {
                return room
                    .fail(Rule::LeaveSenderNotJoined, "only joined members may kick or unban");
            }
            let sender_level = pl.user_level(sender);
            // 4.5.3
            if target_membership == Membership::Ban && sender_level < PowerLevel::Int(pl.ban()) {
                return room.fail(
                    Rule::UnbanInsufficientPower,
                    format!(
                        "unbanning needs power level {}, the sender has {sender_level}",
                        pl.ban()
                    ),
                );
            }
            // 4.5.4, 4.5.5
            if pl.can_kick(sender, target) {
                return Ok(());
            }
            room.fail(
                Rule::KickInsufficientPower,
                format!(
                    "kicking needs power level {} and a level above the target's {}, the sender has {sender_level}",
                    pl.kick(),
                    pl.user_level(target)
                ),
            )
        }
        Some(Membership::Ban) => {
            // 4.6.1
            if room.membership(sender)? != Membership::Join {
                return room.fail(Rule::BanSenderNotJoined, "only joined members may ban");
            }
            // 4.6.2, 4.6.3
            if pl.can_ban(sender, target) {
                return Ok(());
            }
            room.fail(
                Rule::BanInsufficientPower,
                format!(
                    "banning needs power level {} and a level above the target's {}, the sender has {}",
                    pl.ban(),
                    pl.user_level(target),
                    pl.user_level(sender)
                ),
            )
        }
        Some(Membership::Knock) => {
            // 4.7.1 (v10 added knock_restricted)
            let join_rule = room.join_rule()?;
            if !matches!(join_rule, Some("knock" | "knock_restricted")) {
                return room.fail(
                    Rule::KnockJoinRule,
                    format!("join rule {} does not allow knocking", join_rule.unwrap_or("(none)")),
                );
            }
            // 4.7.2
            if sender != target {
                return room
                    .fail(Rule::KnockSenderNotTarget, "users may only knock for themselves");
            }
            // 4.7.3, 4.7.4
            let current = room.membership(sender)?;
            if matches!(current, Membership::Ban | Membership::Invite | Membership::Join) {
                return room.fail(
                    Rule::KnockAlreadyMember,
                    format!("cannot knock with membership {current}"),
                );
            }
            Ok(())
        }
        // 4.8
        None => room.fail(Rule::MembershipUnknown, format!("unknown membership {membership}")),
    }
}

/// Rule 4.4.1: an invite that completes a third-party (e.g. email) invite.
///
/// Hearth checks the structure (4.4.1.1–4.4.1.6) but does not yet verify the
/// identity server's signatures in `signed` against the public keys of the
/// `m.room.third_party_invite` event (4.4.1.7), so every such invite ends in
/// 4.4.1.8 with a "not supported" reason. Rejecting is the safe side: an
/// unverified `signed` block would let anyone claim any invite.
fn check_third_party_invite(
    room: &Room<'_, '_>,
    event: &AuthEvent,
    target: &str,
    target_membership: Membership,
    invite: &Value,
) -> AuthResult {
    // 4.4.1.1
    if target_membership == Membership::Ban {
        return room.fail(Rule::ThirdPartyInviteTargetBanned, "the invited user is banned");
    }
    // 4.4.1.2
    let Some(signed) = invite.get("signed") else {
        return room
            .fail(Rule::ThirdPartyInviteMissingSigned, "third_party_invite has no signed block");
    };
    // 4.4.1.3
    let (Some(mxid), Some(token)) =
        (signed.get("mxid").and_then(Value::as_str), signed.get("token").and_then(Value::as_str))
    else {
        return room.fail(
            Rule::ThirdPartyInviteSignedIncomplete,
            "third_party_invite.signed needs mxid and token",
        );
    };
    // 4.4.1.4
    if mxid != target {
        return room.fail(
            Rule::ThirdPartyInviteMxidMismatch,
            "third_party_invite.signed.mxid is not the invited user",
        );
    }
    // 4.4.1.5
    let Some(placeholder) = room.lookup("m.room.third_party_invite", token)? else {
        return room.fail(
            Rule::ThirdPartyInviteNoMatchingEvent,
            "no m.room.third_party_invite matches the token",
        );
    };
    // 4.4.1.6
    if placeholder.sender != event.sender {
        return room.fail(
            Rule::ThirdPartyInviteSenderMismatch,
            "the sender did not send the m.room.third_party_invite",
        );
    }
    // 4.4.1.7, 4.4.1.8
    room.fail(
        Rule::ThirdPartyInviteUnverified,
        "verifying third-party invite signatures is not supported",
    )
}
