//! OpenAI chat-completions request → Gemini `GenerateContentRequest`.

use std::collections::HashMap;

use aigw_plugin_sdk::openai::{is_stream, join_url, parse_request};
use aigw_plugin_sdk::{Failure, Header, HttpRequest, Target};
use serde_json::{Map, Value, json};

/// Schema keywords OpenAI clients send that Gemini's OpenAPI-subset `Schema` rejects with 400.
const UNSUPPORTED_SCHEMA_KEYS: [&str; 4] = ["$schema", "additionalProperties", "strict", "$id"];

pub fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
    let request = parse_request(request_json)?;
    let model = model_path_segment(&target.model)?;
    let body = translate(&request, &model)?;
    let (path, accept) = if is_stream(&request) {
        (
            format!("models/{model}:streamGenerateContent?alt=sse"),
            "text/event-stream",
        )
    } else {
        (
            format!("models/{model}:generateContent"),
            "application/json",
        )
    };
    let body = serde_json::to_vec(&Value::Object(body)).map_err(|error| {
        Failure::InvalidRequest(format!("the request could not be serialised: {error}"))
    })?;
    Ok(HttpRequest {
        method: "POST".to_owned(),
        url: join_url(&target.base_url, &path),
        headers: vec![
            Header::new("content-type", "application/json"),
            Header::new("accept", accept),
        ],
        body,
    })
}

/// The model as a URL path segment: a `models/` prefix (as Gemini's model list spells names) is
/// dropped, and characters that would change the URL's meaning are percent-encoded.
fn model_path_segment(model: &str) -> Result<String, Failure> {
    let model = model.trim();
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty() {
        return Err(Failure::InvalidRequest(
            "gemini needs a model name".to_owned(),
        ));
    }
    let mut out = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

/// The placeholder `thoughtSignature` Google documents for function calls whose real signature
/// is unavailable (history from another model, or a client that dropped it).
const SKIP_SIGNATURE_VALIDATION: &str = "skip_thought_signature_validator";

/// Whether the model validates thought signatures on replayed function calls: Gemini 3 and
/// later (`gemini-1.x` / `gemini-2.x` do not, and other models on the API, e.g. Gemma, neither).
fn validates_signatures(model: &str) -> bool {
    let Some(version) = model.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|major| major >= 3)
}

/// The whole request body translation.
pub fn translate(request: &Map<String, Value>, model: &str) -> Result<Map<String, Value>, Failure> {
    if let Some(n) = request.get("n").filter(|n| !n.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(Failure::InvalidRequest(format!(
            "gemini does not support `n` other than 1 (got {n}); send one request per choice"
        )));
    }
    if request.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(Failure::InvalidRequest(
            "gemini does not support `logprobs` through this gateway".to_owned(),
        ));
    }
    let messages = match request.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => {
            return Err(Failure::InvalidRequest(
                "`messages` must be a non-empty array".to_owned(),
            ));
        }
    };

    let mut body = Map::new();
    let (system, contents) = translate_messages(messages, validates_signatures(model))?;
    if !system.is_empty() {
        body.insert("systemInstruction".to_owned(), json!({ "parts": system }));
    }
    if contents.is_empty() {
        return Err(Failure::InvalidRequest(
            "gemini needs at least one user, assistant or tool message with content".to_owned(),
        ));
    }
    body.insert("contents".to_owned(), Value::Array(contents));

    if let Some(tools) = translate_tools(request.get("tools"))? {
        body.insert("tools".to_owned(), tools);
    }
    if let Some(tool_config) = translate_tool_choice(request.get("tool_choice"))? {
        body.insert("toolConfig".to_owned(), tool_config);
    }
    let generation_config = translate_generation_config(request)?;
    if !generation_config.is_empty() {
        body.insert(
            "generationConfig".to_owned(),
            Value::Object(generation_config),
        );
    }
    Ok(body)
}

