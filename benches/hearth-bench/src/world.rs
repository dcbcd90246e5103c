//! Setup: the users and rooms the scenarios work on.
//!
//! Only what the selected scenarios need is built. Localparts carry a
//! random run id (`hb<id>-…`), so runs against the same server never
//! collide. Each piece (send rooms, sync rooms, …) is either ready or
//! carries the first error that broke it; a scenario whose pieces are
//! broken fails with that error and the others still run.
//!
//! Users, by role:
//! - `driver`: creates the wake, fan-out and messages rooms and sends in them;
//! - `sync`: the user in many rooms whose syncs are measured;
//! - `s<i>`: the concurrent senders;
//! - `c<i>`: the crowd — long-pollers, and the other members of sync rooms.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::args::Settings;
use crate::client::{Error, Http};
use crate::matrix::{self, User};
use crate::pool;
use crate::report::{Better, Recorder};
use crate::stats::Samples;

/// A piece of setup: ready, or why not.
pub(crate) type Piece<T> = Result<T, String>;

/// Everything a scenario needs besides the world.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) http: Http,
    pub(crate) settings: Settings,
    /// Random per run; part of every localpart and marker text.
    pub(crate) run_id: String,
}

impl Ctx {
    pub(crate) fn new(settings: Settings) -> Ctx {
        Ctx { http: Http::new(&settings.base_url), settings, run_id: run_id() }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.settings.pid
    }
}

/// Eight base-36 characters from the clock and pid: unique enough that
/// reruns against one server do not collide, without a rand dependency.
fn run_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finaliser: spreads nearby clock values apart.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8).map(|i| char::from(DIGITS[((x >> (i * 6)) % 36) as usize])).collect()
}

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) driver: Piece<Arc<User>>,
    pub(crate) sync_user: Piece<Arc<User>>,
    pub(crate) senders: Piece<Vec<Arc<User>>>,
    pub(crate) crowd: Piece<Vec<Arc<User>>>,
    pub(crate) send_rooms: Piece<Vec<String>>,
    pub(crate) sync_rooms: Piece<Vec<String>>,
    pub(crate) wake_room: Piece<String>,
    pub(crate) fanout_room: Piece<String>,
    pub(crate) messages_room: Piece<String>,
    /// `next_batch` of one initial sync per crowd member, filled on first
    /// use by the long-poll scenarios.
    pub(crate) crowd_since: Option<Piece<Vec<String>>>,
}

/// The rooms of the setup, by what they serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Send,
    Sync,
    Wake,
    Fanout,
    Messages,
}

const USES: [Use; 5] = [Use::Send, Use::Sync, Use::Wake, Use::Fanout, Use::Messages];

fn not_needed<T>() -> Piece<T> {
    Err("not set up (scenario not selected)".into())
}

fn first<T>(items: Vec<T>) -> Piece<T> {
    items.into_iter().next().ok_or_else(|| "setup failed: nothing was created".to_owned())
}

fn chat_line(n: usize) -> String {
    format!(
        "message {n}: did anyone see where the spare SD card went? the one labelled backup-{}",
        n % 97
    )
}

