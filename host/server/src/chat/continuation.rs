//! Continuing a stream that broke after commitment, as pure functions over what the client
//! received: the [`Transcript`] of the answer so far, the request bodies that ask another
//! target to carry on from it ([`continuation_bodies`]), the rewrite that makes the
//! continuing target's chunks belong to the client's stream ([`rejoin`]), the [`Join`] that
//! keeps a continuing model which restarts or repeats itself from doubling the answer, and the
//! account of the tokens a broken attempt cost ([`broken_usage`]).

use std::borrow::Cow;

use aigw_runtime::Usage;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// The most answer text kept for continuing a broken stream; a longer answer that breaks ends
/// with an error event instead.
pub(crate) const MAX_TRANSCRIPT_BYTES: usize = 4 << 20;

/// What the gateway asks a target that continues another's broken answer without prefill.
pub(crate) const CONTINUE_PROMPT: &str = "Continue your previous answer exactly where it \
     stopped. Do not repeat anything already written and do not add any preamble.";

/// The most bytes of frames a [`Transcript`] holds unread (about 150 chunks of a token-by-token
/// stream): past it, what it holds is read.
pub(crate) const HELD_BYTES: usize = 32 << 10;

/// What the client has received of a stream, enough to continue it elsewhere: the stream's id
/// and the answer text. Each chunk is read with a borrowed, typed probe (no tree; unknown fields
/// skipped), so a long stream costs its text in memory, not its JSON.
///
/// The transcript is read only when a stream breaks, which is rare, and reading a chunk is a
/// full parse (~4,700 instructions for a 200-byte chunk: a sixth of a two-target stream's
/// work). So frames are held as they came, up to [`HELD_BYTES`], and read only when the answer
/// is asked for or the held bytes would pass the bound: an answer shorter than that is never
/// read at all.
#[derive(Default)]
pub(crate) struct Transcript {
    id: Option<String>,
    text: String,
    /// Tool calls were streamed, another choice appeared, a chunk did not parse, the answer
    /// finished, or the text passed its cap: the answer cannot be continued.
    stuck: bool,
    /// Frames not read yet, one after another, and where each ends in `held`.
    held: String,
    held_ends: Vec<usize>,
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceProbe<'a>>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<DeltaProbe<'a>>,
    /// Set on the chunk that ends the answer (null before).
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    tool_calls: Option<IgnoredAny>,
}

impl Transcript {
    /// A transcript that records nothing: for a stream that has no other target to continue
    /// on, reading its chunks would be work for nothing.
    pub(crate) fn off() -> Transcript {
        Transcript {
            stuck: true,
            ..Transcript::default()
        }
    }

    /// A chunk the client was sent, after those recorded before.
    pub(crate) fn record(&mut self, json: &str) {
        if self.stuck {
            return;
        }
        if self.held.len() + json.len() > HELD_BYTES {
            self.read_held();
            if json.len() > HELD_BYTES {
                self.read(json);
                return;
            }
        }
        if self.held.capacity() == 0 {
            // Most streams' frames fit in this; growth from empty would copy them five times.
            self.held.reserve(4 << 10);
        }
        self.held.push_str(json);
        self.held_ends.push(self.held.len());
    }

    /// Reads what is held, in order, and empties it (keeping its memory for what comes next).
    fn read_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        let ends = std::mem::take(&mut self.held_ends);
        let mut start = 0;
        for &end in &ends {
            if self.stuck {
                break;
            }
            self.read(held.get(start..end).unwrap_or_default());
            start = end;
        }
        if !self.stuck {
            (self.held, self.held_ends) = (held, ends);
            self.held.clear();
            self.held_ends.clear();
        }
    }

    fn read(&mut self, json: &str) {
        if self.stuck {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChunkProbe<'_>>(json) else {
            self.stuck = true;
            return;
        };
        if self.id.is_none() {
            self.id = chunk.id.map(Cow::into_owned);
        }
        for choice in chunk.choices {
            // The client has the whole answer: a break after this (e.g. while the decoder reads
            // usage) has nothing to continue, and continuing would add to a finished answer.
            if choice.finish_reason.is_some() {
                self.stuck = true;
                self.text = String::new();
                return;
            }
            let Some(delta) = choice.delta else { continue };
            if choice.index != 0 || delta.tool_calls.is_some() {
                self.stuck = true;
                return;
            }
            if let Some(content) = delta.content {
                self.text.push_str(&content);
            }
        }
        if self.text.len() > MAX_TRANSCRIPT_BYTES {
            self.stuck = true;
            self.text = String::new();
        }
    }

    /// The stream's id and the answer text so far; `None` when the answer cannot be continued.
    pub(crate) fn partial(&mut self) -> Option<(Option<String>, &str)> {
        self.read_held();
        (!self.stuck).then(|| (self.id.clone(), self.text.as_str()))
    }

    /// The characters of answer text recorded so far (for estimating what it cost).
    pub(crate) fn chars(&mut self) -> usize {
        self.read_held();
        self.text.chars().count()
    }
}

