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

    /// Charges `bytes` of host memory made for the plugin and one more host object against the
    /// call's limits; past them the plugin is stopped (a trap) with an output-limit reason.
    pub fn charge(&mut self, bytes: u64) -> wasmtime::Result<()> {
        self.handles += 1;
        self.output_bytes = self.output_bytes.saturating_add(bytes + HANDLE_COST);
        if self.output_bytes > self.max_output || self.handles > MAX_HANDLES {
            self.output_exceeded = true;
            return Err(wasmtime::format_err!(
                "output limit exceeded: the plugin made {} host objects holding {} bytes (limits: {MAX_HANDLES} objects, {} bytes)",
                self.handles,
                self.output_bytes,
                self.max_output
            ));
        }
        Ok(())
    }

    /// Stores a table the plugin made, charging `bytes` of new data.
    pub fn push_table(
        &mut self,
        table: Table,
        bytes: u64,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        self.charge(bytes + 16 * table.columns().len() as u64)?;
        Ok(Ok(self.resources.push(table)?))
    }
}

/// Columns a table built by a plugin may have.
const MAX_COLUMNS: usize = 65_536;

/// Host objects a plugin may create in one call, and what each costs beyond its data.
const MAX_HANDLES: u64 = 100_000;
const HANDLE_COST: u64 = 64;

impl types::Host for StepState {}

impl types::HostTable for StepState {
    async fn from_columns(
        &mut self,
        columns: Vec<types::Column>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        if columns.len() > MAX_COLUMNS {
            return Ok(Err(format!(
                "{} columns, at most {MAX_COLUMNS} are allowed",
                columns.len()
            )));
        }
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

    async fn row_count(&mut self, table: Resource<Table>) -> wasmtime::Result<u64> {
        Ok(self.table(&table)?.row_count() as u64)
    }

    async fn schema(&mut self, table: Resource<Table>) -> wasmtime::Result<Vec<ColumnInfo>> {
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

    async fn column(
        &mut self,
        table: Resource<Table>,
        name: String,
    ) -> wasmtime::Result<Option<types::Column>> {
        Ok(self.table(&table)?.column(&name).map(|c| column_to_wit(c)))
    }

    async fn column_range(
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

    async fn select(
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

    async fn take(
        &mut self,
        table: Resource<Table>,
        rows: Vec<u32>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let source = self.table(&table)?;
        // Check the size of the result before building it: a short list of indices can ask
        // for a very large table.
        let per_row = source.byte_size() / source.row_count().max(1) as u64;
        let estimate = per_row.saturating_mul(rows.len() as u64);
        if self.output_bytes.saturating_add(estimate) > self.max_output {
            self.output_exceeded = true;
            return Err(wasmtime::format_err!(
                "output limit exceeded: taking {} rows would build about {estimate} bytes, limit {}",
                rows.len(),
                self.max_output
            ));
        }
        let rows: Vec<u64> = rows.into_iter().map(u64::from).collect();
        match self.table(&table)?.take(&rows) {
            Ok(taken) => {
                let size = taken.byte_size();
                self.push_table(taken, size)
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    async fn with_column(
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

    async fn drop_columns(
        &mut self,
        table: Resource<Table>,
        names: Vec<String>,
    ) -> wasmtime::Result<Resource<Table>> {
        let derived = self.table(&table)?.drop_columns(&names);
        self.charge(16 * derived.columns().len() as u64)?;
        Ok(self.resources.push(derived)?)
    }

    async fn drop(&mut self, table: Resource<Table>) -> wasmtime::Result<()> {
        self.resources.delete(table)?;
        Ok(())
    }
}
