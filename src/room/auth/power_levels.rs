//! Rule 9 (v12: rule 10) of the authorisation rules: `m.room.power_levels`
//! events, compared key by key with the current power levels.

use super::{AuthEvent, AuthResult, Room, Rule};
use crate::room::power_levels::{
    self, INTEGER_KEYS, INTEGER_MAP_KEYS, PowerLevel, PowerLevelsError,
};

/// Rule 9: `m.room.power_levels`. `sender_level` is the sender's level in the
/// current state, as every comparison in this rule uses.
pub(super) fn check_power_levels(
    room: &Room<'_, '_>,
    event: &AuthEvent,
    sender_level: PowerLevel,
) -> AuthResult {
    let new = &event.content;
    // 9.1–9.3, v12 10.4.
    if let Err(err) = power_levels::validate_content(room.power_levels.creators(), new) {
        let rule = match err {
            PowerLevelsError::NotInteger { .. } => Rule::PowerLevelsNotInteger,
            PowerLevelsError::NotIntegerMap { .. } => Rule::PowerLevelsNotIntegerMap,
            PowerLevelsError::InvalidUsers { .. } => Rule::PowerLevelsInvalidUsers,
            PowerLevelsError::CreatorInUsers { .. } => Rule::PowerLevelsCreatorInUsers,
        };
        return room.fail(rule, err.to_string());
    }
    // 9.4
    let Some(current) = room.lookup("m.room.power_levels", "")? else {
        return Ok(());
    };
    let current = &current.content;
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;

    // 9.5: an added, changed or removed key compares the raw values, not the
    // defaults: removing `ban: 50` is a change even though the default is 50.
    for key in INTEGER_KEYS {
        let old = power_levels::explicit_level(current, key);
        let new = power_levels::explicit_level(new, key);
        if old == new {
            continue;
        }
        if let Some(old) = old
            && above_sender(old)
        {
            return room.fail(
                Rule::PowerLevelsCurrentAboveSender,
                format!("cannot change `{key}` from {old}, above the sender's {sender_level}"),
            );
        }
        if let Some(new) = new
            && above_sender(new)
        {
            return room.fail(
                Rule::PowerLevelsNewAboveSender,
                format!("cannot set `{key}` to {new}, above the sender's {sender_level}"),
            );
        }
    }

    let maps: Vec<_> = INTEGER_MAP_KEYS
        .iter()
        .map(|key| {
            (*key, power_levels::integer_map(current, key), power_levels::integer_map(new, key))
        })
        .collect();
    // 9.6
    for (key, old_map, new_map) in &maps {
        for (name, old) in old_map {
            if new_map.get(name) != Some(old) && above_sender(*old) {
                return room.fail(
                    Rule::PowerLevelsMapCurrentAboveSender,
                    format!(
                        "cannot change `{key}.{name}` from {old}, above the sender's {sender_level}"
                    ),
                );
            }
        }
    }
    // 9.7
    for (key, old_map, new_map) in &maps {
        for (name, new) in new_map {
            if old_map.get(name) != Some(new) && above_sender(*new) {
                return room.fail(
                    Rule::PowerLevelsMapNewAboveSender,
                    format!(
                        "cannot set `{key}.{name}` to {new}, above the sender's {sender_level}"
                    ),
                );
            }
        }
    }

    let old_users = power_levels::integer_map(current, "users");
    let new_users = power_levels::integer_map(new, "users");
    // 9.8: users may lower themselves, but not peers or superiors.
    for (user_id, old) in &old_users {
        if *user_id != event.sender
            && new_users.get(user_id) != Some(old)
            && PowerLevel::Int(*old) >= sender_level
        {
            return room.fail(
                Rule::PowerLevelsUserNotBelowSender,
                format!("cannot change the level of {user_id} ({old}), not below the sender's {sender_level}"),
            );
        }
    }
    // 9.9
    for (user_id, new) in &new_users {
        if old_users.get(user_id) != Some(new) && above_sender(*new) {
            return room.fail(
                Rule::PowerLevelsUserNewAboveSender,
                format!("cannot give {user_id} level {new}, above the sender's {sender_level}"),
            );
        }
    }
    // 9.10
    Ok(())
}
