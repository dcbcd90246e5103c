//! Media files: content-addressed by blake3 under `<data_dir>/media/`,
//! written by streaming to a temporary file while hashing, then renamed to
//! `media/ab/cdef…` (so a crash never leaves a partial file under a hash
//! name, and identical uploads are stored once). Served through memory maps,
//! never read whole into a `Vec`.
//!
//! Also owns thumbnailing (`thumbnail`), which runs off the event loop with
//! bounded decoding, and the writes that record an upload ([`uploads`]).

mod body;
pub mod preview;
pub mod thumbnail;
pub mod uploads;

pub use body::{Mapped, MappedBody};

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// Something that yields an upload's bytes chunk by chunk (the HTTP layer
/// implements it for a request body; tests for a list of chunks).
pub trait ChunkSource {
    fn next_chunk(&mut self) -> impl Future<Output = Option<io::Result<Bytes>>>;
}

/// Where media files live, and the operations on them.
#[derive(Clone, Debug)]
pub struct MediaFiles {
    root: PathBuf,
}

/// A stored upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// Hex blake3 of the content: its file name.
    pub hash: String,
    pub size: u64,
}

#[derive(Debug)]
pub enum IngestError {
    /// More than the limit was sent; nothing was kept.
    TooLarge,
    /// The client's body broke off or the disk failed.
    Io(io::Error),
}

impl From<io::Error> for IngestError {
    fn from(e: io::Error) -> IngestError {
        IngestError::Io(e)
    }
}

impl MediaFiles {
    /// Prepares `<data_dir>/media` and clears temporary files a crash left.
    pub fn open(data_dir: &Path) -> io::Result<MediaFiles> {
        let root = data_dir.join("media");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(MediaFiles { root })
    }

    pub fn path_of(&self, hash: &str) -> Option<PathBuf> {
        // Only our own hex names: nothing from a request reaches the path.
        if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.root.join(&hash[..2]).join(&hash[2..]))
    }

    fn temp_path(&self) -> io::Result<PathBuf> {
        let mut b = [0u8; 12];
        getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(self.root.join("tmp").join(name))
    }

    /// Streams chunks from `next` into a temporary file, hashing as it goes,
    /// refuses more than `limit` bytes, fsyncs, and renames the file to its
    /// hash (dropping it if that content is already stored).
    pub async fn ingest(
        &self,
        limit: u64,
        source: &mut impl ChunkSource,
    ) -> Result<Ingested, IngestError> {
        let tmp = self.temp_path()?;
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            while let Some(chunk) = source.next_chunk().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(IngestError::TooLarge);
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            Ok::<_, IngestError>((hasher.finalize().to_hex().to_string(), size))
        }
        .await;
        let (hash, size) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        self.commit_file(&tmp, &hash).await?;
        Ok(Ingested { hash, size })
    }

    /// Stores bytes made by the server (thumbnails).
    pub async fn store_bytes(&self, data: Vec<u8>) -> io::Result<Ingested> {
        let tmp = self.temp_path()?;
        let hash = blake3::hash(&data).to_hex().to_string();
        let size = data.len() as u64;
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&data).await?;
        file.sync_all().await?;
        drop(file);
        self.commit_file(&tmp, &hash).await?;
        Ok(Ingested { hash, size })
    }

    async fn commit_file(&self, tmp: &Path, hash: &str) -> io::Result<()> {
        let target = self.path_of(hash).ok_or_else(|| io::Error::other("bad hash"))?;
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir).await?;
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            // Identical content is already stored: keep one copy.
            tokio::fs::remove_file(tmp).await?;
            return Ok(());
        }
        tokio::fs::rename(tmp, &target).await?;
        // The rename itself must survive a power cut before we acknowledge.
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok(())
    }

    /// The file's bytes through a read-only memory map (zero copies; pages
    /// are read from disk only as the response is written).
    pub fn map(&self, hash: &str) -> io::Result<Bytes> {
        let path = self.path_of(hash).ok_or_else(|| io::Error::other("bad hash"))?;
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the file is never modified after its rename into place
        // (content-addressed, write-once) and only deleted by purge, which a
        // running download survives on Linux (the mapping keeps the inode).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }

    /// The file mapped for serving in chunks (see [`MappedBody`]).
    pub fn map_file(&self, hash: &str) -> io::Result<Mapped> {
        let path = self.path_of(hash).ok_or_else(|| io::Error::other("bad hash"))?;
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Mapped::new(None));
        }
        // SAFETY: as in `map`.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped::new(Some(map)))
    }

    /// Deletes a file no record references any more.
    pub fn remove(&self, hash: &str) -> io::Result<()> {
        match self.path_of(hash) {
            Some(p) => match std::fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Bytes stored under `media/` (for `hearth media usage` and the bench).
    pub fn disk_usage(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root)
    }
}

/// Is `media_id` made only of the characters the spec allows
/// (`A-Za-z0-9_-`)? Anything else is refused before it reaches a lookup.
pub fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Content types that may be served `inline` (spec: "Serving inline content").
pub fn inline_safe(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        base.as_str(),
        "text/css"
            | "text/plain"
            | "text/csv"
            | "application/json"
            | "application/ld+json"
            | "image/jpeg"
            | "image/gif"
            | "image/png"
            | "image/apng"
            | "image/webp"
            | "image/avif"
            | "video/mp4"
            | "video/webm"
            | "video/ogg"
            | "video/quicktime"
            | "audio/mp4"
            | "audio/webm"
            | "audio/aac"
            | "audio/mpeg"
            | "audio/ogg"
            | "audio/wave"
            | "audio/wav"
            | "audio/x-wav"
            | "audio/x-pn-wav"
            | "audio/flac"
            | "audio/x-flac"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_allow_only_the_spec_characters() {
        assert!(valid_media_id("aBc_09-x"));
        for bad in ["", "../etc", "a/b", "a.b", "a%2e", "é"] {
            assert!(!valid_media_id(bad), "{bad}");
        }
    }

    #[test]
    fn only_safe_types_are_inline() {
        assert!(inline_safe("image/png"));
        assert!(inline_safe("text/plain; charset=utf-8"));
        assert!(!inline_safe("text/html"));
        assert!(!inline_safe("image/svg+xml"));
        assert!(!inline_safe("application/octet-stream"));
    }

    #[test]
    fn paths_come_only_from_hex_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = MediaFiles::open(dir.path()).expect("open");
        assert!(m.path_of("../../etc/passwd").is_none());
        let h = "ab".repeat(32);
        let p = m.path_of(&h).expect("path");
        assert!(p.ends_with(format!("ab/{}", &h[2..])));
    }

    #[test]
    fn identical_content_is_stored_once_and_maps_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = MediaFiles::open(dir.path()).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let a = m.store_bytes(b"hello".to_vec()).await.expect("store");
            let b = m.store_bytes(b"hello".to_vec()).await.expect("store");
            assert_eq!(a, b);
            assert_eq!(&m.map(&a.hash).expect("map")[..], b"hello");
            struct Chunks(std::vec::IntoIter<Bytes>);
            impl ChunkSource for Chunks {
                async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
                    self.0.next().map(Ok)
                }
            }
            let mut src = Chunks(vec![Bytes::from_static(b"0123456789"); 3].into_iter());
            let r = m.ingest(15, &mut src).await;
            assert!(matches!(r, Err(IngestError::TooLarge)));
            let leftovers = std::fs::read_dir(dir.path().join("media/tmp")).expect("tmp").count();
            assert_eq!(leftovers, 0, "a refused upload leaves no temporary file");
        });
    }
}
