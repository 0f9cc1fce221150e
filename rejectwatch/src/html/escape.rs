//! Text into HTML. Most of what the report shows was written by the
//! clients it is about (user agents, paths, endpoint templates made from
//! them), so every piece of text goes through [`Esc`], in element content
//! and in quoted attributes alike.

use std::fmt;

/// Displays its text with `& < > " '` as character references: safe in
/// element content and in a quoted attribute value.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in self.0.char_indices() {
            let with = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                // Control characters other than tab and newline are not
                // allowed in HTML text: the replacement character instead.
                c if c.is_control() && c != '\t' && c != '\n' => "\u{fffd}",
                _ => continue,
            };
            f.write_str(&self.0[plain..i])?;
            f.write_str(with)?;
            plain = i + c.len_utf8();
        }
        f.write_str(&self.0[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_become_references() {
        let s = Esc(r#"<script>alert("x")</script> & 'q'"#).to_string();
        assert_eq!(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;");
        assert_eq!(Esc("/ünï\x07<b\x1b").to_string(), "/ünï\u{fffd}&lt;b\u{fffd}");
    }
}
