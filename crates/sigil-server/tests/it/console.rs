//! The reviewer console over HTTP: sign-in, sessions, CSRF, the queue, the
//! report page, actions through the review rules, exports, and every bad
//! input of issue 22 (replayed and expired cookies, missing and wrong CSRF
//! tokens, a matcher key, hostile content references, long notes, two
//! reviewers racing, an unreachable store).

use crate::support::console;
use crate::support::console::{
    default_stubs, http, sign_in, stub, version_on, ALICE_KEY, BOB_KEY, MATCHER_KEY,
};
#[cfg(feature = "postgres")]
use crate::support::relay;
use sigil_server::ServerConfig;

#[tokio::test]
async fn sign_in_queue_report_confirm_and_export() {
    let (srv, ids) = console::start(&default_stubs(), |_| {}).await;
    let addr = srv.console;
    // No session: to the sign-in page.
    let r = http(addr, "GET", "/queue", None, None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/signin"));
    let page = http(addr, "GET", "/signin", None, None).await;
    for (h, v) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert!(page.header(h).unwrap_or("").contains(v), "{h}: {page:?}");
    }
    assert!(!page.body.contains("<script"));

    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    // The queue: pending stubs, earliest deadline first, overdue marked.
    let q = alice.get(addr, "/queue").await;
    assert!(q.body.contains("4 pending"), "{}", q.body);
    let at = |id: &str| q.body.find(&format!("/report/{id}")).unwrap();
    assert!(at(&ids[1]) < at(&ids[2]) && at(&ids[2]) < at(&ids[3]) && at(&ids[3]) < at(&ids[0]));
    assert!(q.body.contains("class=\"overdue\""));
    assert!(q.body.contains("overdue by 35 days"), "{}", q.body);
    // Filters: list, category, dates, submitter, status; counts follow.
    let f = alice.get(addr, "/queue?status=pending&list=iwf").await;
    assert!(f.body.contains("2 pending") && f.body.contains(&ids[1]) && !f.body.contains(&ids[0]));
    let f = alice
        .get(addr, "/queue?status=&category=A1&submitter=user-ncmec")
        .await;
    assert!(
        f.body.contains(&ids[0]) && !f.body.contains(&ids[3]),
        "{}",
        f.body
    );
    let f = alice
        .get(addr, "/queue?status=&from=1970-01-02&to=2000-01-01")
        .await;
    assert!(f.body.contains("No stub matches"));
    let bad = alice.get(addr, "/queue?status=&from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("from: &quot;yesterday&quot; is not a UTC date"),
        "{}",
        bad.body
    );

    // The report page: hashes, matches, sightings, content link, left for the reviewer.
    let id = &ids[0];
    let p = alice.get(addr, &format!("/report/{id}")).await;
    assert_eq!(p.status, 200);
    for s in [
        "5a5a5a5a",
        "entry-ncmec",
        "rot90",
        "href=\"https://mod.example/item/item-new\"",
        "Left for the reviewer",
        "report/internetDetails",
        "Audit trail",
    ] {
        assert!(p.body.contains(s), "{s} missing");
    }
    // Confirming without "viewed": the review rules refuse it.
    let v = version_on(&p);
    let r = alice
        .post(
            addr,
            &format!("/report/{id}"),
            &[
                ("action", "confirm"),
                ("version", &v),
                ("classification", "A1"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("viewed"), "{}", r.body);
    let r = alice
        .post(
            addr,
            &format!("/report/{id}"),
            &[
                ("action", "confirm"),
                ("version", &v),
                ("classification", "A1"),
                ("viewed", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("now confirmed (version 2)"), "{}", r.body);
    // The audit trail names the key.
    assert!(r.body.contains("<td>alice</td>"), "{}", r.body);
    // Exports.
    let x = alice
        .get(addr, &format!("/report/{id}/cybertipline.xml"))
        .await;
    assert_eq!(x.status, 200);
    assert!(x
        .header("content-type")
        .unwrap()
        .starts_with("application/xml"));
    assert!(
        x.body.contains("<report") && x.body.contains("industryClassification"),
        "{}",
        x.body
    );
    let j = alice
        .get(addr, &format!("/report/{id}/cybertipline.json"))
        .await;
    assert_eq!(j.status, 200);
    serde_json::from_str::<serde_json::Value>(&j.body).unwrap();
    // Dismissing needs a reason; with one it goes through.
    let other = &ids[2];
    let p = alice.get(addr, &format!("/report/{other}")).await;
    let v = version_on(&p);
    let r = alice
        .post(
            addr,
            &format!("/report/{other}"),
            &[("action", "dismiss"), ("version", &v)],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("reason"));
    let r = alice
        .post(
            addr,
            &format!("/report/{other}"),
            &[
                ("action", "dismiss"),
                ("version", &v),
                ("reason", "a logo, not abuse"),
            ],
        )
        .await;
    assert!(r.body.contains("now dismissed"), "{}", r.body);
    let unknown = alice.get(addr, "/report/rpt_nope").await;
    assert_eq!(unknown.status, 404);
    srv.stop().await;
}

#[tokio::test]
async fn cookies_are_strict_and_die_with_sign_out_and_expiry() {
    let (srv, _) = console::start(&default_stubs(), |c| c.console.session_ttl_s = 1).await;
    let addr = srv.console;
    // Cookie attributes (plain HTTP here: no Secure).
    let page = http(addr, "GET", "/signin", None, None).await;
    let token = page.set_cookie("sigil_signin").unwrap();
    let r = http(
        addr,
        "POST",
        "/signin",
        Some(&format!("sigil_signin={token}")),
        Some(&[("csrf", &page.csrf().unwrap()), ("key", ALICE_KEY)]),
    )
    .await;
    let set = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("sigil_session="))
        .unwrap();
    assert!(
        set.1.contains("HttpOnly") && set.1.contains("SameSite=Strict"),
        "{set:?}"
    );
    assert!(
        set.1.contains("Max-Age=1") && !set.1.contains("Secure"),
        "{set:?}"
    );

    // Expiry: the cookie stops working once the session's time is up.
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = alice.get(addr, "/queue").await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("expired"));
    srv.stop().await;

    // Sign-out: the same cookie replayed names no session.
    let (srv, _) = console::start(&default_stubs(), |_| {}).await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    let out = alice.post(addr, "/signout", &[]).await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"));
    let replay = alice.get(addr, "/queue").await;
    assert_eq!(replay.status, 401);
    assert!(replay.body.contains("session has ended"));
    let replay = alice.post(addr, "/signout", &[]).await;
    assert_eq!(replay.status, 401);
    srv.stop().await;
}

#[tokio::test]
async fn forms_without_or_with_a_wrong_csrf_token_are_refused() {
    let (srv, ids) = console::start(&default_stubs(), |_| {}).await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    let path = format!("/report/{}", ids[0]);
    let note = [("action", "note"), ("version", "1"), ("note", "forged")];
    let none = http(addr, "POST", &path, Some(&alice.cookie), Some(&note)).await;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("CSRF"));
    let mut wrong = vec![("csrf", "0".repeat(64))];
    wrong.extend(note.iter().map(|(k, v)| (*k, v.to_string())));
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http(addr, "POST", &path, Some(&alice.cookie), Some(&wrong)).await;
    assert_eq!(r.status, 403);
    // Another session's token is wrong too.
    let bob = sign_in(addr, BOB_KEY).await.unwrap();
    let mut theirs: Vec<(&str, &str)> = vec![("csrf", &bob.csrf)];
    theirs.extend_from_slice(&note);
    let r = http(addr, "POST", &path, Some(&alice.cookie), Some(&theirs)).await;
    assert_eq!(r.status, 403);
    // Sign-out and sign-in need theirs as well.
    let r = http(addr, "POST", "/signout", Some(&alice.cookie), Some(&[])).await;
    assert_eq!(r.status, 403);
    let r = http(addr, "POST", "/signin", None, Some(&[("key", ALICE_KEY)])).await;
    assert_eq!(r.status, 403);
    // Nothing was written.
    let p = alice.get(addr, &path).await;
    assert_eq!(version_on(&p), "1");
    assert!(!p.body.contains("forged"));
    srv.stop().await;
}

#[tokio::test]
async fn a_matcher_key_or_an_unknown_key_cannot_sign_in() {
    let (srv, _) = console::start(&[], |_| {}).await;
    let addr = srv.console;
    let refused = sign_in(addr, MATCHER_KEY).await.err().expect("refused");
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("role matcher"), "{}", refused.body);
    assert!(refused.set_cookie("sigil_session").is_none());
    let refused = sign_in(addr, "no-such-key").await.err().expect("refused");
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unknown API key"));
    srv.stop().await;
}

