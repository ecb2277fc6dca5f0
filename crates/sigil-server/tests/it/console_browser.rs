//! The reviewer console in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver by fantoccini.
//! Signs in, filters the queue, confirms a stub, downloads its
//! CyberTipline XML; a form posted without its CSRF token and a matcher
//! key are refused.
//!
//! CI (.ci/run) installs Chromium and sets SIGIL_BROWSER_TESTS=1: there a
//! missing browser fails the test. Elsewhere it prints "not run" and
//! passes. With SIGIL_CONSOLE_SCREENSHOTS=DIR it saves the queue and a
//! report page as PNG files in DIR (docs/ holds the published ones).

use crate::support::console;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use console::{default_stubs, ALICE_KEY, MATCHER_KEY};
use fantoccini::{Client, ClientBuilder, Locator};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,800",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args,
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Waits (bounded) for a downloaded file whose name ends with `suffix`
/// and whose text holds `complete` (the browser may show the file before
/// it has written all of it); returns its text.
async fn downloaded(dir: &Path, suffix: &str, complete: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Option<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(suffix));
        if let Some(text) = found.and_then(|p| std::fs::read_to_string(p).ok()) {
            if text.contains(complete) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete {suffix} download within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks element `id` and waits (bounded) until the browser shows the
/// next page: a form submission may return before the new page loaded.
async fn click_to_next_page(c: &Client, id: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap().element_id();
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_page_after(c, old).await;
}

/// Waits (bounded) until the page whose root element was `old` is gone.
async fn wait_for_page_after(c: &Client, old: fantoccini::elements::ElementRef) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(root) = c.find(Locator::Css("html")).await {
            if root.element_id() != old {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no new page within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("SIGIL_CONSOLE_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

async fn sign_in(c: &Client, base: &str, key: &str) {
    c.goto(&format!("{base}/signin")).await.unwrap();
    c.find(Locator::Id("key"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
    click_to_next_page(c, "signin").await;
}

#[tokio::test]
async fn sign_in_filter_confirm_and_export_in_chromium() {
    let required = std::env::var("SIGIL_BROWSER_TESTS").is_ok_and(|v| v == "1");
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            !required,
            "SIGIL_BROWSER_TESTS=1 but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("not run: {CHROMIUM} or {CHROMEDRIVER} is missing (set SIGIL_BROWSER_TESTS=1 to require it)");
        return;
    }
    let (srv, ids) = console::start(&default_stubs(), |_| {}).await;
    let base = format!("http://{}", srv.console);
    let work = tempfile::tempdir().unwrap();
    let (profile, downloads) = (work.path().join("profile"), work.path().join("downloads"));
    std::fs::create_dir_all(&downloads).unwrap();
    let driver = start_driver().await;
    let c = browser(&driver, &profile, &downloads).await;

    // A matcher key is refused.
    sign_in(&c, &base, MATCHER_KEY).await;
    let msg = text_of(&c, "#message").await;
    assert!(msg.contains("role matcher"), "{msg}");

    // A reviewer signs in and lands on the queue, pending stubs by deadline.
    sign_in(&c, &base, ALICE_KEY).await;
    assert!(c.current_url().await.unwrap().path().ends_with("/queue"));
    assert!(text_of(&c, "#counts").await.contains("4 pending"));
    let overdue = c.find_all(Locator::Css("#queue tr.overdue")).await.unwrap();
    assert_eq!(overdue.len(), 1);
    screenshot(&c, "console-queue.png").await;

    // Filter by list.
    c.find(Locator::Id("list"))
        .await
        .unwrap()
        .send_keys("ncmec")
        .await
        .unwrap();
    click_to_next_page(&c, "apply").await;
    assert!(text_of(&c, "#counts").await.contains("2 pending"));
    let rows = c.find_all(Locator::Css("#queue tr")).await.unwrap();
    assert_eq!(rows.len(), 3, "header and two stubs");

    // Open the newest ncmec stub and confirm it.
    let id = &ids[0];
    let old = c.find(Locator::Css("html")).await.unwrap().element_id();
    c.find(Locator::Css(&format!("a[href='/report/{id}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_page_after(&c, old).await;
    assert_eq!(text_of(&c, "#stub-id").await, *id);
    c.find(Locator::Id("classification"))
        .await
        .unwrap()
        .select_by_value("A2")
        .await
        .unwrap();
    c.find(Locator::Id("viewed"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_to_next_page(&c, "confirm").await;
    let msg = text_of(&c, "#message").await;
    assert!(msg.contains("now confirmed"), "{msg}");
    assert!(text_of(&c, "#audit").await.contains("alice"));
    screenshot(&c, "console-report.png").await;

    // Export the XML (a download).
    c.find(Locator::Id("export-xml"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let xml = downloaded(&downloads, ".xml", "</report>").await;
    assert!(xml.contains("<industryClassification>A2"), "{xml}");

    // A form posted without its CSRF token is refused, and writes nothing.
    c.execute(
        "document.querySelector('#form-note input[name=csrf]').remove()",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::Id("note"))
        .await
        .unwrap()
        .send_keys("posted without a token")
        .await
        .unwrap();
    click_to_next_page(&c, "add-note").await;
    assert!(text_of(&c, "#message").await.contains("CSRF"));
    c.goto(&format!("{base}/report/{id}")).await.unwrap();
    assert!(!c.source().await.unwrap().contains("posted without a token"));

    // Sign out: the queue asks for a sign-in again.
    click_to_next_page(&c, "signout").await;
    c.goto(&format!("{base}/queue")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/signin"));

    c.close().await.unwrap();
    drop(driver);
    srv.stop().await;
}
