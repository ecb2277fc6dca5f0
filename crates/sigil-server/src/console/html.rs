//! The console's pages, rendered on the server. Every value that did not
//! come from this file's string literals (stub fields, filter values,
//! error messages, key names) goes into the page through [`esc`], the one
//! escaping function: text and attribute values alike (it escapes quotes
//! too). The pages carry no script and no inline style (the
//! Content-Security-Policy forbids both); the style sheet is [`STYLE`].

use std::fmt::{self, Write};

use sigil_reports::export::left_for_reviewer;
use sigil_reports::review::{allowed_moves, CLASSIFICATIONS, MAX_ANNOTATION_BYTES};
use sigil_reports::time::rfc3339_ms;
use sigil_reports::{ReportCounts, ReportRecord, ReportStatus};

/// The console's style sheet, served as `/style.css`.
pub const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;\
text-align:left;vertical-align:top}th{background:#f2f2f2}.overdue{background:#fdd;font-weight:bold}\
.error{background:#fdd;border:1px solid #c00;padding:.5em}.ok{background:#dfd;padding:.5em}\
form.inline{display:inline}fieldset{margin:.5em 0}code{word-break:break-all}\
nav{margin-bottom:1em}nav form{display:inline}textarea{width:40em;height:4em}";

/// `s` escaped for HTML text and for double- or single-quoted attribute
/// values: the console's one escaping function.
pub fn esc(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// A value that prints escaped (see [`esc`]).
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A whole page: `title` and `body` (already rendered), with the
/// signed-in reviewer's name and a sign-out form when there is one.
pub fn page(title: &str, signed_in: Option<(&str, &str)>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · sigil console</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>",
        esc(title)
    );
    if let Some((name, csrf)) = signed_in {
        let _ = write!(
            out,
            "<nav><a href=\"/queue\">Queue</a> · signed in as <b>{}</b> \
             <form method=\"post\" action=\"/signout\">{}<button id=\"signout\">Sign out</button></form></nav>",
            esc(name),
            csrf_field(csrf)
        );
    }
    out.push_str(body);
    out.push_str("</body></html>\n");
    out
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A message box: `class` is "error" or "ok".
pub fn message(class: &'static str, text: &str) -> String {
    format!("<p class=\"{class}\" id=\"message\">{}</p>", esc(text))
}

/// The sign-in page.
pub fn signin(csrf: &str, error: Option<&str>) -> String {
    let mut body = String::from("<h1>sigil reviewer console</h1>");
    if let Some(e) = error {
        body.push_str(&message("error", e));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/signin\">{}<label>API key (role reviewer) \
         <input type=\"password\" name=\"key\" id=\"key\" autocomplete=\"off\" required></label> \
         <button id=\"signin\">Sign in</button></form>",
        csrf_field(csrf)
    );
    page("Sign in", None, &body)
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Whole days left until `deadline_ms`, or whole days since it passed:
/// (overdue, days, as text).
pub fn days_left(deadline_ms: i64, now_ms: i64) -> (bool, String) {
    if deadline_ms < now_ms {
        let days = (now_ms - deadline_ms) / DAY_MS;
        (true, format!("overdue by {days} days"))
    } else {
        let days = (deadline_ms - now_ms) / DAY_MS;
        (false, format!("{days} days left"))
    }
}

/// The queue's filter, as the form and the links carry it.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    /// "" means any status.
    pub status: String,
    pub list: String,
    pub category: String,
    /// YYYY-MM-DD, detected on or after.
    pub from: String,
    /// YYYY-MM-DD, detected before.
    pub to: String,
    pub submitter: String,
    pub page: String,
}

impl QueueQuery {
    /// The query string of this filter at `page` (a store page token).
    pub fn href(&self, page: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &self.status),
            ("list", &self.list),
            ("category", &self.category),
            ("from", &self.from),
            ("to", &self.to),
            ("submitter", &self.submitter),
        ] {
            q.append_pair(k, v);
        }
        if let Some(p) = page {
            q.append_pair("page", p);
        }
        format!("/queue?{}", q.finish())
    }
}

/// The queue page.
pub fn queue(
    q: &QueueQuery,
    counts: &ReportCounts,
    stubs: &[ReportRecord],
    next: Option<&str>,
    now_ms: i64,
) -> String {
    let mut b = String::from("<h1>Review queue</h1>");
    let _ = write!(
        b,
        "<p id=\"counts\">Matching the filter: {} pending, {} confirmed, {} dismissed, {} reported \
         ({} in all).</p>",
        counts.pending,
        counts.confirmed,
        counts.dismissed,
        counts.reported,
        counts.total()
    );
    b.push_str(
        "<form method=\"get\" action=\"/queue\" id=\"filter\"><fieldset><legend>Filter</legend>",
    );
    b.push_str("<label>Status <select name=\"status\" id=\"status\">");
    for (value, label) in std::iter::once(("", "any"))
        .chain(ReportStatus::ALL.iter().map(|s| (s.as_str(), s.as_str())))
    {
        let selected = if q.status == value { " selected" } else { "" };
        let _ = write!(
            b,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(label)
        );
    }
    b.push_str("</select></label> ");
    for (name, label, value, kind) in [
        ("list", "List", &q.list, "text"),
        ("category", "Category", &q.category, "text"),
        ("from", "Detected from", &q.from, "date"),
        ("to", "to (before)", &q.to, "date"),
        ("submitter", "Submitter", &q.submitter, "text"),
    ] {
        let _ = write!(
            b,
            "<label>{label} <input type=\"{kind}\" name=\"{name}\" id=\"{name}\" value=\"{}\"></label> ",
            esc(value)
        );
    }
    b.push_str("<button id=\"apply\">Apply</button></fieldset></form>");
    if stubs.is_empty() {
        b.push_str("<p id=\"empty\">No stub matches this filter.</p>");
    } else {
        b.push_str(
            "<table id=\"queue\"><tr><th>Stub</th><th>Status</th><th>Detected</th>\
             <th>Preservation deadline</th><th>Days left</th><th>Matches</th>\
             <th>Sightings</th><th>Submitter</th></tr>",
        );
        for r in stubs {
            let (overdue, days) = days_left(r.preservation_deadline_ms, now_ms);
            let lists: Vec<String> = r
                .matches
                .iter()
                .map(|m| format!("{} / {}", m.list, m.category))
                .collect();
            let _ = write!(
                b,
                "<tr{}><td><a href=\"/report/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if overdue { " class=\"overdue\"" } else { "" },
                esc(&encode_path(&r.id)),
                esc(&r.id),
                esc(r.status.as_str()),
                esc(&rfc3339_ms(r.detected_at_ms)),
                esc(&rfc3339_ms(r.preservation_deadline_ms)),
                esc(&days),
                esc(&lists.join(", ")),
                r.occurrence_count,
                esc(&r.submitter_ref),
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(b, "<p><a href=\"{}\">First page</a>", esc(&q.href(None)));
    if let Some(token) = next {
        let _ = write!(
            b,
            " · <a id=\"next\" href=\"{}\">Next page</a>",
            esc(&q.href(Some(token)))
        );
    }
    b.push_str("</p>");
    b
}

/// A path segment, URL-encoded (stub ids are the store's, but a link is
/// built the same way whatever they hold).
pub fn encode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, REF_ENCODE).to_string()
}

/// Everything but unreserved characters is encoded.
const REF_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The content reference as a link through `template` (validated at
/// config load to be http or https, holding `{content_ref}`), or as text
/// without one. The reference is URL-encoded into the template, so it
/// cannot change the link's scheme or host, and the whole is escaped.
pub fn content_link(template: Option<&str>, content_ref: &str) -> String {
    match template {
        Some(t) if !content_ref.is_empty() => {
            let url = t.replace(
                crate::config::ConsoleConfig::CONTENT_REF,
                &encode_path(content_ref),
            );
            format!(
                "<a class=\"content\" rel=\"noreferrer noopener\" target=\"_blank\" href=\"{}\">{}</a>",
                esc(&url),
                esc(content_ref)
            )
        }
        _ => format!("<code>{}</code>", esc(content_ref)),
    }
}

/// The report page.
pub fn report(
    r: &ReportRecord,
    csrf: &str,
    content_url: Option<&str>,
    flash: Option<(&'static str, &str)>,
    now_ms: i64,
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Stub <code id=\"stub-id\">{}</code></h1>",
        esc(&r.id)
    );
    if let Some((class, text)) = flash {
        b.push_str(&message(class, text));
    }
    let (overdue, days) = days_left(r.preservation_deadline_ms, now_ms);
    let id_path = encode_path(&r.id);
    let _ = write!(
        b,
        "<p>Export: <a id=\"export-xml\" href=\"/report/{0}/cybertipline.xml\">CyberTipline XML</a> · \
         <a id=\"export-json\" href=\"/report/{0}/cybertipline.json\">JSON</a></p>",
        esc(&id_path)
    );
    b.push_str("<table id=\"details\">");
    let viewed = match r.viewed {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not recorded",
    };
    let quality = r.quality.map(|q| q.to_string()).unwrap_or_default();
    let rows: [(&str, String); 14] = [
        ("Status", r.status.as_str().to_string()),
        ("Version", r.version.to_string()),
        ("Incident type", r.incident_type.clone()),
        ("Detected", rfc3339_ms(r.detected_at_ms)),
        (
            "Preservation deadline",
            format!("{} ({days})", rfc3339_ms(r.preservation_deadline_ms)),
        ),
        ("Content viewed by reviewer", viewed.to_string()),
        (
            "Industry classification",
            r.classification.clone().unwrap_or_default(),
        ),
        ("Reviewer", r.reviewer.clone().unwrap_or_default()),
        ("Submitter", r.submitter_ref.clone()),
        ("File name", r.file_name.clone()),
        ("Source", r.source.clone()),
        ("MD5", r.md5.clone()),
        ("SHA-1", r.sha1.clone()),
        ("SHA-256", r.sha256.clone()),
    ];
    for (k, v) in rows.iter() {
        let class = if *k == "Preservation deadline" && overdue {
            " class=\"overdue\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr{class}><th>{k}</th><td><code>{}</code></td></tr>",
            esc(v)
        );
    }
    let _ = write!(
        b,
        "<tr><th>PDQ</th><td><code>{}</code> (quality {})</td></tr>\
         <tr><th>Content</th><td id=\"content-ref\">{}</td></tr></table>",
        esc(&r.pdq),
        esc(&quality),
        content_link(content_url, &r.content_ref)
    );
    b.push_str("<p>The console never fetches or shows content: open it on your platform.</p>");

    b.push_str(
        "<h2>Matches</h2><table id=\"matches\"><tr><th>List</th><th>Entry id</th>\
         <th>Category</th><th>Kind</th><th>Distance</th><th>Variant</th><th>Note</th></tr>",
    );
    for m in &r.matches {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.list),
            esc(&m.id),
            esc(&m.category),
            esc(&m.kind),
            m.distance,
            esc(m.variant.as_deref().unwrap_or("")),
            esc(m.note.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</table>");

    let _ = write!(
        b,
        "<h2>Sightings ({})</h2><table id=\"occurrences\"><tr><th>When</th><th>Submitter</th>\
         <th>Content</th><th>Sent by</th></tr>",
        r.occurrence_count
    );
    for o in &r.occurrences {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&rfc3339_ms(o.at_ms)),
            esc(&o.submitter_ref),
            content_link(content_url, &o.content_ref),
            esc(&o.actor)
        );
    }
    b.push_str("</table>");

    if !r.annotations.is_empty() {
        b.push_str("<h2>Notes</h2><ul id=\"notes\">");
        for a in &r.annotations {
            let _ = write!(b, "<li>{}</li>", esc(a));
        }
        b.push_str("</ul>");
    }

    b.push_str("<h2>Left for the reviewer</h2><p>The matcher cannot know these; fill them in when you file the report.</p><ul id=\"left\">");
    for l in left_for_reviewer(r) {
        let _ = write!(
            b,
            "<li><code>{}</code>: {}</li>",
            esc(l.element),
            esc(l.why)
        );
    }
    b.push_str("</ul>");

    actions(&mut b, r, csrf);

    b.push_str(
        "<h2>Audit trail</h2><table id=\"audit\"><tr><th>When</th><th>Who</th><th>Action</th>\
         <th>Details</th></tr>",
    );
    for a in &r.audit {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&rfc3339_ms(a.at_ms)),
            esc(&a.actor),
            esc(&a.action),
            esc(&a.details_json)
        );
    }
    b.push_str("</table>");
    b
}