#[tokio::test]
async fn hostile_content_references_are_escaped_and_never_live_links() {
    let hostile = [
        "javascript:alert(1)",
        "\"><script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
    ];
    let stubs: Vec<_> = hostile.iter().map(|c| stub(c, "ncmec", "A1", 2)).collect();
    let (srv, ids) = console::start(&stubs, |_| {}).await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    for id in &ids {
        let p = alice.get(addr, &format!("/report/{id}")).await;
        assert!(
            !p.body.contains("<script") && !p.body.contains("<img"),
            "{}",
            p.body
        );
        assert!(!p.body.contains("href=\"javascript"));
        for href in p.body.split("href=\"").skip(1) {
            let url = &href[..href.find('"').unwrap()];
            assert!(
                url.starts_with('/') || url.starts_with("https://mod.example/item/"),
                "unexpected link {url}"
            );
        }
    }
    let p = alice.get(addr, &format!("/report/{}", ids[0])).await;
    assert!(p
        .body
        .contains("href=\"https://mod.example/item/javascript%3Aalert%281%29\""));
    let q = alice.get(addr, "/queue").await;
    assert!(!q.body.contains("<script"));
    srv.stop().await;

    // Only http and https templates are accepted.
    for t in [
        "javascript:alert(1)//{content_ref}",
        "data:text/html,{content_ref}",
        "https://x/",
    ] {
        let mut c = ServerConfig {
            index: Some("/nonexistent".into()),
            insecure_loopback: true,
            ..ServerConfig::default()
        };
        c.console.content_url = Some(t.into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("console.content_url"), "{t}: {err}");
    }
}

