//! The command-line side of the admin socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::Value;

/// Why a request to the running server did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// No server listens on the data directory's socket.
    NotRunning,
    /// The connection broke or the answer was not JSON.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning => f.write_str("no server is running on this data directory"),
            ClientError::Failed(e) => write!(f, "talking to the running server failed: {e}"),
        }
    }
}

/// Sends one request and waits for its answer (a backup may take minutes:
/// there is no timeout).
pub fn request(data_dir: &Path, req: &Value) -> Result<Value, ClientError> {
    let path = super::socket_path(data_dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning);
        }
        Err(e) => return Err(ClientError::Failed(format!("{}: {e}", path.display()))),
    };
    let mut line = req.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(|e| ClientError::Failed(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| ClientError::Failed(e.to_string()))?;
    serde_json::from_str(&answer)
        .map_err(|e| ClientError::Failed(format!("bad answer {answer:?}: {e}")))
}
