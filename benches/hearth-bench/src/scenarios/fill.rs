//! `fill` (opt-in): a small community's worth of data, then the server's
//! memory.
//!
//! `fill_users` users (50 at default scale) create `fill_rooms` rooms (100);
//! each room has its creator and four more members, and `fill_messages`
//! messages (20,000) are sent by room members, `setup_concurrency` at a
//! time. Once the server is quiet again its RSS is read: memory must not
//! grow with history, so this is the figure for a box that has been in use
//! for a while. Run it with `--only fill` on a fresh server for the number
//! on its own.

use std::sync::Arc;
use std::time::Instant;

use super::need;
use crate::matrix::{self, User};
use crate::pool;
use crate::procfs;
use crate::report::{Better, Recorder};
use crate::world::Ctx;

/// Members per room besides its creator.
const OTHER_MEMBERS: usize = 4;

pub(super) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let scale = &ctx.settings.scale;
    let deadline = tokio::time::Instant::now() + scale.fill_deadline;
    let conc = scale.setup_concurrency;
    let (n_users, n_rooms, n_messages) = (scale.fill_users, scale.fill_rooms, scale.fill_messages);
    eprintln!("[fill] {n_users} users, {n_rooms} rooms, {n_messages} messages");

    let http = ctx.http.clone();
    let run_id = ctx.run_id.clone();
    let users = pool::run(n_users, conc, deadline, move |i| {
        let (http, run_id) = (http.clone(), run_id.clone());
        async move {
            let localpart = format!("hb{run_id}-f{i}");
            matrix::register(&http, &localpart, "bench-password-fill")
                .await
                .map(|(u, _)| Arc::new(u))
        }
    })
    .await;
    let users: Result<Vec<Arc<User>>, _> = users.into_iter().collect();
    let users = users.map_err(|e| format!("registering: {e}"));
    let users = Arc::new(need!(rec, users).clone());

    let (http, us) = (ctx.http.clone(), Arc::clone(&users));
    let rooms = pool::run(n_rooms, conc, deadline, move |j| {
        let (http, us) = (http.clone(), Arc::clone(&us));
        async move {
            let creator = &us[j % us.len()];
            let (room, _) = matrix::create_room(&http, creator, &format!("fill {j}")).await?;
            for k in 1..=OTHER_MEMBERS.min(us.len() - 1) {
                matrix::join_room(&http, &us[(j + k) % us.len()], &room).await?;
            }
            Ok(room)
        }
    })
    .await;
    let rooms: Result<Vec<String>, _> = rooms.into_iter().collect();
    let rooms = rooms.map_err(|e| format!("creating rooms: {e}"));
    let rooms = Arc::new(need!(rec, rooms).clone());

    let started = Instant::now();
    let (http, us, rs) = (ctx.http.clone(), Arc::clone(&users), Arc::clone(&rooms));
    let sent = pool::run(n_messages, conc, deadline, move |m| {
        let (http, us, rs) = (http.clone(), Arc::clone(&us), Arc::clone(&rs));
        async move {
            // Message m goes to room m mod rooms, from one of its members.
            let j = m % rs.len();
            let sender = &us[(j + (m / rs.len()) % (OTHER_MEMBERS + 1)) % us.len()];
            let text = format!("fill message {m}: the kettle is on, who wants tea? ({})", m % 89);
            matrix::send_text(&http, sender, &rs[j], &text).await.map(|_| ())
        }
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let ok = sent.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = sent.iter().find(|r| r.is_err()) {
        rec.fail(format!("{} of {n_messages} sends failed; first: {e}", n_messages - ok));
    }
    rec.metric(
        "msgs_per_s",
        "fill: sends/s while filling",
        "msg/s",
        Better::Higher,
        ok as f64 / secs,
    );

    let Some(pid) = ctx.pid() else { return };
    procfs::settle(Some(pid), std::time::Duration::from_secs(10), std::time::Duration::ZERO).await;
    match procfs::memory(pid) {
        Ok(m) => {
            rec.metric(
                "rss_mib",
                &format!(
                    "fill: server RSS after {n_users} users / {n_rooms} rooms / {ok} messages"
                ),
                "MiB",
                Better::Lower,
                m.rss_kib as f64 / 1024.0,
            );
            rec.metric(
                "peak_rss_mib",
                "fill: server peak RSS (VmHWM) so far",
                "MiB",
                Better::Lower,
                m.hwm_kib as f64 / 1024.0,
            );
        }
        Err(e) => rec.fail(e),
    }
}
