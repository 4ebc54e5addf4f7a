//! What a model API response spent (DESIGN.md §10): input and output
//! tokens and the model, read from the usage fields of a JSON response or
//! of a server-sent-event stream as it passes, and a route's running
//! totals and limits.
//!
//! The providers' shapes, all read the same way (every count is the
//! largest seen, because streams repeat cumulative counts):
//! - Anthropic: `usage.input_tokens` (plus `cache_creation_input_tokens`
//!   and `cache_read_input_tokens`) and `usage.output_tokens`; in a stream
//!   in `message_start`'s `message.usage`, then `message_delta`'s `usage`.
//! - OpenAI: `usage.prompt_tokens`/`completion_tokens` (chat, and the
//!   final chunk of a stream asked with `include_usage`; a successful
//!   response without any closes a route whose limits need it), or
//!   `usage.input_tokens`/`output_tokens` (Responses API, in a stream
//!   under `response.completed`'s `response`).
//! - Gemini: `usageMetadata.promptTokenCount`, `candidatesTokenCount`
//!   plus `thoughtsTokenCount`, in every chunk of a stream; the model is
//!   `modelVersion`.
//!
//! A stream that ends without its provider's completion marker (the
//! agent hung up, the upstream cut it) after its first usage but before
//! its last is charged an upper bound: the bytes of the data lines after
//! the last one that carried an output count are added as output tokens
//! (no token is shorter than a byte), and the spend is `estimated`.
//! The markers: Anthropic's `message_stop` or a `message_delta` with
//! usage; OpenAI's `[DONE]` after a usage chunk; the Responses API's
//! `response.completed` (or `.incomplete`, `.failed`) with usage;
//! Gemini's chunk with `usageMetadata` and a candidate's `finishReason`.
//!
//! Nothing here panics on any input (a fuzz target feeds it).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::{Amount, UsageTotals};
use crate::plan::egress::OnExhausted;
use crate::plan::secrets::RouteLimits;
use crate::profile::secrets::Period;

/// A route's limits as the proxy counts them (from the plan's
/// `RouteLimits`, handed over to the proxy's program).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens: Option<u64>,
    pub tokens_per_hour: Option<u64>,
    pub cost: Option<f64>,
    /// The cost's window in seconds; `None`: the whole run.
    pub cost_window: Option<u64>,
    /// Model name to prices (input, output) per million tokens.
    pub prices: BTreeMap<String, (f64, f64)>,
    /// `on_exhausted: stop`.
    pub stop: bool,
}

impl Limits {
    /// Whether a limit counts what responses spend (not only requests):
    /// then requests in flight are bounded ([`super::route::MAX_IN_FLIGHT`]).
    pub fn counts_spend(&self) -> bool {
        self.tokens.is_some() || self.tokens_per_hour.is_some() || self.cost.is_some()
    }

    pub fn from_plan(l: &RouteLimits) -> Limits {
        Limits {
            requests_per_minute: l.requests_per_minute,
            tokens: l.tokens,
            tokens_per_hour: l.tokens_per_hour,
            cost: l.cost.map(|c| c.amount),
            cost_window: l.cost.and_then(|c| c.per).map(|p| match p {
                Period::Hour => HOUR.as_secs(),
                Period::Day => DAY.as_secs(),
            }),
            prices: l
                .prices
                .iter()
                .map(|(m, p)| (m.clone(), (p.input.0, p.output.0)))
                .collect(),
            stop: l.on_exhausted == OnExhausted::Stop,
        }
    }
}

/// Prices (input, output) per million tokens.
pub type Price = (f64, f64);

/// A JSON response body is kept (besides being passed on) up to this
/// many bytes to read its usage at the end; a larger one isn't counted.
pub const MAX_JSON: usize = 4 << 20;
/// An event-stream line longer than this is skipped.
pub const MAX_LINE: usize = 1 << 20;

/// What one response said it spent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub model: Option<String>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    /// `tokens_out` is an upper bound: a stream ended before its last
    /// usage ([`Reader::finish`]).
    pub estimated: bool,
}

