//! The one error type every handler returns: a Matrix `{errcode, error}`
//! with its HTTP status.
//!
//! spec: client-server-api/#standard-error-response. `ErrorKind` variants are
//! the errcodes in CamelCase, kept sorted; `errcode()` and `status()` are the
//! only places that pick a string or a status. Lower layers convert into this
//! type with `From`; storage and I/O failures become `M_UNKNOWN` 500 with a
//! generic message and the details go to the log.

use std::fmt;

use serde_json::{Map, Value};

/// The spec's error codes that Hearth answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadJson,
    BadState,
    CannotOverwriteMedia,
    DuplicateAnnotation,
    Exclusive,
    Forbidden,
    GuestAccessForbidden,
    IncompatibleRoomVersion,
    InvalidParam,
    InvalidRoomState,
    InvalidSignature,
    InvalidUsername,
    LimitExceeded,
    MissingParam,
    MissingToken,
    NotFound,
    NotJson,
    NotYetUploaded,
    ResourceLimitExceeded,
    RoomInUse,
    ThreepidDenied,
    ThreepidMediumNotSupported,
    ThreepidNotFound,
    TooLarge,
    Unauthorized,
    Unknown,
    UnknownPos,
    UnknownToken,
    /// 404: no such endpoint.
    Unrecognized,
    /// 405: the endpoint exists but not with this method. Same errcode as
    /// `Unrecognized`; a separate kind so that the status stays exhaustive.
    UnrecognizedMethod,
    UnsupportedRoomVersion,
    UserDeactivated,
    UserInUse,
    UserLocked,
    UserSuspended,
    WrongRoomKeysVersion,
}

impl ErrorKind {
    pub fn errcode(self) -> &'static str {
        match self {
            ErrorKind::BadJson => "M_BAD_JSON",
            ErrorKind::BadState => "M_BAD_STATE",
            ErrorKind::CannotOverwriteMedia => "M_CANNOT_OVERWRITE_MEDIA",
            ErrorKind::DuplicateAnnotation => "M_DUPLICATE_ANNOTATION",
            ErrorKind::Exclusive => "M_EXCLUSIVE",
            ErrorKind::Forbidden => "M_FORBIDDEN",
            ErrorKind::GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            ErrorKind::IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            ErrorKind::InvalidParam => "M_INVALID_PARAM",
            ErrorKind::InvalidRoomState => "M_INVALID_ROOM_STATE",
            ErrorKind::InvalidSignature => "M_INVALID_SIGNATURE",
            ErrorKind::InvalidUsername => "M_INVALID_USERNAME",
            ErrorKind::LimitExceeded => "M_LIMIT_EXCEEDED",
            ErrorKind::MissingParam => "M_MISSING_PARAM",
            ErrorKind::MissingToken => "M_MISSING_TOKEN",
            ErrorKind::NotFound => "M_NOT_FOUND",
            ErrorKind::NotJson => "M_NOT_JSON",
            ErrorKind::NotYetUploaded => "M_NOT_YET_UPLOADED",
            ErrorKind::ResourceLimitExceeded => "M_RESOURCE_LIMIT_EXCEEDED",
            ErrorKind::RoomInUse => "M_ROOM_IN_USE",
            ErrorKind::ThreepidDenied => "M_THREEPID_DENIED",
            ErrorKind::ThreepidMediumNotSupported => "M_THREEPID_MEDIUM_NOT_SUPPORTED",
            ErrorKind::ThreepidNotFound => "M_THREEPID_NOT_FOUND",
            ErrorKind::TooLarge => "M_TOO_LARGE",
            ErrorKind::Unauthorized => "M_UNAUTHORIZED",
            ErrorKind::Unknown => "M_UNKNOWN",
            ErrorKind::UnknownPos => "M_UNKNOWN_POS",
            ErrorKind::UnknownToken => "M_UNKNOWN_TOKEN",
            ErrorKind::Unrecognized | ErrorKind::UnrecognizedMethod => "M_UNRECOGNIZED",
            ErrorKind::UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            ErrorKind::UserDeactivated => "M_USER_DEACTIVATED",
            ErrorKind::UserInUse => "M_USER_IN_USE",
            ErrorKind::UserLocked => "M_USER_LOCKED",
            ErrorKind::UserSuspended => "M_USER_SUSPENDED",
            ErrorKind::WrongRoomKeysVersion => "M_WRONG_ROOM_KEYS_VERSION",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadJson
            | ErrorKind::BadState
            | ErrorKind::DuplicateAnnotation
            | ErrorKind::IncompatibleRoomVersion
            | ErrorKind::InvalidParam
            | ErrorKind::InvalidRoomState
            | ErrorKind::InvalidSignature
            | ErrorKind::InvalidUsername
            | ErrorKind::MissingParam
            | ErrorKind::NotJson
            | ErrorKind::RoomInUse
            | ErrorKind::ThreepidMediumNotSupported
            | ErrorKind::UnsupportedRoomVersion
            | ErrorKind::UnknownPos
            | ErrorKind::UserInUse => 400,
            ErrorKind::MissingToken
            | ErrorKind::UnknownToken
            | ErrorKind::Unauthorized
            | ErrorKind::UserLocked => 401,
            ErrorKind::Exclusive
            | ErrorKind::Forbidden
            | ErrorKind::GuestAccessForbidden
            | ErrorKind::ThreepidDenied
            | ErrorKind::UserDeactivated
            | ErrorKind::UserSuspended
            | ErrorKind::WrongRoomKeysVersion => 403,
            ErrorKind::NotFound | ErrorKind::ThreepidNotFound | ErrorKind::Unrecognized => 404,
            ErrorKind::UnrecognizedMethod => 405,
            ErrorKind::CannotOverwriteMedia => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::LimitExceeded => 429,
            ErrorKind::Unknown | ErrorKind::ResourceLimitExceeded => 500,
            ErrorKind::NotYetUploaded => 504,
        }
    }
}

