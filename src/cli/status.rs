//! `ambassador-xds status [--admin-address A]`: the connected Envoys as a terminal table, one row
//! per stream, SYNCED / STALE / NACKED per type (in push order) (what `istioctl proxy-status` is to Istio). Reads
//! the admin endpoint's `/debug/status`. Exit 0 when every Envoy is synced, 1 when any is not,
//! 2 when the server cannot be asked.

use super::exit;
use crate::xds::XdsType;
use anyhow::Context as _;
use clap::Args;
use http_body_util::BodyExt as _;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The admin address of the `serve` to ask
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "HOST:PORT")]
    pub admin_address: SocketAddr,
}

/// Asking takes no longer than this.
const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &StatusArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return exit::ERROR;
        }
    };
    let status = match runtime.block_on(async { tokio::time::timeout(TIMEOUT, fetch(args.admin_address)).await }) {
        Ok(Ok(status)) => status,
        Ok(Err(err)) => {
            eprintln!("error: {err:#}");
            return exit::ERROR;
        }
        Err(_) => {
            eprintln!("error: {} did not answer within {}s", args.admin_address, TIMEOUT.as_secs());
            return exit::ERROR;
        }
    };
    let (table, all_synced) = render(&status);
    print!("{table}");
    if all_synced {
        exit::OK
    } else {
        exit::DIFFERENT
    }
}

/// `GET /debug/status` over plain HTTP/1.1.
async fn fetch(address: SocketAddr) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to the admin address {address}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .context("starting HTTP/1.1")?;
    tokio::spawn(connection);
    let request = http::Request::get("/debug/status")
        .header(http::header::HOST, address.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await.context("GET /debug/status")?;
    let code = response.status();
    let body = response.into_body().collect().await.context("reading /debug/status")?.to_bytes();
    anyhow::ensure!(code.is_success(), "GET /debug/status on {address}: {code}");
    serde_json::from_slice(&body).with_context(|| format!("/debug/status on {address} is not JSON"))
}

/// The table, and whether every Envoy is synced. Pure: unit-tested on `/debug/status` JSON.
pub fn render(status: &Value) -> (String, bool) {
    let envoys = status["envoys"].as_array().cloned().unwrap_or_default();
    let types = XdsType::PUSH_ORDER.map(XdsType::short_name);
    let mut header: Vec<String> = ["NODE", "CLUSTER", "ENVOY", "PEER", "STREAM"].map(String::from).to_vec();
    header.extend(types.iter().map(|t| t.to_string()));
    header.push("CONNECTED SINCE".into());
    let mut rows = vec![header];
    let mut not_synced = 0;
    for envoy in &envoys {
        let text = |key: &str| envoy[key].as_str().unwrap_or_default().to_string();
        if text("state") != "SYNCED" {
            not_synced += 1;
        }
        let mut row = vec![
            or_dash(text("node")),
            or_dash(text("cluster")),
            or_dash(text("agent")),
            text("peer"),
            format!("{} {}", text("service"), text("protocol")),
        ];
        let by_type = envoy["types"].as_array().cloned().unwrap_or_default();
        for short_name in types {
            let cell = by_type
                .iter()
                .find(|t| t["type"] == short_name)
                .map(|t| t["state"].as_str().unwrap_or("?").to_string())
                .unwrap_or_else(|| "-".to_string());
            row.push(cell);
        }
        row.push(text("connected_since"));
        rows.push(row);
    }
    let mut out = table(&rows);
    let serial = status["serial"].as_u64().unwrap_or_default();
    out.push_str(&match (envoys.len(), not_synced) {
        (0, _) => format!("no Envoy connected (serving configuration serial {serial})\n"),
        (n, 0) => format!("{n} Envoy stream(s), all synced to configuration serial {serial}\n"),
        (n, bad) => format!("{n} Envoy stream(s), {bad} not synced to configuration serial {serial}\n"),
    });
    (out, not_synced == 0)
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(states: &[(&str, &str)]) -> Value {
        serde_json::json!({
            "serial": 7,
            "envoys": [{
                "node": "edge-1", "cluster": "edge", "agent": "envoy 1.40.0", "peer": "127.0.0.1:5000",
                "service": "ADS", "protocol": "sotw", "connected_since": "2026-12-01T10:00:00Z",
                "state": states.iter().map(|(_, s)| *s).max_by_key(|s| match *s { "NACKED" => 2, "STALE" => 1, _ => 0 }).unwrap_or("SYNCED"),
                "types": states.iter().map(|(t, s)| serde_json::json!({"type": t, "state": s})).collect::<Vec<_>>(),
            }]
        })
    }

    #[test]
    fn a_synced_envoy_is_one_row_with_every_type() {
        let (text, synced) = render(&status(&[("CDS", "SYNCED"), ("LDS", "SYNCED")]));
        assert!(synced);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        let header: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(
            header,
            ["NODE", "CLUSTER", "ENVOY", "PEER", "STREAM", "SDS", "CDS", "EDS", "LDS", "RDS", "CONNECTED SINCE"]
        );
        let row: Vec<&str> = lines[1].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(
            row,
            [
                "edge-1",
                "edge",
                "envoy 1.40.0",
                "127.0.0.1:5000",
                "ADS sotw",
                "-",
                "SYNCED",
                "-",
                "SYNCED",
                "-",
                "2026-12-01T10:00:00Z"
            ]
        );
        // Columns line up: each type's state starts under its name.
        let eds_at = lines[0].find("EDS").unwrap();
        assert_eq!(&lines[1][eds_at..eds_at + 1], "-", "{text}");
        assert_eq!(lines[2], "1 Envoy stream(s), all synced to configuration serial 7");
    }

    #[test]
    fn any_type_not_synced_fails_the_command() {
        let (text, synced) = render(&status(&[("CDS", "SYNCED"), ("SDS", "STALE")]));
        assert!(!synced);
        assert!(text.contains("STALE"), "{text}");
        assert!(text.ends_with("1 Envoy stream(s), 1 not synced to configuration serial 7\n"), "{text}");
        let (_, synced) = render(&status(&[("RDS", "NACKED")]));
        assert!(!synced);
    }

    #[test]
    fn nobody_connected_is_synced() {
        let (text, synced) = render(&serde_json::json!({"serial": 3, "envoys": []}));
        assert!(synced);
        assert!(text.ends_with("no Envoy connected (serving configuration serial 3)\n"), "{text}");
    }
}