/// The request bodies that ask a target to continue a broken answer.
#[derive(Debug)]
pub(crate) struct Continuation {
    /// The partial answer as the last (assistant) message, for targets that continue it.
    pub(crate) prefill: String,
    /// The partial answer followed by a user message asking to continue, for the others.
    pub(crate) prompt: String,
}

impl Continuation {
    /// The body for a target: prefill where it continues a partial assistant message.
    pub(crate) fn body_for(&self, prefill: bool) -> &str {
        if prefill { &self.prefill } else { &self.prompt }
    }
}

/// The continuation requests for a partial answer (the client's request with the partial
/// answer appended), or `None` if the client's body cannot be extended.
pub(crate) fn continuation_bodies(body: &[u8], partial: &str) -> Option<Continuation> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let messages = request.get_mut("messages")?.as_array_mut()?;
    if partial.is_empty() {
        // Nothing reached the client but the role: a fresh answer is a continuation.
        let text = request.to_string();
        return Some(Continuation {
            prefill: text.clone(),
            prompt: text,
        });
    }
    messages.push(serde_json::json!({"role": "assistant", "content": partial}));
    let prefill = request.to_string();
    let messages = request.get_mut("messages")?.as_array_mut()?;
    messages.push(serde_json::json!({"role": "user", "content": CONTINUE_PROMPT}));
    Some(Continuation {
        prefill,
        prompt: request.to_string(),
    })
}

/// Rewrites a continuing target's chunk to belong to the stream the client already has: the
/// original `id`, and no second `role`.
pub(crate) fn rejoin(json: &str, id: Option<&str>) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let (Some(id), Some(object)) = (id, value.as_object_mut()) {
        object.insert("id".to_owned(), Value::String(id.to_owned()));
    }
    if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                delta.remove("role");
            }
        }
    }
    value.to_string()
}

/// How much of the answer's start, and of its end, a continuation's text is compared with, in
/// normalised characters: a continuation's text is held back until it departs from both or
/// matches one. It bounds the memory and the delay of the comparison; a restart longer than
/// this is confirmed at this length and then dropped as it streams (never held).
pub(crate) const JOIN_WINDOW: usize = 2048;

/// The shortest repeat of the answer's end that counts as an overlap: shorter ones (a word, a
/// space) happen in proper continuations too.
const MIN_OVERLAP: usize = 16;

/// How much of the answer's start a continuation must reproduce before departing from it to
/// count as a restart that says something else (no clean join) rather than a continuation that
/// happens to begin like the answer.
const MIN_RESTART: usize = 20;

/// Where a continuation stands against what the client already has.
#[derive(Debug)]
enum Stage {
    /// Holding the continuation's first text until it is clear whether it repeats.
    Deciding,
    /// The continuation restarted the answer (confirmed over [`JOIN_WINDOW`]): its text is
    /// dropped while it goes on reproducing the answer from this byte of it.
    Skipping { at: usize },
    /// Decided: the rest is forwarded as it comes.
    Through,
}

/// What the relay does with a continuation's chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// These chunks (JSON, maybe none while the continuation's text is held back) go to the
    /// client, in order.
    Forward(Vec<String>),
    /// The continuation restarted the answer and departed from it: there is no clean join, and
    /// the stream must end with an error instead of a doubled answer.
    Diverged(String),
}

