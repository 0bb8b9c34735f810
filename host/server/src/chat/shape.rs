//! The request's shape, checked during the one parse of the body, before any plugin sees it.
//!
//! A body the upstream cannot serve must be refused here, by the gateway, as the client's 400:
//! sent on, a `messages` that is a string or a list of numbers crashes some upstreams (a 5xx that
//! would count against the target), and a body with millions of tiny values inside the size limit
//! makes the plugin's JSON parse hit its memory cap. Either way a handful of such requests would
//! open a healthy target's breaker for every client of the route.
//!
//! So the parse is a walk with typed visitors instead of a skip: `messages` must be a non-empty
//! array of objects, each with a known `role` and the `content` its role allows; the common
//! scalar fields must have OpenAI's types; and the whole body may hold at most
//! [`MAX_JSON_VALUES`] values. Nothing is allocated on the way (but an escaped model name) unless
//! a problem is found; the problem names the field the way OpenAI does (`messages[3].content`,
//! code `invalid_type`, `missing_required_parameter`, `invalid_value`, `empty_array`).
//!
//! Only types are checked, never values a provider might accept and OpenAI would not (a fifth
//! `stop` string, a content part type OpenAI does not know): refusing those would turn away
//! requests some targets serve, and a provider's own 400 for them leaves its health alone.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The most JSON values (each scalar, array and object counts one; keys do not) a request body
/// may hold. A long real conversation stays far below it: 2,000 turns of a tool call and its
/// result are ~30,000 values, and 128 tools with large JSON schemas another ~25,000. Above it
/// the body is refused (413) before a plugin parses it: a plugin builds a tree of the body, tens
/// of bytes per value, so this keeps that tree to about 10 MiB, inside the default 64 MiB plugin
/// memory cap however the body's bytes are spent (4 MiB of `[0,0,…]` is 2 million values; the
/// end-to-end tests serve a body just under the cap).
pub(crate) const MAX_JSON_VALUES: usize = 200_000;

/// How much of a client's value an error message quotes.
const MAX_QUOTED_BYTES: usize = 40;

/// What is wrong with a request, as the client will be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) param: Option<String>,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Refused for its size rather than its shape (413).
    pub(crate) too_large: bool,
}

impl Problem {
    fn invalid_type(param: String, expected: &str, got: Got) -> Problem {
        Problem {
            message: format!(
                "Invalid type for '{param}': expected {expected}, but got {} instead.",
                got.as_str()
            ),
            param: Some(param),
            code: "invalid_type",
            too_large: false,
        }
    }

    fn missing(param: String) -> Problem {
        Problem {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param),
            code: "missing_required_parameter",
            too_large: false,
        }
    }
}

/// The fields of a valid body the gateway itself uses.
pub(crate) struct Fields<'de> {
    pub(crate) model: Option<Cow<'de, str>>,
    pub(crate) messages: bool,
    pub(crate) stream: Option<bool>,
    pub(crate) include_usage: Option<bool>,
    /// Some `tools` entry is `{"type": "aigw_tool", …}`: the gateway runs a tool loop
    /// (`super::tool_loop`). Seen while `tools` is walked anyway, so a request without one pays
    /// nothing for the feature.
    pub(crate) aigw_tools: bool,
}

/// Walks and checks a body. `Err(Some(problem))`: the body is JSON but not a valid request;
/// `Err(None)` with the parser's error: not JSON at all. The body is text already checked as
/// UTF-8 (one fast pass over it), so the parser need not check each string again: that makes
/// the walk ~25 % cheaper than parsing bytes.
pub(crate) fn check(body: &str) -> Result<Fields<'_>, (Option<Problem>, serde_json::Error)> {
    let walk = Walk {
        values: Cell::new(0),
        problem: RefCell::new(None),
        aigw_tools: Cell::new(false),
    };
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let result = Root(&walk)
        .deserialize(&mut deserializer)
        .and_then(|fields| deserializer.end().map(|()| fields));
    result
        .map(|mut fields| {
            fields.aigw_tools = walk.aigw_tools.get();
            fields
        })
        .map_err(|e| (walk.problem.into_inner(), e))
}

/// The state of one walk: values seen so far, and the first problem found.
struct Walk {
    values: Cell<usize>,
    problem: RefCell<Option<Problem>>,
    /// A `tools` entry of type `aigw_tool` was seen.
    aigw_tools: Cell<bool>,
}

