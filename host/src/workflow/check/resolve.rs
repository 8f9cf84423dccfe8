//! Cross-references: input and `needs` references resolved to datasets and steps, names shared
//! by a dataset and a step, and the step order, with cycles reported as `a -> b -> a`.
//!
//! This runs after every table has been read, on the drafts the parent module built, so a
//! reference can point to a step declared later in the file. The ordering itself is
//! `graph::topological_order`; this file only turns its indices into names and spans.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::InputSource;
use super::super::diagnostics::{Span, closest};
use super::super::graph::topological_order;
use super::values::quoted_list;
use super::{Checker, DatasetDraft, StepDraft};

/// The names references can resolve to, in file order, and looked up by hash: a file of a
/// hundred thousand steps resolves in linear time.
struct Names<'a> {
    datasets: Vec<&'a str>,
    steps: Vec<&'a str>,
    dataset_set: HashSet<&'a str>,
    step_index: HashMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    fn new(datasets: Vec<&'a str>, steps: Vec<&'a str>) -> Names<'a> {
        let dataset_set = datasets.iter().copied().collect();
        let mut step_index = HashMap::with_capacity(steps.len());
        for (index, id) in steps.iter().enumerate() {
            // The first of two steps with one id is the one references mean.
            step_index.entry(*id).or_insert(index);
        }
        Names {
            datasets,
            steps,
            dataset_set,
            step_index,
        }
    }

    fn is_dataset(&self, name: &str) -> bool {
        self.dataset_set.contains(name)
    }

    fn step(&self, id: &str) -> Option<usize> {
        self.step_index.get(id).copied()
    }
}

impl Checker {
    /// Checks names and references across datasets and steps and orders the steps.
    ///
    /// Returns the order as indices into `steps` (`None` on a cycle), and for each step the
    /// sorted ids of the steps it needs, explicitly or through its inputs.
    pub(super) fn resolve(
        &mut self,
        datasets: &[DatasetDraft],
        steps: &[StepDraft],
    ) -> (Option<Vec<usize>>, Vec<Vec<String>>) {
        let names = Names::new(
            datasets.iter().map(|d| d.name.as_str()).collect(),
            steps.iter().map(|s| s.id.as_str()).collect(),
        );
        for step in steps {
            if names.is_dataset(&step.id) {
                let message = format!(
                    "step `{}` has the same name as a dataset; rename one of them",
                    step.id
                );
                self.error(step.span.clone(), message);
            }
        }
        // For each step, the steps it needs and the span of the first reference to each.
        let edges: Vec<BTreeMap<usize, Span>> = steps
            .iter()
            .map(|step| self.references(step, &names))
            .collect();

        let needs: Vec<Vec<usize>> = edges.iter().map(|e| e.keys().copied().collect()).collect();
        let needed_ids = needs
            .iter()
            .map(|needed| {
                let mut ids: Vec<String> =
                    needed.iter().map(|&i| names.steps[i].to_owned()).collect();
                ids.sort();
                ids
            })
            .collect();
        let order = match topological_order(&needs) {
            Ok(order) => Some(order),
            Err(cycles) => {
                for cycle in cycles {
                    // Point at the first step's reference to the second: where the loop starts.
                    let span = match cycle.as_slice() {
                        [first, second, ..] => edges[*first].get(second).cloned(),
                        _ => None,
                    };
                    let span = span.unwrap_or_else(|| steps[cycle[0]].span.clone());
                    let path: Vec<&str> = cycle.iter().map(|&node| names.steps[node]).collect();
                    let path = path.join(" -> ");
                    self.error(
                        span,
                        format!("dependency cycle: {path} (each step needs the next)"),
                    );
                }
                None
            }
        };
        (order, needed_ids)
    }

    /// Checks the `needs` and inputs of one step; returns the steps it needs, each with the span
    /// of its first reference.
    fn references(&mut self, step: &StepDraft, names: &Names<'_>) -> BTreeMap<usize, Span> {
        let mut edges = BTreeMap::new();
        for (needed, span) in &step.explicit_needs {
            let span = span.clone();
            if *needed == step.id {
                self.error(span, format!("step `{needed}` needs itself"));
            } else if let Some(other) = names.step(needed) {
                edges.entry(other).or_insert(span);
            } else if names.is_dataset(needed) {
                let message = format!(
                    "`needs` lists steps, but `{needed}` is a dataset; \
                     datasets reach a step through `inputs`"
                );
                self.error(span, message);
            } else {
                let what = format!("unknown step `{needed}` in `needs`");
                self.unknown_name(span, what, needed, &names.steps, "steps");
            }
        }
        for (slot, input) in &step.inputs {
            let span = input.span.clone();
            match &input.source {
                InputSource::Dataset(name) if names.is_dataset(name) => {}
                InputSource::Dataset(name) if names.step(name).is_some() => {
                    let message = format!(
                        "input `{slot}` names step `{name}` but not which output; \
                         use \"{name}.OUTPUT\""
                    );
                    self.error(span, message);
                }
                InputSource::Dataset(name) => {
                    let what = format!("unknown dataset `{name}` in input `{slot}`");
                    self.unknown_name(span, what, name, &names.datasets, "datasets");
                }
                InputSource::StepOutput {
                    step: producer,
                    output,
                } if *producer == step.id => {
                    let message = format!(
                        "step `{producer}` cannot take its own output `{producer}.{output}` as input"
                    );
                    self.error(span, message);
                }
                InputSource::StepOutput { step: producer, .. } => {
                    if let Some(other) = names.step(producer) {
                        edges.entry(other).or_insert(span);
                    } else if names.is_dataset(producer) {
                        let message = format!(
                            "`{producer}` is a dataset, which has no outputs; use \"{producer}\""
                        );
                        self.error(span, message);
                    } else {
                        let what = format!("unknown step `{producer}` in input `{slot}`");
                        self.unknown_name(span, what, producer, &names.steps, "steps");
                    }
                }
            }
        }
        edges
    }

    /// Reports an unknown dataset or step, suggesting the closest known one.
    fn unknown_name(&mut self, span: Span, what: String, name: &str, known: &[&str], plural: &str) {
        let message = if let Some(suggestion) = closest(name, known.iter().copied()) {
            format!("{what}, did you mean `{suggestion}`?")
        } else if known.is_empty() {
            format!("{what}; no {plural} are defined")
        } else {
            format!("{what}; defined {plural}: {}", quoted_list(known))
        };
        self.error(span, message);
    }
}
