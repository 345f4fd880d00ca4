//! The diagnostics page: one server-rendered HTML document (no JavaScript needed; a few lines of
//! it filter the tables). Every value is escaped; no private key is ever in the data it renders.

use super::view::{DiagnosticRow, EnvoyRow, Overview};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn render(overview: &Overview) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let errors = overview.diagnostics.iter().filter(|d| d.severity == "error").count();
    let warnings = overview.diagnostics.len() - errors;
    let synced = overview.envoys.iter().filter(|e| e.state == "SYNCED").count();
    let expiring = overview.certificates.iter().filter(|c| !c.warning.is_empty()).count();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ambassador-xds</title><style>{STYLE}</style></head><body>\n\
         <header><h1>ambassador-xds</h1><p class=\"meta\">configuration serial {} · {} · generated {}</p>\
         <nav><a href=\"#envoys\">Envoys</a><a href=\"#diagnostics\">Diagnostics</a><a href=\"#routes\">Routes</a>\
         <a href=\"#certificates\">Certificates</a><a href=\"#resources\">Resources</a>\
         <a href=\"/debug/status\">JSON</a><a href=\"/metrics\">Metrics</a></nav></header>\n<main>\n",
        overview.serial,
        if overview.ready { "ready" } else { "<span class=\"bad\">not ready</span>" },
        esc(&overview.generated_at)
    );
    let _ = writeln!(
        html,
        "<section class=\"cards\">{}{}{}{}</section>",
        card("Envoys", &format!("{synced}/{}", overview.envoys.len()), "synced", synced == overview.envoys.len()),
        card("Errors", &errors.to_string(), &format!("{warnings} warnings"), errors == 0),
        card("Routes", &overview.routes.len().to_string(), &resources_line(&overview.resources), true),
        card("Certificates", &overview.certificates.len().to_string(), &format!("{expiring} expiring"), expiring == 0),
    );
    envoys(&mut html, &overview.envoys);
    diagnostics(&mut html, &overview.diagnostics);
    routes(&mut html, overview);
    certificates(&mut html, overview);
    inventory(&mut html, overview);
    let _ = write!(html, "</main>\n<script>{SCRIPT}</script>\n</body></html>\n");
    html
}

fn card(title: &str, value: &str, detail: &str, good: bool) -> String {
    format!(
        "<div class=\"card {}\"><div class=\"title\">{}</div><div class=\"value\">{}</div><div class=\"detail\">{}</div></div>",
        if good { "good" } else { "bad" },
        esc(title),
        esc(value),
        esc(detail)
    )
}

fn resources_line(resources: &BTreeMap<&'static str, usize>) -> String {
    resources.iter().filter(|(_, n)| **n > 0).map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(" · ")
}

fn state_badge(state: &str) -> String {
    let class = match state {
        "SYNCED" => "ok",
        "NACKED" => "err",
        _ => "warn",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(state))
}

