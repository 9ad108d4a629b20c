//! Owns `GET /download/csv` rendering, as Grist's `doExportTable` + `convertToCsv` do it:
//! columns by position without hidden ones, Ref columns read from their display helper, headers
//! by label or (with `header=colId`) by the id of the column actually read, cells through the
//! column formatters, RFC 4180 quoting, LF line ends, no BOM, rows in row-id order.

use serde_json::Value;

use crate::eval::{cell, display_value};
use crate::format::Formatter;
use crate::model::{Column, Doc, Table};

/// Which header row to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    /// Column labels (Grist's default).
    Label,
    /// Column ids (`header=colId`); a Ref column with a display helper is headed by the
    /// helper's id.
    ColId,
}

struct ExportColumn<'a> {
    col: &'a Column,
    /// The helper column holding display values, if the column has one.
    display: Option<&'a Column>,
    formatter: Formatter,
}

/// The CSV Grist answers for `table`.
pub fn render_csv(doc: &Doc, table: &Table, header: HeaderMode) -> String {
    let columns: Vec<ExportColumn> = table
        .columns_in_position_order()
        .into_iter()
        .filter(|c| !c.is_hidden())
        .map(|col| ExportColumn {
            col,
            display: table.column_by_ref(col.display_col()),
            formatter: Formatter::for_column(doc, col),
        })
        .collect();

    let mut out = String::new();
    let header_cells: Vec<&str> = columns
        .iter()
        .map(|c| match header {
            HeaderMode::Label => c.col.label(),
            HeaderMode::ColId => c.display.map_or(c.col.id.as_str(), |d| d.id.as_str()),
        })
        .collect();
    write_row(&mut out, header_cells.iter().copied());

    let mut records: Vec<_> = table.records.iter().collect();
    records.sort_by_key(|r| r.id);
    for rec in records {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                let value: Value = match c.display {
                    Some(helper) => display_value(doc, table, rec, c.col, helper),
                    None => cell(doc, table, rec, &c.col.id),
                };
                c.formatter.format(&value)
            })
            .collect();
        write_row(&mut out, cells.iter().map(String::as_str));
    }
    out
}

fn write_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_cell(out, cell);
    }
    out.push('\n');
}

/// RFC 4180: quote cells holding a comma, a quote or a line break; double the quotes.
fn write_cell(out: &mut String, cell: &str) {
    if cell.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, Record};
    use serde_json::json;

    #[test]
    fn renders_types_options_and_wrong_values() {
        let columns = vec![
            Column::new("Name", "Text").with("label", json!("Full name")),
            Column::new("Age", "Int"),
            Column::new("Score", "Numeric")
                .with("widgetOptions", json!("{\"numMode\":\"percent\"}")),
            Column::new("Born", "Date")
                .with("widgetOptions", json!("{\"dateFormat\":\"MMMM Do, YYYY\"}")),
            Column::new("Seen", "DateTime:Europe/Moscow"),
            Column::new("Tags", "ChoiceList"),
            Column::new("Ok", "Bool"),
        ];
        let records = vec![
            Record::new(
                1,
                json!({"Name": "A", "Age": "abc", "Score": 0.256, "Born": 1705276800,
                       "Seen": 1705314645, "Tags": ["L", "x", " y"], "Ok": null}),
            )
            .expect("record"),
            Record::new(
                2,
                json!({"Name": null, "Age": null, "Score": null, "Born": null,
                                  "Seen": null, "Tags": null, "Ok": true}),
            )
            .expect("record"),
        ];
        let mut doc = Doc::new("d");
        doc.push_table(Table::new("T", columns, records));
        doc.normalize_columns();
        let table = doc.table("T").expect("table");
        assert_eq!(
            render_csv(&doc, table, HeaderMode::Label),
            "Full name,Age,Score,Born,Seen,Tags,Ok\n\
             A,abc,26%,\"January 15th, 2024\",2024-01-15 1:30pm,\"x, \"\" y\"\"\",\n\
             ,,,,,,true\n"
        );
        assert!(render_csv(&doc, table, HeaderMode::ColId).starts_with("Name,Age,"));
    }
}
