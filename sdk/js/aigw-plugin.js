// aigw-plugin.js: the JavaScript SDK for aigw plugins (WIT package `aigw:plugin@0.1.0`).
//
// One ES module with no imports, so it runs unchanged inside a component built by
// `jco componentize --backend quickjs` and under plain `node --test` (a plugin's unit tests).
// It mirrors the Rust SDK (`sdk/rust`): an incremental SSE parser, failure classification of
// upstream error answers, the OpenAI-compatible translator (`compatibleProvider`), and for tool
// plugins JSON Schema helpers, argument readers, URL building and `http` over the host's
// `outbound` import (`toolPlugin`). `docs/plugins/javascript.md` is the author's guide.
//
// WIT values in JavaScript (componentize-qjs): records are objects with camelCase fields,
// variants `{ tag: "kebab-name", val }`, options `value | null`, `list<u8>` a Uint8Array,
// `result<T, E>` of an export "return T or throw E". So a failure is thrown as the WIT value
// itself: `throw failure.invalidRequest("...")`. QuickJS has no TextEncoder/TextDecoder, hence
// the UTF-8 helpers below.

// ------------------------------------------------------------------------------------ UTF-8

/// A string as UTF-8 bytes.
export function utf8Encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      out.push(code);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd; // a lone surrogate
    if (code < 0x800) {
      out.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    } else {
      out.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 0x3f),
        0x80 | ((code >> 6) & 0x3f),
        0x80 | (code & 0x3f),
      );
    }
  }
  return Uint8Array.from(out);
}

