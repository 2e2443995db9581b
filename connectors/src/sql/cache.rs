//! Plans kept for reuse: a statement that differs from an earlier one only in its vector
//! literals runs the earlier one's physical plan with the new values bound.
//!
//! Planning an `ORDER BY vector <-> [..] LIMIT k` query costs DataFusion several times more
//! than the index search it ends in (parsing the literal, SQL to plan, the optimizer's
//! passes, physical planning). Clients send the same statement over and over with another
//! query vector, so:
//!
//! ```text
//! text ─ shape(): vector literals out ─▶ "SELECT .. ORDER BY vector <-> __drift_param_0() LIMIT 10"
//!                                         + [values of slot 0]
//!   key seen before ─▶ an idle plan of that key: bind the values, reset its state, execute
//!   new key        ─▶ plan the text with one function per slot (literal::Bindings), keep it
//! ```
//! A plan is kept only if planning never read a slot's value (the values live in the plan's
//! [`Bindings`], read by the plan's nodes when they execute), and only for read-only queries.
//! The lexical pass is deliberately narrow: anything it does not fully understand (dollar
//! quoting, backslash escapes, several statements, functions folded at planning such as
//! `now()`) is planned as usual. Statements other than queries clear the cache (a `SET` may
//! change any plan), and so does [`PlanCache::clear`], which a caller that changes the
//! context's settings or tables by other means must call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{FunctionRegistry, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::physical_plan::{execute_stream, SendableRecordBatchStream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use futures::Stream;

use super::literal::{list_value, param_name, Bindings};
use super::DriftOptions;

/// Templates kept by default.
pub const DEFAULT_CAPACITY: usize = 256;
/// Idle plans kept per template (one per query running at the same time).
const POOL: usize = 4;

/// Reusable physical plans of one [`SessionContext`]; see the module docs.
pub struct PlanCache {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    entries: HashMap<String, Entry>,
    tick: u64,
    stats: CacheStats,
    capacity: usize,
    tables: u64,
}

struct Entry {
    /// Plans not running now; `None` for a template that cannot be reused.
    idle: Option<Vec<Prepared>>,
    last_used: u64,
}

/// A planned statement and the slots its vector literals are read from.
struct Prepared {
    plan: Arc<dyn ExecutionPlan>,
    bindings: Arc<Bindings>,
    task: Arc<TaskContext>,
}

/// How the cache has been used.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Statements that ran a kept plan.
    pub hits: u64,
    /// Statements planned and kept.
    pub misses: u64,
    /// Statements planned as usual (not a reusable shape, or not a query).
    pub bypassed: u64,
}

enum Lookup {
    Ready(Prepared),
    Plan,
    Bypass,
}

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache::new(DEFAULT_CAPACITY)
    }
}