pub(crate) async fn set_up(ctx: &Ctx, rec: &mut Recorder<'_>) -> World {
    let s = &ctx.settings;
    let scale = &s.scale;
    let want_send = s.wants("send");
    let want_sync = s.wants("sync");
    let want_wake = s.wants("wake");
    let want_fanout = s.wants("fanout");
    let want_messages = s.wants("messages");
    let want_idle = s.wants("idle");

    let need_driver = want_wake || want_fanout || want_messages;
    let senders_n = if want_send { scale.senders } else { 0 };
    let mut crowd_n = 0;
    if want_idle || want_fanout {
        crowd_n = crowd_n.max(scale.polls);
    }
    if want_sync {
        crowd_n = crowd_n.max(scale.sync_room_members);
    }
    if want_wake {
        crowd_n = crowd_n.max(1);
    }
    let deadline = tokio::time::Instant::now() + scale.setup_deadline;
    let conc = scale.setup_concurrency;

    // 1. Register. Index 0 is the driver, 1 the sync user, then senders,
    //    then crowd; roles that are not needed are skipped.
    let mut roles: Vec<String> = Vec::new();
    if need_driver {
        roles.push("driver".into());
    }
    if want_sync {
        roles.push("sync".into());
    }
    roles.extend((0..senders_n).map(|i| format!("s{i}")));
    roles.extend((0..crowd_n).map(|i| format!("c{i}")));
    eprintln!("[setup] registering {} users", roles.len());
    let started = Instant::now();
    let results = {
        let http = ctx.http.clone();
        let run_id = ctx.run_id.clone();
        let roles = Arc::new(roles.clone());
        pool::run(roles.len(), conc, deadline, move |i| {
            let http = http.clone();
            let localpart = format!("hb{run_id}-{}", roles[i]);
            let password = format!("hb-{run_id}-password");
            async move { matrix::register(&http, &localpart, &password).await }
        })
        .await
    };
    let register_wall = started.elapsed();
    let mut register_ms = Samples::default();
    let mut users: Vec<Piece<Arc<User>>> = Vec::with_capacity(results.len());
    for (role, result) in roles.iter().zip(results) {
        users.push(match result {
            Ok((user, took)) => {
                register_ms.push(took);
                Ok(Arc::new(user))
            }
            Err(e) => Err(format!("registering {role}: {e}")),
        });
    }
    if !register_ms.is_empty() {
        rec.metric(
            "register_per_s",
            "setup: registrations/s",
            "users/s",
            Better::Higher,
            register_ms.len() as f64 / register_wall.as_secs_f64(),
        );
        rec.metric_opt(
            "register_p50_ms",
            "setup: register p50 (both UIA steps)",
            "ms",
            Better::Lower,
            register_ms.median(),
        );
    }
    let mut users = users.into_iter();
    let mut take = |n: usize| -> Piece<Vec<Arc<User>>> {
        let group: Vec<_> = users.by_ref().take(n).collect();
        group.into_iter().collect()
    };
    let driver = if need_driver { take(1).and_then(first) } else { not_needed() };
    let sync_user = if want_sync { take(1).and_then(first) } else { not_needed() };
    let senders = take(senders_n);
    let crowd = take(crowd_n);
    for piece in [&senders, &crowd] {
        if let Err(e) = piece {
            rec.fail(e);
        }
    }
    for piece in [&driver, &sync_user] {
        if let Err(e) = piece
            && !e.starts_with("not set up")
        {
            rec.fail(e);
        }
    }

    // 2. Create rooms.
    let mut creations: Vec<(Arc<User>, String, Use)> = Vec::new();
    let mut broken: Vec<(Use, String)> = Vec::new();
    fn want(
        creations: &mut Vec<(Arc<User>, String, Use)>,
        broken: &mut Vec<(Use, String)>,
        use_: Use,
        creator: &Piece<Arc<User>>,
        name: String,
    ) {
        match creator {
            Ok(user) => creations.push((Arc::clone(user), name, use_)),
            Err(e) => broken.push((use_, e.clone())),
        }
    }
    let send_rooms_n = scale.send_rooms.clamp(1, scale.senders.max(1));
    if want_send {
        match &senders {
            Ok(senders) => {
                for (r, sender) in senders.iter().take(send_rooms_n).enumerate() {
                    let creator = Ok(Arc::clone(sender));
                    want(&mut creations, &mut broken, Use::Send, &creator, format!("send {r}"));
                }
            }
            Err(e) => broken.push((Use::Send, e.clone())),
        }
    }
    if want_sync {
        for k in 0..scale.sync_rooms {
            want(&mut creations, &mut broken, Use::Sync, &sync_user, format!("sync {k}"));
        }
    }
    if want_wake {
        want(&mut creations, &mut broken, Use::Wake, &driver, "wake".into());
    }
    if want_fanout {
        want(&mut creations, &mut broken, Use::Fanout, &driver, "fan-out".into());
    }
    if want_messages {
        want(&mut creations, &mut broken, Use::Messages, &driver, "history".into());
    }
    if let Err(e) = &crowd {
        for (u, wanted) in
            [(Use::Wake, want_wake), (Use::Fanout, want_fanout), (Use::Sync, want_sync)]
        {
            if wanted {
                broken.push((u, e.clone()));
            }
        }
    }
    eprintln!("[setup] creating {} rooms", creations.len());
    let results = {
        let http = ctx.http.clone();
        let jobs = Arc::new(creations.clone());
        pool::run(jobs.len(), conc, deadline, move |i| {
            let http = http.clone();
            let jobs = Arc::clone(&jobs);
            async move {
                let (user, name, _) = &jobs[i];
                matrix::create_room(&http, user, name).await
            }
        })
        .await
    };
    let mut create_ms = Samples::default();
    let mut rooms: Vec<(Use, String)> = Vec::new();
    for ((_, _, use_), result) in creations.iter().zip(results) {
        match result {
            Ok((room_id, took)) => {
                create_ms.push(took);
                rooms.push((*use_, room_id));
            }
            Err(e) => broken.push((*use_, format!("createRoom: {e}"))),
        }
    }
    rec.metric_opt(
        "create_room_p50_ms",
        "setup: createRoom p50",
        "ms",
        Better::Lower,
        create_ms.median(),
    );
    let rooms_of = |u: Use| -> Vec<String> {
        rooms.iter().filter(|(x, _)| *x == u).map(|(_, r)| r.clone()).collect()
    };
    let send_rooms = rooms_of(Use::Send);
    let sync_rooms = rooms_of(Use::Sync);

    // 3. Joins, and for sync rooms the members that will speak in them.
    let mut joins: Vec<(Arc<User>, String, Use)> = Vec::new();
    let mut sync_speakers: Vec<Vec<Arc<User>>> = Vec::new();
    if let Ok(senders) = &senders
        && send_rooms.len() == send_rooms_n
    {
        for (i, sender) in senders.iter().enumerate().skip(send_rooms_n) {
            joins.push((Arc::clone(sender), send_rooms[i % send_rooms_n].clone(), Use::Send));
        }
    }
    if let (Ok(crowd), Ok(sync_user)) = (&crowd, &sync_user) {
        let m = scale.sync_room_members.min(crowd.len());
        for (k, room) in sync_rooms.iter().enumerate() {
            let mut speakers = vec![Arc::clone(sync_user)];
            for j in 0..m {
                // Spread memberships so rooms share some members, not all.
                let member = &crowd[(k * m + j) % crowd.len()];
                joins.push((Arc::clone(member), room.clone(), Use::Sync));
                if speakers.len() < 3 {
                    speakers.push(Arc::clone(member));
                }
            }
            sync_speakers.push(speakers);
        }
    }
    if let Ok(crowd) = &crowd {
        if let Some(poller) = crowd.first() {
            for room in rooms_of(Use::Wake) {
                joins.push((Arc::clone(poller), room, Use::Wake));
            }
        }
        let targets = scale.fanout_targets.min(crowd.len());
        for room in rooms_of(Use::Fanout) {
            for member in &crowd[..targets] {
                joins.push((Arc::clone(member), room.clone(), Use::Fanout));
            }
        }
    }
    eprintln!("[setup] {} joins", joins.len());
    let results = {
        let http = ctx.http.clone();
        let jobs = Arc::new(joins.clone());
        pool::run(jobs.len(), conc, deadline, move |i| {
            let http = http.clone();
            let jobs = Arc::clone(&jobs);
            async move {
                let (user, room, _) = &jobs[i];
                matrix::join_room(&http, user, room).await
            }
        })
        .await
    };
    let mut join_ms = Samples::default();
    for ((_, _, use_), result) in joins.iter().zip(results) {
        match result {
            Ok(took) => join_ms.push(took),
            Err(e) => broken.push((*use_, format!("join: {e}"))),
        }
    }
    rec.metric_opt("join_p50_ms", "setup: join p50", "ms", Better::Lower, join_ms.median());

    // 4. History: messages in the sync rooms and the back-pagination room.
    let mut history: Vec<(Arc<User>, String, Use)> = Vec::new();
    for (room, speakers) in sync_rooms.iter().zip(&sync_speakers) {
        for n in 0..scale.sync_history_per_room {
            history.push((Arc::clone(&speakers[n % speakers.len()]), room.clone(), Use::Sync));
        }
    }
    if let Ok(driver) = &driver {
        for room in rooms_of(Use::Messages) {
            for _ in 0..scale.messages_history {
                history.push((Arc::clone(driver), room.clone(), Use::Messages));
            }
        }
    }
    eprintln!("[setup] sending {} messages of history", history.len());
    let started = Instant::now();
    let results = {
        let http = ctx.http.clone();
        let jobs = Arc::new(history.clone());
        pool::run(jobs.len(), conc, deadline, move |i| {
            let http = http.clone();
            let jobs = Arc::clone(&jobs);
            async move {
                let (user, room, _) = &jobs[i];
                matrix::send_text(&http, user, room, &chat_line(i)).await
            }
        })
        .await
    };
    let history_wall = started.elapsed();
    let mut sent = 0usize;
    for ((_, _, use_), result) in history.iter().zip(results) {
        match result {
            Ok(_) => sent += 1,
            Err(e) => broken.push((*use_, format!("history: {e}"))),
        }
    }
    if sent > 0 {
        rec.metric(
            "history_msgs_per_s",
            &format!("setup: history sends/s ({conc} in flight)"),
            "msg/s",
            Better::Higher,
            sent as f64 / history_wall.as_secs_f64().max(1e-9),
        );
    }

    // Report each broken piece once, and hand the rest to the scenarios.
    let first_break = |u: Use| broken.iter().find(|(x, _)| *x == u).map(|(_, e)| e.clone());
    for u in USES {
        // Registration failures were reported above already.
        if let Some(e) = first_break(u).filter(|e| !e.starts_with("registering")) {
            let count = broken.iter().filter(|(x, _)| *x == u).count();
            rec.fail(format!("{u:?} rooms: {e} ({count} failures)"));
        }
    }
    let piece = |u: Use, wanted: bool, rooms: Vec<String>| -> Piece<Vec<String>> {
        if !wanted {
            return not_needed();
        }
        match first_break(u) {
            Some(e) => Err(format!("setup failed: {e}")),
            None if rooms.is_empty() => Err("setup failed: no rooms".into()),
            None => Ok(rooms),
        }
    };
    let one = |p: Piece<Vec<String>>| p.and_then(first);
    World {
        send_rooms: piece(Use::Send, want_send, send_rooms),
        sync_rooms: piece(Use::Sync, want_sync, sync_rooms),
        wake_room: one(piece(Use::Wake, want_wake, rooms_of(Use::Wake))),
        fanout_room: one(piece(Use::Fanout, want_fanout, rooms_of(Use::Fanout))),
        messages_room: one(piece(Use::Messages, want_messages, rooms_of(Use::Messages))),
        driver,
        sync_user,
        senders,
        crowd,
        crowd_since: None,
    }
}

/// Runs a filtered initial sync for each user and returns their
/// `next_batch` tokens, for long-polls to start from.
pub(crate) async fn initial_tokens(
    ctx: &Ctx,
    users: &[Arc<User>],
    filter: &'static str,
) -> Result<Vec<String>, Error> {
    let http = ctx.http.clone();
    let users = Arc::new(users.to_vec());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let results =
        pool::run(users.len(), ctx.settings.scale.setup_concurrency, deadline, move |i| {
            let http = http.clone();
            let users = Arc::clone(&users);
            async move {
                let params = matrix::SyncParams { filter: Some(filter), ..Default::default() };
                matrix::sync(&http, &users[i], &params, matrix::REQUEST_TIMEOUT)
                    .await
                    .map(|s| s.next_batch)
            }
        })
        .await;
    results.into_iter().collect()
}