/// UTF-8 bytes (a Uint8Array or an array of numbers) as a string; an invalid sequence becomes
/// U+FFFD, as Rust's `String::from_utf8_lossy` does, never an exception.
export function utf8Decode(bytes, start = 0, end = bytes.length) {
  let out = "";
  let pieces = [];
  const flush = () => {
    out += String.fromCharCode.apply(null, pieces);
    pieces = [];
  };
  let i = start;
  while (i < end) {
    const first = bytes[i];
    let code = -1;
    let width = 1;
    if (first < 0x80) {
      code = first;
    } else if (first >= 0xc2 && first <= 0xf4) {
      width = first < 0xe0 ? 2 : first < 0xf0 ? 3 : 4;
      code = first & (width === 2 ? 0x1f : width === 3 ? 0x0f : 0x07);
      let taken = 1;
      for (; taken < width && i + taken < end; taken++) {
        const next = bytes[i + taken];
        if ((next & 0xc0) !== 0x80) break;
        code = (code << 6) | (next & 0x3f);
      }
      const overlong = (width === 3 && code < 0x800) || (width === 4 && code < 0x10000);
      if (taken < width || overlong || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        code = -1;
        width = Math.max(1, taken);
      }
    }
    if (code < 0) {
      pieces.push(0xfffd);
    } else if (code < 0x10000) {
      pieces.push(code);
    } else {
      code -= 0x10000;
      pieces.push(0xd800 + (code >> 10), 0xdc00 + (code & 0x3ff));
    }
    i += width;
    if (pieces.length > 4096) flush();
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------- headers

/// The value of the first header named `name` (case-insensitive), or null.
export function headerValue(headers, name) {
  const wanted = name.toLowerCase();
  for (const header of headers || []) {
    if (header.name.toLowerCase() === wanted) return header.value;
  }
  return null;
}

/// Whether a response (or a stream's response head) says its body is JSON.
export function isJson(head) {
  const value = headerValue(head.headers, "content-type");
  if (value === null) return false;
  const media = value.split(";")[0].trim().toLowerCase();
  return media === "application/json" || media.endsWith("+json");
}

/// A header record.
export function header(name, value) {
  return { name, value };
}

// ------------------------------------------------------------------------------ failures

/// The WIT `failure` variant's cases, as values to throw from an export.
export const failure = {
  rateLimited: (message, retryAfterSeconds = null) => ({
    tag: "rate-limited",
    val: { retryAfterSeconds, message },
  }),
  unavailable: (message) => ({ tag: "unavailable", val: message }),
  contextLengthExceeded: (message) => ({ tag: "context-length-exceeded", val: message }),
  invalidRequest: (message) => ({ tag: "invalid-request", val: message }),
  contentFiltered: (message) => ({ tag: "content-filtered", val: message }),
  unauthorized: (message) => ({ tag: "unauthorized", val: message }),
  noCredit: (message) => ({ tag: "no-credit", val: message }),
  badResponse: (message) => ({ tag: "bad-response", val: message }),
};

const FAILURE_TAGS = new Set([
  "rate-limited",
  "unavailable",
  "context-length-exceeded",
  "invalid-request",
  "content-filtered",
  "unauthorized",
  "no-credit",
  "bad-response",
]);

/// Whether `value` is a WIT `failure` (what an export throws to return `err`).
export function isFailure(value) {
  return value !== null && typeof value === "object" && FAILURE_TAGS.has(value.tag);
}

/// The reason a failure carries.
export function failureMessage(value) {
  return value.tag === "rate-limited" ? value.val.message : value.val;
}

/// The longest raw (non-JSON) body text kept in a failure message; HTML error pages are long.
const MAX_RAW_MESSAGE_CHARS = 500;

function bodyText(body) {
  if (typeof body === "string") return body;
  return utf8Decode(body || []);
}

function parseJsonOrNull(text) {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return null;
  }
}

/// A string or number field as text.
function textField(value, key) {
  const field = value[key];
  if (typeof field === "string" && field !== "") return field;
  if (typeof field === "number" && Number.isFinite(field)) return String(field);
  return null;
}

/// What an error body said, whichever envelope it came in: `{ message, code, kind }`, each a
/// string or null. `code` is OpenAI's `code` (or `type`), Gemini's `status`, Novita's `reason`;
/// `kind` OpenAI's `type`.
export const upstreamError = {
  /// Reads an error body (bytes or text). Accepts OpenAI `{"error":{message,type,code}}`, flat
  /// `{message,type,code}`, `{"error":"text"}`, `[{"error":{…}}]`, problem details
  /// `{title,detail,status}`, `{code,reason,message}`, FastAPI `{"detail":[{"msg":…}]}`;
  /// anything else becomes its trimmed, shortened text.
  parse(body) {
    const text = bodyText(body);
    const parsed = parseJsonOrNull(text);
    if (parsed !== null) return upstreamError.fromValue(parsed.value);
    const trimmed = text.trim();
    return { message: trimmed === "" ? null : shorten(trimmed), code: null, kind: null };
  },

  /// Reads an already parsed error value (a body, or a mid-stream `{"error":…}` frame).
  fromValue(value) {
    const none = { message: null, code: null, kind: null };
    if (Array.isArray(value)) return value.length ? upstreamError.fromValue(value[0]) : none;
    if (typeof value === "string") return { message: value, code: null, kind: null };
    if (value === null || typeof value !== "object") return none;
    if (value.error !== undefined && value.error !== null) {
      const error = upstreamError.fromValue(value.error);
      // `{"error":"text"}` may carry its message only in `error`; a wrapper may carry the
      // message beside a non-object `error` (e.g. `"error": true`).
      if (error.message === null) error.message = textField(value, "message");
      return error;
    }
    const kind = textField(value, "type");
    let status = textField(value, "status");
    if (status !== null && /^[0-9]*$/.test(status)) status = null;
    const code = status ?? textField(value, "reason") ?? textField(value, "code") ?? kind;
    const message =
      textField(value, "message") ??
      textField(value, "detail") ??
      detailListMessage(value) ??
      textField(value, "title") ??
      textField(value, "msg");
    return { message, code, kind };
  },
};

/// FastAPI validation errors: `{"detail":[{"loc":[…],"msg":"…"}]}`.
function detailListMessage(value) {
  if (!Array.isArray(value.detail)) return null;
  const messages = value.detail
    .filter((item) => item && typeof item.msg === "string")
    .map((item) => item.msg);
  return messages.length ? messages.join("; ") : null;
}

function shorten(text) {
  const chars = Array.from(text);
  return chars.length > MAX_RAW_MESSAGE_CHARS
    ? chars.slice(0, MAX_RAW_MESSAGE_CHARS).join("") + "…"
    : text;
}

function codeIs(error, codes) {
  return [error.code, error.kind].some(
    (code) => code !== null && codes.some((c) => c.toLowerCase() === code.toLowerCase()),
  );
}

function messageOr(error, status) {
  if (error.message !== null) return error.message;
  if (error.code !== null) return `upstream answered HTTP ${status} (${error.code})`;
  return `upstream answered HTTP ${status}`;
}

/// Whether the error's code says the account has no credit or quota left (OpenAI's 429
/// `insufficient_quota`, Novita's 403 `NOT_ENOUGH_BALANCE`).
export function isNoCredit(error) {
  return codeIs(error, ["insufficient_quota", "NOT_ENOUGH_BALANCE"]);
}

const CONTEXT_TEXTS = [
  "please reduce the length of the messages or completion",
  "maximum context length",
  "exceeds the maximum number of tokens allowed",
  "longer than the model's context length",
  "context length exceeded",
  "context_length_exceeded",
];

/// Whether the error says the prompt does not fit the model.
export function isContextLength(error) {
  if (codeIs(error, ["context_length_exceeded"])) return true;
  const message = (error.message || "").toLowerCase();
  return CONTEXT_TEXTS.some((text) => message.includes(text));
}

const FILTER_TEXTS = ["content policy", "content management policy", "your input was flagged"];

/// Whether the error is a policy rejection.
export function isContentFilter(error) {
  if (
    codeIs(error, [
      "content_filter",
      "content_policy_violation",
      "content_filtered",
      "moderation_blocked",
    ])
  ) {
    return true;
  }
  const message = (error.message || "").toLowerCase();
  return FILTER_TEXTS.some((text) => message.includes(text));
}

/// Classifies a non-2xx upstream response `{ status, headers, body }` into a failure.
export function classify(response, nowMs = Date.now()) {
  const error = upstreamError.parse(response.body);
  return classifyError(response.status, response.headers, error, nowMs);
}

/// The classification rules (mirrors `sdk/rust/src/failure.rs`), the clock passed in so tests
/// can pin HTTP-date retry delays.
export function classifyError(status, headers, error, nowMs = Date.now()) {
  const message = messageOr(error, status);
  const rateLimited = () =>
    failure.rateLimited(message, retryAfterSeconds(headers, error.message, nowMs));
  const client = status >= 400 && status <= 499;
  // No credit left, whatever status says it: waiting does not help.
  if (client && isNoCredit(error)) return failure.noCredit(message);
  if (status === 429) return rateLimited();
  // Groq answers 413 when one request alone exceeds the tokens-per-minute budget.
  if (status === 413 && codeIs(error, ["rate_limit_exceeded"])) return rateLimited();
  if (client && isContentFilter(error)) return failure.contentFiltered(message);
  if ([400, 413, 422].includes(status) && isContextLength(error)) {
    return failure.contextLengthExceeded(message);
  }
  if (status === 401 || status === 403) return failure.unauthorized(message);
  if (status === 402) return failure.noCredit(message);
  if ([408, 409, 424, 425, 498, 499, 529].includes(status)) return failure.unavailable(message);
  if (status >= 500 && status <= 599) return failure.unavailable(message);
  if (client) return failure.invalidRequest(message);
  return failure.badResponse(`unexpected HTTP status ${status}: ${message}`);
}

/// Classifies an error object that arrived with a 2xx status (a mid-stream `{"error":…}` frame,
/// an error body on a 200). A numeric code that is an HTTP status is classified as that status.
export function classifyErrorValue(value, nowMs = Date.now()) {
  const error = upstreamError.fromValue(value);
  const code = value && typeof value === "object" && value.error && value.error.code;
  if (Number.isInteger(code) && code >= 400 && code < 600) {
    return classifyError(code, [], error, nowMs);
  }
  const message = messageOr(error, 200);
  if (isNoCredit(error)) return failure.noCredit(message);
  if (codeIs(error, ["rate_limit_exceeded", "resource_exhausted"])) {
    return failure.rateLimited(message, retryAfterSeconds([], error.message, nowMs));
  }
  if (isContextLength(error)) return failure.contextLengthExceeded(message);
  if (isContentFilter(error)) return failure.contentFiltered(message);
  return failure.unavailable(message);
}

/// How long to wait before trying again, in whole seconds rounded up, or null: the
/// `retry-after` header (seconds or an HTTP date), a delay in the message ("Please try again in
/// 5.289s", "resets in ~30s"), or the `x-ratelimit-reset-*` headers.
export function retryAfterSeconds(headers, message, nowMs = Date.now()) {
  const value = headerValue(headers, "retry-after");
  if (value !== null) {
    const seconds = parseSeconds(value);
    if (seconds !== null) return secondsUp(seconds);
    const date = parseHttpDate(value.trim());
    if (date !== null) return secondsUp(Math.max(0, date - nowMs) / 1000);
  }
  const inMessage = message ? delayInMessage(message) : null;
  if (inMessage !== null) return secondsUp(inMessage);
  const reset = resetHeaderSeconds(headers, nowMs);
  return reset === null ? null : secondsUp(reset);
}

function secondsUp(seconds) {
  return Math.min(Math.ceil(Math.max(0, seconds)), 0xffffffff);
}

/// A plain non-negative number of seconds (`30`, `11.38`).
function parseSeconds(text) {
  const trimmed = text.trim();
  if (!/^[0-9.]+$/.test(trimmed)) return null;
  const seconds = Number(trimmed);
  return Number.isFinite(seconds) ? seconds : null;
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in epoch milliseconds, or null.
function parseHttpDate(text) {
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

function delayInMessage(message) {
  const lower = message.toLowerCase();
  for (const marker of ["try again in ", "resets in "]) {
    const at = lower.indexOf(marker);
    if (at < 0) continue;
    const rest = lower.slice(at + marker.length).replace(/^~+/, "");
    const token = rest.split(/\s+/)[0];
    if (!token) continue;
    const seconds = parseGoDuration(token.replace(/[.,;)]+$/, ""));
    if (seconds !== null) return seconds;
  }
  return null;
}

const DURATION_UNITS = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, "µs": 1e-6, "μs": 1e-6, ns: 1e-9 };

/// A Go-style duration (`7.66s`, `2m59.56s`, `6ms`, `1h0m0s`) in seconds; a bare number counts
/// as seconds. Null when it is not one.
export function parseGoDuration(text) {
  const trimmed = text.trim();
  const plain = parseSeconds(trimmed);
  if (plain !== null) return plain;
  if (trimmed === "") return null;
  let total = 0;
  const part = /([0-9.]+)([^0-9.]+)/y;
  let at = 0;
  while (at < trimmed.length) {
    part.lastIndex = at;
    const match = part.exec(trimmed);
    if (!match) return null;
    const number = Number(match[1]);
    const scale = DURATION_UNITS[match[2]];
    if (!Number.isFinite(number) || scale === undefined) return null;
    total += number * scale;
    at = part.lastIndex;
  }
  return total;
}

/// The `x-ratelimit-reset-*` headers: the exhausted dimension's (its `remaining` is 0) if one
/// is, else the soonest. OpenRouter's bare `x-ratelimit-reset` is an epoch in milliseconds.
function resetHeaderSeconds(headers, nowMs) {
  let soonest = null;
  for (const { name, value } of headers || []) {
    const lower = name.toLowerCase();
    if (!lower.startsWith("x-ratelimit-reset")) continue;
    const dimension = lower.slice("x-ratelimit-reset".length);
    let seconds = parseGoDuration(value);
    if (seconds === null) continue;
    if (dimension === "" && seconds > 1e11) seconds = Math.max(0, (seconds - nowMs) / 1000);
    const remaining = headerValue(headers, `x-ratelimit-remaining${dimension}`);
    if (remaining !== null && remaining.trim() === "0") return seconds;
    soonest = soonest === null ? seconds : Math.min(soonest, seconds);
  }
  return soonest;
}

// ------------------------------------------------------------------------------------- SSE

/// An incremental Server-Sent Events parser (WHATWG `text/event-stream`). The body arrives in
/// whatever pieces the network produced, so a piece may end inside a line, a `\r\n` or a UTF-8
/// character: the unfinished line is kept as bytes and only complete lines are decoded (a line
/// break byte never occurs inside a multi-byte character). Events: `{ name, data, id }`, `name`
/// and `id` null when absent.
export class SseParser {
  constructor() {
    this.line = []; // bytes of the line not yet terminated
    this.data = "";
    this.hasData = false;
    this.name = null;
    this.id = null;
    this.started = false; // a leading BOM is skipped at the very start
  }

  /// Feeds the next piece of the body (bytes); returns the events it completed.
  feed(bytes) {
    const events = [];
    let from = 0;
    if (!this.started) {
      for (const byte of bytes) this.line.push(byte);
      const bom = [0xef, 0xbb, 0xbf];
      if (this.line.length < 3 && this.line.every((byte, i) => byte === bom[i])) return events;
      this.started = true;
      let pending = this.line;
      this.line = [];
      if (pending[0] === 0xef && pending[1] === 0xbb && pending[2] === 0xbf) {
        pending = pending.slice(3);
      }
      return this.feed(pending);
    }
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 0x0a) continue;
      if (this.line.length === 0) {
        this.processLine(bytes, from, i, events);
      } else {
        for (let j = from; j < i; j++) this.line.push(bytes[j]);
        const line = this.line;
        this.line = [];
        this.processLine(line, 0, line.length, events);
      }
      from = i + 1;
    }
    for (let j = from; j < bytes.length; j++) this.line.push(bytes[j]);
    return events;
  }

  /// The body ended. A stream that stops without the final blank line still delivers its last
  /// event (lenient, as the Rust SDK is).
  finish() {
    const events = [];
    this.started = true;
    if (this.line.length) {
      const line = this.line;
      this.line = [];
      this.processLine(line, 0, line.length, events);
    }
    this.dispatch(events);
    return events;
  }

  processLine(bytes, start, end, events) {
    if (end > start && bytes[end - 1] === 0x0d) end--;
    if (end === start) {
      this.dispatch(events);
      return;
    }
    if (bytes[start] === 0x3a) return; // a comment, e.g. `: OPENROUTER PROCESSING`
    let colon = -1;
    for (let i = start; i < end; i++) {
      if (bytes[i] === 0x3a) {
        colon = i;
        break;
      }
    }
    let field;
    let value;
    if (colon < 0) {
      field = utf8Decode(bytes, start, end);
      value = "";
    } else {
      field = utf8Decode(bytes, start, colon);
      let valueStart = colon + 1;
      if (bytes[valueStart] === 0x20 && valueStart < end) valueStart++;
      value = utf8Decode(bytes, valueStart, end);
    }
    if (field === "data") {
      this.data += value + "\n";
      this.hasData = true;
    } else if (field === "event") {
      this.name = value;
    } else if (field === "id" && !value.includes("\0")) {
      this.id = value;
    } // `retry:` and unknown fields are ignored, as the spec says
  }

  dispatch(events) {
    const name = this.name;
    this.name = null;
    if (!this.hasData) return; // no data: not dispatched, but its fields reset
    this.hasData = false;
    const data = this.data.slice(0, -1);
    this.data = "";
    events.push({ name, data, id: this.id });
  }
}

