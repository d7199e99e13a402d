//! A small RFC 4180 reader: quoted fields, doubled quotes, commas and newlines inside quotes,
//! CRLF or LF line ends.

/// Parses CSV text into records. An unterminated quoted field is an error.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut quote_line = 0usize;
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                quote_line = line;
                any = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                if any || !field.is_empty() {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                any = false;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(format!(
            "quoted field opened on line {quote_line} is never closed"
        ));
    }
    if any || !field.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn quotes_commas_newlines() {
        let r = parse_csv("a,b,c\r\n1,\"x, y\",\"he said \"\"hi\"\"\"\n2,\"multi\nline\",\n")
            .expect("csv");
        assert_eq!(r.len(), 3);
        assert_eq!(r[1], vec!["1", "x, y", "he said \"hi\""]);
        assert_eq!(r[2], vec!["2", "multi\nline", ""]);
        assert!(parse_csv("a,\"b\n").is_err());
        assert_eq!(parse_csv("").map(|r| r.len()), Ok(0));
    }
}
