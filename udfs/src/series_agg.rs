//! What the series aggregates (`forecast`, `project_period_end`, `change_impact`) share:
//! collecting a group's (timestamp, value) points, their intermediate state, and reading
//! constant arguments.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, ColumnarValue};
use datafusion::physical_expr::PhysicalExpr;

/// `TIMESTAMPTZ` as SpendQL stores it: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
}

/// True for argument types that coerce to [`timestamp_type`].
pub fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null
    )
}

/// True for argument types that coerce to `DOUBLE`.
pub fn is_number(t: &DataType) -> bool {
    t.is_numeric() || t.is_null()
}

/// A group's points, and `marks`: per-group timestamps passed as arguments after the
/// value (such as a period end), of which the latest non-NULL one counts.
#[derive(Debug, Default)]
pub struct Points {
    pub points: Vec<(i64, f64)>,
    pub marks: Vec<Option<i64>>,
}

fn as_micros(array: &ArrayRef) -> Result<ArrayRef> {
    let micros = arrow::compute::cast(array, &timestamp_type())?;
    Ok(arrow::compute::cast(&micros, &DataType::Int64)?)
}

impl Points {
    pub fn new(marks: usize) -> Points {
        Points {
            points: Vec::new(),
            marks: vec![None; marks],
        }
    }

    fn note_mark(&mut self, i: usize, mark: Option<i64>) {
        if let (Some(slot), Some(m)) = (self.marks.get_mut(i), mark) {
            *slot = Some(slot.map_or(m, |old| old.max(m)));
        }
    }

    /// Add the rows of `(ts, value, mark...)`; rows with a NULL or non-finite value or a
    /// NULL timestamp are skipped.
    pub fn update(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [ts, value, ..] = values else {
            return exec_err!("a series aggregate needs a timestamp and a value");
        };
        let ts = as_micros(ts)?;
        let ts = ts.as_primitive::<Int64Type>();
        let value = arrow::compute::cast(value, &DataType::Float64)?;
        let value = value.as_primitive::<Float64Type>();
        self.points.reserve(ts.len());
        for (t, v) in ts.iter().zip(value.iter()) {
            if let (Some(t), Some(v)) = (t, v.filter(|v| v.is_finite())) {
                self.points.push((t, v));
            }
        }
        for i in 0..self.marks.len() {
            if let Some(arg) = values.get(2 + i) {
                let marks = as_micros(arg)?;
                let latest = arrow::compute::max(marks.as_primitive::<Int64Type>());
                self.note_mark(i, latest);
            }
        }
        Ok(())
    }

    /// The intermediate state: the timestamps, the values, then each mark.
    pub fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let times = Int64Array::from_iter_values(self.points.iter().map(|p| p.0));
        let values = Float64Array::from_iter_values(self.points.iter().map(|p| p.1));
        let mut state = vec![
            ScalarValue::List(Arc::new(single_list(Arc::new(times), DataType::Int64))),
            ScalarValue::List(Arc::new(single_list(Arc::new(values), DataType::Float64))),
        ];
        state.extend(self.marks.iter().map(|m| ScalarValue::Int64(*m)));
        Ok(state)
    }

    pub fn state_fields(name: &str, marks: usize) -> Vec<FieldRef> {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        let mut fields = vec![
            Arc::new(Field::new(
                format_state_name(name, "ts"),
                list(DataType::Int64),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "value"),
                list(DataType::Float64),
                true,
            )),
        ];
        fields.extend((0..marks).map(|i| {
            Arc::new(Field::new(
                format_state_name(name, &format!("mark{i}")),
                DataType::Int64,
                true,
            ))
        }));
        fields
    }

    pub fn merge(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [times, values, marks @ ..] = states else {
            return exec_err!("a series aggregate's state has two lists");
        };
        let (Some(times), Some(values)) = (times.as_list_opt::<i32>(), values.as_list_opt::<i32>())
        else {
            return exec_err!("a series aggregate's state must be lists");
        };
        for (t, v) in times.iter().zip(values.iter()) {
            let (Some(t), Some(v)) = (t, v) else { continue };
            let t = t.as_primitive::<Int64Type>();
            let v = v.as_primitive::<Float64Type>();
            self.points
                .extend(t.values().iter().copied().zip(v.values().iter().copied()));
        }
        for (i, mark) in marks.iter().enumerate() {
            let latest = arrow::compute::max(mark.as_primitive::<Int64Type>());
            self.note_mark(i, latest);
        }
        Ok(())
    }

    pub fn size(&self) -> usize {
        size_of_val(self)
            + self.points.capacity() * size_of::<(i64, f64)>()
            + self.marks.capacity() * size_of::<Option<i64>>()
    }
}

