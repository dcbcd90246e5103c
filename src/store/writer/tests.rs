use std::io::Write;

use super::*;
use crate::error::MatrixError;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `f` logs on this thread, at every level.
fn logged(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let sink = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().expect("log buffer").clone();
    String::from_utf8(bytes).expect("UTF-8 log")
}

#[test]
fn a_batch_rolled_back_by_a_refusal_is_logged_at_debug_with_the_reason() {
    let refusal = StoreError::refused(MatrixError::forbidden("power level too low"));
    let log = logged(|| log_failed_batch(&refusal, 1));
    assert!(log.contains("DEBUG"), "{log}");
    assert!(log.contains("power level too low"), "{log}");
    assert!(!log.contains("ERROR") && !log.contains("database error"), "{log}");
}

#[test]
fn a_batch_failed_by_storage_is_logged_as_an_error() {
    let log = logged(|| log_failed_batch(&StoreError::Db("page checksum".into()), 2));
    assert!(log.contains("ERROR") && log.contains("page checksum"), "{log}");
}
