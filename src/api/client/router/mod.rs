//! Routing of the client-server API: method + decoded path → a [`Route`]:
//! the typed [`Endpoint`] (one variant per spec operation) and the
//! authentication it needs, both given in the one arm that matches the
//! path, so an operation's routing facts stand together. Split by spec
//! area: `v3`, `rooms`, `media`.
//!
//! Unknown paths are `404 M_UNRECOGNIZED`; a known path with a method it
//! does not take is `405 M_UNRECOGNIZED`.

mod endpoint;
mod media;
mod rooms;
mod v3;

use hyper::Method;

use crate::account::Restriction;
use crate::error::{ErrorKind, MatrixError};
pub use endpoint::{Endpoint, KeysMethod, RulePart};

/// What an endpoint needs from `Authorization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthNeed {
    /// No token (spec: auth "no"); one sent anyway is ignored.
    Public,
    /// Used when present (UIA endpoints such as `/account/password`).
    Optional,
    Required,
}

use AuthNeed::{Optional, Public, Required};

/// A routed request: the operation and what it needs from `Authorization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub auth: AuthNeed,
}

/// The path is known; `ok` says whether the method is one it takes.
fn only(ok: bool, auth: AuthNeed, endpoint: Endpoint) -> Result<Route, MatrixError> {
    if ok { to(auth, endpoint) } else { Err(wrong_method()) }
}

/// The route of a path and method.
fn to(auth: AuthNeed, endpoint: Endpoint) -> Result<Route, MatrixError> {
    Ok(Route { endpoint, auth })
}

/// Which version segments a client path may use for an endpoint family.
fn is_v3(v: &str) -> bool {
    v == "v3" || v == "r0"
}

