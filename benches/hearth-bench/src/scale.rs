//! Workload sizes.
//!
//! `small` is meant to finish in about a minute per server (Synapse on a
//! laptop-class core, bcrypt at its default cost dominates its setup),
//! `default` in a few minutes, `large` is for a machine left alone for a
//! while. Every count here is also an upper bound of a request loop.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Scale {
    pub(crate) name: &'static str,
    /// Requests in flight during setup (register, createRoom, join, history).
    pub(crate) setup_concurrency: usize,
    /// Upper bound on the whole setup; requests not started by then fail.
    pub(crate) setup_deadline: Duration,

    /// Concurrent senders in the send scenario, one user each.
    pub(crate) senders: usize,
    /// Rooms the senders are spread over (sender i sends to room i mod n).
    pub(crate) send_rooms: usize,
    /// Messages sent in the send scenario, all senders together.
    pub(crate) send_messages: usize,
    pub(crate) send_deadline: Duration,
    /// How long after the last send the server's disk writes are still
    /// counted: a server may defer writes (Hearth checkpoints its
    /// write-ahead log into the database up to 30 s later), and those bytes
    /// are part of what a message costs the SD card.
    pub(crate) send_settle: Duration,

    /// Rooms the syncing user is in.
    pub(crate) sync_rooms: usize,
    /// Other members per sync room (lazy loading has something to drop).
    pub(crate) sync_room_members: usize,
    /// Messages of history per sync room.
    pub(crate) sync_history_per_room: usize,
    pub(crate) sync_initial_rounds: usize,
    pub(crate) sync_incremental_rounds: usize,

    /// Send → long-poll return round trips.
    pub(crate) wake_rounds: usize,

    /// Open long-polls, one user each, in the idle and fan-out scenarios.
    pub(crate) polls: usize,
    /// Of those, how many are in the room that gets the fan-out message.
    pub(crate) fanout_targets: usize,
    pub(crate) fanout_rounds: usize,

    /// Messages of history in the room that is back-paginated.
    pub(crate) messages_history: usize,
    /// Pages fetched in total (history walks are repeated up to this).
    pub(crate) messages_pages: usize,
    pub(crate) messages_deadline: Duration,

    /// Size of the file uploaded and downloaded in the media scenario.
    pub(crate) media_bytes: u64,

    /// The fill scenario: users, rooms, messages (sent by
    /// `setup_concurrency` clients at once), then the server's RSS.
    pub(crate) fill_users: usize,
    pub(crate) fill_rooms: usize,
    pub(crate) fill_messages: usize,
    pub(crate) fill_deadline: Duration,
}

impl Scale {
    pub(crate) fn named(name: &str) -> Option<Scale> {
        match name {
            "small" => Some(Scale {
                name: "small",
                setup_concurrency: 8,
                setup_deadline: Duration::from_secs(300),
                senders: 8,
                send_rooms: 4,
                send_messages: 300,
                send_deadline: Duration::from_secs(30),
                send_settle: Duration::from_secs(35),
                sync_rooms: 10,
                sync_room_members: 4,
                sync_history_per_room: 10,
                sync_initial_rounds: 3,
                sync_incremental_rounds: 20,
                wake_rounds: 8,
                polls: 32,
                fanout_targets: 8,
                fanout_rounds: 2,
                messages_history: 150,
                messages_pages: 30,
                messages_deadline: Duration::from_secs(20),
                media_bytes: 20 << 20,
                fill_users: 10,
                fill_rooms: 20,
                fill_messages: 2_000,
                fill_deadline: Duration::from_secs(300),
            }),
            "default" => Some(Scale {
                name: "default",
                setup_concurrency: 16,
                setup_deadline: Duration::from_secs(900),
                senders: 32,
                send_rooms: 8,
                send_messages: 3000,
                send_deadline: Duration::from_secs(120),
                send_settle: Duration::from_secs(35),
                sync_rooms: 50,
                sync_room_members: 8,
                sync_history_per_room: 20,
                sync_initial_rounds: 5,
                sync_incremental_rounds: 50,
                wake_rounds: 20,
                polls: 200,
                fanout_targets: 40,
                fanout_rounds: 3,
                messages_history: 1000,
                messages_pages: 200,
                messages_deadline: Duration::from_secs(60),
                media_bytes: 200 << 20,
                fill_users: 50,
                fill_rooms: 100,
                fill_messages: 20_000,
                fill_deadline: Duration::from_secs(1800),
            }),
            "large" => Some(Scale {
                name: "large",
                setup_concurrency: 32,
                setup_deadline: Duration::from_secs(2400),
                senders: 64,
                send_rooms: 16,
                send_messages: 20000,
                send_deadline: Duration::from_secs(300),
                send_settle: Duration::from_secs(35),
                sync_rooms: 200,
                sync_room_members: 16,
                sync_history_per_room: 30,
                sync_initial_rounds: 5,
                sync_incremental_rounds: 100,
                wake_rounds: 30,
                polls: 1000,
                fanout_targets: 200,
                fanout_rounds: 3,
                messages_history: 5000,
                messages_pages: 1000,
                messages_deadline: Duration::from_secs(120),
                media_bytes: 200 << 20,
                fill_users: 50,
                fill_rooms: 100,
                fill_messages: 20_000,
                fill_deadline: Duration::from_secs(1800),
            }),
            _ => None,
        }
    }
}
