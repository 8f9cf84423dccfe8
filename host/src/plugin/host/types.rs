//! The `table` resource: plugins read columns from host tables and derive new tables.
//!
//! Reading copies only the requested columns (or row ranges) into the guest; deriving
//! (`select`, `take`, `with-column`, `drop-columns`) happens in the host, sharing untouched
//! columns. Every table a plugin builds counts against the call's output limit.

use wasmtime::component::Resource;

use crate::plugin::bindings::types::{self, ColumnInfo, ColumnType as WitColumnType, ColumnValues};
use crate::plugin::state::StepState;
use crate::table::{Column, ColumnType, Table, Values};

/// A WIT column into a host column.
pub fn column_from_wit(column: types::Column) -> Result<Column, String> {
    let values = match column.values {
        ColumnValues::Float(v) => Values::Float(v),
        ColumnValues::Integer(v) => Values::Integer(v),
        ColumnValues::Text(v) => Values::Text(v),
        ColumnValues::Boolean(v) => Values::Boolean(v),
    };
    if column.valid.is_empty() {
        Ok(Column::new(column.name, values))
    } else {
        Column::with_validity(column.name, values, column.valid).map_err(|err| err.to_string())
    }
}

/// A host column into a WIT column.
pub fn column_to_wit(column: &Column) -> types::Column {
    let values = match column.values() {
        Values::Float(v) => ColumnValues::Float(v.clone()),
        Values::Integer(v) => ColumnValues::Integer(v.clone()),
        Values::Text(v) => ColumnValues::Text(v.clone()),
        Values::Boolean(v) => ColumnValues::Boolean(v.clone()),
    };
    types::Column {
        name: column.name().to_string(),
        values,
        valid: column.validity().map(<[bool]>::to_vec).unwrap_or_default(),
    }
}

fn kind_to_wit(kind: ColumnType) -> WitColumnType {
    match kind {
        ColumnType::Float => WitColumnType::Float,
        ColumnType::Integer => WitColumnType::Integer,
        ColumnType::Text => WitColumnType::Text,
        ColumnType::Boolean => WitColumnType::Boolean,
    }
}

impl StepState {
    pub fn table(&self, handle: &Resource<Table>) -> wasmtime::Result<&Table> {
        Ok(self.resources.get(handle)?)
    }

    /// Stores a table the plugin built, charging `charged` bytes against the output limit.
    pub fn push_table(
        &mut self,
        table: Table,
        charged: u64,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        self.output_bytes = self.output_bytes.saturating_add(charged);
        if self.output_bytes > self.max_output {
            self.output_exceeded = true;
            return Err(wasmtime::format_err!(
                "output limit exceeded: the plugin built {} bytes of tables, limit {}",
                self.output_bytes,
                self.max_output
            ));
        }
        Ok(Ok(self.resources.push(table)?))
    }
}

impl types::Host for StepState {}

impl types::HostTable for StepState {
    fn from_columns(
        &mut self,
        columns: Vec<types::Column>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let columns = match columns
            .into_iter()
            .map(column_from_wit)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(columns) => columns,
            Err(err) => return Ok(Err(err)),
        };
        match Table::new(columns) {
            Ok(table) => {
                let size = table.byte_size();
                self.push_table(table, size)
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn row_count(&mut self, table: Resource<Table>) -> wasmtime::Result<u64> {
        Ok(self.table(&table)?.row_count() as u64)
    }

    fn schema(&mut self, table: Resource<Table>) -> wasmtime::Result<Vec<ColumnInfo>> {
        Ok(self
            .table(&table)?
            .columns()
            .iter()
            .map(|c| ColumnInfo {
                name: c.name().to_string(),
                kind: kind_to_wit(c.kind()),
                null_count: c.null_count() as u64,
            })
            .collect())
    }

    fn column(
        &mut self,
        table: Resource<Table>,
        name: String,
    ) -> wasmtime::Result<Option<types::Column>> {
        Ok(self.table(&table)?.column(&name).map(|c| column_to_wit(c)))
    }

    fn column_range(
        &mut self,
        table: Resource<Table>,
        name: String,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Option<types::Column>> {
        let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(self
            .table(&table)?
            .column(&name)
            .map(|c| column_to_wit(&c.slice(clamp(offset), clamp(len)))))
    }

    fn select(
        &mut self,
        table: Resource<Table>,
        names: Vec<String>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        match self.table(&table)?.select(&names) {
            // Selecting shares columns: nothing new is produced.
            Ok(selected) => self.push_table(selected, 0),
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn take(
        &mut self,
        table: Resource<Table>,
        rows: Vec<u32>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let rows: Vec<u64> = rows.into_iter().map(u64::from).collect();
        match self.table(&table)?.take(&rows) {
            Ok(taken) => {
                let size = taken.byte_size();
                self.push_table(taken, size)
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn with_column(
        &mut self,
        table: Resource<Table>,
        column: types::Column,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let column = match column_from_wit(column) {
            Ok(column) => column,
            Err(err) => return Ok(Err(err)),
        };
        let size = column.byte_size();
        match self.table(&table)?.with_column(column) {
            Ok(derived) => self.push_table(derived, size),
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn drop_columns(
        &mut self,
        table: Resource<Table>,
        names: Vec<String>,
    ) -> wasmtime::Result<Resource<Table>> {
        let derived = self.table(&table)?.drop_columns(&names);
        Ok(self.resources.push(derived)?)
    }

    fn drop(&mut self, table: Resource<Table>) -> wasmtime::Result<()> {
        self.resources.delete(table)?;
        Ok(())
    }
}
