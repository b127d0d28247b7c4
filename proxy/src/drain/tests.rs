//! The drain's steps on tokio's paused clock, with listeners that record what they were
//! told and connections that are plain tasks.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::*;

/// Listeners that record when each direction was stopped; stopping a direction cancels
/// its token, which the test's "connections" of that direction watch (as HTTP
/// connections watch their listener's).
#[derive(Default)]
struct FakeListeners {
    outbound: bool,
    stopped: Mutex<Vec<(Direction, Instant)>>,
    inbound_stop: CancellationToken,
    outbound_stop: CancellationToken,
}

impl FakeListeners {
    fn with_outbound() -> Arc<Self> {
        Arc::new(Self {
            outbound: true,
            ..Self::default()
        })
    }

    fn stopped(&self) -> Vec<(Direction, Duration)> {
        let start = self.stopped.lock().unwrap()[0].1;
        self.stopped
            .lock()
            .unwrap()
            .iter()
            .map(|(d, at)| (*d, *at - start))
            .collect()
    }
}

impl DrainListeners for FakeListeners {
    fn stop_accepting(&self, direction: Direction) {
        self.stopped
            .lock()
            .unwrap()
            .push((direction, Instant::now()));
        match direction {
            Direction::Inbound => self.inbound_stop.cancel(),
            Direction::Outbound => self.outbound_stop.cancel(),
        }
    }

    fn has_outbound(&self) -> bool {
        self.outbound
    }
}

const SETTINGS: DrainSettings = DrainSettings {
    timeout: Duration::from_secs(30),
    app_quiet_period: Duration::from_secs(1),
};

/// A connection that lasts `lasts`.
fn connection(tracker: &ConnectionTracker, lasts: Duration) {
    tracker.spawn(tokio::time::sleep(lasts));
}

#[tokio::test(start_paused = true)]
async fn without_outbound_listeners_the_drain_ends_with_the_last_connection() {
    let listeners = Arc::new(FakeListeners::default());
    let tracker = ConnectionTracker::new();
    connection(&tracker, Duration::from_millis(700));
    let started = Instant::now();
    let end = drain(&*listeners, &tracker, &DrainTrigger::new(), SETTINGS).await;
    assert_eq!(end, DrainEnd::Drained);
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    assert_eq!(
        listeners.stopped(),
        vec![(Direction::Inbound, Duration::ZERO)]
    );
}

#[tokio::test(start_paused = true)]
async fn outbound_listeners_serve_the_app_until_it_is_quiet_for_the_quiet_period() {
    let listeners = FakeListeners::with_outbound();
    let tracker = ConnectionTracker::new();
    // An inbound request in flight, then the app's calls while it shuts down: a long
    // one, then short ones each started after the previous ended.
    connection(&tracker, Duration::from_millis(500));
    let app = {
        let tracker = tracker.clone();
        tokio::spawn(async move {
            connection(&tracker, Duration::from_millis(1200));
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(1300)).await;
                // Each short call starts and ends within a quiet period.
                connection(&tracker, Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let end = drain(&*listeners, &tracker, &DrainTrigger::new(), SETTINGS).await;
    app.await.unwrap();
    assert_eq!(end, DrainEnd::AppQuiet);
    // The last call started at 3.9s and ended at 3.91s; the quiet period runs from the
    // first check that finds nothing open after it (at most one period later).
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(4910) && elapsed <= Duration::from_millis(5910),
        "{elapsed:?}"
    );
    let stopped = listeners.stopped();
    assert_eq!(stopped[0], (Direction::Inbound, Duration::ZERO));
    assert_eq!(stopped[1], (Direction::Outbound, elapsed));
}

#[tokio::test(start_paused = true)]
async fn a_call_started_and_ended_within_the_quiet_period_restarts_it() {
    let listeners = FakeListeners::with_outbound();
    let tracker = ConnectionTracker::new();
    let app = {
        let tracker = tracker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            connection(&tracker, Duration::from_millis(1));
        })
    };
    let started = Instant::now();
    let end = drain(&*listeners, &tracker, &DrainTrigger::new(), SETTINGS).await;
    app.await.unwrap();
    assert_eq!(end, DrainEnd::AppQuiet);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "the call at 0.9s spoils the first period; the second is quiet"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_wait_for_the_app_and_the_rest_drains() {
    let listeners = FakeListeners::with_outbound();
    let tracker = ConnectionTracker::new();
    // The app's idle keep-alive connection: ends when its listener is stopped.
    let idle = listeners.outbound_stop.clone();
    tracker.spawn(async move { idle.cancelled().await });
    let trigger = Arc::new(DrainTrigger::new());
    trigger.drain();
    let job = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.shutdown();
        })
    };
    let started = Instant::now();
    let end = drain(&*listeners, &tracker, &trigger, SETTINGS).await;
    job.await.unwrap();
    assert_eq!(end, DrainEnd::AppShutdown);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert!(tracker.is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_is_open_at_the_deadline_is_counted() {
    for outbound in [false, true] {
        let listeners = Arc::new(FakeListeners {
            outbound,
            ..FakeListeners::default()
        });
        let tracker = ConnectionTracker::new();
        // A tunnel that ignores the drain, and one connection that finishes.
        connection(&tracker, Duration::from_secs(3600));
        connection(&tracker, Duration::from_secs(1));
        let started = Instant::now();
        let settings = DrainSettings {
            timeout: Duration::from_secs(5),
            ..SETTINGS
        };
        let end = drain(&*listeners, &tracker, &DrainTrigger::new(), settings).await;
        assert_eq!(end, DrainEnd::Deadline { open: 1 }, "outbound: {outbound}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let directions: Vec<Direction> = listeners.stopped().iter().map(|(d, _)| *d).collect();
        let expected = if outbound {
            vec![Direction::Inbound, Direction::Outbound]
        } else {
            vec![Direction::Inbound]
        };
        assert_eq!(directions, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn inbound_connections_are_told_at_once_and_outbound_ones_only_when_the_app_is_gone() {
    let listeners = FakeListeners::with_outbound();
    let tracker = ConnectionTracker::new();
    let (inbound, outbound) = (
        listeners.inbound_stop.clone(),
        listeners.outbound_stop.clone(),
    );
    let told = Arc::new(Mutex::new(Vec::new()));
    for (name, token) in [("inbound", inbound), ("outbound", outbound)] {
        let told = told.clone();
        tracker.spawn(async move {
            token.cancelled().await;
            told.lock().unwrap().push((name, Instant::now()));
        });
    }
    let trigger = Arc::new(DrainTrigger::new());
    let job = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            trigger.shutdown();
        })
    };
    let started = Instant::now();
    assert_eq!(
        drain(&*listeners, &tracker, &trigger, SETTINGS).await,
        DrainEnd::AppShutdown
    );
    job.await.unwrap();
    let told: Vec<(&str, Duration)> = told
        .lock()
        .unwrap()
        .iter()
        .map(|(n, at)| (*n, *at - started))
        .collect();
    assert_eq!(
        told,
        vec![
            ("inbound", Duration::ZERO),
            ("outbound", Duration::from_secs(10))
        ]
    );
}

#[test]
fn the_command_line_default_quiet_period_is_the_documented_one() {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(["meshwork", "run", "-c", "x.yaml"]).unwrap();
    match cli.command {
        crate::cli::Command::Run {
            app_quiet_period, ..
        } => assert_eq!(app_quiet_period, DEFAULT_APP_QUIET_PERIOD),
        other => panic!("{other:?}"),
    }
}
