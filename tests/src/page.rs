//! Reading the HTML report in tests: sections, attributes and the numbers cells carry.

/// Values of `attr="…"` in `html`, in order.
pub fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!(" {attr}=\"");
    html.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &html[i + pat.len()..];
            &rest[..rest.find('"').expect("attribute closed")]
        })
        .collect()
}

/// The text of the `<section id="…">` element.
pub fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("section {id} missing"));
    let end = html[start..].find("</section>").expect("section closed");
    &html[start..start + end]
}

/// Every `data-value="N"` in `part` (the number a table cell shows), in order.
pub fn data_values(part: &str) -> Vec<u64> {
    attr_values(part, "data-value")
        .into_iter()
        .map(|v| v.parse().expect("data-value is a number"))
        .collect()
}