/// Joins a continuation to the answer the client already has (`sent`), so the answer is said
/// once: a continuation that goes on from where the answer stopped is forwarded as it is; one
/// that restarts from the beginning has the reproduced answer dropped; one that repeats the
/// answer's end (its last sentence, say) has the overlap dropped; one that restarts and then
/// says something else is [`Joined::Diverged`].
///
/// Text is compared in a normalised form (lower case, whitespace runs as one space), because a
/// model that restarts rarely reproduces spacing and capitals exactly. The continuation's first
/// text arrives in pieces, so it is held back until it departs from every candidate (the answer's
/// start, and each word start in its last [`JOIN_WINDOW`] characters from which at least
/// [`MIN_OVERLAP`] characters remain) or covers one. Held chunks are replaced by one chunk
/// carrying the released text (the last held chunk's other fields); chunks without text are
/// dropped while deciding.
#[derive(Debug)]
pub(crate) struct Join {
    sent: String,
    stage: Stage,
    /// Continuation text neither forwarded nor dropped yet.
    held: String,
    /// The last chunk held, the template of the one that releases the held text.
    template: Option<String>,
    /// Every character of text the continuation produced, forwarded or not.
    produced: usize,
}

/// How a continuation's normalised text compares with a candidate it may repeat.
#[derive(Debug, PartialEq, Eq)]
enum Match {
    /// The text so far is a prefix of the candidate: it may still repeat it.
    Open,
    /// The text begins with the whole candidate; its first `usize` bytes repeat it.
    Covers(usize),
    /// The text departs from the candidate after this many normalised characters.
    Departs(usize),
}