/// Resolves a request. `segs` are the percent-decoded path segments.
pub fn route(method: &Method, segs: &[&str]) -> Result<Route, MatrixError> {
    use Endpoint::*;
    let m = method;
    let get = *m == Method::GET;
    let post = *m == Method::POST;
    let put = *m == Method::PUT;
    let delete = *m == Method::DELETE;
    // `only(method matches, auth, endpoint)`: the path is known; the
    // method must match. `Public`/`Optional`/`Required`: the token it needs.
    match segs {
        [".well-known", "matrix", "client"] => only(get, Public, GetWellKnownClient),
        [".well-known", "matrix", "support"] => only(get, Public, GetWellKnownSupport),
        ["_matrix", "federation", "v1", "openid", "userinfo"] => {
            only(get, Public, GetOpenIdUserInfo)
        }
        ["_matrix", "client", "versions"] => only(get, Optional, GetVersions),
        ["_matrix", "client", "v1", "register", "m.login.registration_token", "validity"] => {
            only(get, Public, GetRegistrationTokenValidity)
        }
        ["_matrix", "client", "v1", "mutual_rooms"] => only(get, Required, GetMutualRooms),
        ["_matrix", "client", "v1", "admin", kind @ ("lock" | "suspend"), user_id] => {
            let kind = if *kind == "lock" { Restriction::Lock } else { Restriction::Suspend };
            only(
                get || put,
                Required,
                AdminModeration { user_id: (*user_id).to_owned(), kind, set: put },
            )
        }
        ["_matrix", "client", "unstable", "org.matrix.simplified_msc3575", "sync"] => {
            only(post, Required, SlidingSync)
        }
        ["_matrix", "client", "unstable", "org.matrix.msc3814.v1", rest @ ..] => msc3814(m, rest),
        ["_matrix", "client", "unstable", "org.matrix.msc4143", "rtc", "transports"] => {
            only(get, Required, GetRtcTransports)
        }
        ["_matrix", "client", "v1", "room_summary", room]
        | ["_matrix", "client", "unstable", "im.nheko.summary", "summary", room]
        | ["_matrix", "client", "unstable", "im.nheko.summary", "rooms", room, "summary"] => {
            only(get, Optional, GetRoomSummary { room: (*room).to_owned() })
        }
        ["_matrix", "client", "v1", "rooms", room_id, "relations", event_id, rest @ ..]
            if rest.len() <= 2 =>
        {
            only(
                get,
                Required,
                GetRelations {
                    room_id: (*room_id).to_owned(),
                    event_id: (*event_id).to_owned(),
                    rel_type: rest.first().map(|r| (*r).to_owned()),
                    event_type: rest.get(1).map(|t| (*t).to_owned()),
                },
            )
        }
        ["_matrix", "client", "v1", "rooms", room_id, "hierarchy"] => {
            only(get, Required, GetHierarchy { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", "v1", "rooms", room_id, "threads"] => {
            only(get, Required, GetThreads { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", "v1", "media", rest @ ..] => {
            media::route_media(rest, get, post, put, false)
        }
        ["_matrix", "media", "v3" | "r0", rest @ ..] => {
            media::route_media(rest, get, post, put, true)
        }
        ["_matrix", "media", "v1", "create"] => only(post, Required, CreateMedia),
        ["_matrix", "client", "v1", "rooms", room_id, "timestamp_to_event"] => {
            only(get, Required, TimestampToEvent { room_id: (*room_id).to_owned() })
        }
        ["_matrix", "client", v, rest @ ..] if is_v3(v) => {
            v3::route_v3(m, rest, get, post, put, delete)
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> MatrixError {
    MatrixError::new(ErrorKind::Unrecognized, "Unrecognized request")
}

/// MSC3814 dehydrated devices, under `/_matrix/client/unstable/org.matrix.msc3814.v1`.
fn msc3814(m: &Method, rest: &[&str]) -> Result<Route, MatrixError> {
    use Endpoint::*;
    match rest {
        ["dehydrated_device"] => match *m {
            Method::GET => to(Required, GetDehydratedDevice),
            Method::PUT => to(Required, PutDehydratedDevice),
            Method::DELETE => to(Required, DeleteDehydratedDevice),
            _ => Err(wrong_method()),
        },
        ["dehydrated_device", device_id, "events"] if *m == Method::POST => {
            to(Required, GetDehydratedEvents { device_id: (*device_id).to_owned() })
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
        route(&method, &segs).map(|r| r.endpoint)
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

    fn auth(method: Method, path: &str) -> AuthNeed {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        route(&method, &segs).expect("routes").auth
    }

    #[test]
    fn each_route_names_the_authentication_its_method_needs() {
        const V3: &str = "/_matrix/client/v3";
        assert_eq!(auth(Method::GET, "/_matrix/client/versions"), Optional);
        assert_eq!(auth(Method::POST, &format!("{V3}/login")), Public);
        assert_eq!(auth(Method::GET, &format!("{V3}/account/whoami")), Required);
        // One path, several methods: reading is public, writing is not.
        let field = format!("{V3}/profile/@a:x/displayname");
        assert_eq!(auth(Method::GET, &field), Public);
        assert_eq!(auth(Method::PUT, &field), Required);
        assert_eq!(auth(Method::GET, &format!("{V3}/directory/room/%23a:x")), Public);
        assert_eq!(auth(Method::DELETE, &format!("{V3}/directory/room/%23a:x")), Required);
        assert_eq!(auth(Method::GET, &format!("{V3}/publicRooms")), Optional);
        assert_eq!(auth(Method::POST, &format!("{V3}/publicRooms")), Required);
        // Deprecated media downloads take a token when given one.
        assert_eq!(auth(Method::GET, "/_matrix/media/v3/download/x/abc"), Optional);
        assert_eq!(auth(Method::GET, "/_matrix/client/v1/media/download/x/abc"), Required);
        assert_eq!(auth(Method::POST, "/_matrix/media/v3/upload"), Required);
    }

    #[test]
    fn endpoint_names_are_variant_names_whatever_the_fields() {
        let a = Endpoint::GetMembers { room_id: "!a:x".into() };
        let b = Endpoint::GetMembers { room_id: "!b:x".into() };
        assert_eq!(a.name(), "GetMembers");
        assert!(std::ptr::eq(a.name(), b.name()), "one label per variant, not per value");
        assert_eq!(Endpoint::GetVersions.name(), "GetVersions");
    }
}