fn envoys(html: &mut String, envoys: &[EnvoyRow]) {
    html.push_str("<section id=\"envoys\"><h2>Connected Envoys</h2>\n");
    if envoys.is_empty() {
        html.push_str("<p class=\"empty\">No Envoy is connected.</p></section>\n");
        return;
    }
    html.push_str(
        "<table><thead><tr><th>Node</th><th>Envoy</th><th>Stream</th><th>Connected since</th>\
         <th>State</th><th>Types (ACKed / sent)</th><th>Last NACK</th></tr></thead><tbody>\n",
    );
    for envoy in envoys {
        let types: Vec<String> = envoy
            .types
            .iter()
            .map(|t| {
                format!(
                    "{} {} <code>{}</code> / <code>{}</code>",
                    esc(t.xds_type),
                    state_badge(t.state),
                    esc(&t.acked),
                    esc(&t.sent)
                )
            })
            .collect();
        let nacks: Vec<String> = envoy
            .nacks
            .iter()
            .map(|n| {
                format!(
                    "<div class=\"nack\"><b>{}</b> {}<br><span class=\"culprits\">{}</span></div>",
                    esc(n.xds_type),
                    esc(n.message.lines().next().unwrap_or_default()),
                    esc(&n.culprits.join(", "))
                )
            })
            .collect();
        let _ = writeln!(
            html,
            "<tr class=\"envoy\" data-state=\"{}\"><td><b>{}</b><br><span class=\"dim\">{}</span></td><td>{}</td>\
             <td>{} {}<br><span class=\"dim\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(envoy.state),
            esc(&envoy.node),
            esc(&envoy.cluster),
            esc(&envoy.agent),
            esc(envoy.service),
            esc(envoy.protocol),
            esc(&envoy.peer),
            esc(&envoy.connected_since),
            state_badge(envoy.state),
            types.join("<br>"),
            nacks.join("")
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn diagnostics(html: &mut String, rows: &[DiagnosticRow]) {
    html.push_str(
        "<section id=\"diagnostics\"><h2>Diagnostics</h2>\n<div class=\"filters\">\
         <input type=\"search\" placeholder=\"Filter by file, resource or message\" data-filter=\"diagnostics\">\
         <select data-severity=\"diagnostics\"><option value=\"\">all severities</option>\
         <option value=\"error\">errors</option><option value=\"warning\">warnings</option></select></div>\n",
    );
    if rows.is_empty() {
        html.push_str("<p class=\"empty\">No problems.</p></section>\n");
        return;
    }
    html.push_str(
        "<table id=\"diagnostics-table\"><thead><tr><th>Severity</th><th>Kind</th><th>File</th><th>Doc</th>\
         <th>Resource</th><th>Message</th></tr></thead><tbody>\n",
    );
    for row in rows {
        let _ = writeln!(
            html,
            "<tr class=\"diagnostic\" data-severity=\"{}\"><td><span class=\"badge {}\">{}</span></td><td>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(row.severity),
            if row.severity == "error" { "err" } else { "warn" },
            esc(row.severity),
            esc(row.kind),
            esc(&row.file),
            row.document.map(|d| d.to_string()).unwrap_or_default(),
            esc(&row.resource),
            esc(&row.message)
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn routes(html: &mut String, overview: &Overview) {
    html.push_str(
        "<section id=\"routes\"><h2>Routes, in Envoy's order</h2>\n<div class=\"filters\">\
         <input type=\"search\" placeholder=\"Filter routes\" data-filter=\"routes\"></div>\n\
         <table id=\"routes-table\"><thead><tr><th>#</th><th>Route</th><th>Match</th><th>Host</th><th>Target</th>\
         <th>Upstream TLS</th></tr></thead><tbody>\n",
    );
    for route in &overview.routes {
        let target = if route.fail_closed.is_empty() {
            esc(&route.target)
        } else {
            format!(
                "<span class=\"bad\">{}</span><br><span class=\"dim\">{}</span>",
                esc(&route.target),
                esc(&route.fail_closed)
            )
        };
        let _ = writeln!(
            html,
            "<tr class=\"route\"><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            route.order,
            esc(&route.name),
            esc(&route.matches),
            esc(&route.host),
            target,
            esc(&route.tls_context)
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn certificates(html: &mut String, overview: &Overview) {
    html.push_str("<section id=\"certificates\"><h2>Certificates served</h2>\n");
    if overview.certificates.is_empty() {
        html.push_str("<p class=\"empty\">No certificate is served.</p></section>\n");
        return;
    }
    html.push_str(
        "<table><thead><tr><th>Secret</th><th>Role</th><th>Subject</th><th>SANs</th><th>Issuer</th>\
         <th>Expires</th></tr></thead><tbody>\n",
    );
    for cert in &overview.certificates {
        let expires = if cert.warning.is_empty() {
            esc(&cert.not_after_text)
        } else {
            format!("{}<br><span class=\"badge warn\">{}</span>", esc(&cert.not_after_text), esc(&cert.warning))
        };
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&cert.secret),
            esc(cert.role),
            esc(&cert.subject),
            esc(&cert.sans.join(", ")),
            esc(&cert.issuer),
            expires
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn inventory(html: &mut String, overview: &Overview) {
    html.push_str("<section id=\"resources\"><h2>Loaded resources</h2>\n");
    let mut by_kind: BTreeMap<&str, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    for row in &overview.inventory {
        by_kind
            .entry(&row.kind)
            .or_default()
            .entry(&row.file)
            .or_default()
            .push(format!("{}/{}", row.namespace, row.name));
    }
    for (kind, files) in by_kind {
        let count: usize = files.values().map(Vec::len).sum();
        let _ = writeln!(html, "<details open><summary><b>{}</b> · {count}</summary><ul>", esc(kind));
        for (file, names) in files {
            let _ = writeln!(html, "<li><code>{}</code>: {}</li>", esc(file), esc(&names.join(", ")));
        }
        html.push_str("</ul></details>\n");
    }
    html.push_str("</section>\n");
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{--fg:#1f2933;--dim:#66788a;--line:#e4e7eb;--bg:#f7f9fb;--ok:#0f8a5f;--warn:#b7791f;--err:#c53030;--accent:#2b6cb0}\
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
header{background:#102a43;color:#fff;padding:16px 28px}header h1{margin:0;font-size:20px;letter-spacing:.3px}\
.meta{margin:4px 0 8px;color:#bcccdc}nav a{color:#9fb3c8;margin-right:16px;text-decoration:none}nav a:hover{color:#fff}\
main{padding:20px 28px;max-width:1500px}h2{font-size:16px;margin:28px 0 10px}\
.cards{display:flex;gap:14px;flex-wrap:wrap}.card{background:#fff;border:1px solid var(--line);border-left:4px solid var(--ok);\
border-radius:6px;padding:12px 16px;min-width:190px}.card.bad{border-left-color:var(--err)}.card .title{color:var(--dim);font-size:12px;\
text-transform:uppercase;letter-spacing:.5px}.card .value{font-size:24px;font-weight:600}.card .detail{color:var(--dim);font-size:12px}\
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line);border-radius:6px}\
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}th{background:#f0f4f8;font-weight:600;\
font-size:12px;color:#334e68}tr:hover td{background:#fbfdff}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}\
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:11px;font-weight:600;color:#fff}.badge.ok{background:var(--ok)}\
.badge.warn{background:var(--warn)}.badge.err{background:var(--err)}.bad{color:var(--err)}.dim,.culprits{color:var(--dim);font-size:12px}\
.nack{margin-bottom:6px}.empty{color:var(--dim)}.filters{margin-bottom:8px;display:flex;gap:8px}\
.filters input{flex:1;max-width:420px;padding:6px 9px;border:1px solid var(--line);border-radius:5px}\
.filters select{padding:6px;border:1px solid var(--line);border-radius:5px}details{background:#fff;border:1px solid var(--line);\
border-radius:6px;padding:8px 12px;margin-bottom:8px}summary{cursor:pointer}ul{margin:6px 0 0 0;padding-left:20px}";

/// Filters table rows by text and severity; the page works without it.
const SCRIPT: &str = "\
function applyFilters(table){var box=document.querySelector('[data-filter=\"'+table+'\"]');\
var sev=document.querySelector('[data-severity=\"'+table+'\"]');var text=(box?box.value:'').toLowerCase();\
var want=sev?sev.value:'';document.querySelectorAll('#'+table+'-table tbody tr').forEach(function(row){\
var show=row.textContent.toLowerCase().indexOf(text)>=0&&(!want||row.getAttribute('data-severity')===want);\
row.style.display=show?'':'none';});}\
document.querySelectorAll('[data-filter],[data-severity]').forEach(function(el){var t=el.getAttribute('data-filter')||\
el.getAttribute('data-severity');el.addEventListener('input',function(){applyFilters(t);});});";