/// `text` lower-cased, with whitespace runs as one space and no trailing whitespace; leading
/// whitespace becomes one space only when `keep_leading`. Each character comes with the byte
/// offset in `text` just past the character it came from. At most `limit` characters.
fn normalise(text: &str, keep_leading: bool, limit: usize) -> Vec<(char, usize)> {
    let mut out = Vec::new();
    let mut space = false;
    for (at, c) in text.char_indices() {
        if out.len() >= limit {
            break;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && (keep_leading || !out.is_empty()) {
            out.push((' ', at));
        }
        space = false;
        let end = at + c.len_utf8();
        out.extend(c.to_lowercase().map(|l| (l, end)));
    }
    out.truncate(limit);
    out
}

/// Compares a continuation's normalised text with a candidate's.
fn compare(text: &[(char, usize)], candidate: &[(char, usize)]) -> Match {
    let same = text
        .iter()
        .zip(candidate)
        .take_while(|(a, b)| a.0 == b.0)
        .count();
    if same == candidate.len() {
        // The byte just past the last repeated character (an empty candidate repeats nothing).
        Match::Covers(same.checked_sub(1).map_or(0, |last| text[last].1))
    } else if same == text.len() {
        Match::Open
    } else {
        Match::Departs(same)
    }
}

impl Join {
    pub(crate) fn new(sent: &str) -> Join {
        Join {
            sent: sent.to_owned(),
            stage: Stage::Deciding,
            held: String::new(),
            template: None,
            produced: 0,
        }
    }

    /// The characters of text the continuation produced so far, repeats included: what it
    /// cost, for the usage estimate when it breaks too.
    pub(crate) fn produced(&self) -> usize {
        self.produced
    }

    /// Takes one of the continuation's chunks (already [`rejoin`]ed).
    pub(crate) fn chunk(&mut self, json: String) -> Joined {
        let piece = piece_of(&json);
        if matches!(self.stage, Stage::Through) {
            self.produced += piece.map_or(0, |(text, _)| text.chars().count());
            return Joined::Forward(vec![json]);
        }
        let text = match piece {
            Some((text, false)) => text,
            // The answer's last text rides on its finish: join the text, then end.
            Some((text, true)) if !text.is_empty() => {
                let mut out = match self.chunk(without_finish(&json)) {
                    Joined::Forward(out) => out,
                    diverged => return diverged,
                };
                return match self.chunk(with_content(&json, "")) {
                    Joined::Forward(more) => {
                        out.extend(more);
                        Joined::Forward(out)
                    }
                    diverged => diverged,
                };
            }
            // The end of the answer's text (a finish, tool calls, usage): decide now, and send
            // what is released before this chunk.
            _ => {
                return match self.end() {
                    Joined::Forward(mut out) => {
                        out.push(json);
                        Joined::Forward(out)
                    }
                    diverged => diverged,
                };
            }
        };
        if text.is_empty() {
            return Joined::Forward(Vec::new());
        }
        self.produced += text.chars().count();
        self.held.push_str(&text);
        self.template = Some(json);
        self.step(false)
    }

    /// The continuation's text is over (its stream ended or a chunk without text came):
    /// decide with what is held.
    pub(crate) fn end(&mut self) -> Joined {
        if matches!(self.stage, Stage::Through) {
            return Joined::Forward(Vec::new());
        }
        self.step(true)
    }

    fn step(&mut self, at_end: bool) -> Joined {
        if let Stage::Skipping { at } = self.stage {
            return self.skip(at, at_end);
        }
        let held = normalise(&self.held, false, usize::MAX);
        let start = normalise(&self.sent, false, JOIN_WINDOW);
        // The whole answer fits the window: covering it is a restart reproduced entirely.
        let whole = start.len() < JOIN_WINDOW;
        let restart = compare(&held, &start);
        match restart {
            Match::Open if !at_end => return Joined::Forward(Vec::new()),
            Match::Covers(cut) if whole => return self.release(cut),
            Match::Covers(cut) => {
                let at = start.last().map_or(0, |c| c.1);
                self.held.drain(..cut);
                self.stage = Stage::Skipping { at };
                return self.skip(at, at_end);
            }
            _ => {}
        }
        // The answer's end: word starts in its last JOIN_WINDOW bytes, longest repeat first.
        let tail_at = self
            .sent
            .floor_char_boundary(self.sent.len().saturating_sub(JOIN_WINDOW));
        let tail = normalise(&self.sent[tail_at..], true, usize::MAX);
        let word_start = |i: usize| match i.checked_sub(1) {
            Some(before) => tail[before].0 == ' ',
            None => self.sent[..tail_at].ends_with(char::is_whitespace),
        };
        for from in (0..tail.len()).filter(|&i| tail[i].0 != ' ' && word_start(i)) {
            let candidate = &tail[from..];
            if candidate.len() < MIN_OVERLAP {
                break;
            }
            if tail_at == 0 && from == 0 {
                continue; // the whole answer: the restart, compared above
            }
            match compare(&held, candidate) {
                Match::Open if !at_end => return Joined::Forward(Vec::new()),
                Match::Covers(cut) => return self.release(cut),
                _ => {}
            }
        }
        let reproduced = match restart {
            Match::Departs(same) => same,
            _ => held.len(),
        };
        if reproduced >= MIN_RESTART {
            return Joined::Diverged(format!(
                "the continuation restarted the answer and departed from it after \
                 {reproduced} characters: there is no clean join"
            ));
        }
        self.release(0)
    }

    /// Drops the held text that goes on reproducing the answer from byte `at` of it.
    fn skip(&mut self, at: usize, at_end: bool) -> Joined {
        let held = normalise(&self.held, true, usize::MAX);
        let rest = normalise(&self.sent[at..], true, held.len().saturating_add(1));
        match compare(&held, &rest) {
            Match::Covers(cut) => self.release(cut),
            Match::Open if !at_end => {
                // Everything held repeats the answer: drop it and remember how far it got.
                if let (Some(h), Some(s)) = (held.last(), rest.get(held.len().wrapping_sub(1))) {
                    self.held.drain(..h.1);
                    self.stage = Stage::Skipping { at: at + s.1 };
                }
                Joined::Forward(Vec::new())
            }
            _ => Joined::Diverged(
                "the continuation restarted the answer and departed from it before reaching \
                 where it stopped: there is no clean join"
                    .to_owned(),
            ),
        }
    }

    /// Forwards the held text from byte `cut` on (before it: a repeat) and everything after.
    fn release(&mut self, cut: usize) -> Joined {
        self.stage = Stage::Through;
        let text = self.held.split_off(cut);
        self.held = String::new();
        match self.template.take() {
            Some(template) if !text.is_empty() => {
                Joined::Forward(vec![with_content(&template, &text)])
            }
            _ => Joined::Forward(Vec::new()),
        }
    }
}

/// A chunk of answer text: its choice 0 delta's text (empty for none, like a role chunk or a
/// bare finish) and whether it ends the answer (a `finish_reason`); `None` for anything else:
/// tool calls, other choices, usage, a chunk that does not parse.
fn piece_of(json: &str) -> Option<(String, bool)> {
    let chunk = serde_json::from_str::<ChunkProbe<'_>>(json).ok()?;
    let [choice] = chunk.choices.as_slice() else {
        return None;
    };
    let finish = choice.finish_reason.is_some();
    let text = match &choice.delta {
        Some(delta) if delta.tool_calls.is_some() => return None,
        Some(delta) => delta.content.as_deref().unwrap_or(""),
        None => "",
    };
    (choice.index == 0).then(|| (text.to_owned(), finish))
}

/// A chunk without its choice 0 `finish_reason`.
fn without_finish(json: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let Some(choice) = value
        .pointer_mut("/choices/0")
        .and_then(Value::as_object_mut)
    {
        choice.insert("finish_reason".to_owned(), Value::Null);
    }
    value.to_string()
}

/// A chunk with its choice 0 text replaced.
fn with_content(json: &str, text: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let Some(delta) = value
        .pointer_mut("/choices/0/delta")
        .and_then(Value::as_object_mut)
    {
        delta.insert("content".to_owned(), Value::String(text.to_owned()));
    }
    value.to_string()
}

/// Tokens estimated from characters of text, when a provider reported none: one per four
/// characters, rounded up (the usual rule of thumb for English with OpenAI-style tokenizers).
pub(crate) fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// The characters of text in a request's messages (string contents and text parts), the base
/// of its prompt's estimate; 0 for a body that does not parse.
pub(crate) fn prompt_chars(body: &[u8]) -> usize {
    // Once per broken attempt: a tree is simpler than a borrowed probe of every content shape.
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let chars = |v: &Value| v.as_str().map_or(0, |t| t.chars().count());
    request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|message| match message.get("content") {
            Some(Value::Array(parts)) => parts.iter().map(|p| p.get("text").map_or(0, chars)).sum(),
            Some(text) => chars(text),
            None => 0,
        })
        .sum()
}