/// A Matrix error response. `extra` carries the fields some errcodes add
/// (`soft_logout`, `retry_after_ms`, the UIA `flows`/`session`, …).
#[derive(Clone, Debug)]
pub struct MatrixError {
    pub kind: ErrorKind,
    pub message: String,
    /// Overrides `kind.status()` where the spec puts an errcode under another
    /// status (UIA answers 401 with `M_FORBIDDEN`).
    pub status: Option<u16>,
    pub extra: Map<String, Value>,
}

impl MatrixError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> MatrixError {
        MatrixError { kind, message: message.into(), status: None, extra: Map::new() }
    }

    pub fn with_extra(mut self, key: &str, value: Value) -> MatrixError {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn with_status(mut self, status: u16) -> MatrixError {
        self.status = Some(status);
        self
    }

    pub fn bad_json(message: impl Into<String>) -> MatrixError {
        MatrixError::new(ErrorKind::BadJson, message)
    }

    pub fn invalid_param(message: impl Into<String>) -> MatrixError {
        MatrixError::new(ErrorKind::InvalidParam, message)
    }

    pub fn missing_param(message: impl Into<String>) -> MatrixError {
        MatrixError::new(ErrorKind::MissingParam, message)
    }

    pub fn forbidden(message: impl Into<String>) -> MatrixError {
        MatrixError::new(ErrorKind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> MatrixError {
        MatrixError::new(ErrorKind::NotFound, message)
    }

    /// `M_LIMIT_EXCEEDED` with the deprecated `retry_after_ms` field; the
    /// HTTP layer adds the `Retry-After` header from it.
    pub fn limit_exceeded(retry_after_ms: u64) -> MatrixError {
        MatrixError::new(ErrorKind::LimitExceeded, "Too many requests; try again later")
            .with_extra("retry_after_ms", Value::from(retry_after_ms))
    }

    /// An internal failure: the details are logged here and never sent.
    pub fn internal(context: &str, detail: impl fmt::Display) -> MatrixError {
        tracing::error!("{context}: {detail}");
        MatrixError::new(ErrorKind::Unknown, "Internal server error")
    }

    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.kind.status())
    }

    /// `M_RESOURCE_LIMIT_EXCEEDED` MUST carry `admin_contact` (spec:
    /// client-server-api/#common-error-codes): adds the configured one, or,
    /// with none configured, answers `M_UNKNOWN` with the same message.
    pub fn with_admin_contact(self, contact: Option<&str>) -> MatrixError {
        if self.kind != ErrorKind::ResourceLimitExceeded || self.extra.contains_key("admin_contact")
        {
            return self;
        }
        match contact {
            Some(c) => self.with_extra("admin_contact", Value::from(c)),
            None => MatrixError { kind: ErrorKind::Unknown, ..self },
        }
    }

    /// The JSON body: `errcode`, `error` and the extra fields.
    pub fn body(&self) -> Value {
        let mut body = self.extra.clone();
        body.insert("errcode".into(), Value::from(self.kind.errcode()));
        body.insert("error".into(), Value::from(self.message.clone()));
        Value::Object(body)
    }
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.errcode(), self.message)
    }
}

impl std::error::Error for MatrixError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrecognized_is_404_and_wrong_method_is_405_with_the_same_errcode() {
        assert_eq!(ErrorKind::Unrecognized.status(), 404);
        assert_eq!(ErrorKind::UnrecognizedMethod.status(), 405);
        assert_eq!(ErrorKind::Unrecognized.errcode(), ErrorKind::UnrecognizedMethod.errcode());
    }

    #[test]
    fn body_carries_errcode_error_and_extra_fields() {
        let e = MatrixError::limit_exceeded(1500);
        let body = e.body();
        assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
        assert_eq!(body["retry_after_ms"], 1500);
        assert_eq!(e.status(), 429);
    }

    #[test]
    fn resource_limit_carries_the_admin_contact_or_becomes_unknown() {
        let full = || MatrixError::new(ErrorKind::ResourceLimitExceeded, "disk full");
        let e = full().with_admin_contact(Some("mailto:admin@example.org"));
        assert_eq!(e.body()["errcode"], "M_RESOURCE_LIMIT_EXCEEDED");
        assert_eq!(e.body()["admin_contact"], "mailto:admin@example.org");
        let e = full().with_admin_contact(None);
        assert_eq!(e.body()["errcode"], "M_UNKNOWN");
        assert_eq!(e.status(), 500);
        assert_eq!(e.body()["error"], "disk full");
        let other = MatrixError::forbidden("no").with_admin_contact(None);
        assert_eq!(other.body()["errcode"], "M_FORBIDDEN");
    }

    #[test]
    fn status_override_keeps_the_errcode() {
        let e = MatrixError::forbidden("Invalid password").with_status(401);
        assert_eq!(e.status(), 401);
        assert_eq!(e.body()["errcode"], "M_FORBIDDEN");
    }
}