// ------------------------------------------------------------------------- OpenAI dialect

/// Token counts `{ promptTokens, completionTokens, totalTokens }` from an OpenAI `usage` object;
/// null when absent or without counts. A missing total is the sum; counts saturate at u32.
export function parseUsage(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const count = (key) => {
    const n = value[key];
    return Number.isInteger(n) && n >= 0 ? Math.min(n, 0xffffffff) : null;
  };
  const prompt = count("prompt_tokens");
  const completion = count("completion_tokens");
  const total = count("total_tokens");
  if (prompt === null && completion === null) return null;
  const promptTokens = prompt ?? 0;
  const completionTokens = completion ?? 0;
  return {
    promptTokens,
    completionTokens,
    totalTokens: total ?? Math.min(promptTokens + completionTokens, 0xffffffff),
  };
}

/// The client's request JSON as an object, or an `invalid-request` failure thrown.
export function parseRequest(requestJson) {
  let body;
  try {
    body = JSON.parse(requestJson);
  } catch (error) {
    throw failure.invalidRequest(`the request body is not valid JSON: ${error.message}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw failure.invalidRequest("the request body must be a JSON object");
  }
  return body;
}

/// Whether the client asked for a streamed answer.
export function isStream(body) {
  return body.stream === true;
}

/// Points the request at the target's model and, for a stream, asks for the usage chunk (the
/// host accounts usage whether or not the client asked). Everything else passes through.
export function prepareRequest(target, body) {
  body.model = target.model;
  if (isStream(body)) {
    const options = body.stream_options;
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      body.stream_options = {};
    }
    body.stream_options.include_usage = true;
  }
}

/// `base` and `path` with exactly one `/` between them.
export function joinUrl(base, path) {
  return `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

/// `POST {baseUrl}/chat/completions` with `body` as JSON. No credential: the host adds it.
export function chatCompletionsRequest(baseUrl, body) {
  const headers = [header("content-type", "application/json")];
  if (isStream(body)) headers.push(header("accept", "text/event-stream"));
  return {
    method: "POST",
    url: joinUrl(baseUrl, "chat/completions"),
    headers,
    body: utf8Encode(JSON.stringify(body)),
  };
}

/// A 2xx non-streamed body as a completion `{ json, usage }` (the JSON verbatim). An
/// `{"error":…}` body is classified; a body without `choices` is a bad response.
export function decodeCompletion(body) {
  const json = bodyText(body);
  let value;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw failure.badResponse(`the completion is not a valid JSON object: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw failure.badResponse("the completion is not a valid JSON object");
  }
  if (value.error !== undefined && value.error !== null) throw classifyErrorValue(value);
  if (!Array.isArray(value.choices)) {
    throw failure.badResponse("the completion has no `choices` array");
  }
  return { json, usage: parseUsage(value.usage) };
}

/// The text of an OpenAI message's `content` (`index` in `messages`), for providers that take
/// text only; any non-text part is refused naming `provider`.
export function contentText(content, index, provider) {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    throw failure.invalidRequest(
      `\`messages[${index}].content\` must be a string or an array of parts`,
    );
  }
  let text = "";
  for (const part of content) {
    const type = part && part.type;
    if (type === "text") {
      text += typeof part.text === "string" ? part.text : "";
    } else if (typeof type === "string") {
      throw failure.invalidRequest(
        `${provider} does not support \`${type}\` content parts here (messages[${index}])`,
      );
    } else {
      throw failure.invalidRequest(`\`messages[${index}].content\` has a part without \`type\``);
    }
  }
  return text;
}

/// The most JSON buffered when a server answers a streamed request with a whole completion.
const MAX_JSON_BYTES = 16 * 1024 * 1024;

const HEAD_KEYS = ["id", "created", "model", "system_fingerprint"];

function pick(object, keys) {
  const out = {};
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}

/// Decodes an OpenAI chat-completions SSE body into chunks `{ json, usage }`.
///
/// Chunks pass through verbatim. `[DONE]` ends the stream; a frame with an `error` is a failure;
/// the `choices: []` chunk with `usage` is returned with `usage` set. A stream that ends without
/// `[DONE]` is complete only if a `finish_reason` was seen; otherwise `finish` throws
/// `unavailable`. A server that ignored `stream: true` and answered JSON (the head says so) is
/// buffered and replayed as chunks at the end. `dialect` hooks: `streamUsage(chunk)`,
/// `streamError(frame)` (see `compatibleProvider`).
export class ChunkStream {
  constructor(head = null, dialect = {}) {
    this.sse = new SseParser();
    this.json = head !== null && isJson(head) ? [] : null;
    this.jsonBytes = 0;
    this.done = false;
    this.finishSeen = false;
    this.usageChunkSeen = false;
    this.pendingUsage = null;
    this.dialect = dialect;
  }

  /// The next piece of the body: the chunks it completes.
  feed(bytes) {
    if (this.json !== null) {
      if (this.jsonBytes + bytes.length > MAX_JSON_BYTES) {
        throw failure.badResponse(`the completion is larger than ${MAX_JSON_BYTES} bytes`);
      }
      this.json.push(Uint8Array.from(bytes));
      this.jsonBytes += bytes.length;
      return [];
    }
    return this.handleEvents(this.sse.feed(bytes));
  }

  /// The body ended: the WIT `stream-end` (`{ tag: "done", val: chunks }`).
  finish() {
    if (this.json !== null) {
      const body = new Uint8Array(this.jsonBytes);
      let at = 0;
      for (const piece of this.json) {
        body.set(piece, at);
        at += piece.length;
      }
      this.json = null;
      return { tag: "done", val: completionChunks(body) };
    }
    const chunks = this.handleEvents(this.sse.finish());
    if (!this.done && !this.finishSeen) {
      throw failure.unavailable("stream ended before completion");
    }
    if (this.pendingUsage !== null) chunks.push(this.takePendingUsage());
    return { tag: "done", val: chunks };
  }

  handleEvents(events) {
    const chunks = [];
    for (const event of events) {
      if (this.done) break; // nothing after `[DONE]` belongs to the answer
      this.handleEvent(event, chunks);
    }
    return chunks;
  }

  takePendingUsage() {
    const chunk = this.pendingUsage;
    this.pendingUsage = null;
    return chunk;
  }

  handleEvent(event, chunks) {
    const data = event.data.trim();
    if (data === "") return;
    if (data === "[DONE]") {
      this.done = true;
      if (this.pendingUsage !== null) chunks.push(this.takePendingUsage());
      return;
    }
    let object;
    try {
      object = JSON.parse(data);
    } catch (error) {
      throw failure.badResponse(`a stream frame is not valid JSON: ${error.message}`);
    }
    if (object === null || typeof object !== "object" || Array.isArray(object)) {
      throw failure.badResponse("a stream frame is not a JSON object");
    }
    const custom = this.dialect.streamError ? this.dialect.streamError(object) : null;
    if (custom) throw custom;
    if (object.error !== undefined && object.error !== null) throw classifyErrorValue(object);
    const choices = Array.isArray(object.choices) ? object.choices : null;
    const usage = object.usage !== undefined && object.usage !== null ? object.usage : null;
    if (choices === null || choices.length === 0) {
      const parsed = usage === null ? null : parseUsage(usage);
      if (parsed !== null) {
        this.usageChunkSeen = true;
        this.pendingUsage = null;
        chunks.push({ json: event.data, usage: parsed });
        return;
      }
    }
    if (choices !== null && choices.some((c) => c && c.finish_reason != null)) {
      this.finishSeen = true;
    }
    // Usage riding on a content chunk must not mark that chunk as the usage chunk: the host
    // drops the usage chunk for clients that did not ask, and would drop content with it.
    if (!this.usageChunkSeen) {
      const raw = usage ?? (this.dialect.streamUsage ? this.dialect.streamUsage(object) : null);
      const parsed = raw === null || raw === undefined ? null : parseUsage(raw);
      if (parsed !== null) {
        this.pendingUsage = {
          json: JSON.stringify({
            ...pick(object, HEAD_KEYS),
            object: "chat.completion.chunk",
            choices: [],
            usage: raw,
          }),
          usage: parsed,
        };
      }
    }
    // Only the final `choices: []` chunk carries usage in OpenAI's form; a client summing every
    // `usage` it sees would count this one twice.
    const json = usage !== null ? JSON.stringify({ ...object, usage: null }) : event.data;
    chunks.push({ json, usage: null });
  }
}

/// A whole `chat.completion` body as the chunks a stream of it would have carried: per choice
/// one chunk whose delta is the whole message, then the usage chunk when the body has usage.
export function completionChunks(body) {
  const completion = decodeCompletion(body);
  const object = JSON.parse(completion.json);
  const head = { ...pick(object, HEAD_KEYS), object: "chat.completion.chunk" };
  const chunks = object.choices.map((choice, position) => {
    const message = choice && typeof choice.message === "object" && choice.message;
    const delta = message && !Array.isArray(message) ? { ...message } : {};
    if (Array.isArray(delta.tool_calls)) {
      delta.tool_calls = delta.tool_calls.map((call, index) =>
        call && typeof call === "object" && call.index === undefined ? { index, ...call } : call,
      );
    }
    return {
      json: JSON.stringify({
        ...head,
        choices: [
          {
            index: choice && choice.index !== undefined ? choice.index : position,
            delta,
            logprobs: (choice && choice.logprobs) ?? null,
            // The answer is whole, so it did finish; say how, or `stop`.
            finish_reason: (choice && choice.finish_reason) ?? "stop",
          },
        ],
      }),
      usage: null,
    };
  });
  if (completion.usage !== null && object.usage !== undefined) {
    chunks.push({
      json: JSON.stringify({ ...head, choices: [], usage: object.usage }),
      usage: completion.usage,
    });
  }
  return chunks;
}

/// The `provider` export of an OpenAI-compatible plugin: `export const provider =
/// compatibleProvider({ describe() { … } })`. Every hook but `describe` defaults to OpenAI:
/// - `describe()`: the descriptor record;
/// - `adjustRequest(body)`: check or rewrite the request body (after `model` and
///   `stream_options` are set); throw `failure.invalidRequest` for what the provider would 400;
/// - `classify(response)`: a non-2xx response's failure;
/// - `streamUsage(chunk)`: usage a chunk carries somewhere else (e.g. `x_groq.usage`);
/// - `streamError(frame)`: a mid-stream error in the provider's own shape, or null.
export function compatibleProvider(dialect) {
  const classifyResponse = dialect.classify || ((response) => classify(response));
  class StreamDecoder {
    constructor(_target, head) {
      this.stream = new ChunkStream(head, dialect);
    }
    feed(bytes) {
      return guard(() => this.stream.feed(bytes));
    }
    finish() {
      return guard(() => this.stream.finish());
    }
  }
  return {
    describe: () => dialect.describe(),
    encode: (target, requestJson) =>
      guard(() => {
        const body = parseRequest(requestJson);
        prepareRequest(target, body);
        if (dialect.adjustRequest) dialect.adjustRequest(body);
        return chatCompletionsRequest(target.baseUrl, body);
      }),
    decode: (_target, response) =>
      guard(() => {
        if (response.status < 200 || response.status > 299) throw classifyResponse(response);
        return { tag: "done", val: decodeCompletion(response.body) };
      }),
    StreamDecoder,
  };
}

/// Runs an export's body: a thrown failure stays the call's `err`; any other exception (a bug
/// in the plugin) is rethrown as an Error naming it, which the host reports as a plugin fault.
export function guard(body) {
  try {
    return body();
  } catch (thrown) {
    if (isFailure(thrown)) throw thrown;
    const why = thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown);
    throw new Error(`plugin bug: ${why}`);
  }
}

/// The bearer-token credential placement (`authorization: Bearer <key>`).
export const credential = {
  none: () => ({ tag: "none" }),
  bearer: () => ({ tag: "header", val: { name: "authorization", prefix: "Bearer " } }),
  header: (name, prefix = "") => ({ tag: "header", val: { name, prefix } }),
  query: (name) => ({ tag: "query", val: name }),
};

// ------------------------------------------------------------------------------ tool plugins

/// JSON Schema helpers, so every tool's schemas have one shape: objects close their properties
/// and list what is required, scalars carry a description the model reads.
export const schema = {
  object(properties, required = []) {
    const out = { type: "object", properties };
    if (required.length) out.required = [...required];
    out.additionalProperties = false;
    return out;
  },
  string: (description) => ({ type: "string", description }),
  text: (description, max) => ({ type: "string", description, minLength: 1, maxLength: max }),
  oneOf: (description, values) => ({ type: "string", description, enum: [...values] }),
  integer: (description, min, max) => ({ type: "integer", description, minimum: min, maximum: max }),
  number: (description, min, max) => ({ type: "number", description, minimum: min, maximum: max }),
  nullableNumber: (description) => ({ type: ["number", "null"], description }),
  nullableString: (description) => ({ type: ["string", "null"], description }),
  array: (description, items) => ({ type: "array", description, items }),
};

/// Reading a tool's arguments. The host validates them against the schema first, so these are
/// a second line: a wrong type or a value out of range is an `invalid-request` naming the field.
export class Args {
  constructor(value) {
    this.value = value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
  }

  static invalid(field, what) {
    return failure.invalidRequest(`argument ${JSON.stringify(field)} must be ${what}`);
  }

  has(field) {
    return this.value[field] !== undefined && this.value[field] !== null;
  }

  /// A string argument (trimmed), or null when absent; a blank one is refused.
  string(field) {
    if (!this.has(field)) return null;
    const value = this.value[field];
    if (typeof value !== "string") throw Args.invalid(field, "a string");
    if (value.trim() === "") throw Args.invalid(field, "a non-empty string");
    return value.trim();
  }

  /// A string argument that must be there.
  requiredString(field) {
    const value = this.string(field);
    if (value === null) {
      throw failure.invalidRequest(`argument ${JSON.stringify(field)} is required`);
    }
    return value;
  }

  /// An integer in `min..=max`, or null when absent.
  integer(field, min, max) {
    if (!this.has(field)) return null;
    const value = this.value[field];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw Args.invalid(field, `an integer from ${min} to ${max}`);
    }
    return value;
  }

  /// A number in `min..=max`, or null when absent.
  number(field, min, max) {
    if (!this.has(field)) return null;
    const value = this.value[field];
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      throw Args.invalid(field, `a number from ${min} to ${max}`);
    }
    return value;
  }

  /// One of `allowed`, or null when absent.
  oneOf(field, allowed) {
    const value = this.string(field);
    if (value !== null && !allowed.includes(value)) {
      throw Args.invalid(field, `one of ${allowed.join(", ")}`);
    }
    return value;
  }
}

