//! Proto2 rows for the Storage Write API: a descriptor built from the table's columns and a
//! hand-written encoder (one optional field per column, numbered from 1 in column order).

use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};

/// The proto type a BigQuery type is written as.
fn proto_type(bq_type: BqType) -> Type {
    match bq_type {
        BqType::Int64 | BqType::Timestamp => Type::Int64,
        BqType::Date => Type::Int32,
        BqType::Float64 => Type::Double,
        BqType::Bool => Type::Bool,
        BqType::Bytes => Type::Bytes,
        BqType::Numeric
        | BqType::BigNumeric
        | BqType::String
        | BqType::Json
        | BqType::Datetime
        | BqType::Time => Type::String,
    }
}

/// A self-contained descriptor of the row message.
pub fn descriptor(columns: &[(String, BqType)]) -> DescriptorProto {
    DescriptorProto {
        name: Some("Row".to_owned()),
        field: columns
            .iter()
            .enumerate()
            .map(|(i, (name, bq_type))| FieldDescriptorProto {
                name: Some(name.clone()),
                number: Some(i as i32 + 1),
                label: Some(Label::Optional as i32),
                r#type: Some(proto_type(*bq_type) as i32),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Encodes one row; `values[i]` is field `i + 1`. NULLs are left out (proto2 absence = NULL).
pub fn encode_row(values: &[BqValue], out: &mut Vec<u8>) {
    for (i, value) in values.iter().enumerate() {
        encode_value(out, i as u64 + 1, value);
    }
}

/// Encodes one field of a row; a NULL writes nothing.
pub fn encode_value(out: &mut Vec<u8>, field: u64, value: &BqValue) {
    {
        match value {
            BqValue::Null => {}
            BqValue::Int64(v) | BqValue::Timestamp(v) => {
                put_varint(out, field << 3);
                put_varint(out, *v as u64);
            }
            BqValue::Date(v) => {
                put_varint(out, field << 3);
                // int32 is sign-extended to 64 bits on the wire.
                put_varint(out, i64::from(*v) as u64);
            }
            BqValue::Bool(v) => {
                put_varint(out, field << 3);
                put_varint(out, u64::from(*v));
            }
            BqValue::Float64(v) => {
                put_varint(out, (field << 3) | 1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            BqValue::Text(s) => put_bytes(out, field, s.as_bytes()),
            BqValue::Bytes(b) => put_bytes(out, field, b),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A message with the same field layout, to check the hand encoder against prost.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Expected {
        #[prost(int64, optional, tag = "1")]
        a: Option<i64>,
        #[prost(string, optional, tag = "2")]
        b: Option<String>,
        #[prost(int32, optional, tag = "3")]
        c: Option<i32>,
        #[prost(double, optional, tag = "4")]
        d: Option<f64>,
        #[prost(bool, optional, tag = "5")]
        e: Option<bool>,
        #[prost(bytes = "vec", optional, tag = "6")]
        f: Option<Vec<u8>>,
    }

    #[test]
    fn matches_prost_encoding() {
        let values = [
            BqValue::Int64(-5),
            BqValue::Text("héllo".into()),
            BqValue::Date(-719_162),
            BqValue::Float64(1.5),
            BqValue::Bool(false),
            BqValue::Null,
        ];
        let mut ours = Vec::new();
        encode_row(&values, &mut ours);
        let expected = Expected {
            a: Some(-5),
            b: Some("héllo".into()),
            c: Some(-719_162),
            d: Some(1.5),
            e: Some(false),
            f: None,
        };
        assert_eq!(ours, expected.encode_to_vec());
        assert_eq!(Expected::decode(ours.as_slice()).unwrap(), expected);
    }

    #[test]
    fn describes_fields_in_order() {
        let d = descriptor(&[("id".into(), BqType::Int64), ("day".into(), BqType::Date)]);
        assert_eq!(d.field[1].number, Some(2));
        assert_eq!(d.field[1].r#type, Some(Type::Int32 as i32));
    }
}
