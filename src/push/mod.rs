//! Push rules: the spec's server-default rules, a user's ruleset with the
//! operations behind the `/pushrules` endpoints, and the evaluation that
//! decides whether (and how) an event notifies a user.
//!
//! spec: client-server-api/#push-rules, client-server-api/#push-rules-api,
//! appendices/#glob-style-matching, appendices/#dot-separated-property-paths.
//!
//! The rules themselves are pure: they own no storage, send nothing to push
//! gateways and do not read room state; `apply` runs them over new events
//! inside the writer. Callers load the user's stored customisation
//! ([`Ruleset::from_json`]), supply the room facts evaluation needs
//! ([`EvalContext`]) and persist the result of a change ([`Ruleset::to_json`]).
//!
//! # Layout
//!
//! - `rule`: [`RuleKind`], [`PushRule`], [`Action`], [`Condition`] and
//!   [`NewPushRule`] (a checked `PUT` body), with their wire JSON.
//! - `ruleset`: [`Ruleset`] with the spec's get/put/delete/enabled/actions
//!   semantics, its `GET /pushrules/` JSON shape and its compact stored form.
//! - `defaults`: the spec's server-default rules in order ([`default_ruleset`]
//!   in `ruleset` builds a ruleset of them).
//! - `eval`: [`evaluate`], conditions and property paths.
//! - `glob`: glob-style matching, allocation-free for short patterns.
//! - `cache`: [`RulesetCache`], users' parsed rulesets kept by the writer.
//! - [`settings`]: the writes of a user's rules and pushers.
//!
//! # Errors
//!
//! Operations fail with [`PushRuleError`]; `From<PushRuleError> for
//! MatrixError` gives the errcode:
//!
//! | variant | errcode | status |
//! |---|---|---|
//! | `NotFound` | `M_NOT_FOUND` | 404 |
//! | `UnknownKind`, `InvalidRuleId`, `ServerDefaultRule`, `RelativeToServerDefault` | `M_INVALID_PARAM` | 400 |
//! | `BadRule` | `M_BAD_JSON` | 400 |
//! | `BeforeAfterNotFound` | `M_UNKNOWN` | 400 (as in the spec's example) |

pub mod apply;
mod cache;
mod defaults;
mod eval;
pub mod gateway;
mod glob;
mod rule;
mod ruleset;
pub mod settings;

use std::fmt;

pub use cache::{MAX_RULESET_BYTES, MAX_RULESETS, RulesetCache, parse_ruleset};
pub use defaults::MASTER_RULE_ID;
pub use eval::{Actions, DEFAULT_NOTIFICATION_LEVEL, EvalContext, evaluate};
pub use rule::{Action, Condition, NewPushRule, PushRule, RuleKind};
pub use ruleset::{GlobalRules, Ruleset, default_ruleset};

use crate::error::{ErrorKind, MatrixError};

/// Why a push rule operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushRuleError {
    /// No rule of this kind has this `rule_id`.
    NotFound,
    /// The `{kind}` path segment is not one of the five rule kinds.
    UnknownKind(String),
    /// A user-defined rule ID is empty, starts with `.` (reserved for
    /// server-default rules) or contains `/` or `\`.
    InvalidRuleId(String),
    /// Server-default rules can be disabled or given other actions, but not
    /// deleted.
    ServerDefaultRule(String),
    /// `before`/`after` named a server-default rule; the spec only allows
    /// placing rules relative to user-defined ones.
    RelativeToServerDefault(String),
    /// `before`/`after` named no rule of this kind.
    BeforeAfterNotFound(String),
    /// The request body is not a valid rule (missing `actions`, a content
    /// rule without `pattern`, an unknown action, a malformed condition).
    BadRule(String),
}

impl fmt::Display for PushRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushRuleError::NotFound => f.write_str("The push rule was not found."),
            PushRuleError::UnknownKind(kind) => write!(f, "Unknown push rule kind: {kind}"),
            PushRuleError::InvalidRuleId(why) => write!(f, "Invalid push rule ID: {why}"),
            PushRuleError::ServerDefaultRule(id) => {
                write!(f, "Cannot delete the server-default push rule {id}")
            }
            PushRuleError::RelativeToServerDefault(id) => {
                write!(f, "Cannot place a rule relative to the server-default rule {id}")
            }
            PushRuleError::BeforeAfterNotFound(id) => {
                write!(f, "before/after rule not found: {id}")
            }
            PushRuleError::BadRule(why) => write!(f, "Invalid push rule: {why}"),
        }
    }
}

impl std::error::Error for PushRuleError {}

impl From<PushRuleError> for MatrixError {
    fn from(e: PushRuleError) -> MatrixError {
        let message = e.to_string();
        match e {
            PushRuleError::NotFound => MatrixError::not_found(message),
            PushRuleError::UnknownKind(_)
            | PushRuleError::InvalidRuleId(_)
            | PushRuleError::ServerDefaultRule(_)
            | PushRuleError::RelativeToServerDefault(_) => MatrixError::invalid_param(message),
            // The spec's example answers this with M_UNKNOWN under 400, not the
            // 500 that M_UNKNOWN otherwise means here.
            PushRuleError::BeforeAfterNotFound(_) => {
                MatrixError::new(ErrorKind::Unknown, message).with_status(400)
            }
            PushRuleError::BadRule(_) => MatrixError::bad_json(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_spec_errcodes_and_statuses() {
        let cases = [
            (PushRuleError::NotFound, "M_NOT_FOUND", 404),
            (PushRuleError::UnknownKind("x".into()), "M_INVALID_PARAM", 400),
            (PushRuleError::InvalidRuleId(".x".into()), "M_INVALID_PARAM", 400),
            (PushRuleError::ServerDefaultRule(".m.rule.master".into()), "M_INVALID_PARAM", 400),
            (PushRuleError::RelativeToServerDefault(".m.rule.call".into()), "M_INVALID_PARAM", 400),
            (PushRuleError::BeforeAfterNotFound("x".into()), "M_UNKNOWN", 400),
            (PushRuleError::BadRule("no actions".into()), "M_BAD_JSON", 400),
        ];
        for (error, errcode, status) in cases {
            let matrix = MatrixError::from(error);
            assert_eq!(matrix.kind.errcode(), errcode);
            assert_eq!(matrix.status(), status);
        }
    }

    #[test]
    fn before_after_error_message_matches_the_spec_example() {
        let e = PushRuleError::BeforeAfterNotFound("someRuleId".into());
        assert_eq!(e.to_string(), "before/after rule not found: someRuleId");
    }
}