/// Percent-encodes `text` for a URL query value or path segment: all but RFC 3986's unreserved
/// characters become `%XX` of their UTF-8 bytes, so arguments never add parameters.
export function encodeQuery(text) {
  let out = "";
  for (const byte of utf8Encode(String(text))) {
    const unreserved =
      (byte >= 0x30 && byte <= 0x39) ||
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2d ||
      byte === 0x2e ||
      byte === 0x5f ||
      byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/// `endpoint` (trailing `/` dropped) + `path` + `?name=value&…` from `params` (an object or an
/// array of pairs); null and undefined values are left out, the rest percent-encoded.
export function url(endpoint, path, params = {}) {
  let out = endpoint.replace(/\/+$/, "") + path;
  let hasQuery = out.includes("?");
  const pairs = Array.isArray(params) ? params : Object.entries(params);
  for (const [name, value] of pairs) {
    if (value === null || value === undefined) continue;
    out += (hasQuery ? "&" : "?") + encodeQuery(name) + "=" + encodeQuery(String(value));
    hasQuery = true;
  }
  return out;
}

/// The target a tool call is for, with `endpoint(name)`: the configured URL of that endpoint
/// without a trailing `/`. A target without it is the host's mistake: `unavailable`.
export class ToolTarget {
  constructor(target) {
    this.upstream = target.upstream;
    this.endpoints = target.endpoints;
  }

  endpoint(name) {
    const found = this.endpoints.find((endpoint) => endpoint.name === name);
    if (!found) {
      throw failure.unavailable(
        `upstream ${JSON.stringify(this.upstream)} was called without its ${JSON.stringify(name)} endpoint`,
      );
    }
    return found.url.replace(/\/+$/, "");
  }
}

/// Outbound HTTP over the host's `outbound.send` (pass the imported interface:
/// `import outbound from "aigw:plugin/outbound@0.1.0"; const http = httpClient(outbound)`; tests
/// pass any object with a `send(request)`). The host sends only to the call's upstream origins,
/// adds the credential itself and follows no redirect; a refused send throws its failure.
export function httpClient(outbound) {
  const send = (request) => {
    try {
      return outbound.send(request);
    } catch (thrown) {
      throw asFailure(thrown);
    }
  };
  const request = (method, target, headers = {}, body = new Uint8Array(0)) => {
    const list = Object.entries(headers).map(([name, value]) => header(name, String(value)));
    if (!list.some((h) => h.name.toLowerCase() === "accept")) {
      list.push(header("accept", "application/json"));
    }
    return { method, url: target, headers: list, body };
  };
  return {
    send,
    request,
    /// `GET url` (accept JSON unless `headers` say otherwise).
    get: (target, headers) => send(request("GET", target, headers)),
    /// `POST url` with `value` as JSON.
    postJson: (target, headers, value) => {
      const built = request("POST", target, headers, utf8Encode(JSON.stringify(value)));
      built.headers.push(header("content-type", "application/json"));
      return send(built);
    },
  };
}

/// What an import threw, as a failure: QuickJS may hand the `err` payload itself or wrap it.
function asFailure(thrown) {
  if (isFailure(thrown)) return thrown;
  for (const key of ["payload", "val", "value", "cause"]) {
    if (thrown && isFailure(thrown[key])) return thrown[key];
  }
  const why = thrown instanceof Error ? thrown.message : String(thrown);
  return failure.unavailable(`the host could not send the request: ${why}`);
}

/// Whether the answer is an HTML page (by media type, or a body starting with `<`).
export function isHtml(response) {
  const type = headerValue(response.headers, "content-type");
  const media = type === null ? "" : type.split(";")[0].trim().toLowerCase();
  if (media === "text/html" || media === "application/xhtml+xml") return true;
  const body = response.body || [];
  for (const byte of body) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d || byte === 0x0c) continue;
    return byte === 0x3c;
  }
  return false;
}

