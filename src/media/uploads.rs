//! The writes that record an upload (spec: modules/content_repo): the
//! media record under `(server, media_id)` and the uploader's usage, which
//! the media quota reads, in one writer operation.

use crate::error::{ErrorKind, MatrixError};
use crate::store::{MediaRecord, StoreError, WriteCtx};

/// Stores the record of a finished upload under a new ID and counts its
/// size against the uploader.
pub fn record_upload(
    ctx: &mut WriteCtx<'_>,
    server: &str,
    media_id: &str,
    record: &MediaRecord,
) -> Result<Result<(), MatrixError>, StoreError> {
    ctx.add_media_usage(&record.uploader, record.size as i64)?;
    ctx.put_media(server, media_id, record)?;
    Ok(Ok(()))
}

/// Completes an asynchronous upload to a reserved ID: media once uploaded
/// is never overwritten.
pub fn complete_upload(
    ctx: &mut WriteCtx<'_>,
    server: &str,
    media_id: &str,
    record: &MediaRecord,
) -> Result<Result<(), MatrixError>, StoreError> {
    // Re-checked in the writer: two uploads racing for one ID.
    if ctx.media(server, media_id)?.is_some_and(|r| r.hash.is_some()) {
        return Ok(Err(MatrixError::new(
            ErrorKind::CannotOverwriteMedia,
            "Media has already been uploaded to this ID",
        )));
    }
    record_upload(ctx, server, media_id, record)
}
