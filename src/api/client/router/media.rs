//! The content repository's paths.

use super::{Endpoint, Optional, Required, Route, not_found, only};
use crate::error::MatrixError;

/// `/_matrix/client/v1/media/…` (authenticated) and `/_matrix/media/v3/…`
/// (uploads, and the deprecated unauthenticated downloads).
pub(super) fn route_media(
    rest: &[&str],
    get: bool,
    post: bool,
    put: bool,
    legacy: bool,
) -> Result<Route, MatrixError> {
    use Endpoint::*;
    // The deprecated unauthenticated downloads take a token if given.
    let media_auth = if legacy { Optional } else { Required };
    match rest {
        ["config"] => only(get, Required, MediaConfig),
        ["preview_url"] => only(get, Required, PreviewUrl),
        ["upload"] if legacy => only(post, Required, UploadMedia),
        ["upload", server, media_id] if legacy => only(
            put,
            Required,
            UploadMediaTo { server: (*server).to_owned(), media_id: (*media_id).to_owned() },
        ),
        ["download", server, media_id, name @ ..] if name.len() <= 1 => only(
            get,
            media_auth,
            DownloadMedia {
                server: (*server).to_owned(),
                media_id: (*media_id).to_owned(),
                file_name: name.first().map(|n| (*n).to_owned()),
                legacy,
            },
        ),
        ["thumbnail", server, media_id] => only(
            get,
            media_auth,
            ThumbnailMedia {
                server: (*server).to_owned(),
                media_id: (*media_id).to_owned(),
                legacy,
            },
        ),
        _ => Err(not_found()),
    }
}