/// The system instruction parts and the `contents` turns. Consecutive messages that map to the
/// same Gemini role are merged into one turn (parallel tool results become one `user` turn).
fn translate_messages(
    messages: &[Value],
    needs_signatures: bool,
) -> Result<(Vec<Value>, Vec<Value>), Failure> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // Tool-call id → function name, from the assistant messages seen so far.
    let mut call_names: HashMap<String, String> = HashMap::new();

    for (position, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(Failure::InvalidRequest(format!(
                "messages[{position}] must be an object"
            )));
        };
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let (gemini_role, parts) = match role {
            "system" | "developer" => {
                let text = text_content(message.get("content"), position)?;
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            "user" => ("user", user_parts(message.get("content"), position)?),
            "assistant" => (
                "model",
                assistant_parts(message, position, &mut call_names, needs_signatures)?,
            ),
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = call_names
                    .get(id)
                    .cloned()
                    .or_else(|| {
                        message
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .ok_or_else(|| {
                        Failure::InvalidRequest(format!(
                            "messages[{position}]: tool_call_id `{id}` matches no earlier assistant tool call"
                        ))
                    })?;
                (
                    "user",
                    vec![function_response(&name, message.get("content"), position)?],
                )
            }
            "function" => {
                let name = message.get("name").and_then(Value::as_str).ok_or_else(|| {
                    Failure::InvalidRequest(format!(
                        "messages[{position}]: a `function` message needs a `name`"
                    ))
                })?;
                (
                    "user",
                    vec![function_response(name, message.get("content"), position)?],
                )
            }
            other => {
                return Err(Failure::InvalidRequest(format!(
                    "messages[{position}]: unsupported role `{other}`"
                )));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last_role, last_parts)) if last_role == gemini_role => {
                last_parts.extend(parts);
            }
            _ => contents.push((gemini_role.to_owned(), parts)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((system, contents))
}

/// A message's content as plain text (system, assistant and tool messages take no media).
fn text_content(content: Option<&Value>, position: usize) -> Result<String, Failure> {
    aigw_plugin_sdk::openai::content_text(content, position, "gemini")
}

fn part_type(part: &Value) -> &str {
    part.get("type").and_then(Value::as_str).unwrap_or("")
}

fn user_parts(content: Option<&Value>, position: usize) -> Result<Vec<Value>, Failure> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![json!({ "text": text })]),
        Some(Value::Array(items)) => {
            let mut parts = Vec::new();
            for item in items {
                match part_type(item) {
                    "text" => {
                        let text = item.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            parts.push(json!({ "text": text }));
                        }
                    }
                    "image_url" => {
                        let url = item
                            .get("image_url")
                            .and_then(|image| image.get("url").or(Some(image)))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        parts.push(media_part(url, position)?);
                    }
                    "input_audio" => {
                        let audio = item.get("input_audio");
                        let data = audio
                            .and_then(|audio| audio.get("data"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let format = audio
                            .and_then(|audio| audio.get("format"))
                            .and_then(Value::as_str)
                            .unwrap_or("wav");
                        parts.push(json!({
                            "inlineData": { "mimeType": format!("audio/{format}"), "data": data }
                        }));
                    }
                    other => {
                        return Err(Failure::InvalidRequest(format!(
                            "messages[{position}]: content part type `{other}` is not supported by gemini"
                        )));
                    }
                }
            }
            Ok(parts)
        }
        Some(_) => Err(Failure::InvalidRequest(format!(
            "messages[{position}]: `content` must be a string or an array of parts"
        ))),
    }
}

/// An image URL: `data:` URLs become `inlineData`; other URLs are passed as `fileData`.
fn media_part(url: &str, position: usize) -> Result<Value, Failure> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(Failure::InvalidRequest(format!(
                "messages[{position}]: malformed data URL"
            )));
        };
        let Some(mime) = meta.strip_suffix(";base64") else {
            return Err(Failure::InvalidRequest(format!(
                "messages[{position}]: only base64 data URLs are supported"
            )));
        };
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    if url.is_empty() {
        return Err(Failure::InvalidRequest(format!(
            "messages[{position}]: image_url without a url"
        )));
    }
    Ok(json!({ "fileData": { "fileUri": url } }))
}