impl PlanCache {
    /// A cache keeping up to `capacity` statement templates (the least recently used go).
    pub fn new(capacity: usize) -> PlanCache {
        PlanCache {
            inner: Arc::new(Mutex::new(Inner {
                entries: HashMap::new(),
                tick: 0,
                stats: CacheStats::default(),
                capacity: capacity.max(1),
                tables: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Marks `ctx` with the fingerprint of the collection tables it holds (part of every
    /// key planned in it: kept plans hold the collections they were planned over), and drops
    /// the plans kept for other tables when it differs from the last one seen. For a cache
    /// shared by contexts built afresh over a catalog that may change (Flight SQL).
    pub async fn tables(&self, ctx: &SessionContext) -> Result<()> {
        let fingerprint = tables_fingerprint(ctx).await?;
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(Tables(fingerprint)));
        let mut inner = self.lock();
        if inner.tables != fingerprint {
            inner.tables = fingerprint;
            inner.entries.clear();
        }
        Ok(())
    }

    /// Forgets every kept plan.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Counts of hits, misses and bypasses so far.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// Runs every statement of `text` in `ctx` and returns each one's rows.
    pub async fn run(&self, ctx: &SessionContext, text: &str) -> Result<Vec<Vec<RecordBatch>>> {
        if let Some(shape) = Shape::of(ctx, text) {
            if let Some(rows) = self.run_shape(ctx, &shape).await? {
                return Ok(vec![rows]);
            }
        }
        self.lock().stats.bypassed += 1;
        let mut out = Vec::new();
        for stmt in super::parse(ctx, text)? {
            out.push(self.planned(ctx, stmt).await?.collect().await?);
        }
        Ok(out)
    }

    /// One statement planned as usual; one that is not a query drops the kept plans (a `SET`
    /// may change any of them).
    async fn planned(&self, ctx: &SessionContext, stmt: Statement) -> Result<DataFrame> {
        let plan = ctx.state().statement_to_plan(stmt).await?;
        if !is_query(&plan) {
            self.clear();
        }
        ctx.execute_logical_plan(plan).await
    }

    /// The rows of the last statement of `text` (see [`PlanCache::run`]).
    pub async fn query(&self, ctx: &SessionContext, text: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.run(ctx, text).await?.pop().unwrap_or_default())
    }

    /// The result schema of the last statement of `text`, without running it (the
    /// statements before it do run, as [`PlanCache::stream`] would run them).
    pub async fn schema(&self, ctx: &SessionContext, text: &str) -> Result<SchemaRef> {
        if let Some(shape) = Shape::of(ctx, text) {
            if let Some(p) = self.take(ctx, &shape).await {
                let schema = p.plan.schema();
                keep(&self.inner, &shape.key, Some(p));
                return Ok(schema);
            }
        }
        Ok(Arc::new(
            self.last(ctx, text).await?.schema().as_arrow().clone(),
        ))
    }

    /// The rows of the last statement of `text`, as a stream (the statements before it run
    /// first). A kept plan serves one stream at a time and goes back to its pool when the
    /// stream is dropped.
    pub async fn stream(
        &self,
        ctx: &SessionContext,
        text: &str,
    ) -> Result<SendableRecordBatchStream> {
        if let Some(shape) = Shape::of(ctx, text) {
            if let Some(p) = self.take(ctx, &shape).await {
                let plan = reset_plan_states(p.plan.clone())?;
                let inner = execute_stream(plan, p.task.clone())?;
                let schema = inner.schema();
                let held = Held {
                    inner,
                    plan: Some(p),
                    key: shape.key,
                    cache: self.inner.clone(),
                };
                return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, held)));
            }
        }
        self.last(ctx, text).await?.execute_stream().await
    }

    /// Runs the statements of `text` but the last, and plans the last (statements that are
    /// not queries drop the kept plans, as in [`PlanCache::run`]).
    async fn last(&self, ctx: &SessionContext, text: &str) -> Result<DataFrame> {
        self.lock().stats.bypassed += 1;
        let mut statements = super::parse(ctx, text)?;
        let last = statements
            .pop()
            .ok_or_else(|| DataFusionError::Plan("no SQL statement to run".into()))?;
        for stmt in statements {
            self.planned(ctx, stmt).await?.collect().await?;
        }
        self.planned(ctx, last).await
    }

    /// A kept (or newly planned) plan of `shape` with its values bound, or `None` if the
    /// shape must be planned as usual.
    async fn take(&self, ctx: &SessionContext, shape: &Shape) -> Option<Prepared> {
        let lookup = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            match inner.entries.get_mut(&shape.key) {
                Some(e) => {
                    e.last_used = tick;
                    match &mut e.idle {
                        None => Lookup::Bypass,
                        Some(idle) => idle.pop().map_or(Lookup::Plan, Lookup::Ready),
                    }
                }
                None => Lookup::Plan,
            }
        };
        match lookup {
            Lookup::Bypass => None,
            Lookup::Ready(p) => {
                p.bindings.set(shape.values.clone());
                self.lock().stats.hits += 1;
                Some(p)
            }
            Lookup::Plan => match prepare(ctx, shape).await {
                Some(p) => {
                    self.lock().stats.misses += 1;
                    Some(p)
                }
                None => {
                    keep(&self.inner, &shape.key, None);
                    None
                }
            },
        }
    }