#[tokio::test]
async fn notes_are_bounded_by_the_store_limit() {
    let (srv, ids) = console::start(&default_stubs(), |_| {}).await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    let path = format!("/report/{}", ids[0]);
    let long = "n".repeat(10_000);
    let r = alice
        .post(
            addr,
            &path,
            &[("action", "note"), ("version", "1"), ("note", &long)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
    assert!(r.body.contains(&long));
    let over = "n".repeat(10_001);
    let r = alice
        .post(
            addr,
            &path,
            &[("action", "note"), ("version", "2"), ("note", &over)],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("10001 bytes, over the limit of 10000"),
        "{}",
        &r.body[..r.body.len().min(2000)]
    );
    // A body past the form limit is refused before it is parsed.
    let huge = "n".repeat(100_000);
    let r = alice
        .post(
            addr,
            &path,
            &[("action", "note"), ("version", "2"), ("note", &huge)],
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(version_on(&alice.get(addr, &path).await), "2");
    srv.stop().await;
}

#[tokio::test]
async fn the_second_of_two_racing_reviewers_gets_a_conflict_naming_the_first() {
    let (srv, ids) = console::start(&default_stubs(), |_| {}).await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    let bob = sign_in(addr, BOB_KEY).await.unwrap();
    let path = format!("/report/{}", ids[0]);
    // Both open the page at version 1.
    let va = version_on(&alice.get(addr, &path).await);
    let vb = version_on(&bob.get(addr, &path).await);
    assert_eq!((va.as_str(), vb.as_str()), ("1", "1"));
    let first = alice
        .post(
            addr,
            &path,
            &[
                ("action", "confirm"),
                ("version", &va),
                ("classification", "A2"),
                ("viewed", "true"),
            ],
        )
        .await;
    assert_eq!(first.status, 200);
    let second = bob
        .post(
            addr,
            &path,
            &[
                ("action", "dismiss"),
                ("version", &vb),
                ("reason", "looks fine"),
            ],
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(
        second.body.contains("changed since version 1"),
        "{}",
        second.body
    );
    assert!(second.body.contains("by alice"), "{}", second.body);
    // Alice's change stands; Bob's page now offers version 2.
    assert!(second.body.contains("<code>confirmed</code>"));
    assert_eq!(version_on(&second), "2");
    srv.stop().await;
}

/// The store goes away while serving: the console says so, matching that
/// needs no stub keeps working, and the console recovers with the store.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_unreachable_store_is_named_and_matching_keeps_working() {
    use sigil_server::proto::{self, matcher_client::MatcherClient};
    let Ok(url) = std::env::var("SIGIL_TEST_PG_URL") else {
        eprintln!(
            "NOTICE: SIGIL_TEST_PG_URL is unset: skipping the console's unreachable-store test"
        );
        return;
    };
    let relay = relay::Relay::start(relay::upstream_of(&url));
    let (srv, _) = console::start(&[], |c| {
        c.reports.backend = sigil_reports::ReportsBackend::Postgres;
        c.reports.postgres_url = Some(relay::via_relay(&url, relay.addr));
    })
    .await;
    let addr = srv.console;
    let alice = sign_in(addr, ALICE_KEY).await.unwrap();
    relay.cut();
    let q = alice.get(addr, "/queue").await;
    assert_eq!(q.status, 503);
    assert!(
        q.body.contains("report store cannot be reached"),
        "{}",
        q.body
    );
    assert!(q.body.contains("matching keeps working"));
    // Matching a hash that is not in the index needs no store.
    let mut matcher = MatcherClient::connect(format!("http://{}", srv.server.addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(proto::MatchHashesRequest {
        hashes: vec![proto::HashQuery {
            id: "q".into(),
            kind: proto::HashKind::Pdq as i32,
            hex: "00".repeat(32),
            ..Default::default()
        }],
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {MATCHER_KEY}").parse().unwrap(),
    );
    let r = matcher.match_hashes(req).await.unwrap().into_inner();
    assert_eq!(r.results[0].verdict, proto::Verdict::NoMatch as i32);
    relay.restore();
    let q = alice.get(addr, "/queue").await;
    assert_eq!(q.status, 200, "{}", q.body);
    srv.stop().await;
}

/// The console's page times with 100,000 stubs in SQLite (issue 22's
/// target: under 100 ms server time), next to the same pages over a
/// 4-stub store in the same run. A measurement, not a test (no timed
/// assertion): run it with
/// `cargo test -p sigil-server --test it -- --ignored --nocapture console::console_pages_100k`.
#[tokio::test]
#[ignore]
async fn console_pages_100k() {
    const STUBS: usize = 100_000;
    const ROUNDS: usize = 30;
    let lists = ["ncmec", "iwf", "c3p", "local"];
    let categories = ["A1", "A2", "B1", "B2"];
    let big: Vec<_> = (0..STUBS)
        .map(|i| {
            let mut s = stub(
                &format!("item-{i}"),
                lists[i % 4],
                categories[(i / 4) % 4],
                (i % 500) as i64,
            );
            s.sha256 = format!("{i:064x}");
            s
        })
        .collect();
    let seed = std::time::Instant::now();
    let (large, large_ids) = console::start(&big, |_| {}).await;
    eprintln!(
        "seeded {STUBS} stubs in {:.1} s",
        seed.elapsed().as_secs_f64()
    );
    let (small, small_ids) = console::start(&default_stubs(), |_| {}).await;
    for (name, srv, ids) in [
        ("4 stubs", &small, &small_ids),
        ("100,000 stubs", &large, &large_ids),
    ] {
        let addr = srv.console;
        let alice = sign_in(addr, ALICE_KEY).await.unwrap();
        let report = format!("/report/{}", ids[ids.len() / 2]);
        for (page, path) in [
            ("queue (pending, by deadline, counts)", "/queue"),
            (
                "queue filtered by list and category",
                "/queue?status=pending&list=iwf&category=A2",
            ),
            ("report page", report.as_str()),
        ] {
            let mut times = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let t = std::time::Instant::now();
                let r = alice.get(addr, path).await;
                times.push(t.elapsed());
                assert_eq!(r.status, 200);
            }
            times.sort();
            eprintln!(
                "{name:>14} | {page:<38} | median {:>7.2} ms | max {:>7.2} ms",
                times[ROUNDS / 2].as_secs_f64() * 1e3,
                times[ROUNDS - 1].as_secs_f64() * 1e3
            );
        }
    }
    small.stop().await;
    large.stop().await;
}
