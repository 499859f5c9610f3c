//! PostgreSQL array literals (`{1,NULL,"a b",{2,3}}`) as JSON arrays.
//!
//! Elements keep their type where JSON has one: integers and floats become numbers (NaN and
//! infinities stay strings, as JSON has no such numbers), booleans become `true`/`false`, json and
//! jsonb elements are embedded as JSON, NULL becomes `null`; everything else, `numeric` included
//! (to stay exact), stays PostgreSQL's text. Nesting is kept, so multi-dimensional arrays survive.
//!
//! Elements are never adjusted: dates, timestamps and numerics inside arrays keep PostgreSQL's
//! text, whatever their range. Any text is answered without panicking: what is not an array
//! literal, or nests deeper than [`MAX_DEPTH`], is `None`.

#![warn(clippy::arithmetic_side_effects)]

use serde_json::Value;

/// The deepest nesting accepted. PostgreSQL arrays have at most 6 dimensions (`MAXDIM`); the
/// limit keeps the recursive parser's stack small for any text.
pub const MAX_DEPTH: usize = 32;

/// Parses a PostgreSQL array literal whose elements are of `element_type` (e.g. `int4`).
pub fn parse_array(text: &str, element_type: &str) -> Option<Value> {
    // Arrays with non-default lower bounds start with their dimensions: `[0:1]={...}`.
    let body = match text.find("={") {
        Some(at) if text.starts_with('[') => text.get(at.checked_add(1)?..)?,
        _ => text,
    };
    let mut parser = Parser {
        chars: body.chars().collect(),
        pos: 0,
        element_type,
    };
    let value = parser.array(0)?;
    (parser.pos == parser.chars.len()).then_some(value)
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    element_type: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Moves past the current character.
    fn advance(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        if self.peek()? != '{' || depth >= MAX_DEPTH {
            return None;
        }
        self.advance();
        let mut items = Vec::new();
        if self.peek()? == '}' {
            self.advance();
            return Some(Value::Array(items));
        }
        loop {
            let item = match self.peek()? {
                '{' => self.array(depth.checked_add(1)?)?,
                '"' => element(self.element_type, Some(&self.quoted()?)),
                _ => {
                    let raw = self.unquoted()?;
                    let value = if raw.eq_ignore_ascii_case("NULL") {
                        None
                    } else {
                        Some(raw)
                    };
                    element(self.element_type, value.as_deref())
                }
            };
            items.push(item);
            match self.peek()? {
                ',' => self.advance(),
                '}' => {
                    self.advance();
                    return Some(Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn quoted(&mut self) -> Option<String> {
        self.advance();
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.advance();
            match c {
                '"' => return Some(out),
                '\\' => {
                    out.push(self.peek()?);
                    self.advance();
                }
                other => out.push(other),
            }
        }
    }

    fn unquoted(&mut self) -> Option<String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ',' || c == '}' {
                break;
            }
            self.advance();
        }
        let raw: String = self.chars.get(start..self.pos)?.iter().collect();
        // Only the whitespace PostgreSQL's array syntax skips: an unquoted element may begin or
        // end with other spaces (no-break space, line separator), which are its own.
        (self.pos > start).then(|| raw.trim_matches(array_space).to_owned())
    }
}

/// Whitespace around unquoted array elements, as PostgreSQL's `array_isspace` knows it.
fn array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}')
}

fn element(element_type: &str, text: Option<&str>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match element_type {
        "int2" | "int4" | "int8" | "oid" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| text.into()),
        "float4" | "float8" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| text.into()),
        "bool" => Value::Bool(text == "t" || text == "true"),
        "json" | "jsonb" => serde_json::from_str(text).unwrap_or_else(|_| text.into()),
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_elements_nulls_and_nesting() {
        assert_eq!(parse_array("{1,NULL,3}", "int4"), Some(json!([1, null, 3])));
        assert_eq!(
            parse_array("{{a,b},{NULL,\"d e\"}}", "text"),
            Some(json!([["a", "b"], [null, "d e"]]))
        );
        assert_eq!(
            parse_array("{\"q\\\"uote\",\"back\\\\slash\",NULL,\"NULL\"}", "text"),
            Some(json!(["q\"uote", "back\\slash", null, "NULL"]))
        );
        assert_eq!(parse_array("{}", "int4"), Some(json!([])));
        assert_eq!(parse_array("{t,f}", "bool"), Some(json!([true, false])));
        assert_eq!(
            parse_array("{1.5,NaN,-Infinity}", "float8"),
            Some(json!([1.5, "NaN", "-Infinity"]))
        );
        assert_eq!(
            parse_array("{1.10,2}", "numeric"),
            Some(json!(["1.10", "2"]))
        );
        assert_eq!(
            parse_array("{\"{\\\"a\\\": 1}\"}", "jsonb"),
            Some(json!([{"a": 1}]))
        );
        assert_eq!(parse_array("[0:1]={7,8}", "int4"), Some(json!([7, 8])));
        // PostgreSQL quotes elements with ASCII whitespace around them, not other spaces.
        assert_eq!(
            parse_array("{\u{a0},\u{2028}x\u{a0},\"y \"}", "text"),
            Some(json!(["\u{a0}", "\u{2028}x\u{a0}", "y "]))
        );
        assert_eq!(parse_array("{1,2", "int4"), None);
        assert_eq!(parse_array("1,2}", "int4"), None);
    }
}