    /// Runs a statement of a reusable shape, or `None` if it must be planned as usual.
    async fn run_shape(
        &self,
        ctx: &SessionContext,
        shape: &Shape,
    ) -> Result<Option<Vec<RecordBatch>>> {
        let Some(prepared) = self.take(ctx, shape).await else {
            return Ok(None);
        };
        // A fresh copy of the plan's state (a top-k sort's dynamic filter, metrics).
        let plan = reset_plan_states(prepared.plan.clone())?;
        let rows = collect(plan, prepared.task.clone()).await;
        keep(&self.inner, &shape.key, Some(prepared));
        rows.map(Some)
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Returns a plan to its template's pool (`None`: the template is not reusable).
fn keep(cache: &Mutex<Inner>, key: &str, prepared: Option<Prepared>) {
    let mut inner = lock(cache);
    let tick = inner.tick;
    if !inner.entries.contains_key(key) && inner.entries.len() >= inner.capacity {
        let oldest = inner
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            inner.entries.remove(&k);
        }
    }
    let entry = inner.entries.entry(key.to_string()).or_insert(Entry {
        idle: Some(Vec::new()),
        last_used: tick,
    });
    match (prepared, &mut entry.idle) {
        (None, idle) => *idle = None,
        (Some(p), Some(idle)) if idle.len() < POOL => idle.push(p),
        _ => {}
    }
}

/// A kept plan's rows: the plan goes back to its pool when the stream is dropped.
struct Held {
    inner: SendableRecordBatchStream,
    plan: Option<Prepared>,
    key: String,
    cache: Arc<Mutex<Inner>>,
}

impl Stream for Held {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        keep(&self.cache, &self.key, self.plan.take());
    }
}

/// A context's tables fingerprint (see [`PlanCache::tables`]).
#[derive(Debug)]
struct Tables(u64);

/// A fingerprint of the collection tables `ctx` holds (names and the collections behind
/// them), for [`PlanCache::tables`].
async fn tables_fingerprint(ctx: &SessionContext) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    let mut names = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    for name in names {
        name.hash(&mut h);
        let provider = ctx.table_provider(name.as_str()).await?;
        if let Some(t) = provider.as_ref().downcast_ref::<super::CollectionTable>() {
            (Arc::as_ptr(t.collection()) as *const () as usize).hash(&mut h);
        }
    }
    Ok(h.finish())
}

/// Plans `shape`'s template with one function per slot; `None` if the plan cannot be
/// reused (planning failed, read a slot's value, or the statement is not a query).
async fn prepare(ctx: &SessionContext, shape: &Shape) -> Option<Prepared> {
    let bindings = Bindings::new(shape.values.clone());
    let mut state = ctx.state();
    for f in bindings.functions() {
        state.register_udf(Arc::new(f)).ok()?;
    }
    bindings.planning(true);
    let planned = async {
        let logical = state.create_logical_plan(&shape.template).await?;
        if !is_query(&logical) {
            return Ok(None);
        }
        state.create_physical_plan(&logical).await.map(Some)
    }
    .await;
    bindings.planning(false);
    let plan = planned.ok().flatten()?;
    if bindings.captured() {
        return None;
    }
    Some(Prepared {
        plan,
        task: Arc::new(TaskContext::from(&state)),
        bindings,
    })
}

/// Whether `plan` only reads (no DDL, DML, settings, EXPLAIN).
fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    )
}

/// A statement with its vector literals replaced by slot functions.
#[derive(Debug)]
struct Shape {
    /// The statement, each distinct literal replaced by `__drift_param_N()`.
    template: String,
    /// The template, each slot's type and length, and the session's search options.
    key: String,
    /// Each slot's value, typed as the planner types the literal.
    values: Vec<ScalarValue>,
}

/// Functions folded into constants while planning: a kept plan would keep the first value.
const FOLDED: [&str; 7] = [
    "now",
    "today",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// Keywords after which `[` opens an array literal rather than a subscript.
const BEFORE_ARRAY: [&str; 12] = [
    "select", "where", "and", "or", "not", "when", "then", "else", "by", "on", "is", "return",
];

/// The kind of a vector literal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `[1, 2]`: a list of Int64.
    Ints,
    /// `[1.5, 2]`: a list of Float64.
    Floats,
    /// `'[1.5, 2]'` beside a distance operator: a list of Float32.
    Text,
}

