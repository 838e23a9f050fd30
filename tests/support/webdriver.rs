//! A real headless browser for the status page's tests: Debian's Chromium, driven by its
//! ChromeDriver over the W3C WebDriver protocol (JSON over HTTP on loopback).
//!
//! `scripts/test-services.sh` installs both (`chromium`, `chromium-driver`). Without them a test
//! skips, saying so, except under `CI=true`, where it fails.

use std::{
    io::{BufRead, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A phone's viewport: CSS pixels, as an iPhone 14's.
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// Whether Chromium and ChromeDriver are installed (else the test's skip or failure, by CI).
pub fn available(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    crate::support::unavailable(
        test,
        "Chromium and ChromeDriver (scripts/test-services.sh installs them)",
    );
    false
}

impl Browser {
    /// A new browser: a desktop window of `size`, or with `mobile` a phone's screen of that
    /// size (device metrics, touch and the viewport meta tag honoured, as on a phone).
    pub fn start(profile: &Path, size: (u32, u32), mobile: bool) -> Browser {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !crate::support::listening(port) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        // The flags a closed network needs (no background or component traffic), and a new
        // profile per browser.
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({ "binary": CHROMIUM });
        if mobile {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": size.0, "height": size.1, "pixelRatio": 1.0,
                    "mobile": true, "touch": true,
                },
            });
        } else {
            args.push(format!("--window-size={},{}", size.0, size.1));
        }
        options["args"] = json!(args);
        let reply = browser.call(
            "POST",
            "/session",
            Some(json!({
                "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                }},
            })),
        );
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test with its message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // ChromeDriver keeps the connection open whatever the request says: read by length.
        let mut reader = std::io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("{method} {path}: no Content-Length in {head}"));
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        let doc: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {head}\n{body}"));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{method} {path}: {head}\n{doc}"
        );
        doc["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    /// Run `script` (a function body) in the page; what it returns.
    pub fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The viewport as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self.call("GET", &self.at("/screenshot"), None);
        base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium; the driver is killed after it.
            let path = self.at("");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A PNG's pixels as RGB(A) rows: (width, height, bytes per pixel, bytes).
pub fn decode(png_bytes: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let bpp = info.color_type.samples();
    (info.width, info.height, bpp, buf)
}

/// How many pixels of the PNG have exactly the colour `rgb`.
pub fn count_colour(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let (_, _, bpp, buf) = decode(png_bytes);
    buf.chunks_exact(bpp).filter(|p| p[..3] == rgb).count()
}