fn assistant_parts(
    message: &Map<String, Value>,
    position: usize,
    call_names: &mut HashMap<String, String>,
    needs_signatures: bool,
) -> Result<Vec<Value>, Failure> {
    let mut parts = Vec::new();
    let text = text_content(message.get("content"), position)?;
    if !text.is_empty() {
        parts.push(json!({ "text": text }));
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(parts),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(Failure::InvalidRequest(format!(
                "messages[{position}]: `tool_calls` must be an array"
            )));
        }
    };
    for call in calls {
        let function = call.get("function");
        let name = function
            .and_then(|function| function.get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                Failure::InvalidRequest(format!(
                    "messages[{position}]: a tool call has no function name"
                ))
            })?;
        let args = match function.and_then(|function| function.get("arguments")) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => value,
                Ok(_) | Err(_) => {
                    return Err(Failure::InvalidRequest(format!(
                        "messages[{position}]: the arguments of tool call `{name}` are not a JSON object"
                    )));
                }
            },
            Some(value @ Value::Object(_)) => value.clone(),
            Some(_) => {
                return Err(Failure::InvalidRequest(format!(
                    "messages[{position}]: the arguments of tool call `{name}` are not a JSON object"
                )));
            }
        };
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            call_names.insert(id.to_owned(), name.to_owned());
        }
        let mut part = json!({ "functionCall": { "name": name, "args": args } });
        if let Some(signature) = call
            .get("extra_content")
            .and_then(|extra| extra.get("google"))
            .and_then(|google| google.get("thought_signature"))
            .and_then(Value::as_str)
            .filter(|signature| !signature.is_empty())
            && let Some(part) = part.as_object_mut()
        {
            part.insert("thoughtSignature".to_owned(), json!(signature));
        }
        parts.push(part);
    }
    // Gemini 3 answers 400 when the first function call of a model turn lacks its signature.
    // A client that dropped it (most OpenAI clients drop unknown fields) still gets an answer:
    // Google documents this placeholder for histories whose signatures are unavailable.
    let is_call = |part: &Value| part.get("functionCall").is_some();
    if needs_signatures
        && !parts
            .iter()
            .any(|part| is_call(part) && part.get("thoughtSignature").is_some())
        && let Some(Value::Object(first_call)) = parts.iter_mut().find(|part| is_call(part))
    {
        first_call.insert(
            "thoughtSignature".to_owned(),
            json!(SKIP_SIGNATURE_VALIDATION),
        );
    }
    Ok(parts)
}

/// A tool result as a `functionResponse` part; `response` must be an object, so anything else
/// (a scalar, an array, plain text) is wrapped as `{"result": …}`.
fn function_response(
    name: &str,
    content: Option<&Value>,
    position: usize,
) -> Result<Value, Failure> {
    let text = text_content(content, position)?;
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(value @ Value::Object(_)) => value,
        Ok(value) => json!({ "result": value }),
        Err(_) => json!({ "result": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn translate_tools(tools: Option<&Value>) -> Result<Option<Value>, Failure> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => {
            return Err(Failure::InvalidRequest(
                "`tools` must be an array".to_owned(),
            ));
        }
    };
    let mut declarations = Vec::new();
    for (position, tool) in tools.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(Failure::InvalidRequest(format!(
                "tools[{position}]: gemini supports only `function` tools (got `{kind}`)"
            )));
        }
        let function = tool.get("function").and_then(Value::as_object);
        let name = function
            .and_then(|function| function.get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                Failure::InvalidRequest(format!("tools[{position}]: a function needs a `name`"))
            })?;
        let mut declaration = Map::new();
        declaration.insert("name".to_owned(), Value::String(name.to_owned()));
        if let Some(description) = function
            .and_then(|function| function.get("description"))
            .and_then(Value::as_str)
        {
            declaration.insert(
                "description".to_owned(),
                Value::String(description.to_owned()),
            );
        }
        if let Some(parameters) = function
            .and_then(|function| function.get("parameters"))
            .filter(|parameters| parameters.is_object())
        {
            let mut parameters = parameters.clone();
            clean_schema(&mut parameters);
            // Gemini rejects an OBJECT schema without properties.
            let empty_object = parameters
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
                && parameters.get("type").and_then(Value::as_str) == Some("object");
            if !empty_object {
                declaration.insert("parameters".to_owned(), parameters);
            }
        }
        declarations.push(Value::Object(declaration));
    }
    if declarations.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!([{ "functionDeclarations": declarations }])))
}