/// Reading a tool upstream's answer (mirrors `sdk/rust/src/answer.rs`): 429 → rate limited
/// (`retry-after` or the multi-window `x-ratelimit-reset`), 401/403 unauthorized, 402 no credit,
/// 408/5xx unavailable, other 4xx invalid request, HTML anywhere unavailable, a 2xx that is not
/// JSON a bad response.
export const answer = {
  isHtml,

  /// The parsed body of a 2xx JSON answer from `api`; any other answer throws its failure.
  json(api, response) {
    if (isHtml(response)) throw answer.html(api, response.status);
    if (response.status < 200 || response.status > 299) throw answer.failure(api, response);
    try {
      return JSON.parse(utf8Decode(response.body));
    } catch (error) {
      throw failure.badResponse(
        `${api} answered HTTP ${response.status} with a body that is not JSON: ${error.message}`,
      );
    }
  },

  html(api, status) {
    return failure.unavailable(
      `${api} answered HTTP ${status} with an HTML page where JSON was expected (a proxy or a bot wall in the way?)`,
    );
  },

  /// The failure a non-2xx answer from `api` stands for, its message from the body.
  failure(api, response) {
    const error = upstreamError.parse(response.body);
    const message =
      error.message !== null
        ? `${api}: ${error.message}`
        : error.code !== null
          ? `${api} answered HTTP ${response.status} (${error.code})`
          : `${api} answered HTTP ${response.status}`;
    return answer.failureWith(response, message);
  },

  /// The failure a non-2xx answer stands for by its status and headers, with `message`.
  failureWith(response, message, nowMs = Date.now()) {
    if (isHtml(response)) return failure.unavailable(message);
    const status = response.status;
    if (status === 429) return failure.rateLimited(message, answer.retryAfter(response.headers, nowMs));
    if (status === 401 || status === 403) return failure.unauthorized(message);
    if (status === 402) return failure.noCredit(message);
    if (status === 408 || (status >= 500 && status <= 599)) return failure.unavailable(message);
    if (status >= 400 && status <= 499) return failure.invalidRequest(message);
    return failure.badResponse(`unexpected HTTP status ${status}: ${message}`);
  },

  /// Seconds to wait: `retry-after`, else `x-ratelimit-reset`, which may hold one value per
  /// window (`1, 1419704`): the window whose `x-ratelimit-remaining` is 0 decides, else the first.
  retryAfter(headers, nowMs = Date.now()) {
    if (headerValue(headers, "retry-after") !== null) {
      const seconds = retryAfterSeconds(headers, null, nowMs);
      if (seconds !== null) return seconds;
    }
    const reset = headerValue(headers, "x-ratelimit-reset");
    if (reset === null) return null;
    const windows = (value) =>
      value.split(",").map((part) => {
        const n = part.trim() === "" ? NaN : Number(part.trim());
        return Number.isFinite(n) ? n : null;
      });
    const resets = windows(reset);
    const remaining = windows(headerValue(headers, "x-ratelimit-remaining") ?? "");
    const exhausted = remaining.findIndex((left) => left === 0);
    const seconds = exhausted >= 0 && resets[exhausted] != null ? resets[exhausted] : resets[0];
    return seconds === null || seconds === undefined ? null : secondsUp(seconds);
  },
};

