//! The same runner, unchanged, inside turmoil: simulated network, virtual time,
//! simulated machine, seeded ids. Exact timings can be asserted here.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use session_server::config::Config;
use session_server::machine::sim::SimMachine;
use session_server::net::{Net, TurmoilNet};
use session_server::rng::Rng;
use session_server::runner::{Runner, RunnerParts};
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn sim() -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(3 * 3600))
        .tick_duration(Duration::from_millis(100))
        .build()
}

/// gitlab:80 serves the coordinator; runner:8093 is the session server.
fn world(sim: &mut turmoil::Sim<'static>, gitlab: &Gitlab, session_timeout: i64, seed: u64) {
    let g = gitlab.clone();
    sim.host("gitlab", move || {
        let g = g.clone();
        async move {
            g.serve(TurmoilNet.bind("0.0.0.0:80").await?);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    sim.host("runner", move || async move {
        let toml = config_toml("gitlab:80", "shell", "0.0.0.0:8093", session_timeout).replace(
            "[session_server]\n",
            "[session_server]\nadvertise_address = \"runner:8093\"\n",
        );
        let parts = RunnerParts::new(
            Config::parse(&toml)?,
            TurmoilNet,
            Arc::new(SimMachine),
            Rng::seeded(seed),
        );
        let _runner = Runner::start(parts).await?;
        std::future::pending::<()>().await;
        Ok(())
    });
}

#[test]
fn a_31_minute_session_under_simulation() {
    let mut sim = sim();
    let gitlab = Gitlab::default();
    world(&mut sim, &gitlab, 1800, 7);
    let g = gitlab.clone();
    let pings = Arc::new(Mutex::new(Vec::new()));
    let seen = pings.clone();
    sim.client("browser", async move {
        g.push(job(1, &["sleep 60"], &[]));
        let session = g.session(1).await;
        assert_eq!(session.url.len(), "https://runner:8093/session/".len() + 64);
        let mut ws = connect(&TurmoilNet, &session, &["terminal.gitlab.com"]).await;
        let start = tokio::time::Instant::now();
        type_text(&mut ws, "echo hello\r").await;
        read_until(&mut ws, "hello\r\n").await;
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => seen
                    .lock()
                    .unwrap()
                    .push((start.elapsed().as_millis() + 500) / 1000),
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.expect("a close frame");
                    assert_eq!(u16::from(frame.code), 1001);
                    assert_eq!(
                        frame.reason.as_str(),
                        "terminal session timed out (maximum time allowed - 30m0s)"
                    );
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        let elapsed = start.elapsed().as_secs();
        // Script 60 s, then the 30-minute session timeout.
        assert!((1859..=1861).contains(&elapsed), "closed after {elapsed} s");
        let end = g.finished(1).await;
        assert_eq!(end.state, "success");
        assert!(g
            .trace(1)
            .contains("Terminal is connected, will time out in 30m0s..."));
        Ok(())
    });
    sim.run().unwrap();
    let pings = pings.lock().unwrap();
    // WS-4: a Ping every 30 s while the terminal is open.
    // The last one may fall with the close, at 1860 s.
    assert!((61..=62).contains(&pings.len()), "{pings:?}");
    assert_eq!(pings[0], 30);
    assert!(pings.windows(2).all(|w| w[1] - w[0] == 30), "{pings:?}");
}

#[test]
fn the_same_seed_gives_the_same_session_ids() {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let mut sim = sim();
            let gitlab = Gitlab::default();
            world(&mut sim, &gitlab, 60, 42);
            let g = gitlab.clone();
            let out = Arc::new(Mutex::new(String::new()));
            let o = out.clone();
            sim.client("browser", async move {
                g.push(job(1, &["true"], &[]));
                let session = g.session(1).await;
                *o.lock().unwrap() = format!("{} {}", session.url, session.authorization);
                Ok(())
            });
            sim.run().unwrap();
            let id = out.lock().unwrap().clone();
            id
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn an_idle_browser_that_answers_pings_is_never_dropped() {
    let mut sim = sim();
    let gitlab = Gitlab::default();
    world(&mut sim, &gitlab, 1800, 3);
    let g = gitlab.clone();
    sim.client("browser", async move {
        g.push(job(1, &["sleep 3600"], &[]));
        let session = g.session(1).await;
        let mut ws = connect(&TurmoilNet, &session, &[]).await;
        // Only read: tungstenite answers each Ping with a Pong, nothing else is sent.
        let idle = tokio::time::sleep(Duration::from_secs(600));
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = &mut idle => break,
                message = ws.next() => match message {
                    Some(Ok(Message::Close(frame))) => panic!("closed while answering pings: {frame:?}"),
                    Some(Ok(_)) => {}
                    other => panic!("connection ended: {other:?}"),
                },
            }
        }
        Ok(())
    });
    sim.run().unwrap();
}
