//! A real browser for the tests: headless Chromium driven through `chromedriver` with the W3C
//! WebDriver protocol (JSON over HTTP; the five commands the tests need are written out here
//! rather than pulling in a WebDriver crate and its dependency tree).
//!
//! `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (Debian's packages, which `scripts/install-tools chromium` installs).

use super::http;
use super::process::{free_port, localhost, Process};
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DRIVER_READY: Duration = Duration::from_secs(30);
/// Each WebDriver command, starting Chromium included, may take this long on a loaded machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Browser {
    driver: SocketAddr,
    session: String,
    _process: Process,
}

fn binary(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub fn start(log: &Path) -> Result<Browser, String> {
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER_BIN", "/usr/bin/chromedriver");
        for tool in [&chromium, &chromedriver] {
            if !tool.exists() {
                return Err(format!("{} is missing: run scripts/install-tools chromium", tool.display()));
            }
        }
        let driver = localhost(free_port());
        let mut command = std::process::Command::new(&chromedriver);
        command.arg(format!("--port={}", driver.port())).arg("--allowed-ips=127.0.0.1");
        let process = Process::spawn("chromedriver", command, log)?;
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            let ready = call(driver, "GET", "/status", None).is_ok_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("chromedriver on {driver} never became ready"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--window-size=1400,1800"],
            },
        }}});
        let created = call(driver, "POST", "/session", Some(&capabilities))?;
        let session = created["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session in chromedriver's answer: {created}"))?
            .to_string();
        Ok(Browser { driver, session, _process: process })
    }

    fn command(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value, String> {
        let answer = call(self.driver, method, &format!("/session/{}/{what}", self.session), body)?;
        Ok(answer["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command("POST", "url", Some(&json!({ "url": url }))).map(drop)
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.command("POST", "execute/sync", Some(&json!({ "script": script, "args": args })))
    }

    /// The page as the browser renders it now (after scripts ran).
    pub fn dom(&self) -> Result<String, String> {
        let html = self.execute("return document.documentElement.outerHTML;", json!([]))?;
        html.as_str().map(str::to_string).ok_or_else(|| format!("outerHTML is not a string: {html}"))
    }

    /// What a user reads: the rendered text (hidden rows excluded).
    pub fn visible_text(&self) -> Result<String, String> {
        let text = self.execute("return document.body.innerText;", json!([]))?;
        text.as_str().map(str::to_string).ok_or_else(|| format!("innerText is not a string: {text}"))
    }

    /// A PNG of the whole page.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        // The window is the page's height plus the browser's own frame around the viewport.
        let sizes = self.execute(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
            json!([]),
        )?;
        let height = sizes[0].as_u64().unwrap_or(1800) + sizes[1].as_u64().unwrap_or(0);
        let _ = self.command("POST", "window/rect", Some(&json!({"width": 1400, "height": height.clamp(600, 8000)})));
        let png = self.command("GET", "screenshot", None)?;
        let png = png.as_str().ok_or("no screenshot in chromedriver's answer")?;
        base64::engine::general_purpose::STANDARD.decode(png).map_err(|err| format!("screenshot is not base64: {err}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(self.driver, "DELETE", &format!("/session/{}", self.session), None);
    }
}

/// One WebDriver call; an answer with `value.error` is an error.
fn call(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).or_else(|| (method == "POST").then(|| "{}".to_string()));
    let response =
        http::request_within(driver, method, path, &[("host", &driver.to_string())], body.as_deref(), COMMAND_TIMEOUT)
            .map_err(|err| format!("chromedriver {method} {path}: {err}"))?;
    let answer = response.json()?;
    if let Some(error) = answer["value"]["error"].as_str() {
        return Err(format!("chromedriver {method} {path}: {error}: {}", answer["value"]["message"]));
    }
    Ok(answer)
}
