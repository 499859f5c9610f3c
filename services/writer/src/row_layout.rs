//! Where each value of a change row goes in the change table's proto message.
//!
//! The descriptor always lists every column the change table has, in table order, whatever
//! subset a batch carries: rows of an older or newer shape of the source table then write the
//! columns they know and leave the others NULL.

use crate::error::{Result, WriterError};
use pg2bq_bigquery::proto_rows::{descriptor, encode_value};
use pg2bq_bigquery::rest::FieldSpec;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use prost_types::DescriptorProto;

/// The proto layout of a change table and the field number of each change-row value.
#[derive(Debug, Clone)]
pub struct RowLayout {
    descriptor: DescriptorProto,
    field_numbers: Vec<u64>,
    /// Name and type of each row value's column, in row order.
    columns: Vec<(String, BqType)>,
    /// Whether rows carry BigQuery CDC pseudo-columns (which only Storage Write takes).
    pseudo: bool,
}

impl RowLayout {
    /// The layout of rows with `row_fields` (in change-row order) written to a table with `table`
    /// columns; every row field must be a column of the table.
    pub fn new(table: &[FieldSpec], row_fields: &[(String, BqType)]) -> Result<Self> {
        Self::with_pseudo_columns(table, row_fields, &[])
    }

    /// As [`RowLayout::new`], with STRING pseudo-columns (BigQuery CDC's `_CHANGE_TYPE`, ...)
    /// described after the table's columns.
    pub fn with_pseudo_columns(
        table: &[FieldSpec],
        row_fields: &[(String, BqType)],
        pseudo: &[&str],
    ) -> Result<Self> {
        let mut columns: Vec<(String, BqType)> = table
            .iter()
            .map(|f| {
                BqType::from_schema_name(&f.bq_type)
                    .map(|t| (f.name.clone(), t))
                    .ok_or_else(|| {
                        WriterError::Unwritable(format!(
                            "column {} has type {}, which pg2bq does not write",
                            f.name, f.bq_type
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        let table_columns = columns.len();
        columns.extend(pseudo.iter().map(|name| (name.to_string(), BqType::String)));
        let field_numbers = row_fields
            .iter()
            .map(|(name, _)| {
                columns
                    .iter()
                    .position(|(column, _)| column.eq_ignore_ascii_case(name))
                    .map(|i| i as u64 + 1)
                    .ok_or_else(|| {
                        WriterError::Unwritable(format!(
                            "column {name} is missing from the change table"
                        ))
                    })
            })
            .collect::<Result<Vec<u64>>>()?;
        let row_columns = field_numbers
            .iter()
            .map(|number| columns[*number as usize - 1].clone())
            .collect();
        Ok(RowLayout {
            descriptor: descriptor(&columns),
            pseudo: field_numbers
                .iter()
                .any(|number| *number as usize > table_columns),
            field_numbers,
            columns: row_columns,
        })
    }

    /// Name (as the table spells it) and type of each row value's column, in row order.
    pub fn columns(&self) -> &[(String, BqType)] {
        &self.columns
    }

    /// Whether rows carry BigQuery CDC pseudo-columns (`_CHANGE_TYPE`, ...).
    pub fn has_pseudo_columns(&self) -> bool {
        self.pseudo
    }

    /// The writer schema.
    pub fn descriptor(&self) -> &DescriptorProto {
        &self.descriptor
    }

    /// Encodes a change row (values in change-row order).
    pub fn encode(&self, row: &[BqValue]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * row.len());
        for (field, value) in self.field_numbers.iter().zip(row) {
            encode_value(&mut out, *field, value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: &str) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            bq_type: t.into(),
            mode: "NULLABLE".into(),
            description: None,
        }
    }

    #[test]
    fn places_values_by_column_name_in_table_order() {
        let table = [
            field("id", "INT64"),
            field("dropped", "STRING"),
            field("added", "STRING"),
        ];
        let layout = RowLayout::new(
            &table,
            &[
                ("added".into(), BqType::String),
                ("ID".into(), BqType::Int64),
            ],
        )
        .unwrap();
        assert_eq!(layout.descriptor().field.len(), 3);
        // Field 3 = "x", field 1 = 7.
        assert_eq!(
            layout.encode(&[BqValue::Text("x".into()), BqValue::Int64(7)]),
            vec![0x1a, 1, b'x', 0x08, 7]
        );
        assert!(RowLayout::new(&table, &[("unknown".into(), BqType::Int64)]).is_err());
        assert_eq!(
            layout.columns(),
            [
                ("added".to_owned(), BqType::String),
                ("id".to_owned(), BqType::Int64)
            ]
        );
        assert!(!layout.has_pseudo_columns());
    }

    #[test]
    fn pseudo_columns_follow_the_table_columns() {
        let table = [field("id", "INT64")];
        let row = [
            ("id".into(), BqType::Int64),
            ("_CHANGE_TYPE".into(), BqType::String),
        ];
        let layout = RowLayout::with_pseudo_columns(
            &table,
            &row,
            &["_CHANGE_TYPE", "_CHANGE_SEQUENCE_NUMBER"],
        )
        .unwrap();
        let names: Vec<_> = layout
            .descriptor()
            .field
            .iter()
            .map(|f| f.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["id", "_CHANGE_TYPE", "_CHANGE_SEQUENCE_NUMBER"]);
        assert!(layout.has_pseudo_columns());
        assert_eq!(
            layout.encode(&[BqValue::Int64(1), BqValue::Text("U".into())]),
            vec![0x08, 1, 0x12, 1, b'U']
        );
    }
}