impl Spent {
    /// Reads the usage fields of one JSON object (a whole response or
    /// one event of a stream) into `self`; true when it held an output
    /// count.
    pub fn take(&mut self, v: &Value) -> bool {
        let mut counted = false;
        let candidates = [Some(v), v.get("message"), v.get("response")];
        for o in candidates.into_iter().flatten() {
            if self.model.is_none() {
                if let Some(m) = o
                    .get("model")
                    .or_else(|| o.get("modelVersion"))
                    .and_then(Value::as_str)
                {
                    self.model = Some(m.chars().take(255).collect());
                }
            }
            if let Some(u) = o.get("usage").filter(|u| u.is_object()) {
                let n = |k: &str| u.get(k).and_then(Value::as_u64);
                let input = [
                    n("input_tokens"),
                    n("prompt_tokens"),
                    n("cache_creation_input_tokens"),
                    n("cache_read_input_tokens"),
                ];
                if input.iter().any(Option::is_some) {
                    max_into(&mut self.tokens_in, input.iter().flatten().sum());
                }
                if let Some(out) = n("output_tokens").or_else(|| n("completion_tokens")) {
                    max_into(&mut self.tokens_out, out);
                    counted = true;
                }
            }
            if let Some(u) = o.get("usageMetadata").filter(|u| u.is_object()) {
                let n = |k: &str| u.get(k).and_then(Value::as_u64);
                if let Some(i) = n("promptTokenCount") {
                    max_into(&mut self.tokens_in, i);
                }
                let out = [n("candidatesTokenCount"), n("thoughtsTokenCount")];
                if out.iter().any(Option::is_some) {
                    max_into(&mut self.tokens_out, out.iter().flatten().sum());
                    counted = true;
                }
            }
        }
        counted
    }

    pub fn tokens(&self) -> u64 {
        self.tokens_in
            .unwrap_or(0)
            .saturating_add(self.tokens_out.unwrap_or(0))
    }
}

fn max_into(slot: &mut Option<u64>, n: u64) {
    *slot = Some(slot.map_or(n, |s| s.max(n)));
}

/// Reads a response body as it passes, by its content type.
#[derive(Debug)]
pub enum Reader {
    /// `application/json`: kept up to [`MAX_JSON`], read at the end.
    Json(Vec<u8>),
    /// `text/event-stream`: read line by line as it comes.
    Events(Stream),
    /// Anything else: not read.
    Other,
}

/// An event stream being read.
#[derive(Debug, Default)]
pub struct Stream {
    line: Vec<u8>,
    /// The current line is too long: skipped to its end.
    skipping: bool,
    /// Bytes of the data lines (and skipped lines) since the last event
    /// that carried an output count: what a cut stream is charged.
    uncounted: u64,
    /// The last event read was the provider's completion marker.
    complete: bool,
}

/// What one line of a stream was.
enum Line {
    /// Not a `data:` line.
    Other,
    /// A completion marker (it may also carry a count).
    Marker { counted: bool },
    /// Data with an output count.
    Counted,
    /// Data without one, of this many bytes.
    Uncounted(u64),
}

impl Stream {
    fn end_line(&mut self, spent: &mut Spent) {
        match event_line(&self.line, spent) {
            Line::Other => {}
            Line::Marker { counted } => {
                if counted {
                    self.uncounted = 0;
                }
                self.complete = true;
            }
            Line::Counted => {
                self.uncounted = 0;
                self.complete = false;
            }
            Line::Uncounted(n) => {
                self.uncounted = self.uncounted.saturating_add(n);
                self.complete = false;
            }
        }
    }

    /// A line too long to read: all of it is uncounted data.
    fn skipped(&mut self, n: usize) {
        self.uncounted = self.uncounted.saturating_add(n as u64);
        self.complete = false;
    }
}

