//! The log line formats, text and JSON, written by hand: a busy proxy logs a
//! line per request, and the general formatters of `tracing-subscriber`
//! cost more than serving a warm file (styling, span lookups, a timestamp
//! formatted field by field). The shapes are theirs:
//!
//! - text: `2025-12-01T08:30:00.123456Z  INFO request{request_id=ID}: target: message k=v k="text"`
//! - JSON: `{"request_id":"ID","timestamp":"…","level":"INFO","message":"…","k":"v","target":"…"}`
//!
//! The request id comes from the request's task-local (`reqid`), which work
//! spawned for a request (a shared fetch) carries too; lines outside any
//! request have none. JSON lines keep one flat shape (no span list); text
//! lines name the spans they are logged in, as `name{fields}:`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use sparta_core::civil::Clock;
use sparta_core::jsontext::push_str as push_json_str;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// One of the two line formats; `ansi` colours the level of text lines.
pub struct LineFormat {
    pub json: bool,
    pub ansi: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let Scratch {
                line,
                fields,
                message,
            } = &mut *s;
            line.clear();
            fields.clear();
            message.clear();
            let id = sparta_server::reqid::current();
            let id = id.as_ref().map(|i| i.as_str());
            let meta = event.metadata();
            event.record(&mut Fields {
                json: self.json,
                out: fields,
                message,
            });
            if self.json {
                json_line(line, id, *meta.level(), meta.target(), message, fields);
            } else {
                let spans = spans(ctx);
                text_line(
                    line,
                    self.ansi,
                    id,
                    *meta.level(),
                    &spans,
                    meta.target(),
                    message,
                    fields,
                );
            }
            line.push('\n');
            writer.write_str(line)
        })
    }
}

/// Buffers reused by every line a thread formats.
#[derive(Default)]
struct Scratch {
    line: String,
    fields: String,
    message: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
    static CLOCK: RefCell<Clock> = RefCell::default();
}

/// `2025-12-01T08:30:00.123456Z`.
fn push_timestamp(out: &mut String) {
    CLOCK.with(|c| c.borrow_mut().push(out, SystemTime::now(), 6));
}

/// `name{fields}:` of each span around the event, outermost first.
fn spans<S, N>(ctx: &FmtContext<'_, S, N>) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut out = String::new();
    let Some(scope) = ctx.event_scope() else {
        return out;
    };
    for span in scope.from_root() {
        out.push_str(span.name());
        let ext = span.extensions();
        if let Some(f) = ext.get::<FormattedFields<N>>()
            && !f.fields.is_empty()
        {
            let _ = write!(out, "{{{}}}", f.fields);
        }
        out.push_str(": ");
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn text_line(
    line: &mut String,
    ansi: bool,
    id: Option<&str>,
    level: Level,
    spans: &str,
    target: &str,
    message: &str,
    fields: &str,
) {
    push_timestamp(line);
    line.push(' ');
    let (name, colour) = match level {
        Level::ERROR => ("ERROR", "31"),
        Level::WARN => (" WARN", "33"),
        Level::INFO => (" INFO", "32"),
        Level::DEBUG => ("DEBUG", "34"),
        Level::TRACE => ("TRACE", "35"),
    };
    if ansi {
        let _ = write!(line, "\x1b[{colour}m{name}\x1b[0m");
    } else {
        line.push_str(name);
    }
    line.push(' ');
    if let Some(id) = id {
        line.push_str("request{request_id=");
        line.push_str(id);
        line.push_str("}: ");
    }
    line.push_str(spans);
    line.push_str(target);
    line.push_str(": ");
    line.push_str(message);
    if !message.is_empty() && !fields.is_empty() {
        line.push(' ');
    }
    line.push_str(fields);
}

fn json_line(
    line: &mut String,
    id: Option<&str>,
    level: Level,
    target: &str,
    message: &str,
    fields: &str,
) {
    line.push('{');
    if let Some(id) = id {
        // Ids hold only `[A-Za-z0-9._:-]` (checked where they are made).
        line.push_str("\"request_id\":\"");
        line.push_str(id);
        line.push_str("\",");
    }
    line.push_str("\"timestamp\":\"");
    push_timestamp(line);
    line.push_str("\",\"level\":\"");
    line.push_str(level.as_str());
    line.push('"');
    if !message.is_empty() {
        line.push_str(",\"message\":");
        push_json_str(line, message);
    }
    line.push_str(fields);
    line.push_str(",\"target\":");
    push_json_str(line, target);
    line.push('}');
}

/// Records an event's fields: the message apart, the rest as ` k=v` (text)
/// or `,"k":v` (JSON).
struct Fields<'a> {
    json: bool,
    out: &'a mut String,
    message: &'a mut String,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        if self.json {
            self.out.push(',');
            push_json_str(self.out, field.name());
            self.out.push(':');
        } else {
            if !self.out.is_empty() {
                self.out.push(' ');
            }
            self.out.push_str(field.name());
            self.out.push('=');
        }
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        self.key(field);
        if self.json {
            push_json_str(self.out, value);
        } else if value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            // What `{:?}` writes for a plain string, without its per-char pass.
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        } else {
            let _ = write!(self.out, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        sparta_core::civil::push_padded(self.out, value, 1);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        if value < 0 {
            self.out.push('-');
        }
        sparta_core::civil::push_padded(self.out, value.unsigned_abs(), 1);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.json && !value.is_finite() {
            self.key(field);
            push_json_str(self.out, &value.to_string());
        } else {
            self.raw(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        self.key(field);
        if self.json {
            push_json_str(self.out, &format!("{value:?}"));
        } else {
            let _ = write!(self.out, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_str(&mut out, s);
        out
    }

    #[test]
    fn json_strings_round_trip() {
        for s in [
            "plain",
            "q\"b\\s",
            "nl\ncr\rtab\t",
            "\u{1}\u{7f}",
            "ünï ✓",
            "",
        ] {
            let v: serde_json::Value = serde_json::from_str(&json(s)).unwrap();
            assert_eq!(v, s, "{}", json(s));
        }
    }

    #[test]
    fn timestamps_have_micros() {
        let mut s = String::new();
        push_timestamp(&mut s);
        push_timestamp(&mut s);
        assert_eq!(s.len(), 2 * 27, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    }

    #[test]
    fn text_and_json_lines() {
        let mut line = String::new();
        text_line(
            &mut line,
            false,
            Some("ab-1"),
            Level::INFO,
            "",
            "sparta_server::http",
            "request",
            "method=GET path=\"/x\"",
        );
        assert_eq!(
            &line[27..],
            "  INFO request{request_id=ab-1}: sparta_server::http: request method=GET path=\"/x\""
        );
        line.clear();
        json_line(
            &mut line,
            Some("ab-1"),
            Level::WARN,
            "t",
            "m \"q\"",
            ",\"status\":500",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "ab-1");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "m \"q\"");
        assert_eq!(v["status"], 500);
        assert_eq!(v["target"], "t");
        line.clear();
        json_line(&mut line, None, Level::INFO, "t", "", "");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("request_id").is_none() && v.get("message").is_none());
    }
}