impl Walk {
    /// Counts one value; past the cap the walk stops.
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let seen = self.values.get() + 1;
        self.values.set(seen);
        if seen > MAX_JSON_VALUES {
            return Err(self.fail(Problem {
                param: None,
                code: "too_many_values",
                message: format!(
                    "the request body holds more than {MAX_JSON_VALUES} JSON values (array \
                     items, object members and scalars)"
                ),
                too_large: true,
            }));
        }
        Ok(())
    }

    /// Records the problem and returns the error that stops the parse.
    fn fail<E: de::Error>(&self, problem: Problem) -> E {
        let mut slot = self.problem.borrow_mut();
        if slot.is_none() {
            *slot = Some(problem);
        }
        E::custom("the request is not valid")
    }
}

/// The kind of JSON value met where another was expected, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Null,
    Boolean,
    Integer,
    Decimal,
    String,
    Array,
    Object,
}

impl Got {
    fn as_str(self) -> &'static str {
        match self {
            Got::Null => "null",
            Got::Boolean => "a boolean",
            Got::Integer => "an integer",
            Got::Decimal => "a decimal",
            Got::String => "a string",
            Got::Array => "an array",
            Got::Object => "an object",
        }
    }
}

/// A client's value quoted in an error, cut short: error messages never echo unbounded text.
fn quoted(value: &str) -> String {
    if value.len() <= MAX_QUOTED_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_QUOTED_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// Implements the visitor methods of a value that must be of one kind: every other kind is
/// answered by `self.wrong(Got::…)`. Each visitor lists only the kinds it accepts.
macro_rules! reject_others {
    ($($kind:ident),*) => {
        $(reject_others!(@one $kind);)*
    };
    (@one unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Err(self.wrong(Got::Null)) }
    };
    (@one bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.wrong(Got::Boolean))
        }
    };
    (@one int) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.wrong(Got::Integer))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.wrong(Got::Integer))
        }
    };
    (@one float) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.wrong(Got::Decimal))
        }
    };
    (@one str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.wrong(Got::String))
        }
    };
    (@one seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong(Got::Array))
        }
    };
    (@one map) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong(Got::Object))
        }
    };
}

/// Any value at all, walked only to be counted.
#[derive(Clone, Copy)]
struct Any<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for Any<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Any<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.count()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.count()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.0.count()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.count()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.count()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// An object key, matched against the names a visitor cares about without allocating.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    /// The index of the name in the list, `None` for any other key.
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

/// The whole body: an object.
struct Root<'w>(&'w Walk);

/// The top-level fields the walk knows, by [`Key`] index.
const TOP: &[&str] = &["model", "messages", "stream", "stream_options"];

/// The optional top-level fields whose type OpenAI fixes: null means "not given".
const TYPED: &[(&str, Expect)] = &[
    ("max_tokens", Expect::Integer),
    ("max_completion_tokens", Expect::Integer),
    ("n", Expect::Integer),
    ("seed", Expect::Integer),
    ("top_logprobs", Expect::Integer),
    ("temperature", Expect::Number),
    ("top_p", Expect::Number),
    ("presence_penalty", Expect::Number),
    ("frequency_penalty", Expect::Number),
    ("logprobs", Expect::Boolean),
    ("parallel_tool_calls", Expect::Boolean),
    ("user", Expect::String),
    ("stop", Expect::Stop),
    ("tools", Expect::ObjectArray),
    ("tool_choice", Expect::StringOrObject),
    ("response_format", Expect::Object),
];

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = Fields<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Root<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.fail(Problem {
            param: None,
            code: "invalid_type",
            message: format!(
                "the request body must be a JSON object, but it is {}",
                got.as_str()
            ),
            too_large: false,
        })
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = Fields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat completion request object")
    }
    reject_others!(unit, bool, int, float, str, seq);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let walk = self.0;
        walk.count()?;
        let mut fields = Fields {
            model: None,
            messages: false,
            stream: None,
            include_usage: None,
            aigw_tools: false,
        };
        // `Key` sees the top-level names and the typed ones as one list.
        const ALL: &[&str] = &concat_names();
        while let Some(key) = map.next_key_seed(Key(ALL))? {
            match key {
                Some(0) => fields.model = map.next_value_seed(Model(walk))?,
                Some(1) => fields.messages = map.next_value_seed(Messages(walk))?,
                Some(2) => {
                    fields.stream = map.next_value_seed(Typed {
                        walk,
                        param: "stream",
                        expect: Expect::Boolean,
                    })?;
                }
                Some(3) => fields.include_usage = map.next_value_seed(StreamOptions(walk))?,
                Some(i) => {
                    let (param, expect) = TYPED[i - TOP.len()];
                    map.next_value_seed(Typed {
                        walk,
                        param,
                        expect,
                    })?;
                }
                None => map.next_value_seed(Any(walk))?,
            }
        }
        Ok(fields)
    }
}

