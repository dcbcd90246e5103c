//! The run: preflight, setup, each selected scenario, final readings.
//!
//! Scenarios run one after another in [`crate::args::SCENARIOS`] order, so
//! their measurements do not disturb each other; the send scenario is last
//! because it leaves the most behind (caches, database growth). Before each
//! one the tool waits for the server to go quiet (with `--pid`).

mod fill;
mod media;
mod messages;
mod polls;
mod send;
mod sliding;
mod sync;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::args::{Settings, WaitReady};
use crate::client::Http;
use crate::matrix;
use crate::procfs;
use crate::report::{Better, Recorder, Report};
use crate::world::{self, Ctx};

const MIB: f64 = 1024.0 * 1024.0;

pub(crate) async fn run(settings: Settings) -> ExitCode {
    if let Some(wait) = &settings.wait_ready {
        return wait_ready(&settings, wait).await;
    }
    let ctx = Ctx::new(settings);
    let settings = &ctx.settings;
    let mut report = Report {
        url: settings.base_url.clone(),
        scale: settings.scale.name.to_owned(),
        ..Report::default()
    };

    // Preflight: without /versions nothing else can work.
    match matrix::get_versions(&ctx.http, Duration::from_secs(10)).await {
        Ok(reply) if reply.status == 200 => report.server = reply.server.clone(),
        Ok(reply) => {
            eprintln!(
                "hearth-bench: {} does not look like a Matrix homeserver: {}",
                settings.base_url,
                reply.error()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("hearth-bench: cannot reach {}: {e}", settings.base_url);
            return ExitCode::FAILURE;
        }
    }
    if let Some(pid) = ctx.pid()
        && !procfs::is_alive(pid)
    {
        eprintln!("hearth-bench: --pid {pid}: no such process");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "hearth-bench: {} ({}), scale {}, run id {}",
        settings.base_url,
        report.server.as_deref().unwrap_or("server unknown"),
        settings.scale.name,
        ctx.run_id
    );

    let before = Readings::take(&ctx);
    let mut world = {
        let mut rec = report.scenario("setup");
        let world = world::set_up(&ctx, &mut rec).await;
        rec.finish();
        world
    };
    for name in crate::args::SCENARIOS {
        if !settings.wants(name) {
            continue;
        }
        procfs::settle(ctx.pid(), Duration::from_secs(10), Duration::from_millis(500)).await;
        let mut rec = report.scenario(name);
        match name {
            "send" => send::run(&ctx, &world, &mut rec).await,
            "sync" => sync::run(&ctx, &world, &mut rec).await,
            "sliding" => sliding::run(&ctx, &mut rec).await,
            "wake" => polls::wake(&ctx, &world, &mut rec).await,
            "idle" => polls::idle(&ctx, &mut world, &mut rec).await,
            "fanout" => polls::fanout(&ctx, &mut world, &mut rec).await,
            "messages" => messages::run(&ctx, &world, &mut rec).await,
            "media" => media::run(&ctx, &mut rec).await,
            "fill" => fill::run(&ctx, &mut rec).await,
            other => rec.fail(format!("no such scenario {other}")),
        }
        rec.finish();
    }
    let mut rec = report.scenario("server");
    server_readings(&ctx, &before, &mut rec);
    rec.finish();

    if settings.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.failed() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Process and data-directory readings taken at the start of the run.
struct Readings {
    memory: Option<Result<procfs::Memory, String>>,
    cpu: Option<Duration>,
    disk: Option<Result<procfs::DirUsage, String>>,
}

impl Readings {
    fn take(ctx: &Ctx) -> Readings {
        let pid = ctx.pid();
        Readings {
            memory: pid.map(procfs::memory),
            cpu: pid.and_then(|p| procfs::cpu_time(p).ok()),
            disk: ctx.settings.data_dir.as_deref().map(procfs::dir_usage),
        }
    }
}

fn server_readings(ctx: &Ctx, before: &Readings, rec: &mut Recorder<'_>) {
    let after = Readings::take(ctx);
    match (&before.memory, &after.memory) {
        (None, _) => rec.note("no --pid: memory, CPU and disk-write figures skipped"),
        (Some(Ok(idle)), Some(Ok(end))) => {
            rec.metric(
                "rss_idle_mib",
                "server: RSS at start (idle)",
                "MiB",
                Better::Lower,
                idle.rss_kib as f64 / 1024.0,
            );
            rec.metric(
                "rss_end_mib",
                "server: RSS after the run",
                "MiB",
                Better::Lower,
                end.rss_kib as f64 / 1024.0,
            );
            rec.metric(
                "peak_rss_mib",
                "server: peak RSS (VmHWM) after the run",
                "MiB",
                Better::Lower,
                end.hwm_kib as f64 / 1024.0,
            );
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => rec.fail(e),
        (Some(_), None) => {}
    }
    if let (Some(a), Some(Ok(b))) = (before.cpu, ctx.pid().map(procfs::cpu_time)) {
        rec.metric(
            "cpu_s",
            "server: CPU time during the run",
            "s",
            Better::Lower,
            b.saturating_sub(a).as_secs_f64(),
        );
    }
    match (&before.disk, &after.disk) {
        (None, _) => {}
        (Some(Ok(start)), Some(Ok(end))) => {
            rec.metric(
                "data_dir_mib",
                "server: data dir on disk after the run",
                "MiB",
                Better::Lower,
                end.total_bytes as f64 / MIB,
            );
            rec.metric(
                "data_dir_growth_mib",
                "server: data dir growth during the run",
                "MiB",
                Better::Lower,
                end.total_bytes.saturating_sub(start.total_bytes) as f64 / MIB,
            );
            rec.metric(
                "media_mib",
                "server: media on disk",
                "MiB",
                Better::Neither,
                end.media_bytes as f64 / MIB,
            );
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => rec.fail(e),
        (Some(_), None) => {}
    }
}

/// `--wait-ready`: polls `/versions` until it answers 200 and prints the
/// seconds since the server was spawned.
async fn wait_ready(settings: &Settings, wait: &WaitReady) -> ExitCode {
    let http = Http::new(&settings.base_url);
    let now_ns = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let spawned = wait.spawned_at_ns.unwrap_or_else(now_ns);
    let deadline = tokio::time::Instant::now() + wait.timeout;
    let mut last_error = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match matrix::get_versions(&http, Duration::from_secs(5)).await {
            Ok(reply) if reply.status == 200 => {
                let seconds = now_ns().saturating_sub(spawned) as f64 / 1e9;
                if settings.json {
                    println!("{{\"ready_s\": {seconds:.3}}}");
                } else {
                    println!("{seconds:.3}");
                }
                return ExitCode::SUCCESS;
            }
            Ok(reply) => last_error = reply.error().to_string(),
            Err(e) => last_error = e.to_string(),
        }
        if let Some(pid) = settings.pid
            && !procfs::is_alive(pid)
        {
            eprintln!("hearth-bench: server process {pid} exited before it answered");
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "hearth-bench: {} not ready within {:.0} s: {last_error}",
        settings.base_url,
        wait.timeout.as_secs_f64()
    );
    ExitCode::FAILURE
}

/// Unwraps a setup piece or fails the scenario with its reason.
macro_rules! need {
    ($rec:expr, $piece:expr) => {
        match &$piece {
            Ok(v) => v,
            Err(e) => {
                $rec.fail(e);
                return;
            }
        }
    };
}
pub(crate) use need;
