// {{name}}: a wflow validator written in JavaScript. Checks that the table has at least
// `min_rows` rows and that the `required` columns exist. Build it with `wflow plugin build`.

import { log } from 'wflow:plugin/host@{{contract}}';
import { guarded, parseConfig } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    min_rows: { type: 'integer', minimum: 0, description: 'Fewest rows allowed.' },
    required: { type: 'array', items: { type: 'string' }, description: 'Columns that must exist.' },
  },
  additionalProperties: false,
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'validator',
    description: "Checks a table's row count and required columns",
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

export function validate(data, config) {
  return guarded(() => {
    const options = parseConfig(config);
    const minRows = options.min_rows ?? 1;
    const rows = Number(data.rowCount());
    const findings = [
      {
        check: 'min-rows',
        column: undefined,
        severity: 'fail',
        passed: rows >= minRows,
        message: `${rows} rows, at least ${minRows} expected`,
        observed: String(rows),
        expected: `>= ${minRows}`,
      },
    ];
    const names = new Set(data.schema().map((info) => info.name));
    for (const column of options.required ?? []) {
      findings.push({
        check: 'required-column',
        column,
        severity: 'fail',
        passed: names.has(column),
        message: `column \`${column}\` is ${names.has(column) ? 'present' : 'missing'}`,
        observed: undefined,
        expected: undefined,
      });
    }
    log('info', 'checked', [['rows', String(rows)]]);
    return { findings };
  });
}