/// [`TOP`] then [`TYPED`]'s names, as one constant list for [`Key`].
const fn concat_names() -> [&'static str; TOP.len() + TYPED.len()] {
    let mut all = [""; TOP.len() + TYPED.len()];
    let mut i = 0;
    while i < TOP.len() {
        all[i] = TOP[i];
        i += 1;
    }
    let mut j = 0;
    while j < TYPED.len() {
        all[TOP.len() + j] = TYPED[j].0;
        j += 1;
    }
    all
}

/// `model`: a string (null is the same as absent).
struct Model<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for Model<'_> {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Model<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0
            .fail(Problem::invalid_type("model".into(), "a string", got))
    }
}

impl<'de> Visitor<'de> for Model<'_> {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model name")
    }
    reject_others!(bool, int, float, seq, map);
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.count()?;
        Ok(None)
    }
    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(Cow::Borrowed(name)))
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(Cow::Owned(name.to_owned())))
    }
}

/// What an optional typed field must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Boolean,
    Integer,
    Number,
    String,
    Object,
    StringOrObject,
    /// `stop`: a string or an array of strings.
    Stop,
    /// `tools`: an array of objects.
    ObjectArray,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Boolean => "a boolean",
            Expect::Integer => "an integer",
            Expect::Number => "a number",
            Expect::String => "a string",
            Expect::Object => "an object",
            Expect::StringOrObject => "a string or an object",
            Expect::Stop => "a string or an array of strings",
            Expect::ObjectArray => "an array of objects",
        }
    }
}

/// An optional top-level field of a fixed type; gives its value when it is a boolean.
struct Typed<'w> {
    walk: &'w Walk,
    param: &'static str,
    expect: Expect,
}

impl<'de> DeserializeSeed<'de> for Typed<'_> {
    type Value = Option<bool>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Typed<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.walk.fail(Problem::invalid_type(
            self.param.to_owned(),
            self.expect.as_str(),
            got,
        ))
    }

    fn accept<E: de::Error>(&self, ok: bool, got: Got) -> Result<Option<bool>, E> {
        self.walk.count()?;
        if ok { Ok(None) } else { Err(self.wrong(got)) }
    }
}

impl<'de> Visitor<'de> for Typed<'_> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expect.as_str())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
        self.accept(true, Got::Null)
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Option<bool>, E> {
        self.accept(self.expect == Expect::Boolean, Got::Boolean)
            .map(|_| Some(value))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<bool>, E> {
        let ok = matches!(self.expect, Expect::Integer | Expect::Number);
        self.accept(ok, Got::Integer)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<bool>, E> {
        let ok = matches!(self.expect, Expect::Integer | Expect::Number);
        self.accept(ok, Got::Integer)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<bool>, E> {
        self.accept(self.expect == Expect::Number, Got::Decimal)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<bool>, E> {
        let ok = matches!(
            self.expect,
            Expect::String | Expect::StringOrObject | Expect::Stop
        );
        self.accept(ok, Got::String)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<bool>, A::Error> {
        let item = match self.expect {
            Expect::Stop => Expect::String,
            Expect::ObjectArray => Expect::Object,
            _ => return Err(self.wrong(Got::Array)),
        };
        self.walk.count()?;
        let mut index = 0;
        while seq
            .next_element_seed(Item {
                walk: self.walk,
                parent: self.param,
                index,
                expect: item,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<bool>, A::Error> {
        if !matches!(self.expect, Expect::Object | Expect::StringOrObject) {
            return Err(self.wrong(Got::Object));
        }
        Any(self.walk).visit_map(map)?;
        Ok(None)
    }
}

/// One item of a typed array field (`stop[1]`, `tools[0]`): a string or an object.
struct Item<'w> {
    walk: &'w Walk,
    parent: &'static str,
    index: usize,
    expect: Expect,
}

impl<'de> DeserializeSeed<'de> for Item<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Item<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.walk.fail(Problem::invalid_type(
            format!("{}[{}]", self.parent, self.index),
            self.expect.as_str(),
            got,
        ))
    }
}

impl<'de> Visitor<'de> for Item<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expect.as_str())
    }
    reject_others!(unit, bool, int, float, seq);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        if self.expect != Expect::String {
            return Err(self.wrong(Got::String));
        }
        self.walk.count()
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.expect != Expect::Object {
            return Err(self.wrong(Got::Object));
        }
        if self.parent != "tools" {
            return Any(self.walk).visit_map(map);
        }
        // A tool entry: its `type` says whether it names aigw tools.
        self.walk.count()?;
        while let Some(key) = map.next_key_seed(Key(&["type"]))? {
            match key {
                Some(_) => map.next_value_seed(ToolType(self.walk))?,
                None => map.next_value_seed(Any(self.walk))?,
            }
        }
        Ok(())
    }
}