impl Shape {
    /// The shape of `text` if it is one query with at least one vector literal and nothing
    /// the lexical pass does not understand; `None` otherwise.
    fn of(ctx: &SessionContext, text: &str) -> Option<Shape> {
        let options = {
            let state = ctx.state_ref();
            let state = state.read();
            let config = state.config_options();
            if config.sql_parser.parse_float_as_decimal
                || !matches!(
                    config.sql_parser.dialect,
                    datafusion::config::Dialect::PostgreSQL
                )
            {
                return None;
            }
            let tables = state.config().get_extension::<Tables>().map_or(0, |t| t.0);
            format!("{:?}\u{0}{tables}", config.extensions.get::<DriftOptions>())
        };
        let lits = literals(text)?;
        if lits.is_empty() {
            return None;
        }
        let mut template = String::with_capacity(text.len());
        let mut key_types = String::new();
        let mut slots: Vec<(Kind, Vec<ScalarValue>)> = Vec::new();
        let mut at = 0;
        for lit in &lits {
            let index = match slots
                .iter()
                .position(|(k, v)| *k == lit.kind && *v == lit.values)
            {
                Some(i) => i,
                None => {
                    key_types.push_str(&format!("{:?}{};", lit.kind, lit.values.len()));
                    slots.push((lit.kind, lit.values.clone()));
                    slots.len() - 1
                }
            };
            template.push_str(&text[at..lit.start]);
            template.push_str(&param_name(index));
            template.push_str("()");
            at = lit.end;
        }
        template.push_str(&text[at..]);
        let values = slots
            .into_iter()
            .map(|(kind, values)| {
                let element = match kind {
                    Kind::Ints => DataType::Int64,
                    Kind::Floats => DataType::Float64,
                    Kind::Text => DataType::Float32,
                };
                list_value(&values, &element)
            })
            .collect();
        let key = format!("{template}\u{0}{key_types}\u{0}{options}");
        Some(Shape {
            template,
            key,
            values,
        })
    }
}

/// One vector literal: its byte range in the text and its values.
#[derive(Debug)]
struct Literal {
    start: usize,
    end: usize,
    kind: Kind,
    values: Vec<ScalarValue>,
}

/// The vector literals of one statement, or `None` if the text is not a single query or
/// holds something this pass does not handle.
fn literals(text: &str) -> Option<Vec<Literal>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The last significant token: an operator character, or a word (lowercased).
    let mut prev = Prev::Start;
    let mut first_word: Option<String> = None;
    let mut ended = false;
    while i < b.len() {
        let c = b[i];
        if ended && !c.is_ascii_whitespace() && !starts_comment(b, i) {
            return None; // a second statement
        }
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let close = text[i + 2..].find("*/")? + i + 2;
                if text[i + 2..close].contains("/*") {
                    return None; // nested comments
                }
                i = close + 2;
            }
            b'$' | b'\\' | b'`' => return None,
            b';' => {
                ended = true;
                i += 1;
            }
            b'\'' => {
                let (end, content) = quoted(text, i, b'\'')?;
                if content.contains('\\') {
                    return None;
                }
                // pgvector's text form, beside a distance operator.
                let beside = matches!(prev, Prev::Op(ref op) if is_distance_op(op))
                    || is_distance_op(next_op(text, end));
                match parse_text_vector(&content) {
                    Some(values) if beside => out.push(Literal {
                        start: i,
                        end,
                        kind: Kind::Text,
                        values,
                    }),
                    _ => {}
                }
                // `E'..'` and the like: a word right before the quote was a prefix.
                prev = Prev::Value;
                i = end;
            }
            b'"' => {
                i = quoted(text, i, b'"')?.0;
                prev = Prev::Value;
            }
            b'[' => {
                let opens_array = match &prev {
                    Prev::Start | Prev::Value => false,
                    Prev::Op(op) => !op.ends_with(')') && !op.ends_with(']'),
                    Prev::Word(w) => BEFORE_ARRAY.contains(&w.as_str()),
                };
                match opens_array.then(|| number_list(text, i)).flatten() {
                    Some((end, kind, values)) => {
                        out.push(Literal {
                            start: i,
                            end,
                            kind,
                            values,
                        });
                        prev = Prev::Value;
                        i = end;
                    }
                    None => {
                        prev = Prev::Op("[".into());
                        i += 1;
                    }
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = text[start..i].to_ascii_lowercase();
                if FOLDED.contains(&word.as_str()) || word.starts_with("__drift_param") {
                    return None;
                }
                first_word.get_or_insert_with(|| word.clone());
                prev = Prev::Word(word);
            }
            _ if c.is_ascii_digit()
                || c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) =>
            {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                prev = Prev::Value;
            }
            _ if c.is_ascii() => {
                // Operator characters run together (`<->`, `<=>`, `<#>`, `::`); brackets
                // and commas stand alone.
                let start = i;
                i += 1;
                if !matches!(c, b'(' | b')' | b',' | b']' | b'[') {
                    while i < b.len() && b"<>=!~#@%^&|*+-/:?".contains(&b[i]) {
                        if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
                            break;
                        }
                        i += 1;
                    }
                }
                prev = Prev::Op(text[start..i].to_string());
            }
            _ => return None,
        }
    }
    match first_word.as_deref() {
        Some("select" | "with") => Some(out),
        _ => None,
    }
}