impl Reader {
    pub fn for_content_type(ct: Option<&str>) -> Reader {
        let ct = ct.unwrap_or("").to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            Reader::Events(Stream::default())
        } else if ct.starts_with("application/json") || ct.contains("+json") {
            Reader::Json(Vec::new())
        } else {
            Reader::Other
        }
    }

    /// The next bytes of the body.
    pub fn feed(&mut self, chunk: &[u8], spent: &mut Spent) {
        match self {
            Reader::Json(buf) => {
                if buf.len() + chunk.len() <= MAX_JSON {
                    buf.extend_from_slice(chunk);
                } else {
                    *self = Reader::Other;
                }
            }
            Reader::Events(st) => {
                for part in chunk.split_inclusive(|&b| b == b'\n') {
                    let ends = part.ends_with(b"\n");
                    if st.skipping {
                        st.skipped(part.len());
                    } else if st.line.len() + part.len() > MAX_LINE {
                        st.skipping = true;
                        st.skipped(st.line.len() + part.len());
                        st.line.clear();
                    } else {
                        st.line.extend_from_slice(part);
                    }
                    if ends {
                        if !st.skipping {
                            st.end_line(spent);
                        }
                        st.line.clear();
                        st.skipping = false;
                    }
                }
            }
            Reader::Other => {}
        }
    }

    /// The body has ended (whole or not). A stream that didn't end with
    /// its completion marker, after a usage but with data since its last
    /// output count, is charged those bytes as output tokens. One that
    /// never showed a usage is left without (a route whose limits need
    /// its spend closes, [`Counter::add`]).
    pub fn finish(&mut self, spent: &mut Spent) {
        match self {
            Reader::Json(buf) => {
                if let Ok(v) = serde_json::from_slice::<Value>(buf) {
                    spent.take(&v);
                }
            }
            Reader::Events(st) => {
                if !st.skipping && !st.line.is_empty() {
                    st.end_line(spent);
                }
                let seen = spent.tokens_in.is_some() || spent.tokens_out.is_some();
                if seen && !st.complete && st.uncounted > 0 {
                    spent.tokens_out =
                        Some(spent.tokens_out.unwrap_or(0).saturating_add(st.uncounted));
                    spent.estimated = true;
                }
            }
            Reader::Other => {}
        }
        *self = Reader::Other;
    }
}

/// One line of an event stream: `data: {json}` is read, the rest skipped.
fn event_line(line: &[u8], spent: &mut Spent) -> Line {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(data) = line.strip_prefix(b"data:") else {
        return Line::Other;
    };
    let data = data.strip_prefix(b" ").unwrap_or(data);
    if data.trim_ascii() == b"[DONE]" && spent.tokens_out.is_some() {
        return Line::Marker { counted: false };
    }
    let uncounted = Line::Uncounted(data.len() as u64);
    if data.first() != Some(&b'{') {
        return uncounted;
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return uncounted;
    };
    let counted = spent.take(&v);
    if is_marker(&v, counted) {
        Line::Marker { counted }
    } else if counted {
        Line::Counted
    } else {
        uncounted
    }
}

/// The event that ends a provider's stream (see the module's doc).
fn is_marker(v: &Value, counted: bool) -> bool {
    match v.get("type").and_then(Value::as_str) {
        Some("message_stop") => return true,
        Some(
            "message_delta" | "response.completed" | "response.incomplete" | "response.failed",
        ) => return counted,
        _ => {}
    }
    let finished = v
        .get("candidates")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c.get("finishReason").is_some()));
    counted && finished && v.get("usageMetadata").is_some()
}

/// The price of `model`: its own entry, else the longest entry that is a
/// prefix of it (`claude-sonnet-4-5` for `claude-sonnet-4-5-20250929`),
/// else the dearest entry (an unpriced model must not be a way around a
/// cost limit). Returns the entry's name when it isn't the model's.
pub fn price_of<'a>(
    prices: &'a BTreeMap<String, Price>,
    model: Option<&str>,
) -> Option<(&'a Price, Option<&'a str>)> {
    if let Some(m) = model {
        if let Some(p) = prices.get(m) {
            return Some((p, None));
        }
        if let Some((k, p)) = prices
            .iter()
            .filter(|(k, _)| m.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
        {
            return Some((p, Some(k)));
        }
    }
    prices
        .iter()
        .max_by(|a, b| {
            let cost = |p: &Price| p.0 + p.1;
            cost(a.1).total_cmp(&cost(b.1))
        })
        .map(|(k, p)| (p, Some(k.as_str())))
}

/// The cost of `spent` at `price` (per million tokens).
pub fn cost(spent: &Spent, price: &Price) -> f64 {
    (spent.tokens_in.unwrap_or(0) as f64 * price.0 + spent.tokens_out.unwrap_or(0) as f64 * price.1)
        / 1_000_000.0
}

/// Which limit, as the profile spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Which {
    RequestsPerMinute,
    Tokens,
    TokensPerHour,
    Cost,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::RequestsPerMinute => "requests_per_minute",
            Which::Tokens => "tokens",
            Which::TokensPerHour => "tokens_per_hour",
            Which::Cost => "cost",
        }
    }
}

