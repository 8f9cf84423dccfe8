// {{name}}: a wflow drift check written in JavaScript. For every numeric column, the shift of
// the current mean in reference standard deviations; a feature drifts above `threshold`, the
// dataset when at least `drift_share` of its features do. Build it with `wflow plugin build`.

import { guarded, parseConfig } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    threshold: { type: 'number', exclusiveMinimum: 0, description: 'Mean shift, in standard deviations [default: 0.5].' },
    drift_share: { type: 'number', minimum: 0, maximum: 1, description: 'Share of drifted features that makes the dataset drift [default: 0.5].' },
  },
  additionalProperties: false,
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'drift-check',
    description: 'Mean shift of every numeric feature, in reference standard deviations',
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

function present(column) {
  return Array.from(column.values.val, Number).filter((v, i) => (!column.valid.length || column.valid[i]) && !Number.isNaN(v));
}

export function check(reference, current, config) {
  return guarded(() => {
    const { threshold = 0.5, drift_share: shareNeeded = 0.5 } = parseConfig(config);
    const features = [];
    for (const info of reference.schema()) {
      if (info.kind !== 'float' && info.kind !== 'integer') continue;
      const now = current.column(info.name);
      if (now === undefined) continue;
      const before = present(reference.column(info.name));
      const after = present(now);
      if (!before.length || !after.length) continue;
      const mean = before.reduce((a, b) => a + b, 0) / before.length;
      const spread = Math.sqrt(before.reduce((a, b) => a + (b - mean) ** 2, 0) / before.length) || 1;
      const score = Math.abs(after.reduce((a, b) => a + b, 0) / after.length - mean) / spread;
      features.push({ feature: info.name, method: 'mean-shift', score, pValue: undefined, threshold, drifted: score > threshold });
    }
    const driftShare = features.length ? features.filter((f) => f.drifted).length / features.length : 0;
    return { features, driftShare, drifted: driftShare >= shareNeeded, report: { findings: [] } };
  });
}
