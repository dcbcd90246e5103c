//! Media metadata. The bytes live in files named by their blake3 hash under
//! `media/` (see `crate::media`); this table maps an `mxc://` URI to that
//! hash and what a download needs to serve it. Thumbnails are media of their
//! own, found by `(server, media_id, width, height, method)`.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{MEDIA_TO_RECORD, THUMBNAIL_TO_HASH, USER_TO_MEDIA_BYTES};
use super::{ReadTxn, StoreError, WriteCtx};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MediaRecord {
    /// Hex blake3 of the content; `None` while an async upload is pending.
    pub hash: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size: u64,
    pub uploader: String,
    pub created_ms: u64,
    /// For `POST /media/v1/create` reservations: when the unused ID expires.
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// Last time it was downloaded (for `hearth media purge`).
    #[serde(default)]
    pub last_access_ms: Option<u64>,
}

fn decode(bytes: &[u8]) -> Result<MediaRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("media: {e}")))
}

fn encode(r: &MediaRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(r).map_err(|e| StoreError::Corrupt(e.to_string()))
}

macro_rules! media_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            pub fn media(
                &self,
                server: &str,
                media_id: &str,
            ) -> Result<Option<MediaRecord>, StoreError> {
                let t = self.$txn.open_table(MEDIA_TO_RECORD)?;
                let v = t.get((server, media_id))?;
                v.map(|v| decode(v.value())).transpose()
            }

            /// Bytes of media a user has uploaded (for the quota).
            pub fn media_usage(&self, user: &str) -> Result<u64, StoreError> {
                let t = self.$txn.open_table(USER_TO_MEDIA_BYTES)?;
                let v = t.get(user)?;
                Ok(v.map(|v| v.value()).unwrap_or(0))
            }

            pub fn thumbnail(
                &self,
                server: &str,
                media_id: &str,
                width: u32,
                height: u32,
                method: &str,
            ) -> Result<Option<String>, StoreError> {
                let t = self.$txn.open_table(THUMBNAIL_TO_HASH)?;
                let v = t.get((server, media_id, width, height, method))?;
                Ok(v.map(|v| v.value().to_owned()))
            }
        }
    };
}

media_reads!(ReadTxn, 0);
media_reads!(WriteCtx<'_>, txn);

impl ReadTxn {
    /// Every media record: `(server, media_id, record)`.
    pub fn all_media(&self) -> Result<Vec<(String, String, MediaRecord)>, StoreError> {
        let t = self.0.open_table(MEDIA_TO_RECORD)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let (s, m) = k.value();
            out.push((s.to_owned(), m.to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Usage per uploader.
    pub fn media_usage_all(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let t = self.0.open_table(USER_TO_MEDIA_BYTES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), v.value()));
        }
        Ok(out)
    }

    /// Whether any media record (or thumbnail) still names `hash`.
    pub fn hash_in_use(&self, hash: &str) -> Result<bool, StoreError> {
        let t = self.0.open_table(MEDIA_TO_RECORD)?;
        for row in t.iter()? {
            let (_, v) = row?;
            if decode(v.value())?.hash.as_deref() == Some(hash) {
                return Ok(true);
            }
        }
        let t = self.0.open_table(THUMBNAIL_TO_HASH)?;
        for row in t.iter()? {
            let (_, v) = row?;
            if v.value() == hash {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl WriteCtx<'_> {
    pub fn put_media(
        &mut self,
        server: &str,
        media_id: &str,
        r: &MediaRecord,
    ) -> Result<(), StoreError> {
        self.txn.open_table(MEDIA_TO_RECORD)?.insert((server, media_id), encode(r)?.as_slice())?;
        Ok(())
    }

    /// Removes a media record and its thumbnails; returns the record and the
    /// thumbnail hashes (the caller deletes files no longer referenced).
    pub fn delete_media(
        &mut self,
        server: &str,
        media_id: &str,
    ) -> Result<Option<(MediaRecord, Vec<String>)>, StoreError> {
        let old = {
            let mut t = self.txn.open_table(MEDIA_TO_RECORD)?;
            let v = t.remove((server, media_id))?;
            v.map(|v| decode(v.value())).transpose()?
        };
        let Some(old) = old else { return Ok(None) };
        let mut thumbs = Vec::new();
        {
            let mut t = self.txn.open_table(THUMBNAIL_TO_HASH)?;
            let keys: Vec<(u32, u32, String, String)> = {
                let mut v = Vec::new();
                for row in t.range((server, media_id, 0, 0, "")..)? {
                    let (k, h) = row?;
                    let (s, m, w, hh, method) = k.value();
                    if s != server || m != media_id {
                        break;
                    }
                    v.push((w, hh, method.to_owned(), h.value().to_owned()));
                }
                v
            };
            for (w, h, method, hash) in keys {
                t.remove((server, media_id, w, h, method.as_str()))?;
                thumbs.push(hash);
            }
        }
        self.add_media_usage(&old.uploader, -(old.size as i64))?;
        Ok(Some((old, thumbs)))
    }

    pub fn add_media_usage(&mut self, user: &str, delta: i64) -> Result<(), StoreError> {
        let cur = self.media_usage(user)?;
        let next =
            if delta < 0 { cur.saturating_sub(delta.unsigned_abs()) } else { cur + delta as u64 };
        self.txn.open_table(USER_TO_MEDIA_BYTES)?.insert(user, next)?;
        Ok(())
    }

    pub fn put_thumbnail(
        &mut self,
        server: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(THUMBNAIL_TO_HASH)?
            .insert((server, media_id, width, height, method), hash)?;
        Ok(())
    }
}