/// A limit reached: which, its value and what was used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reached {
    pub which: Which,
    pub limit: Amount,
    pub used: Amount,
    /// A successful response's spend couldn't be counted against this
    /// limit (no usage fields, or a model without a price): the limit
    /// can't be kept, so the route refuses from then on (fail closed).
    pub unmetered: bool,
}

impl Reached {
    pub fn describe(&self, route: &str) -> String {
        if self.unmetered {
            return format!(
                "secrets.{route}.limits.{}: a response's spend couldn't be counted (it carried no \
                 usage fields, or its model has no price in limits.prices), so the limit can't be \
                 kept; the route takes no more requests",
                self.which.name()
            );
        }
        let per = match self.which {
            Which::RequestsPerMinute => " in the last minute",
            Which::TokensPerHour => " in the last hour",
            _ => "",
        };
        format!(
            "secrets.{route}.limits.{}: {} of {} used{per}",
            self.which.name(),
            self.used,
            self.limit
        )
    }
}

/// A route's counts: totals, and what the windowed limits need.
#[derive(Debug, Default)]
pub struct Counter {
    pub totals: UsageTotals,
    /// Start times of the requests of the last minute.
    recent: VecDeque<Instant>,
    /// (end time, tokens, cost) of the responses of the last day.
    spent: VecDeque<(Instant, u64, f64)>,
    /// The limit a successful response couldn't be counted against.
    unmetered: Option<Which>,
}

/// Entries kept at most in each window (far beyond any useful limit).
const MAX_WINDOW: usize = 1 << 16;
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