/// What a series aggregate makes of its group's points.
pub trait Finish: std::fmt::Debug + Send + Sync + 'static {
    fn finish(&self, points: &mut Points) -> Result<ScalarValue>;
}

/// The accumulator of every series aggregate: it collects the group's points, and
/// `finish` turns them into the result.
#[derive(Debug)]
pub struct SeriesAccumulator<F> {
    points: Points,
    finish: F,
}

impl<F: Finish> SeriesAccumulator<F> {
    pub fn new(marks: usize, finish: F) -> SeriesAccumulator<F> {
        SeriesAccumulator {
            points: Points::new(marks),
            finish,
        }
    }
}

impl<F: Finish> Accumulator for SeriesAccumulator<F> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.points.update(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.finish.finish(&mut self.points)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.points.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.points.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.points.merge(states)
    }
}

/// A list array of one entry holding `values`.
pub fn single_list(values: ArrayRef, item: DataType) -> ListArray {
    ListArray::new(
        Arc::new(Field::new_list_field(item, true)),
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )
}

/// The value of an argument that must be the same for every row (a literal or an
/// expression of literals); `None` when the argument is absent.
pub fn constant(
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
    function: &str,
    argument: &str,
) -> Result<Option<ScalarValue>> {
    let Some(expr) = exprs.get(index) else {
        return Ok(None);
    };
    let empty = RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()));
    match expr.evaluate(&empty) {
        Ok(ColumnarValue::Scalar(value)) => Ok(Some(value)),
        _ => plan_err!("{function}: {argument} must be a constant"),
    }
}

/// A constant integer argument in `range`, or `None` when absent or NULL.
pub fn constant_int(
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
    function: &str,
    argument: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>> {
    let Some(value) = constant(exprs, index, function, argument)? else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    let value = value.cast_to(&DataType::Int64)?;
    match value {
        ScalarValue::Int64(Some(v)) if range.contains(&v) => Ok(Some(v)),
        ScalarValue::Int64(Some(v)) => plan_err!(
            "{function}: {argument} must be between {} and {}, not {v}",
            range.start(),
            range.end()
        ),
        _ => Ok(None),
    }
}

/// A constant text argument, or `None` when absent or NULL.
pub fn constant_text(
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
    function: &str,
    argument: &str,
) -> Result<Option<String>> {
    let Some(value) = constant(exprs, index, function, argument)? else {
        return Ok(None);
    };
    Ok(value.try_as_str().flatten().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;

    fn batch(times: &[Option<i64>], values: &[Option<f64>]) -> Vec<ArrayRef> {
        vec![
            Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("+00:00")),
            Arc::new(Float64Array::from(values.to_vec())),
        ]
    }

    #[test]
    fn nulls_are_skipped_and_state_round_trips() {
        let mut points = Points::new(0);
        points
            .update(&batch(
                &[Some(1), None, Some(3), Some(4)],
                &[Some(1.0), Some(2.0), None, Some(f64::NAN)],
            ))
            .unwrap();
        assert_eq!(points.points, vec![(1, 1.0)]);
        let state: Vec<ArrayRef> = points
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        let mut merged = Points::new(0);
        merged.update(&batch(&[Some(7)], &[Some(7.0)])).unwrap();
        merged.merge(&state).unwrap();
        assert_eq!(merged.points, vec![(7, 7.0), (1, 1.0)]);
    }

    #[test]
    fn the_latest_mark_counts() {
        let mut points = Points::new(1);
        let mut args = batch(&[Some(1), Some(2)], &[Some(1.0), Some(2.0)]);
        args.push(Arc::new(
            TimestampMicrosecondArray::from(vec![Some(10), None]).with_timezone("+00:00"),
        ));
        points.update(&args).unwrap();
        let state: Vec<ArrayRef> = {
            let mut other = Points::new(1);
            other.marks[0] = Some(20);
            other
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect()
        };
        assert_eq!(points.marks, vec![Some(10)]);
        points.merge(&state).unwrap();
        assert_eq!(points.marks, vec![Some(20)]);
    }
}