/// The last significant token before the current position.
#[derive(Debug)]
enum Prev {
    Start,
    /// A literal, identifier or closing quote.
    Value,
    Word(String),
    Op(String),
}

fn starts_comment(b: &[u8], i: usize) -> bool {
    matches!(
        (b[i], b.get(i + 1)),
        (b'-', Some(b'-')) | (b'/', Some(b'*'))
    )
}

fn is_distance_op(op: &str) -> bool {
    matches!(op, "<->" | "<=>" | "<#>")
}

/// The operator that follows position `at` (after whitespace), or "".
fn next_op(text: &str, at: usize) -> &str {
    let rest = text[at..].trim_start();
    let len = rest.bytes().take_while(|c| b"<>=#-".contains(c)).count();
    &rest[..len]
}

/// The end (past the closing quote) and content of the quoted text opening at `start`;
/// a doubled quote stands for one.
fn quoted(text: &str, start: usize, q: u8) -> Option<(usize, String)> {
    let b = text.as_bytes();
    let mut content = String::new();
    let mut i = start + 1;
    let mut from = i;
    loop {
        let at = from + text[from..].find(q as char)?;
        content.push_str(&text[i.max(from)..at]);
        if b.get(at + 1) == Some(&q) {
            content.push(q as char);
            from = at + 2;
            i = from;
        } else {
            return Some((at + 1, content));
        }
    }
}

/// `[n, n, ...]` opening at `start`: the end past `]`, the kind and the values as the SQL
/// planner types them (Int64 when every element is an integer, else Float64).
fn number_list(text: &str, start: usize) -> Option<(usize, Kind, Vec<ScalarValue>)> {
    let b = text.as_bytes();
    let mut i = start + 1;
    let mut items: Vec<String> = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut item = String::new();
        if b.get(i) == Some(&b'-') {
            item.push('-');
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        let n = number_len(&b[i..]);
        if n == 0 {
            return None;
        }
        item.push_str(&text[i..i + n]);
        items.push(item);
        i += n;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => break,
            _ => return None,
        }
    }
    let ints: Option<Vec<ScalarValue>> = items
        .iter()
        .map(|t| t.parse::<i64>().ok().map(|v| ScalarValue::Int64(Some(v))))
        .collect();
    let (kind, values) = match ints {
        Some(v) => (Kind::Ints, v),
        None => {
            // An unsigned integer past i64 is planned as UInt64, which is not a vector.
            let integer = |t: &str| t.bytes().all(|c| c.is_ascii_digit() || c == b'-');
            if items
                .iter()
                .any(|t| integer(t) && t.parse::<i64>().is_err())
            {
                return None;
            }
            // Values that are not finite as f32 make a different plan (no index search).
            let floats: Option<Vec<ScalarValue>> = items
                .iter()
                .map(|t| {
                    let v = t.parse::<f64>().ok()?;
                    (v as f32)
                        .is_finite()
                        .then_some(ScalarValue::Float64(Some(v)))
                })
                .collect();
            (Kind::Floats, floats?)
        }
    };
    Some((i + 1, kind, values))
}

/// The length of the unsigned number at the start of `b` (digits, one point, an exponent),
/// 0 if there is none or it runs into letters.
fn number_len(b: &[u8]) -> usize {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = digits(0);
    if b.get(i) == Some(&b'.') {
        i += 1 + digits(i + 1);
    }
    if i == 0 || (i == 1 && b[0] == b'.') {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let d = digits(j);
        if d == 0 {
            return 0;
        }
        i = j + d;
    }
    if b.get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
    {
        return 0;
    }
    i
}