/// Removes the JSON-Schema keywords Gemini's schema subset rejects, in the schema and in its
/// sub-schemas (not in `properties` names).
fn clean_schema(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for key in UNSUPPORTED_SCHEMA_KEYS {
        object.remove(key);
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for property in properties.values_mut() {
            clean_schema(property);
        }
    }
    if let Some(items) = object.get_mut("items") {
        clean_schema(items);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(schemas)) = object.get_mut(key) {
            schemas.iter_mut().for_each(clean_schema);
        }
    }
}

fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, Failure> {
    let config = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            other => {
                return Err(Failure::InvalidRequest(format!(
                    "unsupported `tool_choice` `{other}`"
                )));
            }
        },
        Some(Value::Object(choice)) => {
            let name = choice
                .get("function")
                .and_then(|function| function.get("name"))
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    Failure::InvalidRequest(
                        "`tool_choice` must name a function: {\"type\":\"function\",\"function\":{\"name\":…}}"
                            .to_owned(),
                    )
                })?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
        Some(_) => {
            return Err(Failure::InvalidRequest(
                "`tool_choice` must be a string or an object".to_owned(),
            ));
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

fn translate_generation_config(
    request: &Map<String, Value>,
) -> Result<Map<String, Value>, Failure> {
    let mut config = Map::new();
    let present = |key: &str| request.get(key).filter(|value| !value.is_null());

    if let Some(max) = present("max_completion_tokens").or_else(|| present("max_tokens")) {
        let max = max.as_u64().ok_or_else(|| {
            Failure::InvalidRequest("`max_tokens` must be a non-negative integer".to_owned())
        })?;
        config.insert("maxOutputTokens".to_owned(), json!(max));
    }
    for (openai, gemini) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = present(openai) {
            if !value.is_number() {
                return Err(Failure::InvalidRequest(format!(
                    "`{openai}` must be a number"
                )));
            }
            config.insert(gemini.to_owned(), value.clone());
        }
    }
    if let Some(seed) = present("seed") {
        if !(seed.is_i64() || seed.is_u64()) {
            return Err(Failure::InvalidRequest(
                "`seed` must be an integer".to_owned(),
            ));
        }
        config.insert("seed".to_owned(), seed.clone());
    }
    match present("stop") {
        None => {}
        Some(Value::String(stop)) => {
            config.insert("stopSequences".to_owned(), json!([stop]));
        }
        Some(Value::Array(stops)) => {
            if stops.iter().any(|stop| !stop.is_string()) {
                return Err(Failure::InvalidRequest(
                    "`stop` must be a string or an array of strings".to_owned(),
                ));
            }
            if !stops.is_empty() {
                config.insert("stopSequences".to_owned(), Value::Array(stops.clone()));
            }
        }
        Some(_) => {
            return Err(Failure::InvalidRequest(
                "`stop` must be a string or an array of strings".to_owned(),
            ));
        }
    }
    if let Some(format) = present("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".to_owned(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".to_owned(), json!("application/json"));
                if let Some(schema) = format
                    .get("json_schema")
                    .and_then(|json_schema| json_schema.get("schema"))
                    .filter(|schema| schema.is_object())
                {
                    let mut schema = schema.clone();
                    clean_schema(&mut schema);
                    config.insert("responseSchema".to_owned(), schema);
                }
            }
            other => {
                return Err(Failure::InvalidRequest(format!(
                    "unsupported `response_format` type {}",
                    other.unwrap_or("(missing)")
                )));
            }
        }
    }
    Ok(config)
}
