//! The web UI in a real headless browser: Debian's Chromium driven through chromedriver (the
//! tests install both when missing and running as root), against a real daemon whose store is
//! filled by real workflow runs and a registered, served model. Every page loads with its key
//! elements, no console errors and no failed requests; links navigate; a live run's status
//! changes on its page without a reload; text a workflow author wrote as HTML is shown as text.
//!
//! `WFLOW_UI_SCREENSHOTS=DIR` saves a screenshot of each page there (the docs' pictures).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::pg_server::{apt_install, free_port, is_root};
use crate::support::{post_json, repo, wasm_path};

const TOKEN: &str = "browser-test-token";

/// Chromium and chromedriver from Debian, installed when missing.
fn ensure_chromium() {
    let present =
        || Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if present() {
        return;
    }
    assert!(
        is_root(),
        "the browser tests need Debian's chromium and chromium-driver packages: install them"
    );
    apt_install(&["chromium", "chromium-driver"]);
    assert!(present(), "chromium was installed but is not in /usr/bin");
}

/// A process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver, and on drop the browsers it started (found by their profile folder: a
/// browser outlives a driver killed before it closed its session, as a failing test does).
struct Driver {
    driver: Guard,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.driver.0.kill();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.display().to_string())
            .status();
    }
}

/// chromedriver on a loopback port, and a headless session in a profile of its own.
async fn browser(profile: &Path) -> (Driver, Client) {
    ensure_chromium();
    let port = free_port();
    let driver = Driver {
        driver: Guard(
            Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        ),
        profile: profile.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    (driver, client)
}

/// chromedriver's browser log (console messages), read and cleared.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

/// Console errors and failed requests since the last look.
async fn problems(client: &Client) -> Vec<String> {
    let mut found = Vec::new();
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    for entry in log.as_array().into_iter().flatten() {
        if entry["level"] == "SEVERE" {
            found.push(format!("console: {}", entry["message"]));
        }
    }
    let failed = client
        .execute(
            "return performance.getEntriesByType('resource')
                 .filter(e => e.responseStatus >= 400)
                 .map(e => e.name + ' ' + e.responseStatus)",
            vec![],
        )
        .await
        .expect("resource timings");
    for entry in failed.as_array().into_iter().flatten() {
        found.push(format!("request: {entry}"));
    }
    found
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}`: {err}"))
        .text()
        .await
        .unwrap()
}

/// Opens `path`, checks it has `heading` and no problems, and saves its picture when asked.
async fn visit(client: &Client, base: &str, path: &str, heading: &str, picture: &str) {
    client.goto(&format!("{base}{path}")).await.unwrap();
    let h1 = text(client, "h1").await;
    assert!(h1.contains(heading), "{path}: h1 is `{h1}`");
    let problems = problems(client).await;
    assert!(problems.is_empty(), "{path}: {problems:#?}");
    if let Ok(dir) = std::env::var("WFLOW_UI_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{picture}.png")), png).unwrap();
    }
}

/// Waits until `css` reads `wanted`. The page may be replaced while it is polled (a form's
/// redirect, a live update), so the element is found and read in one script, and an error
/// from a page being swapped counts as "not yet" until the deadline, which reports it.
async fn wait_for_text(client: &Client, css: &str, wanted: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = client
            .execute(
                "const found = document.querySelector(arguments[0]);
                 return found ? found.innerText.trim() : null;",
                vec![json!(css)],
            )
            .await;
        let now = match now {
            Ok(serde_json::Value::String(now)) if now == wanted => return,
            Ok(now) => now.to_string(),
            Err(err) => format!("<{err}>"),
        };
        assert!(
            Instant::now() < deadline,
            "`{css}` still says `{now}`, not `{wanted}`"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon on a folder with the breast-cancer example, a slow workflow and one whose
/// description is HTML; returns it and its address once it listens.
fn daemon(dir: &Path) -> (Guard, String) {
    std::fs::create_dir_all(dir.join("wf/data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/breast_cancer.csv"),
        dir.join("wf/data/breast_cancer.csv"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("workflows/breast-cancer.toml"),
        dir.join("wf/breast-cancer.toml"),
    )
    .unwrap();
    std::fs::copy(wasm_path("noop"), dir.join("wf/noop.wasm")).unwrap();
    std::fs::write(dir.join("wf/data/rows.csv"), "a\n1\n2\n").unwrap();
    std::fs::write(
        dir.join("wf/slow.toml"),
        "[workflow]\nname = \"slow\"\ndescription = \"<script>alert('owned')</script> & <b>bold</b>\"\n\n[datasets.data]\npath = \"data/rows.csv\"\n\n[steps.wait]\nuses = \"noop.wasm\"\ninputs = { data = \"data\" }\ncache = false\nwith = { sleep_ms = 2500 }\n\n[triggers.yearly]\ncron = \"0 0 1 1 *\"\ncatch_up = \"none\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("wf/broken.toml"),
        "[workflow]\nname = \"<b>broken\"\n",
    )
    .unwrap();
    let mut daemon = Guard(
        Command::new(env!("CARGO_BIN_EXE_wflow"))
            .args(["daemon", "--workflows", "wf", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
            .env("WFLOW_ADMIN_TOKEN", TOKEN)
            .env_remove("WFLOW_DATA_DIR")
            .env_remove("WFLOW_STORE")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut reader = BufReader::new(daemon.0.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the daemon stopped"
        );
        if let Some(address) = line.trim().split("on http://").nth(1) {
            let address = address.to_string();
            std::thread::spawn(move || for _ in reader.lines() {});
            return (daemon, address);
        }
    }
}

fn trigger(address: &str, workflow: &str) -> u64 {
    let answer = post_json(
        address,
        &format!("/api/v1/workflows/{workflow}/trigger"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &json!({}),
    );
    assert_eq!(answer.status, 202, "{}", answer.text());
    answer.json()["run"].as_u64().unwrap()
}

/// Waits for run `id` to succeed, following the daemon's events (long-polled).
fn wait_for_success(address: &str, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut since = 0;
    loop {
        let status =
            crate::support::get(address, &format!("/api/v1/runs/{id}")).json()["run"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        match status.as_str() {
            "succeeded" => return,
            "failed" | "cancelled" | "interrupted" => panic!("run {id} {status}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "run {id} did not succeed");
        let events =
            crate::support::get(address, &format!("/api/v1/events?since={since}&wait=1s")).json();
        if let Some(last) = events["events"].as_array().and_then(|e| e.last()) {
            since = last["seq"].as_u64().unwrap_or(since);
        }
    }
}

#[test]
fn the_ui_in_a_real_browser_shows_every_page_live_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, address) = daemon(dir.path());
    // A real run that registers and serves a model.
    let trained = trigger(&address, "breast-cancer");
    wait_for_success(&address, trained);
    let base = format!("http://{address}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_driver, client) = browser(&dir.path().join("profile")).await;
        visit(&client, &base, "/ui/runs", "Runs", "runs").await;
        assert_eq!(
            text(&client, &format!("tr[data-run=\"{trained}\"] [data-status]")).await,
            "succeeded"
        );
        // Navigation: the run's link leads to its page, with its DAG and steps.
        client
            .find(Locator::Css(&format!("a[href=\"/ui/runs/{trained}\"]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .wait()
            .for_element(Locator::Css("svg.dag"))
            .await
            .unwrap();
        assert!(client.current_url().await.unwrap().path().ends_with(&format!("/ui/runs/{trained}")));
        let boxes = client.find_all(Locator::Css("svg.dag g.node")).await.unwrap();
        assert_eq!(boxes.len(), 10);
        assert!(text(&client, "#step-train").await.contains("logistic-regression"));
        visit(&client, &base, &format!("/ui/runs/{trained}"), "Run", "run").await;
        visit(&client, &base, "/ui/models", "Models", "models").await;
        visit(&client, &base, "/ui/models/breast-cancer", "breast-cancer", "model").await;
        assert_eq!(text(&client, "[data-alias=\"champion\"]").await, "champion → v1");
        visit(&client, &base, "/ui/workflows", "Workflows", "workflows").await;
        // The description is shown as the author wrote it, as text: no element, no script.
        let description = text(&client, "[data-workflow=\"slow\"] .description").await;
        assert_eq!(description, "<script>alert('owned')</script> & <b>bold</b>");
        let injected = client
            .find_all(Locator::Css("[data-workflow=\"slow\"] .description b, [data-workflow=\"slow\"] .description script"))
            .await
            .unwrap();
        assert!(injected.is_empty());
        // A file that does not load says why, as text.
        let broken = text(&client, "section.problem").await;
        assert!(broken.contains("broken.toml") && broken.contains("<b>broken"), "{broken}");
        // A cron trigger says when it fires next.
        let yearly = text(&client, "[data-trigger=\"yearly\"]").await;
        assert!(yearly.contains("-01-01T00:00:00Z"), "{yearly}");
        visit(&client, &base, "/ui/events", "Events", "events").await;
        // The served model, its champion taking all traffic, with the inputs it saw against
        // the training data's (rows of the training file, sent as its clients would).
        let rows: Vec<Vec<f64>> = std::fs::read_to_string(repo().join("workflows/data/breast_cancer.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .take(40)
            .map(|line| line.split(',').take(30).map(|v| v.parse().unwrap()).collect())
            .collect();
        let answer = post_json(
            &address,
            "/v2/models/breast-cancer/infer",
            &[],
            &json!({ "inputs": [{ "name": "features", "shape": [rows.len(), 30], "datatype": "FP64", "data": rows }] }),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        visit(&client, &base, "/ui/serving", "Serving", "serving").await;
        let histograms = client.find_all(Locator::Css("svg.histogram")).await.unwrap();
        assert!(!histograms.is_empty());
        let champion_row = text(&client, "[data-model=\"breast-cancer\"] tr[data-version=\"1\"]").await;
        assert!(champion_row.contains("champion") && champion_row.contains("100%"), "{champion_row}");

        // A live run: its page follows its status without a reload.
        let slow = trigger(&address, "slow");
        client.goto(&format!("{base}/ui/runs/{slow}")).await.unwrap();
        client
            .execute("window.wflowNotReloaded = true; return true;", vec![])
            .await
            .unwrap();
        let badge = format!("[data-run-status=\"{slow}\"]");
        wait_for_text(&client, &badge, "succeeded", 60).await;
        let same_page = client
            .execute("return window.wflowNotReloaded === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same_page, json!(true), "the page was reloaded");
        let seen = problems(&client).await;
        assert!(seen.is_empty(), "{seen:#?}");

        // Promoting: refused without signing in (no buttons, and a forged form gets a 403)...
        let retrained = trigger(&address, "breast-cancer");
        tokio::task::block_in_place(|| wait_for_success(&address, retrained));
        // The two trainings side by side: parameters, metrics, charts of the search's trials.
        client.goto(&format!("{base}/ui/runs")).await.unwrap();
        for run in [trained, retrained] {
            client
                .find(Locator::Css(&format!("input[name=runs][value=\"{run}\"]")))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        client
            .find(Locator::Css("form.compare button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .wait()
            .for_element(Locator::Css("table.compare"))
            .await
            .unwrap();
        let charts = client.find_all(Locator::Css("svg.chart")).await.unwrap();
        assert!(charts.len() >= 2, "{} charts", charts.len());
        assert!(client.source().await.unwrap().contains("train: cv_"));
        visit(
            &client,
            &base,
            &format!("/ui/compare?runs={trained}&runs={retrained}"),
            "Compare runs",
            "compare",
        )
        .await;
        client.goto(&format!("{base}/ui/models/breast-cancer")).await.unwrap();
        let champion = text(&client, "[data-alias=\"champion\"]").await;
        let other = if champion == "champion → v1" { 2 } else { 1 };
        assert!(client.find_all(Locator::Css("[data-promote]")).await.unwrap().is_empty());
        let forged = client
            .execute(
                "return fetch('/ui/models/breast-cancer/promote', {method: 'POST',
                    headers: {'content-type': 'application/x-www-form-urlencoded'},
                    body: 'version=' + arguments[0] + '&alias=champion&csrf=guess'})
                  .then(r => r.status)",
                vec![json!(other)],
            )
            .await
            .unwrap();
        assert_eq!(forged, json!(403));
        let seen = problems(&client).await;
        assert!(seen.iter().all(|p| p.contains("/promote") && p.contains("403")), "{seen:#?}");
        // ...refused with a wrong token...
        client.goto(&format!("{base}/ui/login?next=/ui/models/breast-cancer")).await.unwrap();
        let field = client.find(Locator::Css("input[name=token]")).await.unwrap();
        field.send_keys("not-the-token").await.unwrap();
        client.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
        let refused = client
            .wait()
            .for_element(Locator::Css("p.problem"))
            .await
            .unwrap();
        assert!(refused.text().await.unwrap().contains("not the admin token"));
        let seen = problems(&client).await;
        assert!(seen.iter().all(|p| p.contains("/ui/login") && p.contains("401")), "{seen:#?}");
        // ...and done with it, back on the model's page, where the move is in the history.
        let field = client.find(Locator::Css("input[name=token]")).await.unwrap();
        field.send_keys(TOKEN).await.unwrap();
        client.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
        let promote = client
            .wait()
            .for_element(Locator::Css(&format!("[data-promote=\"{other}\"]")))
            .await
            .unwrap();
        promote.click().await.unwrap();
        wait_for_text(&client, "[data-alias=\"champion\"]", &format!("champion → v{other}"), 10).await;
        assert!(text(&client, "table.history tbody tr").await.contains("web UI: promote"));
        let served = crate::support::get(&address, "/v2/models/breast-cancer").json();
        assert_eq!(served["versions"][0], other.to_string(), "{served}");
        let seen = problems(&client).await;
        assert!(seen.is_empty(), "{seen:#?}");
        client.close().await.unwrap();
    });
}