/// A tool spec record from `{ name, title, description, parameters, output, cacheTtlSeconds }`
/// (schemas as objects).
export function toolSpec({ name, title, description, parameters, output = null, cacheTtlSeconds = 0 }) {
  return {
    name,
    title,
    description,
    parametersSchema: JSON.stringify(parameters),
    outputSchema: output === null ? null : JSON.stringify(output),
    cacheTtlSeconds,
  };
}

/// The `tool` export of a tool plugin: `export const tool = toolPlugin({ describe, invoke })`.
/// - `describe()`: `{ name, version, tools: [toolSpec(…)…], upstreams: [{ name, endpoints:
///   [{ name, url }], credential, credentialRequired }] }`;
/// - `invoke(name, args, target)`: `args` the parsed arguments (an `Args` wraps them), `target`
///   a `ToolTarget`; returns the result object, or throws a failure.
export function toolPlugin(plugin) {
  return {
    describe: () => plugin.describe(),
    invoke: (name, argsJson, target) =>
      guard(() => {
        let args;
        try {
          args = JSON.parse(argsJson);
        } catch (error) {
          throw failure.invalidRequest(`the arguments are not valid JSON: ${error.message}`);
        }
        const result = plugin.invoke(name, args, new ToolTarget(target));
        return JSON.stringify(result);
      }),
  };
}