/// A `tools[i].type`: any value (the upstream judges it), noting `"aigw_tool"`.
struct ToolType<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for ToolType<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ToolType<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool type")
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        if value == super::tool_loop::AIGW_TOOL {
            self.0.aigw_tools.set(true);
        }
        self.0.count()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.count()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.count()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.count()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Any(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Any(self.0).visit_map(map)
    }
}

/// `stream_options`: an object whose `include_usage` is a boolean.
struct StreamOptions<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for StreamOptions<'_> {
    type Value = Option<bool>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl StreamOptions<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.fail(Problem::invalid_type(
            "stream_options".into(),
            "an object",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for StreamOptions<'_> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("stream options")
    }
    reject_others!(bool, int, float, str, seq);
    fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
        self.0.count()?;
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<bool>, A::Error> {
        self.0.count()?;
        let mut include_usage = None;
        while let Some(key) = map.next_key_seed(Key(&["include_usage"]))? {
            match key {
                Some(_) => {
                    include_usage = map.next_value_seed(Typed {
                        walk: self.0,
                        param: "stream_options.include_usage",
                        expect: Expect::Boolean,
                    })?;
                }
                None => map.next_value_seed(Any(self.0))?,
            }
        }
        Ok(include_usage)
    }
}

/// `messages`: a non-empty array of messages.
struct Messages<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for Messages<'_> {
    /// Whether the field was given (null counts as absent).
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Messages<'_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.fail(Problem::invalid_type(
            "messages".into(),
            "an array of objects",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }
    reject_others!(bool, int, float, str, map);
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.0.count()?;
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        self.0.count()?;
        let mut index = 0;
        while seq
            .next_element_seed(Message {
                walk: self.0,
                index,
            })?
            .is_some()
        {
            index += 1;
        }
        if index == 0 {
            return Err(self.0.fail(Problem {
                param: Some("messages".into()),
                code: "empty_array",
                message: "Invalid 'messages': empty array. Expected an array with minimum \
                          length 1, but got an empty array instead."
                    .into(),
                too_large: false,
            }));
        }
        Ok(true)
    }
}

/// Who wrote a message. `function` is the legacy name of `tool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

const ROLES: &[(&str, Role)] = &[
    ("system", Role::System),
    ("developer", Role::Developer),
    ("user", Role::User),
    ("assistant", Role::Assistant),
    ("tool", Role::Tool),
    ("function", Role::Function),
];

/// What a message's `content` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Null,
    Text,
    Parts,
}

/// The message fields the walk checks, by [`Key`] index.
const MESSAGE_FIELDS: &[&str] = &[
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "audio",
    "refusal",
];