/// What a broken attempt cost: the usage its provider reported before breaking, else an
/// estimate ([`estimate_tokens`]) of its prompt (the body it was sent) and of the text it
/// produced. The flag says it is an estimate.
pub(crate) fn broken_usage(
    reported: Option<Usage>,
    body: &[u8],
    produced_chars: usize,
) -> (Usage, bool) {
    if let Some(usage) = reported {
        return (usage, false);
    }
    let prompt_tokens = estimate_tokens(prompt_chars(body));
    let completion_tokens = estimate_tokens(produced_chars);
    let usage = Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
    };
    (usage, true)
}

/// The sum of two usages.
pub(crate) fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens.saturating_add(b.prompt_tokens),
        completion_tokens: a.completion_tokens.saturating_add(b.completion_tokens),
        total_tokens: a.total_tokens.saturating_add(b.total_tokens),
    }
}

/// A usage chunk with its counts replaced by `usage` (the request's total, when attempts
/// before the one reporting it broke). Other fields (details, cost) are the reporting
/// attempt's.
pub(crate) fn with_usage(json: &str, usage: Usage) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let Some(object) = value.get_mut("usage").and_then(Value::as_object_mut) {
        object.insert("prompt_tokens".to_owned(), usage.prompt_tokens.into());
        object.insert(
            "completion_tokens".to_owned(),
            usage.completion_tokens.into(),
        );
        object.insert("total_tokens".to_owned(), usage.total_tokens.into());
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn chunk(id: &str, delta: Value) -> String {
        serde_json::json!({"id": id, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    }

    #[test]
    fn the_transcript_gives_the_stream_id_and_the_text_so_far() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"role": "assistant", "content": ""}),
        ));
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        t.record(&chunk("c2", serde_json::json!({"content": " wor"})));
        // A usage chunk has no choices.
        t.record(r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1}}"#);
        assert_eq!(t.partial(), Some((Some("c1".to_owned()), "Hello wor")));
    }

    #[test]
    fn a_short_answer_is_held_unread_until_it_is_asked_for() {
        let mut t = Transcript::default();
        t.record(&chunk("c1", serde_json::json!({"content": "Hel"})));
        t.record(&chunk("c1", serde_json::json!({"content": "lo"})));
        assert_eq!((t.held_ends.len(), t.text.as_str(), &t.id), (2, "", &None));
        assert_eq!(t.chars(), 5);
        assert_eq!(t.partial(), Some((Some("c1".to_owned()), "Hello")));
        assert!(t.held.is_empty() && t.held_ends.is_empty());
        // Recording goes on after a read.
        t.record(&chunk("c1", serde_json::json!({"content": "!"})));
        assert_eq!(t.partial(), Some((Some("c1".to_owned()), "Hello!")));
    }

    #[test]
    fn frames_past_the_held_bound_give_the_answer_each_read_alone_gives() {
        let frames: Vec<String> = (0..3000)
            .map(|i| chunk("c", serde_json::json!({ "content": format!("w{i} ") })))
            .collect();
        assert!(frames.iter().map(String::len).sum::<usize>() > 5 * HELD_BYTES);
        let mut held = Transcript::default();
        let mut alone = Transcript::default();
        for frame in &frames {
            held.record(frame);
            alone.read(frame);
            assert!(held.held.len() <= HELD_BYTES);
        }
        let expected: String = (0..3000).map(|i| format!("w{i} ")).collect();
        assert_eq!(
            alone.partial(),
            Some((Some("c".to_owned()), expected.as_str()))
        );
        assert_eq!(held.partial(), alone.partial());
        // A frame larger than the bound on its own is read as it comes.
        let big = "x".repeat(HELD_BYTES + 1);
        held.record(&chunk("c", serde_json::json!({ "content": big })));
        assert!(held.held.is_empty());
        assert_eq!(held.chars(), expected.len() + big.len());
    }

    #[test]
    fn a_held_finish_or_broken_frame_stops_the_answer_and_what_follows_it() {
        for stop in [
            serde_json::json!({"id": "c", "choices": [{"index": 0, "delta": {},
                               "finish_reason": "stop"}]})
            .to_string(),
            "{not json".to_owned(),
        ] {
            let mut t = Transcript::default();
            t.record(&chunk("c", serde_json::json!({"content": "a"})));
            t.record(&stop);
            t.record(&chunk("c", serde_json::json!({"content": "b"})));
            assert_eq!(t.partial(), None, "{stop}");
            assert!(
                t.held.is_empty() && t.held.capacity() == 0,
                "the memory is given back"
            );
        }
    }

    #[test]
    fn a_finished_answer_cannot_be_continued() {
        let mut t = Transcript::default();
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        assert!(t.partial().is_some());
        t.record(
            &serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {},
                                 "finish_reason": "stop"}]})
            .to_string(),
        );
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn a_transcript_that_is_off_records_nothing() {
        let mut t = Transcript::off();
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn streamed_tool_calls_and_other_choices_cannot_be_continued() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        ));
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record(
            &serde_json::json!({"id": "c", "choices": [{"index": 1, "delta": {"content": "x"}}]})
                .to_string(),
        );
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record("{not json");
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn a_transcript_past_its_cap_turns_continuation_off() {
        let mut t = Transcript::default();
        let big = "x".repeat(MAX_TRANSCRIPT_BYTES / 2 + 1);
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        assert_eq!(t.partial(), None);
        assert!(t.text.is_empty(), "the memory is given back");
    }

    #[test]
    fn continuation_bodies_append_the_partial_answer_and_for_prompts_a_request_to_go_on() {
        let body = br#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let c = continuation_bodies(body, "Hello wor").unwrap();
        let prefill: Value = serde_json::from_str(c.body_for(true)).unwrap();
        let messages = prefill["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1],
            serde_json::json!({"role": "assistant", "content": "Hello wor"})
        );
        assert_eq!(prefill["stream"], true);
        let prompt: Value = serde_json::from_str(c.body_for(false)).unwrap();
        let messages = prompt["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"], "Hello wor");
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"], CONTINUE_PROMPT);
        // Nothing but the role went out: start over, unchanged.
        let fresh = continuation_bodies(body, "").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fresh.prompt).unwrap()["messages"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(continuation_bodies(br#"{"model":"m"}"#, "x").is_none());
    }

    #[test]
    fn rejoined_chunks_take_the_first_streams_id_and_drop_the_second_role() {
        let next = chunk(
            "other",
            serde_json::json!({"role": "assistant", "content": " more"}),
        );
        let joined: Value = serde_json::from_str(&rejoin(&next, Some("c1"))).unwrap();
        assert_eq!(joined["id"], "c1");
        assert_eq!(
            joined["choices"][0]["delta"],
            serde_json::json!({"content": " more"})
        );
        assert_eq!(rejoin("not json", Some("c1")), "not json");
    }

    /// Feeds a continuation's text pieces and then its finish chunk through a join; returns the
    /// text the client gets, or why the join failed.
    fn joined(sent: &str, pieces: &[&str]) -> Result<String, String> {
        let mut join = Join::new(sent);
        let mut out = Vec::new();
        let finish = serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {},
                                         "finish_reason": "stop"}]})
        .to_string();
        let chunks = pieces
            .iter()
            .map(|p| chunk("c1", serde_json::json!({ "content": p })))
            .chain([finish.clone()]);
        for json in chunks {
            match join.chunk(json) {
                Joined::Forward(jsons) => out.extend(jsons),
                Joined::Diverged(why) => return Err(why),
            }
            // Held text is bounded by the window, whatever the continuation's length.
            assert!(
                join.held.len() <= 4 * JOIN_WINDOW + 64,
                "{}",
                join.held.len()
            );
        }
        assert_eq!(out.last(), Some(&finish), "the finish chunk goes out last");
        let mut text = String::new();
        for json in &out {
            let value: Value = serde_json::from_str(json).unwrap();
            if let Some(t) = value
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                text.push_str(t);
            }
        }
        Ok(text)
    }

    /// `text` as a model streams it: a word (with its leading space) per piece.
    fn words(text: &str) -> Vec<&str> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c == ' ' && i > start {
                pieces.push(&text[start..i]);
                start = i;
            }
        }
        pieces.push(&text[start..]);
        pieces
    }

    #[test]
    fn a_continuation_that_goes_on_from_where_the_answer_stopped_is_forwarded_as_it_is() {
        let sent = "The quick brown fox jumps over the lazy dog. Then the";
        let rest = " dog woke up and the fox ran over the hill.";
        assert_eq!(joined(sent, &words(rest)).unwrap(), rest);
        // One that begins with the answer's last word (too short to be an overlap).
        assert_eq!(joined(sent, &[" the end."]).unwrap(), " the end.");
        // One that ends while its text is still held: released before the finish chunk.
        assert_eq!(joined("Once upon a time", &[" there"]).unwrap(), " there");
        // And a word cut in two by the break.
        assert_eq!(joined("Hello wor", &["ld!"]).unwrap(), "ld!");
    }

    #[test]
    fn text_that_rides_on_the_finish_chunk_is_joined_too() {
        let sent = "Mock reply to: one two three four";
        let mut join = Join::new(sent);
        let last = serde_json::json!({"id": "c1", "choices": [{"index": 0,
            "delta": {"content": "Mock reply to: one two three four five."},
            "finish_reason": "stop"}]})
        .to_string();
        let Joined::Forward(out) = join.chunk(last) else {
            panic!("joined")
        };
        let out: Vec<Value> = out
            .iter()
            .map(|j| serde_json::from_str(j).unwrap())
            .collect();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0]["choices"][0]["delta"]["content"], " five.");
        assert_eq!(out[0]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(out[1]["choices"][0]["delta"]["content"], "");
        assert_eq!(out[1]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn with_nothing_sent_but_the_role_a_continuation_passes_at_once() {
        let mut join = Join::new("");
        let first = chunk("c1", serde_json::json!({"content": "Hello"}));
        assert_eq!(join.chunk(first.clone()), Joined::Forward(vec![first]));
    }

    #[test]
    fn a_continuation_that_restarts_the_answer_has_the_reproduced_answer_dropped() {
        let sent = "Mock reply to: one two three four";
        let again = "Mock reply to: one two three four five six.";
        assert_eq!(joined(sent, &words(again)).unwrap(), " five six.");
        // Whitespace and case are not compared.
        let sloppy = "mock  Reply to:\none two THREE four five";
        assert_eq!(joined(sent, &words(sloppy)).unwrap(), " five");
        // Leading whitespace, one character per piece.
        let pieces: Vec<String> = format!("  {again}").chars().map(String::from).collect();
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(joined(sent, &pieces).unwrap(), " five six.");
    }

    #[test]
    fn a_continuation_that_repeats_the_answers_end_has_the_overlap_dropped() {
        let sent = "First comes the start. Then the second sentence is longer";
        let repeat = "Then the second sentence is longer than the first.";
        assert_eq!(joined(sent, &words(repeat)).unwrap(), " than the first.");
        // Mid-word: the answer broke inside a word the continuation repeats whole.
        let sent = "First comes the start. Then the second sentence is lon";
        assert_eq!(joined(sent, &words(repeat)).unwrap(), "ger than the first.");
    }

    #[test]
    fn a_continuation_that_restarts_and_says_something_else_has_no_clean_join() {
        let sent = "Mock reply to: one two three four five six seven eight nine ten";
        let other = "Mock reply to: one two three, or rather something else entirely.";
        let why = joined(sent, &words(other)).unwrap_err();
        assert!(why.contains("no clean join"), "{why}");
        // A restart that stops before reaching where the answer stopped.
        let short = "Mock reply to: one two three four";
        assert!(joined(sent, &words(short)).is_err());
    }

    #[test]
    fn a_restart_longer_than_the_window_is_dropped_as_it_streams() {
        let sent: String = (0..800).map(|i| format!("word{i} ")).collect();
        let sent = sent.trim_end();
        assert!(sent.len() > 2 * JOIN_WINDOW);
        let again = format!("{sent} and the rest.");
        assert_eq!(joined(sent, &words(&again)).unwrap(), " and the rest.");
        let departs = format!("{} but then something else", &sent[..3 * JOIN_WINDOW / 2]);
        assert!(joined(sent, &words(&departs)).is_err());
        // A long answer continued properly is not held for long.
        let mut join = Join::new(sent);
        let out = join.chunk(chunk("c1", serde_json::json!({"content": " next"})));
        let out2 = join.chunk(chunk("c1", serde_json::json!({"content": " words"})));
        assert_ne!(
            (out, out2),
            (Joined::Forward(vec![]), Joined::Forward(vec![])),
            "released after two pieces"
        );
    }

    #[test]
    fn normalised_text_lowercases_collapses_whitespace_and_keeps_offsets() {
        let n = normalise("  Ab \n c ", false, usize::MAX);
        let chars: String = n.iter().map(|c| c.0).collect();
        assert_eq!(chars, "ab c");
        assert_eq!(n.last().unwrap().1, 8, "just past `c`");
        let chars: String = normalise(" a", true, 9).iter().map(|c| c.0).collect();
        assert_eq!(chars, " a");
    }

    #[test]
    fn a_broken_attempts_usage_is_its_report_or_an_estimate_of_its_prompt_and_text() {
        let body = br#"{"messages":[{"role":"user","content":"12345678"},
                       {"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url"}]}]}"#;
        assert_eq!(prompt_chars(body), 12);
        let (usage, estimated) = broken_usage(None, body, 9);
        assert!(estimated);
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 3,
                total_tokens: 6
            }
        );
        let reported = Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            total_tokens: 12,
        };
        assert_eq!(broken_usage(Some(reported), body, 9), (reported, false));
        let chunk = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"cost":0.5}}"#;
        let summed: Value =
            serde_json::from_str(&with_usage(chunk, add_usage(usage, reported))).unwrap();
        assert_eq!(
            summed["usage"],
            serde_json::json!({"prompt_tokens": 13, "completion_tokens": 5,
                               "total_tokens": 18, "cost": 0.5})
        );
    }
}