/// pgvector's text form `[1, 2.5]` as Float32 values, as the distance operators read it.
fn parse_text_vector(text: &str) -> Option<Vec<ScalarValue>> {
    super::operators::parse_vector(text).ok().map(|v| {
        v.into_iter()
            .map(|x| ScalarValue::Float32(Some(x)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(text: &str) -> Option<Vec<(usize, usize, Kind)>> {
        literals(text).map(|l| {
            l.iter()
                .map(|l| (l.start, l.end, l.kind))
                .collect::<Vec<_>>()
        })
    }

    #[test]
    fn finds_vector_literals_where_the_parser_sees_them() {
        let q = "SELECT id FROM t ORDER BY vector <-> [1, -2.5, 3e2] LIMIT 5";
        let l = literals(q).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(&q[l[0].start..l[0].end], "[1, -2.5, 3e2]");
        assert_eq!(l[0].kind, Kind::Floats);
        assert_eq!(
            l[0].values,
            vec![
                ScalarValue::Float64(Some(1.0)),
                ScalarValue::Float64(Some(-2.5)),
                ScalarValue::Float64(Some(300.0))
            ]
        );
        let ints = literals("SELECT l2_distance(vector, [1,-2]) FROM t").unwrap();
        assert_eq!(ints[0].kind, Kind::Ints);
        assert_eq!(ints[0].values[1], ScalarValue::Int64(Some(-2)));
        // pgvector's text form beside an operator, on either side.
        let t = "SELECT id FROM t ORDER BY '[1, 2]' <=> vector LIMIT 3";
        assert_eq!(shapes(t).unwrap()[0].2, Kind::Text);
        assert_eq!(
            shapes("SELECT id FROM t ORDER BY vector <#> '[1,2]'")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn leaves_what_is_not_a_vector_literal() {
        // Subscripts, strings elsewhere, comments, quoted identifiers, ARRAY[..].
        for q in [
            "SELECT vector[1] FROM t",
            "SELECT (vector)[1] FROM t",
            "SELECT id FROM t WHERE payload = '[1, 2]'",
            "SELECT id FROM t -- [1, 2]\n",
            "SELECT id /* [1, 2] */ FROM t",
            "SELECT \"[1,2]\" FROM t",
            "SELECT ARRAY[1, 2]",
            "SELECT [1, x] FROM t",
            "SELECT [] FROM t",
            "SELECT [1e, 2] FROM t",
            "SELECT [0x10] FROM t",
        ] {
            assert_eq!(shapes(q), Some(vec![]), "{q}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for q in [
            "SET drift.nprobe = 4",
            "INSERT INTO t VALUES (1)",
            "SELECT [1]; SELECT [2]",
            "SELECT $1",
            "SELECT $$[1]$$",
            "SELECT E'a\\'b', [1]",
            "SELECT now(), [1]",
            "SELECT CURRENT_DATE, [1]",
            "SELECT __drift_param_0()",
            "SELECT 1 /* unclosed",
            "SELECT 'unclosed",
            "SELECT /* a /* nested */ */ [1]",
        ] {
            assert!(literals(q).is_none(), "{q}");
        }
        // Numbers the planner does not read as an Int64 or a finite f32 stay in the text.
        assert!(literals("SELECT [9223372036854775808]").unwrap().is_empty());
        assert!(literals("SELECT [1e39]").unwrap().is_empty());
        // A trailing semicolon and comment are one statement.
        assert_eq!(literals("SELECT [1] ; -- done").unwrap().len(), 1);
        // Doubled quotes stay inside their string.
        assert!(literals("SELECT 'it''s [1]' FROM t").unwrap().is_empty());
    }

    #[test]
    fn numbers_parse_as_the_sql_planner_types_them() {
        assert_eq!(number_len(b"12 "), 2);
        assert_eq!(number_len(b".5]"), 2);
        assert_eq!(number_len(b"5.,"), 2);
        assert_eq!(number_len(b"1e-3,"), 4);
        assert_eq!(number_len(b"1E+3]"), 4);
        assert_eq!(number_len(b"."), 0);
        assert_eq!(number_len(b"1x"), 0);
        let (_, kind, v) = number_list("[-9223372036854775808]", 0).unwrap();
        assert_eq!(
            (kind, v),
            (Kind::Ints, vec![ScalarValue::Int64(Some(i64::MIN))])
        );
        let (_, kind, v) = number_list("[- 1, .5]", 0).unwrap();
        assert_eq!(kind, Kind::Floats);
        assert_eq!(v[0], ScalarValue::Float64(Some(-1.0)));
    }
}
