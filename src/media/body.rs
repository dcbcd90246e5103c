//! Serving a mapped media file as a response body, a chunk at a time.
//!
//! Why not hand hyper the whole map as one `Bytes`: every page of a file
//! mapping the socket write touches stays in the process's page tables,
//! and counts in its RSS, until the map is dropped, so a 200 MB download
//! made the server look 200 MB bigger while it ran (and left VmHWM
//! there). Here the body yields `CHUNK`-sized slices of the map and, before
//! each new chunk, drops the pages of the chunks before the previous one
//! from the process with `MADV_DONTNEED`. The page cache keeps them (other
//! readers and a repeated download still hit memory); only our mapping of
//! them goes. If hyper had not written a released range yet, touching it
//! again simply faults the file's pages back in: nothing is ever wrong,
//! at worst a page is mapped twice.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use memmap2::{Mmap, UncheckedAdvice};

/// Bytes handed to hyper per frame. Large enough that the per-frame costs
/// (one `madvise`, one `writev`) vanish, small enough that the few chunks
/// in flight are a negligible part of RSS.
const CHUNK: usize = 256 * 1024;

/// A media file mapped read-only (empty files have no map).
#[derive(Clone)]
pub struct Mapped {
    map: Option<Arc<Mmap>>,
}

impl Mapped {
    pub(super) fn new(map: Option<Mmap>) -> Mapped {
        Mapped { map: map.map(Arc::new) }
    }

    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `range` of the file (clamped to its length) as a chunked body.
    pub fn body(&self, range: Range<usize>) -> MappedBody {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        MappedBody { map: self.map.clone(), pos: start, end, released: start }
    }
}

/// The body of a media download; see the module doc.
pub struct MappedBody {
    map: Option<Arc<Mmap>>,
    /// Next byte to hand out, and the end of the range served.
    pos: usize,
    end: usize,
    /// Bytes before this were released from the process's page tables.
    released: usize,
}

/// A slice of the map that keeps it alive while hyper holds it.
struct Slice {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

impl MappedBody {
    /// Drops everything before the previous chunk from our page tables.
    fn release_behind(&mut self, map: &Mmap) {
        let upto = self.pos.saturating_sub(CHUNK);
        if upto <= self.released {
            return;
        }
        // SAFETY: `map` is a read-only shared file mapping (memmap2's
        // `Mmap::map`). For such a mapping MADV_DONTNEED only removes the
        // page-table entries; a later read of the range repopulates it
        // from the file, which is never modified after its rename into
        // place (content-addressed, write-once). No `&[u8]` into the range
        // observes different bytes, so no borrow is invalidated.
        let _ = unsafe {
            map.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                self.released,
                upto - self.released,
            )
        };
        self.released = upto;
    }
}

impl Body for MappedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let Some(map) = this.map.clone() else { return Poll::Ready(None) };
        if this.pos >= this.end {
            // The map is unmapped when hyper drops the last slice.
            return Poll::Ready(None);
        }
        this.release_behind(&map);
        let next = (this.pos + CHUNK).min(this.end);
        let slice = Slice { map, range: this.pos..next };
        this.pos = next;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(slice)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.end - self.pos) as u64)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn mapped(bytes: &[u8]) -> (tempfile::TempDir, Mapped) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        // SAFETY: the test file is not modified while mapped.
        let map = unsafe { Mmap::map(&file) }.expect("map");
        (dir, Mapped::new(Some(map)))
    }

    fn collect(body: MappedBody) -> (Vec<u8>, usize) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        rt.block_on(async {
            let mut body = body;
            let (mut out, mut frames) = (Vec::new(), 0);
            while let Some(frame) = body.frame().await {
                let data = frame.expect("frame").into_data().expect("data");
                out.extend_from_slice(&data);
                frames += 1;
            }
            (out, frames)
        })
    }

    #[test]
    fn a_large_file_is_served_whole_in_chunks() {
        let content: Vec<u8> = (0..CHUNK * 3 + 1234).map(|i| (i % 251) as u8).collect();
        let (_dir, m) = mapped(&content);
        let body = m.body(0..m.len());
        assert_eq!(body.size_hint().exact(), Some(content.len() as u64));
        let (out, frames) = collect(body);
        assert!(out == content, "served bytes differ from the file");
        assert_eq!(frames, 4);
    }

    #[test]
    fn a_range_is_served_exactly() {
        let content: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| (i % 7) as u8).collect();
        let (_dir, m) = mapped(&content);
        let (out, _) = collect(m.body(5..CHUNK + 100));
        assert!(out == content[5..CHUNK + 100], "served range differs from the file");
        let (out, frames) = collect(m.body(m.len() + 5..m.len() + 10));
        assert!(out.is_empty() && frames == 0);
    }
}