impl Counter {
    fn prune(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            self.recent.pop_front();
        }
        while self
            .spent
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= DAY)
        {
            self.spent.pop_front();
        }
    }

    fn within(&self, now: Instant, window: Duration) -> (u64, f64) {
        self.spent
            .iter()
            .filter(|(t, _, _)| now.saturating_duration_since(*t) < window)
            .fold((0, 0.0), |(n, c), (_, tn, tc)| (n + tn, c + tc))
    }

    /// The first limit a new request would go past, if any; else the
    /// request is counted.
    pub fn admit(&mut self, limits: Option<&Limits>, now: Instant) -> Result<(), Reached> {
        self.prune(now);
        if let Some(l) = limits {
            if let Some(r) = self.reached(l, now, true) {
                return Err(r);
            }
        }
        if self.recent.len() < MAX_WINDOW {
            self.recent.push_back(now);
        }
        self.totals.requests += 1;
        Ok(())
    }

    /// The first limit used up now (for a request about to start when
    /// `starting`: a request per minute more must still fit).
    pub fn reached(&self, l: &Limits, now: Instant, starting: bool) -> Option<Reached> {
        if let Some(which) = self.unmetered {
            let (limit, used) = match which {
                Which::Cost => (
                    Amount::Money(l.cost.unwrap_or(0.0)),
                    Amount::Money(self.totals.cost.unwrap_or(0.0)),
                ),
                _ => (
                    Amount::Count(l.tokens.or(l.tokens_per_hour).unwrap_or(0)),
                    Amount::Count(self.totals.tokens_in + self.totals.tokens_out),
                ),
            };
            return Some(Reached {
                which,
                limit,
                used,
                unmetered: true,
            });
        }
        if let Some(n) = l.requests_per_minute {
            let used = self
                .recent
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < MINUTE)
                .count() as u64;
            if starting && used >= n {
                return Some(Reached {
                    which: Which::RequestsPerMinute,
                    limit: Amount::Count(n),
                    used: Amount::Count(used),
                    unmetered: false,
                });
            }
        }
        let total = self.totals.tokens_in + self.totals.tokens_out;
        if let Some(n) = l.tokens.filter(|n| total >= *n) {
            return Some(Reached {
                which: Which::Tokens,
                limit: Amount::Count(n),
                used: Amount::Count(total),
                unmetered: false,
            });
        }
        if let Some(n) = l.tokens_per_hour {
            let (used, _) = self.within(now, HOUR);
            if used >= n {
                return Some(Reached {
                    which: Which::TokensPerHour,
                    limit: Amount::Count(n),
                    used: Amount::Count(used),
                    unmetered: false,
                });
            }
        }
        if let Some(amount) = l.cost {
            let used = match l.cost_window {
                None => self.totals.cost.unwrap_or(0.0),
                Some(secs) => self.within(now, Duration::from_secs(secs)).1,
            };
            if used >= amount {
                return Some(Reached {
                    which: Which::Cost,
                    limit: Amount::Money(amount),
                    used: Amount::Money(used),
                    unmetered: false,
                });
            }
        }
        None
    }

    /// Adds what a response spent; returns its cost and the price entry
    /// used, when the route has prices. A successful response (`ok`) whose
    /// spend a limit needs but can't count makes the route unmetered.
    pub fn add(
        &mut self,
        limits: Option<&Limits>,
        spent: &Spent,
        ok: bool,
        now: Instant,
    ) -> (Option<f64>, Option<String>) {
        self.totals.tokens_in = self
            .totals
            .tokens_in
            .saturating_add(spent.tokens_in.unwrap_or(0));
        self.totals.tokens_out = self
            .totals
            .tokens_out
            .saturating_add(spent.tokens_out.unwrap_or(0));
        let priced = limits
            .filter(|l| !l.prices.is_empty())
            .and_then(|l| price_of(&l.prices, spent.model.as_deref()));
        let (cost, priced_as) = match priced {
            Some((p, name)) => (Some(cost(spent, p)), name.map(str::to_string)),
            None => (None, None),
        };
        if let Some(c) = cost {
            self.totals.cost = Some(self.totals.cost.unwrap_or(0.0) + c);
        }
        if let Some(l) = limits.filter(|_| ok && self.unmetered.is_none()) {
            let counted = spent.tokens_in.is_some() || spent.tokens_out.is_some();
            self.unmetered = if !counted && l.tokens.is_some() {
                Some(Which::Tokens)
            } else if !counted && l.tokens_per_hour.is_some() {
                Some(Which::TokensPerHour)
            } else if l.cost.is_some() && (!counted || cost.is_none()) {
                Some(Which::Cost)
            } else {
                None
            };
        }
        self.prune(now);
        if self.spent.len() < MAX_WINDOW {
            self.spent
                .push_back((now, spent.tokens(), cost.unwrap_or(0.0)));
        }
        (cost, priced_as)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ct: &str, body: &[u8], chunk: usize) -> Spent {
        let mut r = Reader::for_content_type(Some(ct));
        let mut s = Spent::default();
        for c in body.chunks(chunk.max(1)) {
            r.feed(c, &mut s);
        }
        r.finish(&mut s);
        s
    }

    #[test]
    fn json_responses_of_each_provider() {
        let a = br#"{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;
        for chunk in [1, 7, 1000] {
            let s = read("application/json", a, chunk);
            assert_eq!(s.model.as_deref(), Some("claude-sonnet-4-5"));
            assert_eq!((s.tokens_in, s.tokens_out), (Some(15), Some(7)));
        }
        let o = br#"{"model":"gpt-5","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let s = read("application/json; charset=utf-8", o, 5);
        assert_eq!((s.tokens_in, s.tokens_out), (Some(3), Some(4)));
        let g = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"thoughtsTokenCount":3},"modelVersion":"gemini-2.5-pro"}"#;
        let s = read("application/json", g, 3);
        assert_eq!(s.model.as_deref(), Some("gemini-2.5-pro"));
        assert_eq!((s.tokens_in, s.tokens_out), (Some(8), Some(5)));
        // No usage, not JSON, another type: nothing counted.
        assert_eq!(read("application/json", b"{\"a\":1}", 3), Spent::default());
        assert_eq!(
            read("application/json", b"{\"usage\":", 3),
            Spent::default()
        );
        assert_eq!(read("text/plain", o, 3), Spent::default());
    }

    #[test]
    fn streams_of_each_provider() {
        let a = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        for chunk in [1, 13, 4096] {
            let s = read("text/event-stream", a.as_bytes(), chunk);
            assert_eq!(s.model.as_deref(), Some("claude-x"));
            assert_eq!((s.tokens_in, s.tokens_out), (Some(25), Some(15)));
        }
        let o = "data: {\"model\":\"gpt-5\",\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\n\r\ndata: {\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\r\n\r\ndata: [DONE]\r\n\r\n";
        let s = read("text/event-stream; charset=utf-8", o.as_bytes(), 10);
        assert_eq!((s.tokens_in, s.tokens_out), (Some(9), Some(2)));
        let r = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":4,\"output_tokens\":6}}}\n";
        let s = read("text/event-stream", r.as_bytes(), 10);
        assert_eq!((s.tokens_in, s.tokens_out), (Some(4), Some(6)));
        let g = "data: {\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-x\"}\n\ndata: {\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":9},\"modelVersion\":\"gemini-x\"}";
        let s = read("text/event-stream", g.as_bytes(), 10);
        assert_eq!((s.tokens_in, s.tokens_out), (Some(8), Some(9)));
        // An over-long line is skipped, the next read.
        let mut long = b"data: {\"usage\":{\"input_tokens\":1000}".to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_LINE));
        long.extend_from_slice(b"}\ndata: {\"usage\":{\"input_tokens\":1}}\n");
        let s = read("text/event-stream", &long, 65536);
        assert_eq!(s.tokens_in, Some(1));
    }

    /// Reads the first `n` bytes of `body` as a stream cut there.
    fn cut(body: &str, n: usize) -> Spent {
        read("text/event-stream", &body.as_bytes()[..n], 7)
    }

    /// Where each line of `body` ends (after its newline).
    fn line_ends(body: &str) -> Vec<usize> {
        body.match_indices('\n').map(|(i, _)| i + 1).collect()
    }

    /// An Anthropic stream: three deltas of 2 tokens each ("hello world"
    /// is two), 7 output tokens at the end.
    const ANTHROPIC: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hello world\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hello world\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hello world\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn a_complete_stream_is_charged_exactly() {
        for (body, tokens) in [
            (ANTHROPIC, (Some(25), Some(7))),
            (OPENAI_CHAT, (Some(9), Some(6))),
            (OPENAI_RESPONSES, (Some(4), Some(6))),
            (GEMINI, (Some(8), Some(6))),
        ] {
            for chunk in [1, 9, 4096] {
                let s = read("text/event-stream", body.as_bytes(), chunk);
                assert_eq!((s.tokens_in, s.tokens_out), tokens, "{body}");
                assert!(!s.estimated, "{body}");
            }
        }
        // Without its trailing newline, the last event still ends it.
        let s = cut(GEMINI, GEMINI.len() - 1);
        assert_eq!((s.tokens_out, s.estimated), (Some(6), false));
    }

    /// For every cut of `body` from the end of its first usage line to the
    /// end of its last line: the output charged is at least `per` tokens
    /// for each content line delivered whole (each line named by a piece
    /// of it), and the spend is estimated when a content line came after
    /// the last count; `exact` cuts (after the final count) are exact.
    fn cut_everywhere(body: &str, content: &str, per: u64, last: u64) {
        let first_usage = body.find("usage").unwrap();
        let start = body[first_usage..].find('\n').unwrap() + first_usage + 1;
        for n in start..=body.len() {
            let s = cut(body, n);
            let seen = &body[..n];
            let whole: u64 = line_ends(seen)
                .iter()
                .zip(std::iter::once(0).chain(line_ends(seen)))
                .filter(|(end, begin)| seen[*begin..**end].contains(content))
                .count() as u64;
            let out = s
                .tokens_out
                .unwrap_or_else(|| panic!("cut at {n}: no output"));
            assert!(out >= whole * per, "cut at {n}: {out} < {}", whole * per);
            if n == body.len() {
                assert_eq!((out, s.estimated), (last, false));
            }
        }
    }

    #[test]
    fn a_stream_cut_before_its_last_usage_is_charged_an_upper_bound() {
        cut_everywhere(ANTHROPIC, "hello world", 2, 7);
        // Cut after the content, before `message_delta`: the usage so far
        // (1) and every byte of what came since.
        let at = ANTHROPIC.find("event: message_delta").unwrap();
        let s = cut(ANTHROPIC, at);
        assert!(s.estimated);
        assert_eq!(s.tokens_in, Some(25));
        assert!(s.tokens_out.unwrap() > 1 + 3 * "hello world".len() as u64);
        // Cut after `message_delta`: exact (its count is the last).
        let at = ANTHROPIC
            .find("event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop")
            .unwrap();
        assert_eq!(cut(ANTHROPIC, at).tokens_out, Some(7));
        assert!(!cut(ANTHROPIC, at).estimated);

        // Gemini counts in every chunk: a cut one is exact at each chunk.
        cut_everywhere(GEMINI, "\"text\"", 2, 6);
        let at = GEMINI.rfind("data:").unwrap();
        let s = cut(GEMINI, at);
        assert_eq!((s.tokens_out, s.estimated), (Some(4), false));
        // Chunks with the prompt count only: their bytes are charged.
        let bare = GEMINI_PROMPT_ONLY;
        cut_everywhere(bare, "\"text\"", 2, 6);
        let at = bare.rfind("data:").unwrap();
        let s = cut(bare, at);
        assert!(s.estimated);
        assert!(s.tokens_out.unwrap() >= 4);

        // OpenAI streams say nothing before their end: a cut one has no
        // usage, and closes a route whose limits need it (below).
        for body in [OPENAI_CHAT, OPENAI_RESPONSES] {
            let at = body.find("\"usage\":{").unwrap();
            let at = body[..at].rfind("data:").unwrap();
            let s = cut(body, at);
            assert_eq!((s.tokens_out, s.estimated), (None, false), "{body}");
        }
        // A cut after the chat's usage chunk, before `[DONE]`: exact.
        let at = OPENAI_CHAT.find("data: [DONE]").unwrap();
        assert_eq!(cut(OPENAI_CHAT, at).tokens_out, Some(6));
        // A line too long to read counts whole.
        let mut long = ANTHROPIC[..ANTHROPIC.find("event: content").unwrap()].to_string();
        long.push_str("data: {\"");
        long.extend(std::iter::repeat_n('x', MAX_LINE));
        let s = cut(&long, long.len());
        assert!(s.estimated);
        assert!(s.tokens_out.unwrap() > MAX_LINE as u64);
        // An estimated spend is counted against the limits like any
        // other (not as a response that couldn't be counted).
        let l = limits(|l| l.tokens = Some(100));
        let mut c = Counter::default();
        let s = cut(ANTHROPIC, ANTHROPIC.find("event: message_delta").unwrap());
        c.add(Some(&l), &s, true, Instant::now());
        assert_eq!(c.totals.tokens_out, s.tokens_out.unwrap());
        let r = c.admit(Some(&l), Instant::now()).unwrap_err();
        assert_eq!((r.which, r.unmetered), (Which::Tokens, false));
    }

    const OPENAI_CHAT: &str = "data: {\"model\":\"gpt-5\",\"choices\":[{\"delta\":{\"content\":\"hello world\"}}],\"usage\":null}\n\ndata: {\"model\":\"gpt-5\",\"choices\":[{\"delta\":{\"content\":\"hello world\"}}],\"usage\":null}\n\ndata: {\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n";
    const OPENAI_RESPONSES: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\nevent: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hello world\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":4,\"output_tokens\":6}}}\n\n";
    const GEMINI: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":2},\"modelVersion\":\"gemini-x\"}\r\n\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4},\"modelVersion\":\"gemini-x\"}\r\n\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":6},\"modelVersion\":\"gemini-x\"}\r\n\r\n";
    const GEMINI_PROMPT_ONLY: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8},\"modelVersion\":\"gemini-x\"}\n\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8},\"modelVersion\":\"gemini-x\"}\n\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hello world\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":6},\"modelVersion\":\"gemini-x\"}\n\n";

    fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
        let mut l = Limits::default();
        f(&mut l);
        l
    }

    fn spent(model: &str, i: u64, o: u64) -> Spent {
        Spent {
            model: Some(model.into()),
            tokens_in: Some(i),
            tokens_out: Some(o),
            estimated: false,
        }
    }

    #[test]
    fn limits_are_counted() {
        let t0 = Instant::now();
        let l = limits(|l| l.requests_per_minute = Some(2));
        let mut c = Counter::default();
        assert!(c.admit(Some(&l), t0).is_ok());
        assert!(c.admit(Some(&l), t0).is_ok());
        let r = c.admit(Some(&l), t0).unwrap_err();
        assert_eq!(r.which, Which::RequestsPerMinute);
        assert!(c.admit(Some(&l), t0 + MINUTE).is_ok());

        let l = limits(|l| l.tokens = Some(100));
        let mut c = Counter::default();
        assert!(c.admit(Some(&l), t0).is_ok());
        c.add(Some(&l), &spent("m", 60, 40), true, t0);
        let r = c.admit(Some(&l), t0).unwrap_err();
        assert_eq!(r.which, Which::Tokens);
        assert_eq!(r.used, Amount::Count(100));

        let l = limits(|l| l.tokens_per_hour = Some(10));
        let mut c = Counter::default();
        c.add(Some(&l), &spent("m", 6, 6), true, t0);
        assert_eq!(
            c.admit(Some(&l), t0).unwrap_err().which,
            Which::TokensPerHour
        );
        assert!(c.admit(Some(&l), t0 + HOUR).is_ok());
    }

    #[test]
    fn cost_from_prices() {
        let t0 = Instant::now();
        let l = limits(|l| {
            l.cost = Some(1.0);
            l.cost_window = Some(HOUR.as_secs());
            l.prices.insert("claude-sonnet-4-5".into(), (3.0, 15.0));
            l.prices.insert("claude-opus".into(), (15.0, 75.0));
        });
        let mut c = Counter::default();
        // Exact, prefix, unpriced (the dearest).
        let (cost, as_) = c.add(
            Some(&l),
            &spent("claude-sonnet-4-5", 1_000_000, 0),
            true,
            t0,
        );
        assert_eq!((cost, as_), (Some(3.0), None));
        let (cost, as_) = c.add(
            Some(&l),
            &spent("claude-sonnet-4-5-2025", 0, 100_000),
            true,
            t0,
        );
        assert_eq!(as_.as_deref(), Some("claude-sonnet-4-5"));
        assert!((cost.unwrap() - 1.5).abs() < 1e-9);
        let (_, as_) = c.add(Some(&l), &spent("other", 1, 1), true, t0);
        assert_eq!(as_.as_deref(), Some("claude-opus"));
        let r = c.admit(Some(&l), t0).unwrap_err();
        assert_eq!(r.which, Which::Cost);
        assert!(c.admit(Some(&l), t0 + HOUR).is_ok());
    }

    #[test]
    fn a_successful_response_that_cant_be_counted_closes_the_route() {
        let t0 = Instant::now();
        let none = Spent::default();
        for l in [
            limits(|l| l.tokens = Some(100)),
            limits(|l| l.tokens_per_hour = Some(100)),
            limits(|l| {
                l.cost = Some(1.0);
                l.prices.insert("m".into(), (1.0, 1.0));
            }),
        ] {
            let mut c = Counter::default();
            // An error response carries no usage and spends nothing.
            c.add(Some(&l), &none, false, t0);
            assert!(c.admit(Some(&l), t0).is_ok());
            // A counted one is fine (control).
            c.add(Some(&l), &spent("m", 1, 1), true, t0);
            assert!(c.admit(Some(&l), t0).is_ok());
            // A successful one without usage (a stream without its usage
            // chunk, cut short, or a body too large to read): no more.
            c.add(Some(&l), &none, true, t0);
            let r = c.admit(Some(&l), t0).unwrap_err();
            assert!(r.unmetered, "{l:?}");
            assert!(r.describe("x").contains("couldn't be counted"));
            assert!(c.admit(Some(&l), t0 + DAY).is_err());
        }
        // Without a token or cost limit nothing needs counting.
        let l = limits(|l| l.requests_per_minute = Some(100));
        let mut c = Counter::default();
        c.add(Some(&l), &none, true, t0);
        assert!(c.admit(Some(&l), t0).is_ok());
    }
}