/// `messages[index]`: an object with a role and the content its role allows.
struct Message<'w> {
    walk: &'w Walk,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Message<'_> {
    fn param(&self, field: &str) -> String {
        format!("messages[{}].{field}", self.index)
    }

    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.walk.fail(Problem::invalid_type(
            format!("messages[{}]", self.index),
            "an object",
            got,
        ))
    }

    /// The checks that need the whole message: which fields its role requires.
    fn complete<E: de::Error>(&self, message: &Seen) -> Result<(), E> {
        let Some(role) = message.role else {
            return Err(self.walk.fail(Problem::missing(self.param("role"))));
        };
        // An assistant turn may carry tool calls (or the legacy function call, an audio
        // reference, a refusal) instead of text.
        let content_optional =
            role == Role::Function || (role == Role::Assistant && message.instead_of_content);
        match message.content {
            None if !content_optional => {
                return Err(self.walk.fail(Problem::missing(self.param("content"))));
            }
            Some(Content::Null) if !content_optional => {
                return Err(self.walk.fail(Problem::invalid_type(
                    self.param("content"),
                    "a string or an array of content parts",
                    Got::Null,
                )));
            }
            _ => {}
        }
        if role == Role::Tool && !message.tool_call_id {
            return Err(self.walk.fail(Problem::missing(self.param("tool_call_id"))));
        }
        Ok(())
    }
}

/// What one message's walk saw.
struct Seen {
    role: Option<Role>,
    content: Option<Content>,
    tool_call_id: bool,
    /// `tool_calls`, `function_call`, `audio` or `refusal` was given (not null).
    instead_of_content: bool,
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    reject_others!(unit, bool, int, float, str, seq);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.walk;
        walk.count()?;
        let mut seen = Seen {
            role: None,
            content: None,
            tool_call_id: false,
            instead_of_content: false,
        };
        while let Some(key) = map.next_key_seed(Key(MESSAGE_FIELDS))? {
            match key {
                Some(0) => seen.role = Some(map.next_value_seed(RoleName(&self))?),
                Some(1) => seen.content = Some(map.next_value_seed(ContentOf(&self))?),
                Some(2) => seen.instead_of_content |= map.next_value_seed(ToolCalls(&self))?,
                Some(3) => seen.tool_call_id = map.next_value_seed(ToolCallId(&self))?,
                Some(_) => seen.instead_of_content |= map.next_value_seed(Given(walk))?,
                None => map.next_value_seed(Any(walk))?,
            }
        }
        self.complete(&seen)
    }
}

/// `messages[i].role`: one of [`ROLES`].
struct RoleName<'m, 'w>(&'m Message<'w>);

impl<'de> DeserializeSeed<'de> for RoleName<'_, '_> {
    type Value = Role;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Role, D::Error> {
        d.deserialize_any(self)
    }
}

impl RoleName<'_, '_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0
            .walk
            .fail(Problem::invalid_type(self.0.param("role"), "a string", got))
    }
}

impl<'de> Visitor<'de> for RoleName<'_, '_> {
    type Value = Role;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a role")
    }
    reject_others!(unit, bool, int, float, seq, map);
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Role, E> {
        self.0.walk.count()?;
        match ROLES.iter().find(|(known, _)| *known == name) {
            Some((_, role)) => Ok(*role),
            None => Err(self.0.walk.fail(Problem {
                param: Some(self.0.param("role")),
                code: "invalid_value",
                message: format!(
                    "Invalid value for '{}': '{}'. Supported values are: 'system', \
                     'developer', 'user', 'assistant', 'tool', and 'function'.",
                    self.0.param("role"),
                    quoted(name)
                ),
                too_large: false,
            })),
        }
    }
}

/// `messages[i].content`: a string, null, or an array of content parts; whether null is
/// allowed depends on the role, checked once the whole message is seen.
struct ContentOf<'m, 'w>(&'m Message<'w>);

impl<'de> DeserializeSeed<'de> for ContentOf<'_, '_> {
    type Value = Content;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Content, D::Error> {
        d.deserialize_any(self)
    }
}

impl ContentOf<'_, '_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.walk.fail(Problem::invalid_type(
            self.0.param("content"),
            "a string or an array of content parts",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for ContentOf<'_, '_> {
    type Value = Content;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }
    reject_others!(bool, int, float, map);
    fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
        self.0.walk.count()?;
        Ok(Content::Null)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Content, E> {
        self.0.walk.count()?;
        Ok(Content::Text)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
        self.0.walk.count()?;
        let mut part = 0;
        while seq
            .next_element_seed(Part {
                message: self.0,
                part,
            })?
            .is_some()
        {
            part += 1;
        }
        Ok(Content::Parts)
    }
}

/// `messages[i].content[j]`: an object with a string `type`.
struct Part<'m, 'w> {
    message: &'m Message<'w>,
    part: usize,
}

impl<'de> DeserializeSeed<'de> for Part<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Part<'_, '_> {
    fn param(&self, field: Option<&str>) -> String {
        let at = format!("messages[{}].content[{}]", self.message.index, self.part);
        match field {
            Some(field) => format!("{at}.{field}"),
            None => at,
        }
    }

    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.message
            .walk
            .fail(Problem::invalid_type(self.param(None), "an object", got))
    }
}