/// The action forms. Each names the version it was made against, so a
/// change by someone else in between is a conflict, not a lost update.
fn actions(b: &mut String, r: &ReportRecord, csrf: &str) {
    let id_path = encode_path(&r.id);
    let open = |b: &mut String, name: &str| {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/report/{}\" id=\"form-{name}\"><fieldset>{}\
             <input type=\"hidden\" name=\"version\" value=\"{}\">\
             <input type=\"hidden\" name=\"action\" value=\"{name}\">",
            esc(&id_path),
            csrf_field(csrf),
            r.version
        );
    };
    b.push_str("<h2>Actions</h2>");
    open(b, "confirm");
    b.push_str("<legend>Confirm</legend><label>Industry classification <select name=\"classification\" id=\"classification\">");
    for c in CLASSIFICATIONS {
        let selected = if r.classification.as_deref() == Some(c) {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option value=\"{c}\"{selected}>{c}</option>");
    }
    b.push_str(
        "</select></label> <label><input type=\"checkbox\" name=\"viewed\" value=\"true\" id=\"viewed\"> \
         Content viewed by reviewer</label> <button id=\"confirm\">Confirm</button></fieldset></form>",
    );
    open(b, "dismiss");
    b.push_str(
        "<legend>Dismiss as a false positive</legend><label>Reason <input name=\"reason\" id=\"reason\"></label> \
         <button id=\"dismiss\">Dismiss</button></fieldset></form>",
    );
    open(b, "viewed");
    b.push_str(
        "<legend>Content viewed by reviewer</legend><label><select name=\"viewed\">\
         <option value=\"true\">viewed</option><option value=\"false\">not viewed</option></select></label> \
         <button id=\"set-viewed\">Set</button></fieldset></form>",
    );
    open(b, "status");
    b.push_str(
        "<legend>Change status</legend><label>Status <select name=\"status\" id=\"new-status\">",
    );
    for s in allowed_moves(r.status) {
        let _ = write!(b, "<option value=\"{0}\">{0}</option>", s.as_str());
    }
    b.push_str(
        "</select></label> <label>Note <input name=\"note\"></label> \
         <button id=\"set-status\">Change</button></fieldset></form>",
    );
    open(b, "note");
    let _ = write!(
        b,
        "<legend>Add a note</legend><textarea name=\"note\" id=\"note\" maxlength=\"{MAX_ANNOTATION_BYTES}\"></textarea> \
         <button id=\"add-note\">Add note</button></fieldset></form>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\" onclick='y'>&</a>").to_string(),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(esc("plain").to_string(), "plain");
    }

    #[test]
    fn content_links_keep_the_template_scheme() {
        let t = Some("https://mod.example/item/{content_ref}");
        let html = content_link(t, "javascript:alert(1)");
        assert!(
            html.contains("href=\"https://mod.example/item/javascript%3Aalert%281%29\""),
            "{html}"
        );
        let html = content_link(t, "\"><script>x</script>");
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(content_link(None, "<b>"), "<code>&lt;b&gt;</code>");
    }

    #[test]
    fn days_left_and_overdue() {
        assert_eq!(days_left(DAY_MS * 2, 1), (false, "1 days left".into()));
        assert_eq!(
            days_left(0, DAY_MS * 3 + 1),
            (true, "overdue by 3 days".into())
        );
    }
}
