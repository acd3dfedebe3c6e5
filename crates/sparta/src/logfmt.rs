//! JSON log lines carry the request id at the top level, so one `jq
//! 'select(.request_id=="…")'` finds every line of a request. The span list
//! stays off (lines keep one flat shape); the id comes from the request's
//! task-local, else from the `request` span the line is logged in (work
//! spawned for a request, such as a shared fetch, runs in that span).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a JSON event format; adds `"request_id"` first when the line is
/// logged while a request is being served.
pub struct WithRequestId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = sparta_server::reqid::current().or_else(|| span_id(ctx)) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        write_with_id(&mut writer, &line, id.as_str())
    }
}

/// The id recorded on the innermost `request` span around the event.
fn span_id<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<sparta_server::reqid::RequestId>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let scope = ctx.event_scope()?;
    for span in scope {
        if span.name() != "request" {
            continue;
        }
        let ext = span.extensions();
        let fields = &ext.get::<FormattedFields<N>>()?.fields;
        return field_value(fields, "request_id").and_then(sparta_server::reqid::RequestId::parse);
    }
    None
}

/// `"name":"value"` out of a span's JSON-formatted fields.
fn field_value<'a>(fields: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = fields.find(&key)? + key.len();
    let len = fields[start..].find('"')?;
    Some(&fields[start..start + len])
}

/// Writes `{"a":1}` as `{"request_id":"ID","a":1}`. Ids hold only
/// `[A-Za-z0-9._:-]` (checked where they are made), so they need no escaping.
fn write_with_id(out: &mut impl fmt::Write, line: &str, id: &str) -> fmt::Result {
    let Some(rest) = line.strip_prefix('{') else {
        return out.write_str(line);
    };
    write!(out, "{{\"request_id\":\"{id}\"")?;
    if !rest.starts_with('}') {
        out.write_char(',')?;
    }
    out.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::{field_value, write_with_id};

    fn with_id(line: &str, id: &str) -> String {
        let mut out = String::new();
        write_with_id(&mut out, line, id).unwrap();
        out
    }

    #[test]
    fn a_span_field_is_read_back() {
        let fields = "{\"request_id\":\"lb-1:2\",\"other\":\"x\"}";
        assert_eq!(field_value(fields, "request_id"), Some("lb-1:2"));
        assert_eq!(field_value(fields, "missing"), None);
    }

    #[test]
    fn the_id_is_the_first_field() {
        let line = with_id("{\"level\":\"INFO\",\"message\":\"x\"}\n", "ab-1");
        assert_eq!(
            line,
            "{\"request_id\":\"ab-1\",\"level\":\"INFO\",\"message\":\"x\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "ab-1");
    }

    #[test]
    fn an_empty_object_stays_valid() {
        assert_eq!(with_id("{}", "x"), "{\"request_id\":\"x\"}");
    }

    #[test]
    fn a_line_that_is_not_an_object_is_left_alone() {
        assert_eq!(with_id("plain\n", "x"), "plain\n");
    }
}