impl<'de> Visitor<'de> for Part<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a content part")
    }
    reject_others!(unit, bool, int, float, str, seq);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.message.walk;
        walk.count()?;
        let mut typed = false;
        while let Some(key) = map.next_key_seed(Key(&["type"]))? {
            match key {
                Some(_) => {
                    map.next_value_seed(Text {
                        walk,
                        param: || self.param(Some("type")),
                    })?;
                    typed = true;
                }
                None => map.next_value_seed(Any(walk))?,
            }
        }
        if !typed {
            return Err(walk.fail(Problem::missing(self.param(Some("type")))));
        }
        Ok(())
    }
}

/// A string that must be there (`type`, `tool_call_id`); `param` names it for the error.
struct Text<'w, P> {
    walk: &'w Walk,
    param: P,
}

impl<'de, P: Fn() -> String> DeserializeSeed<'de> for Text<'_, P> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<P: Fn() -> String> Text<'_, P> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.walk
            .fail(Problem::invalid_type((self.param)(), "a string", got))
    }
}

impl<'de, P: Fn() -> String> Visitor<'de> for Text<'_, P> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    reject_others!(unit, bool, int, float, seq, map);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.walk.count()
    }
}

/// `messages[i].tool_call_id`: a string; null counts as absent.
struct ToolCallId<'m, 'w>(&'m Message<'w>);

impl<'de> DeserializeSeed<'de> for ToolCallId<'_, '_> {
    /// Whether an id was given.
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl ToolCallId<'_, '_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.walk.fail(Problem::invalid_type(
            self.0.param("tool_call_id"),
            "a string",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for ToolCallId<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool call id")
    }
    reject_others!(bool, int, float, seq, map);
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.0.walk.count()?;
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        self.0.walk.count()?;
        Ok(true)
    }
}

/// `messages[i].tool_calls`: an array of objects; null counts as absent.
struct ToolCalls<'m, 'w>(&'m Message<'w>);

impl<'de> DeserializeSeed<'de> for ToolCalls<'_, '_> {
    /// Whether tool calls were given.
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl ToolCalls<'_, '_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.0.walk.fail(Problem::invalid_type(
            self.0.param("tool_calls"),
            "an array of objects",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for ToolCalls<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("tool calls")
    }
    reject_others!(bool, int, float, str, map);
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.0.walk.count()?;
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        self.0.walk.count()?;
        let mut index = 0;
        while seq
            .next_element_seed(ToolCall {
                message: self.0,
                index,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(true)
    }
}

/// `messages[i].tool_calls[k]`: an object.
struct ToolCall<'m, 'w> {
    message: &'m Message<'w>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ToolCall<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ToolCall<'_, '_> {
    fn wrong<E: de::Error>(&self, got: Got) -> E {
        self.message.walk.fail(Problem::invalid_type(
            format!("{}[{}]", self.message.param("tool_calls"), self.index),
            "an object",
            got,
        ))
    }
}

impl<'de> Visitor<'de> for ToolCall<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool call object")
    }
    reject_others!(unit, bool, int, float, str, seq);
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Any(self.message.walk).visit_map(map)
    }
}

/// Any value, walked and counted; says whether it was given (not null).
struct Given<'w>(&'w Walk);

impl<'de> DeserializeSeed<'de> for Given<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Given<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Any(self.0).visit_unit().map(|()| false)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Any(self.0).visit_bool(v).map(|()| true)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Any(self.0).visit_i64(v).map(|()| true)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Any(self.0).visit_u64(v).map(|()| true)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Any(self.0).visit_f64(v).map(|()| true)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Any(self.0).visit_str(v).map(|()| true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        Any(self.0).visit_seq(seq).map(|()| true)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        Any(self.0).visit_map(map).map(|()| true)
    }
}
