//! The ground-station page in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) at a phone's width. A workstation trains and signs an adapter,
//! pushes it over the air to a device serving the page, and the operator's browser must show
//! that adapter, start a job from the page, and see its quicklook and km² appear. The
//! screenshot is kept as a test artefact (`$FLOOD_ARTEFACTS`, else cargo's test tmp dir).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use floodrt::ota::server::{ServeConfig, Server};
use floodrt::ota::web::HttpConfig;
use floodrt::ota::Device;

use crate::ota::{push, run_export, store_with, Workstation};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// None (the caller skips) when the browser is not installed, except in CI.
    fn start() -> Option<Driver> {
        if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)"
            );
            eprintln!("skipping: no browser (apt install chromium chromium-driver)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshot goes.
fn artefact_dir() -> PathBuf {
    let dir = std::env::var_os("FLOOD_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the element `locator` finds.
async fn text_of(browser: &Client, locator: Locator<'_>) -> String {
    browser.find(locator).await.unwrap().text().await.unwrap()
}

/// The text of element `id`, polled until `ready` accepts it (or the time runs out).
async fn wait_for_text(
    browser: &Client,
    id: &str,
    within: Duration,
    ready: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let text = match browser.find(Locator::Id(id)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ready(&text) {
            return text;
        }
        assert!(start.elapsed() < within, "#{id} still shows {text:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn drive(driver: &Driver, page: SocketAddr, shots: &Path) -> String {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            // A phone's width; tall enough for a job card under the status.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=430,1500", "--force-device-scale-factor=1"],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a browser");
    browser.goto(&format!("http://{page}/")).await.unwrap();

    // The adapter pushed over the air, its health check, the device's name.
    wait_for_text(&browser, "adapter-version", Duration::from_secs(30), |t| {
        t == "v7"
    })
    .await;
    let health = wait_for_text(&browser, "health", Duration::from_secs(5), |t| {
        !t.is_empty()
    })
    .await;
    assert!(health.starts_with("passed"), "{health}");
    assert_eq!(
        text_of(&browser, Locator::Id("device-id")).await,
        "ground-station-1"
    );

    // Start a job from the page; it runs, and its quicklook and km² appear by themselves.
    let scenes = browser.find(Locator::Id("scene")).await.unwrap();
    scenes.select_by_value("flood/bolivia.tif").await.unwrap();
    browser
        .find(Locator::Id("start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let done = browser
        .wait()
        .at_most(Duration::from_secs(300))
        .for_element(Locator::Css(".job[data-state='done'] img.quicklook"))
        .await
        .expect("the job finished and its quicklook appeared");
    let start = Instant::now();
    loop {
        let width = browser
            .execute("return document.querySelector('.job[data-state=\"done\"] img.quicklook').naturalWidth", vec![])
            .await
            .unwrap();
        if width.as_u64().unwrap_or(0) > 0 {
            assert_eq!(
                width, 512,
                "the quicklook of a 512² chip is drawn at full size"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the quicklook did not load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        done.attr("alt").await.unwrap().as_deref(),
        Some("quicklook of flood/bolivia.tif")
    );
    let figures = text_of(&browser, Locator::Css(".job[data-state='done'] .water-km2")).await;
    let links = browser
        .find_all(Locator::Css(".job[data-state='done'] .links a"))
        .await
        .unwrap();
    let mut labels = Vec::new();
    for link in &links {
        labels.push(link.text().await.unwrap());
    }
    assert_eq!(labels, ["mask GeoTIFF", "GeoJSON", "report"]);

    // The finished job's card at the top of the screen, then the screenshot.
    browser
        .execute("document.querySelector('.job').scrollIntoView()", vec![])
        .await
        .unwrap();
    browser
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = shots.join("ground-station.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    browser.close().await.unwrap();
    figures
}

#[test]
fn the_ground_station_page_shows_the_pushed_adapter_and_a_job_started_from_it_in_a_real_browser() {
    let shared = need_shared!();
    let Some(driver) = Driver::start() else {
        return;
    };
    let ws = Workstation::new(&shared, 3);
    let (d, run, key) = (ws.dir.path(), ws.run.clone(), ws.key.clone());
    run_export(&run, d, "v7", &key, 7);
    let jobs = d.join("jobs");
    std::fs::create_dir_all(jobs.join("flood")).unwrap();
    std::fs::copy(
        shared.join("data/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif"),
        jobs.join("flood/bolivia.tif"),
    )
    .unwrap();
    let store = store_with(d, "device", &d.join("v7-base.onnx"));
    let device = Device::open("ground-station-1", &store, &d.join("ws.key.pub"), 2)
        .unwrap()
        .with_jobs(&jobs)
        .unwrap();
    let config = ServeConfig {
        max_connections: 4,
        idle_timeout: Duration::from_secs(30),
        frame_timeout: Duration::from_secs(30),
        http: Some(HttpConfig {
            listen: "127.0.0.1:0".into(),
            max_connections: 16,
            header_timeout: Duration::from_secs(30),
        }),
    };
    let server = Server::bind("127.0.0.1:0", device, config).unwrap();
    let ota = server.local_addr().unwrap();
    let page = server.http_addr().unwrap().unwrap();
    std::thread::spawn(move || server.run());

    let pushed = push(&ota.to_string(), &d.join("v7.flad"), &[]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let figures = runtime.block_on(drive(&driver, page, &artefact_dir()));

    // What the page showed is what the job recorded.
    let record = std::fs::read_to_string(jobs.join("results/000001-bolivia/job.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["adapter"], 7);
    let km2 = record["water_km2"].as_f64().unwrap();
    assert!(km2 > 0.0);
    // The page's rounding: 3 decimals below 10 km², 1 above.
    let shown = if km2 < 10.0 {
        format!("{km2:.3}")
    } else {
        format!("{km2:.1}")
    };
    assert_eq!(figures, format!("water {shown} km²"));
}
